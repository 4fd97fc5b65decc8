//! Two clusters with a two-way duplication link: writers on both sides collide on the same
//! records with sets, deletes, increments and check-and-sets, while a source replica server is
//! killed; afterwards both sides hold identical tables, though their partition counts differ
//! (8 and 2: every write is routed by its own hash key), and `tern dup status` shows every
//! partition caught up.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tern_client::TernClient;
use tern_core::LinkStatus;
use tern_e2e::cluster::SETTLE;
use tern_e2e::mixed::{Mixed, dump, wait_identical};
use tern_e2e::{Cluster, ClusterOptions, Proc};
use tern_proto::convert::PbEnum;

fn opts(name: &str, id: u8) -> ClusterOptions {
    ClusterOptions::named(name, id)
}

/// Waits until the writers `w` have made `more` successful writes beyond `from`.
async fn wait_writes(c: &Cluster, w: &Mixed, from: u64, more: u64, what: &str) -> u64 {
    c.wait_for(what, SETTLE, || async {
        let ok = w.ok.load(Ordering::Relaxed);
        if ok >= from + more { Ok(()) } else { Err(format!("{} of {more} writes", ok.saturating_sub(from))) }
    })
    .await;
    w.ok.load(Ordering::Relaxed)
}

/// Once the writers stopped: waits until `src` (of `a`, read through `ca`) and `dst` (through
/// `cb`) hold the same records, and then until `a`'s links have caught up (`what`, for the
/// message); returns how many records the tables hold.
async fn wait_converged(
    a: &Cluster,
    ca: &TernClient,
    cb: &TernClient,
    src: &str,
    dst: &str,
    what: &str,
) -> usize {
    let records = wait_identical(ca, cb, src, dst, Duration::from_secs(120)).await;
    a.wait_for(what, SETTLE, || caught_up(a)).await;
    records
}

/// How many records the full syncs of `c`'s links copied.
async fn copied(c: &Cluster) -> u64 {
    c.dup_links().await.iter().flat_map(|l| l.partitions.iter()).map(|p| p.sync_records).sum()
}

