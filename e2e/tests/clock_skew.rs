//! A cluster whose clock is an hour ahead ships to a cluster whose clock is right: the receiver
//! refuses every batch, naming the partition and the offset (CLOCK_AHEAD), and its own clock
//! does not move. Fixing the sender's clock does not make the writes it already stamped an hour
//! ahead any younger (their timetags are kept, and the sender's hybrid clock continues from
//! them): the link takes them once the receiver's clock is within the maximum offset of them,
//! or at once when an operator raises the receivers' `--max-clock-offset` to accept them, which
//! this test does: then shipping resumes and the tables converge.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tern_core::WriteOp;
use tern_core::read::{ReadOp, ReadResult, Ttl};
use tern_e2e::cluster::SETTLE;
use tern_e2e::mixed::{dump, wait_identical};
use tern_e2e::workload::{numbered_set, set_op};
use tern_e2e::{Cluster, ClusterOptions};

const HOUR_MS: &str = "3600000";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_clock_an_hour_ahead_is_refused_until_it_is_fixed() {
    let fast = ClusterOptions {
        replica_args: vec!["--test-clock-offset".into(), HOUR_MS.into()],
        ..ClusterOptions::named("fast", 1)
    };
    let (a, b) = tokio::join!(Cluster::start(fast), Cluster::start(ClusterOptions::named("right", 2)));
    let mut a = a;
    a.create_table("t", 4, 3).await;
    b.create_table("t", 4, 3).await;
    a.dup_add("t", &b, &[]).await.ok();
    a.wait_for("the link to start on every partition", SETTLE, || async {
        let links = a.dup_links().await;
        let started = links.iter().all(|l| l.link.as_ref().is_some_and(|l| l.started.iter().all(|s| *s)));
        if started && !links.is_empty() { Ok(()) } else { Err("not started".to_string()) }
    })
    .await;

    let (ca, cb) = (a.client(), b.client());
    for i in 0..100u64 {
        ca.write("t", numbered_set(i)).await.unwrap();
    }
    // Every partition's batches are refused, and the shipper's status says why.
    let error = a
        .wait_for("the receiver to refuse the batches naming the offset", SETTLE, || async {
            let links = a.dup_links().await;
            let parts: Vec<_> = links.iter().flat_map(|l| l.partitions.iter()).collect();
            let refused =
                parts.iter().filter(|p| p.clock_ahead > 0 && p.last_error.contains("ms ahead")).count();
            if refused == parts.len() && !parts.is_empty() {
                Ok(parts[0].last_error.clone())
            } else {
                Err(format!("{refused} of {} partitions refused: {parts:?}", parts.len()))
            }
        })
        .await;
    eprintln!("e2e: the receiver says: {error}");
    assert!(error.contains("maximum clock offset of 500 ms") && error.contains("from cluster 1"), "{error}");
    assert!(dump(&cb, "t").await.unwrap().is_empty(), "nothing of the refused batches was written");

    // The receiver's clock did not move: a record written there with a 100 s TTL expires 100 s
    // from now (its expiry is taken from its write's timetag), not an hour later.
    cb.write("t", set_op("local", "s", "v", 100)).await.unwrap();
    let ttl =
        cb.read("t", ReadOp::Ttl { hash_key: b"local".to_vec(), sort_key: b"s".to_vec() }).await.unwrap();
    let ReadResult::Ttl(Some(Ttl::Remaining(secs))) = ttl else { panic!("{ttl:?}") };
    eprintln!("e2e: a 100 s TTL written on the receiver has {secs} s left");
    assert!(secs <= 100, "the receiver's clock moved ahead: {secs} s left of a 100 s TTL");

    // The operator fixes the sender's clock, and lets the receivers take the writes stamped an
    // hour ahead: shipping resumes.
    for p in a.replicas() {
        a.kill9(p);
        a.restart_without(p, "--test-clock-offset");
    }
    let mut b = b;
    for p in b.replicas() {
        b.kill9(p);
        b.restart_with(p, &["--max-clock-offset", "2h"]);
    }
    cb.write("t", WriteOp::Del { hash_key: b"local".to_vec(), sort_key: b"s".to_vec() }).await.unwrap();
    let records = wait_identical(&ca, &cb, "t", "t", Duration::from_secs(120)).await;
    eprintln!("e2e: identical once the clock was fixed: {records} records");
    assert_eq!(records, 100);
}
