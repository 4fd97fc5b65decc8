//! SIGTERM (what `tern down` and service managers send): servers exit promptly and cleanly, and
//! come back with their data.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use tern_e2e::cluster::SETTLE;
use tern_e2e::workload::{verify, write_batch};
use tern_e2e::{Cluster, ClusterOptions, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_stopped_with_sigterm_exit_cleanly_and_come_back() {
    let t0 = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions { metas: 3, replicas: 3, ..Default::default() }).await;
    cluster.create_table("t", 4, 3).await;
    let client = cluster.client();
    let mut ledger = write_batch(&client, "t", "g1", 200).await;
    assert_eq!(ledger.acked.len(), 200, "{:?}", ledger.unknown);

    // A replica server: exits 0 (Cluster::stop panics if it takes over 15 s), writes go on
    // without it, and it comes back into every partition.
    let replica = Proc::Replica(1);
    cluster.stop(replica);
    let more = write_batch(&client, "t", "g2", 200).await;
    assert_eq!(more.acked.len(), 200, "{:?}", more.unknown);
    ledger.merge(more);
    cluster.restart(replica);
    cluster.wait_healthy(SETTLE).await;

    // The meta leader: exits 0, another leads, it rejoins.
    let leader = cluster.leader_meta().await;
    cluster.stop(leader);
    let more = write_batch(&client, "t", "g3", 200).await;
    assert_eq!(more.acked.len(), 200, "{:?}", more.unknown);
    ledger.merge(more);
    let new = cluster.leader_meta().await;
    assert_ne!(new, leader);
    cluster.restart(leader);
    cluster.wait_healthy(SETTLE).await;

    verify(&client, "t", &ledger).await;
    eprintln!("e2e: done in {:?}", t0.elapsed());
}
