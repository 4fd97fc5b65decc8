//! Deletes held back by the links (issue #24, item 1). Two clusters with a two-way link and a
//! tombstone retention of 3 s. Both links are paused for longer than the retention while both
//! sides set, delete and re-create the same keys; then resumed. What a fixed retention window
//! would get wrong, and this checks:
//!
//! * nothing is refused for its age (the old receivers refused duplicated writes older than the
//!   retention, so a link down longer could never deliver);
//! * no deleted key comes back: a delete newer than a write of the other side still beats it,
//!   because the receiving table's purge horizon stayed behind what the paused link had not
//!   shipped (shown by `tern dup status` and the `tern_purge_horizon_age_seconds` gauge);
//! * both sides converge on the last writer by the writes' own timetags, re-created keys
//!   included; and once the links caught up, the horizon follows the retention again.
//!
//! And a full sync copies records with their own timetags: an older copy loses to the
//! receiver's newer write or delete.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use tern_client::TernClient;
use tern_core::WriteOp;
use tern_core::read::{ReadOp, ReadResult};
use tern_e2e::cluster::SETTLE;
use tern_e2e::mixed::wait_identical;
use tern_e2e::pair::linked;
use tern_e2e::workload::set_op;
use tern_e2e::{Cluster, ClusterOptions};

const RETENTION: &str = "3s";
const RETENTION_S: f64 = 3.0;

fn set(k: &str, v: &str) -> WriteOp {
    set_op(k, "s", v, 0)
}

fn del(k: &str) -> WriteOp {
    WriteOp::Del { hash_key: k.into(), sort_key: b"s".to_vec() }
}

async fn get(c: &TernClient, k: &str) -> Option<Vec<u8>> {
    match c.read("t", ReadOp::Get { hash_key: k.into(), sort_key: b"s".to_vec() }).await.unwrap() {
        ReadResult::Get(v) => v,
        other => panic!("{other:?}"),
    }
}

/// One write, then a pause long enough that the next write (on either cluster) gets a later
/// timetag: timetags are milliseconds of the servers' clocks (the same clock here), so writes
/// of two clusters within one millisecond could order either way.
async fn write(c: &TernClient, op: WriteOp) {
    c.write("t", op).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
}

