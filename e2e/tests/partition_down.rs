//! Every replica server is killed at once while writes run (every partition loses every
//! replica), then all are restarted: every partition must recover, from the members of its last
//! configuration, with every acknowledged write.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use tern_e2e::cluster::SETTLE;
use tern_e2e::workload::{Writers, verify};
use tern_e2e::{Cluster, ClusterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_partition_recovers_after_all_replica_servers_die() {
    let t0 = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions { metas: 3, replicas: 4, ..Default::default() }).await;
    let partitions = 8;
    let writers = Writers::on_new_table(&cluster, "t", partitions, 4, "pd").await;
    writers.wait_acks(&cluster, 0, 1000, SETTLE).await;

    for p in cluster.replicas() {
        cluster.kill9(p);
    }
    let killed = Instant::now();
    // The meta servers see every server dead and every partition without a primary: recovery
    // must then wait for the members of each partition's last configuration.
    cluster
        .wait_for("every partition to lose its primary", SETTLE, || async {
            let s = cluster.status().await.map_err(|e| e.to_string())?;
            let alive = s.nodes.iter().filter(|n| n.alive).count();
            let without = s.unhealthy.iter().filter(|c| c.primary == 0).count();
            if alive == 0 && without == partitions as usize {
                Ok(())
            } else {
                Err(format!("{alive} servers alive, {without} partitions without a primary"))
            }
        })
        .await;
    // Responses sent just before the kills may still be counted while the processes die; from
    // here on, writes are attempted with every server dead: they must all fail (two failures per
    // writer on average: at least the second of each was sent after every server was gone).
    let acked_dead = writers.total_acks();
    let errors_dead = writers.errors();
    cluster
        .wait_for("writes to fail with every server dead", SETTLE, || async {
            let more = writers.errors() - errors_dead;
            if more >= 8 { Ok(()) } else { Err(format!("{more} more failed writes")) }
        })
        .await;
    assert_eq!(writers.total_acks(), acked_dead, "a write was acknowledged with every server dead");
    eprintln!("e2e: every partition down {:?} after the kill", killed.elapsed());

    for p in cluster.replicas() {
        cluster.restart(p);
    }
    let back = Instant::now();
    cluster.wait_healthy(SETTLE).await;
    eprintln!("e2e: healthy {:?} after the restart", back.elapsed());
    let before = writers.acks();
    writers.wait_progress(&cluster, &before, SETTLE).await;
    let ledger = writers.stop().await;
    ledger.assert_no_fatal_errors();
    let applied = verify(&cluster.client(), "t", &ledger).await;
    eprintln!("e2e: {}, all read back; {:?} in all", ledger.summary(applied), t0.elapsed());
}
