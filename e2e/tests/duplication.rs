//! Two clusters with a two-way duplication link: writers on both sides collide on the same
//! records with sets, deletes, increments and check-and-sets, while a source replica server is
//! killed; afterwards both sides hold identical tables, though their partition counts differ
//! (8 and 2: every write is routed by its own hash key), and `tern dup status` shows every
//! partition caught up.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tern_e2e::cluster::SETTLE;
use tern_e2e::mixed::{Mixed, dump, wait_identical};
use tern_e2e::{Cluster, ClusterOptions, Proc};
use tern_proto::pb;

fn opts(name: &str, id: u8) -> ClusterOptions {
    ClusterOptions { name: name.into(), id, metas: 1, replicas: 3, ..Default::default() }
}

async fn links(c: &Cluster) -> Vec<pb::DupLinkStatus> {
    c.meta()
        .call(|mut m| async move { m.dup_list(pb::DupListRequest { table: String::new() }).await })
        .await
        .map(|r| r.links)
        .unwrap_or_default()
}

/// Every partition of every link of `c` has started and shipped everything committed.
async fn caught_up(c: &Cluster) -> Result<(), String> {
    let links = links(c).await;
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
    let out = a.cli(&["dup", "add", "--meta", &ma, "--table", "nope", "--to", "dc2", "--to-meta", &mb]).await;
    assert!(out.code != 0 && out.stderr.contains("nope"), "{out:?}");
    let out = a.cli(&["dup", "add", "--meta", &ma, "--table", "t", "--to", "dcX", "--to-meta", &mb]).await;
    assert!(out.code != 0 && out.stderr.contains("dc2"), "the remote names itself: {out:?}");

    a.cli(&[
        "dup",
        "add",
        "--meta",
        &ma,
        "--table",
        "t",
        "--to",
        "dc2",
        "--to-meta",
        &mb,
        "--mode",
        "two-way",
    ])
    .await
    .ok();
    a.wait_for("dc1's link to start on every partition", SETTLE, || caught_up(&a)).await;
    b.wait_for("dc2's link to start on every partition", SETTLE, || caught_up(&b)).await;

    let (ca, cb) = (a.client(), b.client());
    let wa = Mixed::start(ca.clone(), "t", 4, 300, "a", 1);
    let wb = Mixed::start(cb.clone(), "t", 4, 300, "b", 2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // A source server dies while shipping: its partitions' new primaries continue from the
    // confirmed decree.
    let victim = a.primary_of("t", 0).await.unwrap_or(Proc::Replica(0));
    a.kill9(victim);
    tokio::time::sleep(Duration::from_secs(6)).await;
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
    let conflicts: u64 = links(&a).await.iter().chain(links(&b).await.iter()).map(|l| l.conflicts).sum();
    eprintln!("e2e: {conflicts} conflicts resolved by last-writer-wins");
}
