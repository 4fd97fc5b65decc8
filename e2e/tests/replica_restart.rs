//! A replica server is killed, writes go on without it, and it is restarted with its data
//! directory: it must rejoin every partition and hold everything it missed.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use tern_e2e::cluster::SETTLE;
use tern_e2e::workload::{Writers, verify};
use tern_e2e::{Cluster, ClusterOptions, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_replica_server_catches_up_with_what_it_missed() {
    let t0 = Instant::now();
    // Frequent flushes let the primaries drop old log, so catching up may need a checkpoint.
    let opts = ClusterOptions {
        metas: 3,
        replicas: 3,
        replica_args: vec!["--flush-interval".into(), "1s".into()],
        ..Default::default()
    };
    let mut cluster = Cluster::start(opts).await;
    let partitions = 4;
    let writers = Writers::on_new_table(&cluster, "t", partitions, 4, "rr").await;

    let victim = Proc::Replica(0);
    cluster.kill9(victim);
    // Writes go on without it, on every partition (it was a member of all of them).
    let before = writers.acks();
    writers.wait_progress(&cluster, &before, SETTLE).await;
    let missed_from = writers.total_acks();
    // The meta servers drop it from every configuration (writes then commit on two members).
    let id = cluster.node_id(victim).unwrap();
    cluster.wait_node(victim, "to leave every configuration", |n| !n.alive && n.replicas == 0).await;
    writers.wait_acks(&cluster, writers.total_acks(), 1500, SETTLE).await;
    eprintln!("e2e: {} writes while {victim} was down", writers.total_acks() - missed_from);

    cluster.restart(victim);
    let back = Instant::now();
    // Three servers, three replicas per partition: it is back in every partition.
    let s = cluster.wait_healthy(SETTLE).await;
    eprintln!("e2e: healthy {:?} after the restart", back.elapsed());
    let n = s.nodes.iter().find(|n| n.node == id).unwrap();
    assert_eq!(n.replicas, partitions, "{n:?}");
    let before = writers.acks();
    writers.wait_progress(&cluster, &before, SETTLE).await;
    let ledger = writers.stop().await;
    ledger.assert_no_fatal_errors();

    // Proof that it learned: kill the two others; it alone must serve every acknowledged write.
    cluster.kill9(Proc::Replica(1));
    cluster.kill9(Proc::Replica(2));
    cluster
        .wait_for(&format!("{victim} to lead every partition"), SETTLE, || async {
            let p = cluster.primaries("t").await;
            if p.iter().all(|p| *p == Some(victim)) { Ok(()) } else { Err(format!("{p:?}")) }
        })
        .await;
    let applied = verify(&cluster.client(), "t", &ledger).await;
    eprintln!("e2e: {}, all served by {victim} alone; {:?} in all", ledger.summary(applied), t0.elapsed());
}

/// Guards against a stall: while a killed server is not yet declared dead, primaries drop it
/// (ack timeout) and the meta server asks it, the only candidate, to learn their partitions.
/// The primaries give up inviting it after their learn timeout (5 s). Once it is back, those
/// partitions must take it in again within seconds, not after the meta server's learner
/// timeout (30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_server_back_after_a_kill_rejoins_within_seconds() {
    let mut cluster = Cluster::start(ClusterOptions { metas: 1, replicas: 3, ..Default::default() }).await;
    let partitions = 4;
    let writers = Writers::on_new_table(&cluster, "t", partitions, 4, "rj").await;

    let victim = Proc::Replica(0);
    cluster.kill9(victim);
    cluster.wait_node(victim, "to be declared dead", |n| !n.alive).await;
    // The fault itself (not a wait for a condition): stay down longer than a primary keeps
    // inviting a learner that does not answer.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    cluster.restart(victim);
    cluster.wait_healthy(std::time::Duration::from_secs(15)).await;
    let ledger = writers.stop().await;
    ledger.assert_no_fatal_errors();
    verify(&cluster.client(), "t", &ledger).await;
}