/// Every partition of every link of `c` has started and shipped everything committed.
async fn caught_up(c: &Cluster) -> Result<(), String> {
    let links = c.dup_links().await;
    if links.is_empty() {
        return Err("no links".into());
    }
    for l in &links {
        for p in &l.partitions {
            if p.decrees_behind > 0 || p.committed == 0 || !p.last_error.is_empty() {
                return Err(format!(
                    "link {} partition {}: {p:?}",
                    l.link.as_ref().map_or(0, |x| x.id),
                    p.partition
                ));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_clusters_converge_under_colliding_two_way_writes() {
    let t0 = Instant::now();
    let (a, b) = tokio::join!(Cluster::start(opts("dc1", 1)), Cluster::start(opts("dc2", 2)));
    let mut a = a;
    a.create_table("t", 8, 3).await;
    b.create_table("t", 2, 3).await;

    // Bad input first: a link to an unknown table, and to a cluster under the wrong name.
    let (ma, mb) = (a.meta_arg(), b.meta_arg());
    let out = a.dup_add("nope", &b, &[]).await;
    assert!(out.code != 0 && out.stderr.contains("nope"), "{out:?}");
    let out = a.cli(&["dup", "add", "--meta", &ma, "--table", "t", "--to", "dcX", "--to-meta", &mb]).await;
    assert!(out.code != 0 && out.stderr.contains("dc2"), "the remote names itself: {out:?}");

    let out = a.dup_add("t", &b, &["--mode", "two-way"]).await.ok();
    assert!(out.stderr.contains("are not copied") && out.stderr.contains("--full-sync"), "{out:?}");
    a.wait_for("dc1's link to start on every partition", SETTLE, || caught_up(&a)).await;
    b.wait_for("dc2's link to start on every partition", SETTLE, || caught_up(&b)).await;

    let (ca, cb) = (a.client(), b.client());
    let wa = Mixed::start(ca.clone(), "t", 4, 300, "a", 1);
    let wb = Mixed::start(cb.clone(), "t", 4, 300, "b", 2);
    let before_kill = wait_writes(&a, &wa, 0, 300, "dc1's writers to write").await;
    wait_writes(&b, &wb, 0, 300, "dc2's writers to write").await;
    // A source server dies while shipping: its partitions' new primaries continue from the
    // confirmed decree.
    let victim = a.primary_of("t", 0).await.unwrap_or(Proc::Replica(0));
    a.kill9(victim);
    wait_writes(&a, &wa, before_kill, 300, "dc1's writers to go on without the killed server").await;
    let ((oka, faila), (okb, failb)) = (wa.stop().await, wb.stop().await);
    eprintln!("e2e: dc1 {oka} writes ({faila} failed), dc2 {okb} writes ({failb} failed)");
    assert!(oka > 100 && okb > 100, "both sides wrote");

    let records = wait_identical(&ca, &cb, "t", "t", Duration::from_secs(120)).await;
    eprintln!("e2e: identical, {records} records, {:?} after start", t0.elapsed());
    assert!(records > 50, "the tables hold data ({records} records)");
    let counters = dump(&ca, "t").await.unwrap().keys().filter(|(h, _)| h.starts_with(b"c")).count();
    assert!(counters > 0, "increments were duplicated");

    a.wait_for("dc1 caught up", SETTLE, || caught_up(&a)).await;
    b.wait_for("dc2 caught up", SETTLE, || caught_up(&b)).await;
    let status = a.cli(&["dup", "status", "--meta", &ma, "--output", "json"]).await.ok();
    eprintln!("e2e: dc1 dup status: {}", status.stdout);
    // The scenario this test is named after happened: writes of the two sides collided, and
    // last-writer-wins resolved them (counted, and journaled with both timetags).
    let conflicts: u64 =
        a.dup_links().await.iter().chain(b.dup_links().await.iter()).map(|l| l.conflicts).sum();
    eprintln!("e2e: {conflicts} conflicts resolved by last-writer-wins");
    assert!(conflicts > 0, "the two sides' writes never collided: the test did not test conflicts");
    // Both kinds are journaled, each in the cluster whose link shipped the write: a shipped
    // write that lost, and a record of the other cluster that a shipped write replaced.
    let (mut journaled, mut lost_total, mut overwritten_total) = (0, 0, 0);
    let mut kinds_seen = std::collections::BTreeSet::new();
    for (c, m, own, other) in [(&a, &ma, 1, 2), (&b, &mb, 2, 1)] {
        let id = c.first_link_id().await;
        let out = c.cli(&["dup", "conflicts", "--meta", m, &id, "--output", "json"]).await.ok();
        let journal: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        journaled += journal["total"].as_u64().unwrap();
        lost_total += journal["shipped_lost"].as_u64().unwrap();
        overwritten_total += journal["remote_overwritten"].as_u64().unwrap();
        for c in journal["recent"].as_array().unwrap() {
            let shipped = c["incoming"]["timetag"].as_u64().unwrap();
            let remote = c["stored"]["timetag"].as_u64().unwrap();
            assert_eq!(c["incoming"]["cluster"].as_u64(), Some(own), "shipped from here: {c}");
            let kind = c["kind"].as_str().unwrap().to_string();
            match kind.as_str() {
                "shipped-lost" => {
                    assert_eq!(c["winner"], "remote", "{c}");
                    assert!(shipped < remote, "the shipped write that lost is older than the one kept: {c}");
                }
                "remote-overwritten" => {
                    assert_eq!(c["winner"], "shipped", "{c}");
                    assert_eq!(c["stored"]["cluster"].as_u64(), Some(other), "written over there: {c}");
                    assert!(
                        shipped > remote,
                        "the shipped write that won is newer than the one replaced: {c}"
                    );
                }
                other => panic!("unknown conflict kind {other}: {c}"),
            }
            kinds_seen.insert(kind);
        }
        let text = c.cli(&["dup", "conflicts", "--meta", m, &id]).await.ok();
        eprintln!("e2e: {}", text.stdout.lines().take(4).collect::<Vec<_>>().join("\n     "));
    }
    eprintln!(
        "e2e: journaled {lost_total} shipped writes that lost, {overwritten_total} remote records overwritten"
    );
    assert_eq!(journaled, conflicts, "every conflict is in a journal");
    assert_eq!(journaled, lost_total + overwritten_total);
    assert!(lost_total > 0 && overwritten_total > 0, "both kinds counted: {lost_total}, {overwritten_total}");
    assert_eq!(kinds_seen.len(), 2, "both kinds journaled: {kinds_seen:?}");
}

/// Largest lag over the partitions of `c`'s links: (decrees behind, seconds behind, any error).
async fn lag(c: &Cluster) -> (u64, f64, String) {
    let mut out = (0, 0.0, String::new());
    for l in c.dup_links().await {
        for p in l.partitions {
            out.0 = out.0.max(p.decrees_behind);
            out.1 = f64::max(out.1, p.seconds_behind);
            if !p.last_error.is_empty() {
                out.2 = p.last_error;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_way_link_survives_a_pause_and_a_remote_outage_and_reports_its_lag() {
    let with_metrics = |name, id| ClusterOptions { metrics: true, ..opts(name, id) };
    let (a, b) =
        tokio::join!(Cluster::start(with_metrics("east", 3)), Cluster::start(with_metrics("west", 4)));
    let mut b = b;
    a.create_table("src", 8, 3).await;
    b.create_table("dst", 32, 3).await;
    let ma = a.meta_arg();
    let out = a.dup_add("src", &b, &["--remote-table", "dst"]).await.ok();
    eprintln!("e2e: {}", out.stdout.trim());
    let id = a.first_link_id().await;
    a.wait_for("the link to start", SETTLE, || caught_up(&a)).await;

    let (ca, cb) = (a.client(), b.client());
    let w = Mixed::start(ca.clone(), "src", 4, 500, "e", 7);

    // Paused: nothing ships, the lag shows, the log is kept.
    a.cli(&["dup", "pause", "--meta", &ma, &id]).await.ok();
    a.wait_for("the lag to show while paused", SETTLE, || async {
        let (d, s, _) = lag(&a).await;
        if d > 0 && s >= 1.0 { Ok(()) } else { Err(format!("{d} decrees, {s} s behind")) }
    })
    .await;
    a.cli(&["dup", "resume", "--meta", &ma, &id]).await.ok();

    // The remote cluster loses every replica server for a while: errors show, then it heals.
    for p in b.replicas() {
        b.kill9(p);
    }
    a.wait_for("shipping errors to show", SETTLE, || async {
        let (d, _, e) = lag(&a).await;
        if d > 0 && !e.is_empty() { Ok(e) } else { Err(format!("{d} decrees behind, error {e:?}")) }
    })
    .await;
    for p in b.replicas() {
        b.restart(p);
    }
    let now = w.ok.load(Ordering::Relaxed);
    wait_writes(&a, &w, now, 300, "writes after the remote cluster is back").await;
    let (ok, failed) = w.stop().await;
    eprintln!("e2e: {ok} writes ({failed} failed) on east");
    let records = wait_converged(&a, &ca, &cb, "src", "dst", "caught up after the outage").await;
    eprintln!("e2e: identical after pause and outage: {records} records (8 -> 32 partitions)");

    // The same story in the metrics: east's primaries shipped, west's received.
    let mut shipped = 0.0;
    for p in a.replicas() {
        shipped += metric_sum(&a.scrape_metrics(p).await, "tern_dup_shipped_puts_total");
    }
    let mut received = 0.0;
    for p in b.replicas() {
        received += metric_sum(&b.scrape_metrics(p).await, "tern_dup_received_puts_total");
    }
    eprintln!("e2e: metrics: {shipped} puts shipped by east's primaries, {received} received by west");
    assert!(shipped > 0.0 && received > 0.0, "shipped {shipped}, received {received}");
}

/// The sum of every sample of `name` in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_sync_copies_existing_records_then_ships_writes_made_meanwhile() {
    let (a, b) = tokio::join!(Cluster::start(opts("north", 5)), Cluster::start(opts("south", 6)));
    a.create_table("src", 4, 3).await;
    b.create_table("dst", 8, 3).await;
    let (ca, cb) = (a.client(), b.client());
    // Existing data: sets, deletes (tombstones), increments, records with a TTL.
    let before = Mixed::start(ca.clone(), "src", 4, 2000, "old", 11);
    wait_writes(&a, &before, 0, 1_000, "writes before the link").await;
    let (ok, _) = before.stop().await;
    let preload: Vec<_> = (0..400u32)
        .map(|i| {
            let ca = ca.clone();
            tokio::spawn(async move {
                let (hash_key, sort_key) = (format!("p{i}").into_bytes(), b"s".to_vec());
                let ttl_secs = if i % 8 == 0 { 3600 } else { 0 };
                let set = tern_core::WriteOp::Set {
                    hash_key: hash_key.clone(),
                    sort_key: sort_key.clone(),
                    value: b"v".to_vec(),
                    ttl_secs,
                };
                ca.write("src", set).await.unwrap();
                if i % 5 == 0 {
                    ca.write("src", tern_core::WriteOp::Del { hash_key, sort_key }).await.unwrap();
                }
            })
        })
        .collect();
    for t in preload {
        t.await.unwrap();
    }
    let existing = dump(&ca, "src").await.unwrap().len();
    eprintln!("e2e: {ok} mixed writes and 400 sets (80 deleted) before the link, {existing} records in src");
    assert!(existing >= 320, "the source holds data before the link ({existing} records)");

    // Writes go on while the copy runs.
    let during = Mixed::start(ca.clone(), "src", 2, 2000, "new", 12);
    let out = a.dup_add("src", &b, &["--remote-table", "dst", "--full-sync"]).await.ok();
    assert!(!out.stderr.contains("are not copied"), "a full sync copies them: {out:?}");
    eprintln!("e2e: {}", out.stdout.trim());
    a.wait_for("the full sync to finish on every partition", SETTLE, || async {
        let l = a.dup_links().await;
        let status = l.first().and_then(|l| l.link.as_ref()).map(|l| LinkStatus::from_pb(l.status, "status"));
        if status == Some(Ok(LinkStatus::Shipping)) { Ok(()) } else { Err(format!("link status {status:?}")) }
    })
    .await;
    let now = during.ok.load(Ordering::Relaxed);
    wait_writes(&a, &during, now, 200, "writes after the copy").await;
    let (ok, _) = during.stop().await;
    eprintln!("e2e: {ok} writes during and after the copy");
    let records = wait_converged(&a, &ca, &cb, "src", "dst", "caught up after the full sync").await;
    let copied = copied(&a).await;
    eprintln!("e2e: identical after a full sync: {records} records (4 -> 8 partitions), {copied} copied");
}

/// A source replica server misses writes, catches up by learning (a checkpoint: its peers'
/// logs moved on), then becomes the only one left and so the primary of every partition. It
/// must hold the log the link still needs (learning keeps it) and ship from where the link
/// stood, without falling back to copying whole partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_replica_that_relearned_can_take_over_shipping() {
    let source =
        ClusterOptions { replica_args: vec!["--flush-interval".into(), "1s".into()], ..opts("up", 7) };
    let (a, b) = tokio::join!(Cluster::start(source), Cluster::start(opts("down", 8)));
    let mut a = a;
    a.create_table("t", 2, 3).await;
    b.create_table("t", 2, 3).await;
    let ma = a.meta_arg();
    a.dup_add("t", &b, &[]).await.ok();
    a.wait_for("the link to start", SETTLE, || caught_up(&a)).await;
    let (ca, cb) = (a.client(), b.client());
    let w = Mixed::start(ca.clone(), "t", 4, 3000, "u", 21);

    // Paused, the link's confirmed decree stays behind while the victim is away and relearns.
    wait_writes(&a, &w, 0, 200, "writes to ship before the pause").await;
    let id = a.first_link_id().await;
    a.cli(&["dup", "pause", "--meta", &ma, &id]).await.ok();
    // Every replica, the victim included, applies well past the confirmed decree: a write is
    // acknowledged only once every member logged it.
    let paused_at = w.ok.load(Ordering::Relaxed);
    wait_writes(&a, &w, paused_at, 300, "writes while the link is paused").await;
    let victim = Proc::Replica(0);
    a.kill9(victim);
    // The others go on without it: it has to catch up by learning when it is back.
    let killed_at = w.ok.load(Ordering::Relaxed);
    wait_writes(&a, &w, killed_at, 1_000, "writes while the victim is down").await;
    a.restart(victim);
    a.wait_healthy(SETTLE).await;
    a.kill9(Proc::Replica(1));
    a.kill9(Proc::Replica(2));
    a.wait_for(&format!("{victim} to lead every partition"), SETTLE, || async {
        let p = a.primaries("t").await;
        if p.iter().all(|p| *p == Some(victim)) { Ok(()) } else { Err(format!("{p:?}")) }
    })
    .await;
    a.cli(&["dup", "resume", "--meta", &ma, &id]).await.ok();
    let now = w.ok.load(Ordering::Relaxed);
    wait_writes(&a, &w, now, 200, "writes after the link resumed").await;
    let (ok, failed) = w.stop().await;
    eprintln!("e2e: {ok} writes ({failed} failed)");
    let records = wait_converged(&a, &ca, &cb, "t", "t", "caught up").await;
    let copied = copied(&a).await;
    eprintln!("e2e: identical after the relearned replica took over: {records} records, {copied} copied");
    assert_eq!(copied, 0, "the new primary shipped from its log, it did not copy partitions");
}

/// A link added just before the other cluster becomes unreachable (its meta servers down, so
/// its routes unknown) still starts on every partition (its start point does not depend on the
/// other cluster), and the writes made meanwhile ship once that cluster is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_starts_while_the_other_cluster_is_unreachable_and_ships_what_was_written() {
    let (a, b) = tokio::join!(Cluster::start(opts("here", 9)), Cluster::start(opts("there", 10)));
    let mut b = b;
    a.create_table("t", 4, 3).await;
    b.create_table("t", 4, 3).await;
    a.dup_add("t", &b, &[]).await.ok();
    for p in b.metas() {
        b.kill9(p);
    }
    a.wait_for("the link to start on every partition with the other cluster down", SETTLE, || async {
        let links = a.dup_links().await;
        let started = links.iter().all(|l| l.link.as_ref().is_some_and(|l| l.started.iter().all(|s| *s)));
        if started && !links.is_empty() { Ok(()) } else { Err(format!("{links:?}")) }
    })
    .await;
    let (ca, cb) = (a.client(), b.client());
    let w = Mixed::start(ca.clone(), "t", 2, 500, "h", 31);
    wait_writes(&a, &w, 0, 300, "writes while the other cluster is down").await;
    let (ok, _) = w.stop().await;
    for p in b.metas() {
        b.restart(p);
    }
    let records = wait_identical(&ca, &cb, "t", "t", Duration::from_secs(120)).await;
    eprintln!(
        "e2e: {ok} writes made while the other cluster was down, {records} records shipped once it was back"
    );
    assert!(records > 0);
}
