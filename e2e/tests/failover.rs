//! Failover: `kill -9` the replica server that leads the most partitions while writers run.
//! Writes must resume on every partition, the cluster must heal onto the spare server, and every
//! acknowledged write must read back.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Instant;

use tern_e2e::cluster::SETTLE;
use tern_e2e::workload::{Writers, verify};
use tern_e2e::{Cluster, ClusterOptions, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_busiest_primary_loses_no_acknowledged_write() {
    let t0 = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions { metas: 3, replicas: 4, ..Default::default() }).await;
    let partitions = 8;
    // Let writes flow everywhere before the fault.
    let writers = Writers::on_new_table(&cluster, "orders", partitions, 4, "fo").await;
    writers.wait_acks(&cluster, 0, 500, SETTLE).await;

    let primaries = cluster.primaries("orders").await;
    let mut led: BTreeMap<Proc, usize> = BTreeMap::new();
    for p in primaries.iter().flatten() {
        *led.entry(*p).or_default() += 1;
    }
    let (victim, n) = led.iter().max_by_key(|(_, n)| **n).map(|(p, n)| (*p, *n)).unwrap();
    eprintln!("e2e: primaries {primaries:?}; killing {victim} (primary of {n})");
    cluster.kill9(victim);
    let killed = Instant::now();
    let before = writers.acks();

    // Writes resume on every partition, including those `victim` led.
    writers.wait_progress(&cluster, &before, SETTLE).await;
    eprintln!("e2e: writes resumed on every partition {:?} after the kill", killed.elapsed());
    // The cluster heals: three live servers hold three replicas of every partition again.
    cluster.wait_healthy(SETTLE).await;
    eprintln!("e2e: healthy again {:?} after the kill", killed.elapsed());
    let primaries = cluster.primaries("orders").await;
    assert!(primaries.iter().all(|p| p.is_some_and(|p| p != victim)), "{primaries:?}");
    // Some more writes on the healed configuration.
    let healed = writers.acks();
    writers.wait_progress(&cluster, &healed, SETTLE).await;

    let ledger = writers.stop().await;
    ledger.assert_no_fatal_errors();
    assert!(ledger.acked.len() > 100, "only {} writes acknowledged", ledger.acked.len());
    let applied = verify(&cluster.client(), "orders", &ledger).await;
    eprintln!("e2e: {}, all read back; {:?} in all", ledger.summary(applied), t0.elapsed());
    for (k, (_, e)) in ledger.unknown.iter().take(5) {
        eprintln!("e2e: unknown outcome of {}: {e}", String::from_utf8_lossy(k));
    }
}