/// `tern dup status --output json` of `c`.
async fn dup_status(c: &Cluster) -> Value {
    let out = c.cli(&["dup", "status", "--meta", &c.meta_arg(), "--output", "json"]).await.ok();
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// How far behind `c`'s clock the purge horizon of table `t` is, in seconds, as `tern dup
/// status` shows it with its incoming link (`None`: no horizon yet).
async fn horizon_age(c: &Cluster) -> Result<f64, String> {
    let s = dup_status(c).await;
    let incoming = s["incoming"].as_array().ok_or(format!("no incoming links: {s}"))?;
    let t = incoming.iter().find(|i| i["table"] == "t").ok_or(format!("no incoming link into t: {s}"))?;
    t["purge_horizon_seconds_ago"].as_f64().ok_or(format!("no horizon yet: {t}"))
}

/// Waits until the purge horizon of `t` trails the clock by about the retention in both
/// clusters (nothing holds it back).
async fn wait_horizon_follows(a: &Cluster, b: &Cluster, what: &str) {
    for c in [a, b] {
        c.wait_for(what, SETTLE, || async {
            match horizon_age(c).await? {
                age if age < RETENTION_S + 5.0 => Ok(()),
                age => Err(format!("{age:.1}s")),
            }
        })
        .await;
    }
}

/// Sums over the partitions of `c`'s links: (batches that failed, decrees behind).
async fn failures_and_behind(c: &Cluster) -> (u64, u64) {
    let parts: Vec<_> = c.dup_links().await.into_iter().flat_map(|l| l.partitions).collect();
    (parts.iter().map(|p| p.failed_batches).sum(), parts.iter().map(|p| p.decrees_behind).sum())
}

/// The largest `tern_purge_horizon_age_seconds` any replica server of `c` exports.
async fn horizon_gauge(c: &Cluster) -> f64 {
    let mut max = 0f64;
    for p in c.replicas() {
        for line in c.scrape_metrics(p).await.lines() {
            if line.starts_with("tern_purge_horizon_age_seconds")
                && let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
            {
                max = max.max(v);
            }
        }
    }
    max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_paused_longer_than_the_retention_delivers_and_no_delete_is_undone() {
    let opts = |name: &str, id| ClusterOptions {
        meta_args: vec!["--tombstone-retention".into(), RETENTION.into()],
        metrics: true,
        ..ClusterOptions::named(name, id)
    };
    let (a, b) = linked(opts("east", 41), opts("west", 42), &["--mode", "two-way"]).await;
    let (ca, cb) = (a.client(), b.client());
    let (ma, mb) = (a.meta_arg(), b.meta_arg());

    // While the links ship, the horizon trails the clock by about the retention.
    for k in ["k1", "k2", "k3", "k4"] {
        write(&ca, set(k, "base")).await;
    }
    wait_identical(&ca, &cb, "t", "t", SETTLE).await;
    wait_horizon_follows(&a, &b, "the purge horizon to follow the retention").await;

    // Both links paused; each side waits until the other stopped sending (its heartbeats too).
    let (ida, idb) = (a.first_link_id().await, b.first_link_id().await);
    a.cli(&["dup", "pause", "--meta", &ma, &ida]).await.ok();
    b.cli(&["dup", "pause", "--meta", &mb, &idb]).await.ok();
    for c in [&a, &b] {
        c.wait_for("the other cluster's shipping to stop", SETTLE, || async {
            let s = dup_status(c).await;
            let heard = s["incoming"][0]["heard_ms_ago"].as_u64().unwrap_or(0);
            if heard > 4_000 { Ok(()) } else { Err(format!("heard {heard} ms ago")) }
        })
        .await;
    }

    // Each key's writes in the order they are made; the last one wins on both sides.
    write(&cb, set("k1", "west-old")).await;
    write(&ca, del("k1")).await; // deleted after west's write: stays deleted
    write(&ca, del("k2")).await;
    write(&cb, set("k2", "west-new")).await; // re-created after east's delete
    write(&ca, set("k3", "east-old")).await;
    write(&cb, del("k3")).await;
    write(&ca, del("k4")).await;
    write(&cb, del("k4")).await;
    for i in 0..40 {
        let k = format!("y{i}");
        if i % 2 == 0 {
            write(&cb, set(&k, "west")).await;
            write(&ca, del(&k)).await;
        } else {
            write(&ca, set(&k, "east")).await;
            write(&ca, del(&k)).await;
            write(&cb, set(&k, "west-again")).await;
        }
    }
    let last_write = Instant::now();
    // The deletes grow older than the retention while the paused links hold the horizon back.
    for c in [&a, &b] {
        c.wait_for("the deletes to outlive the retention, held back by the paused link", SETTLE, || async {
            let age = horizon_age(c).await?;
            let since = last_write.elapsed().as_secs_f64();
            if since > RETENTION_S + 2.0 && age > since {
                Ok(())
            } else {
                Err(format!("horizon {age:.1}s old, last write {since:.1}s ago"))
            }
        })
        .await;
        let gauge = horizon_gauge(c).await;
        assert!(gauge > RETENTION_S + 2.0, "the gauge shows the horizon held back: {gauge}");
    }

    a.cli(&["dup", "resume", "--meta", &ma, &ida]).await.ok();
    b.cli(&["dup", "resume", "--meta", &mb, &idb]).await.ok();
    let records = wait_identical(&ca, &cb, "t", "t", SETTLE).await;
    for c in [&a, &b] {
        c.wait_for("the links to catch up without a refusal", SETTLE, || async {
            match failures_and_behind(c).await {
                (0, 0) => Ok(()),
                (failed, behind) => Err(format!("{failed} batches failed, {behind} decrees behind")),
            }
        })
        .await;
    }
    for (name, c) in [("east", &ca), ("west", &cb)] {
        assert_eq!(get(c, "k1").await, None, "{name}: k1 was deleted last");
        assert_eq!(get(c, "k2").await.as_deref(), Some(&b"west-new"[..]), "{name}: k2 re-created last");
        assert_eq!(get(c, "k3").await, None, "{name}: k3 was deleted last");
        assert_eq!(get(c, "k4").await, None, "{name}: k4 deleted on both sides");
        for i in 0..40 {
            let want: Option<&[u8]> = if i % 2 == 0 { None } else { Some(b"west-again") };
            assert_eq!(get(c, &format!("y{i}")).await.as_deref(), want, "{name}: y{i}");
        }
    }
    eprintln!("e2e: converged on {records} live records; no delete undone, no batch refused");

    // Caught up: the horizon follows the retention again (the deletes may now be dropped).
    wait_horizon_follows(&a, &b, "the purge horizon to move on once the link caught up").await;
}

/// A full sync sends records with their own timetags (the old one raised old timetags to the
/// retention's start): a copied record older than the receiver's own write of the same key
/// loses to it, and one older than the receiver's delete does not bring the key back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_sync_never_lets_an_older_record_beat_a_newer_one_or_undo_a_delete() {
    let (a, b) = tokio::join!(
        Cluster::start(ClusterOptions::named("north", 43)),
        Cluster::start(ClusterOptions::named("south", 44))
    );
    a.create_table("t", 4, 3).await;
    b.create_table("t", 4, 3).await;
    let (ca, cb) = (a.client(), b.client());
    for i in 0..30 {
        write(&ca, set(&format!("f{i}"), "north-old")).await;
    }
    for i in 0..10 {
        write(&ca, set(&format!("g{i}"), "north")).await;
    }
    for i in 0..30 {
        let k = format!("f{i}");
        write(&cb, if i % 2 == 0 { set(&k, "south-new") } else { del(&k) }).await;
    }
    a.dup_add("t", &b, &["--full-sync"]).await.ok();
    a.wait_for("the full sync to copy every partition and ship", SETTLE, || async {
        let links = a.dup_links().await;
        let parts: Vec<_> = links.iter().flat_map(|l| l.partitions.iter()).collect();
        let copied: u64 = parts.iter().map(|p| p.sync_records).sum();
        let done = links.iter().all(|l| l.link.as_ref().is_some_and(|d| d.started.iter().all(|s| *s)));
        if done && copied >= 40 && !parts.is_empty() {
            Ok(())
        } else {
            Err(format!("{copied} copied: {links:?}"))
        }
    })
    .await;
    b.wait_for("the copied records to arrive", SETTLE, || async {
        let mut missing = 0;
        for i in 0..10 {
            if get(&cb, &format!("g{i}")).await.is_none() {
                missing += 1;
            }
        }
        if missing == 0 { Ok(()) } else { Err(format!("{missing} of 10 missing")) }
    })
    .await;
    for i in 0..30 {
        let want: Option<&[u8]> = if i % 2 == 0 { Some(b"south-new") } else { None };
        assert_eq!(
            get(&cb, &format!("f{i}")).await.as_deref(),
            want,
            "south's newer write or delete of f{i} stands"
        );
    }
}
