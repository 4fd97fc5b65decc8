//! The balancer, on real processes while writers run: a new replica server receives its share
//! of primaries and replicas; a decommissioned one is drained to nothing and can then be killed
//! without losing an acknowledged write. The meta servers plan a balancing round every second
//! (`--balance-interval 1s`) so that this takes seconds, not minutes. Replicas moved away are
//! garbage-collected after 2 s (`--gc-removed-after`): every server ends up holding on disk
//! exactly the replicas its partitions' configurations give it.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tern_client::TernClient;
use tern_e2e::cluster::{SETTLE, node_is};
use tern_e2e::workload::{Ledger, Writers, verify};
use tern_e2e::{Cluster, ClusterOptions, Proc};
use tern_proto::pb;

/// How long the balancer may take to even out or drain one 8-partition table.
const BALANCE: Duration = Duration::from_secs(90);

fn options(replicas: usize) -> ClusterOptions {
    ClusterOptions {
        metas: 1,
        replicas,
        meta_args: vec!["--balance-interval".into(), "1s".into()],
        replica_args: vec!["--gc-removed-after".into(), "2s".into()],
        ..Default::default()
    }
}

/// The partition replicas on `p`'s disk (`replicas/<table>.<partition>`, not the garbage).
fn replica_dirs(cluster: &Cluster, p: Proc) -> Vec<String> {
    let root = cluster.process(p).data_dir.join("replicas");
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "garbage")
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The directories in `p`'s `replicas/garbage/`.
fn garbage(cluster: &Cluster, p: Proc) -> usize {
    let root = cluster.process(p).data_dir.join("replicas").join("garbage");
    std::fs::read_dir(root).map(|d| d.count()).unwrap_or(0)
}

/// Waits until every live server holds on disk as many replicas as the configurations give it:
/// the ones moved away were garbage-collected.
async fn wait_garbage_collected(cluster: &Cluster) {
    cluster
        .wait_for("replicas moved away to be garbage-collected", SETTLE, || async {
            let s = cluster.status().await.map_err(|e| format!("status: {e}"))?;
            for n in s.nodes.iter().filter(|n| n.alive) {
                let Some(p) = cluster.replica_with_id(n.node) else { continue };
                let dirs = replica_dirs(cluster, p);
                if dirs.len() != n.replicas as usize {
                    return Err(format!("{p} serves {} replicas but has {dirs:?} on disk", n.replicas));
                }
            }
            Ok(())
        })
        .await;
}

/// `node` as the harness names it (`replica-3`), or its hex id if no process has it.
fn name(cluster: &Cluster, node: u64) -> String {
    cluster.replica_with_id(node).map(|p| p.to_string()).unwrap_or_else(|| format!("{node:016x}"))
}

/// Every node with its load, for messages: `replica-1 2p/6r, replica-4 0p/0r (decommissioned)`.
fn loads(cluster: &Cluster, s: &pb::ClusterStatusResponse) -> String {
    let mut nodes: Vec<String> = s
        .nodes
        .iter()
        .map(|n| {
            format!(
                "{} {}p/{}r{}{}",
                name(cluster, n.node),
                n.primaries,
                n.replicas,
                if n.alive { "" } else { " (dead)" },
                if n.decommissioned { " (decommissioned)" } else { "" }
            )
        })
        .collect();
    nodes.sort();
    nodes.join(", ")
}

/// Why `s` is not balanced the way the balancer defines it, if it is not: nothing left to do
/// (`balancing` empty), every partition healthy, and over the serving nodes (alive, not
/// decommissioned) primaries and replicas each differ by at most one between any two nodes
/// (`balancer::primary_path` and `replica_move` plan nothing then). With every partition at
/// full strength the totals are fixed, so that is: each node holds the floor or the ceiling of
/// the mean. The cluster holds one table, so per node is per table.
fn unbalanced(
    cluster: &Cluster,
    s: &pb::ClusterStatusResponse,
    partitions: u32,
    replicas: u32,
) -> Option<String> {
    if !s.balancing.is_empty() {
        return Some(format!("balancing: {} [{}]", s.balancing, loads(cluster, s)));
    }
    if !s.unhealthy.is_empty() {
        return Some(format!("{} partitions unhealthy [{}]", s.unhealthy.len(), loads(cluster, s)));
    }
    let serving: Vec<&pb::NodeStatus> = s.nodes.iter().filter(|n| n.alive && !n.decommissioned).collect();
    if serving.is_empty() {
        return Some("no serving node".into());
    }
    let k = serving.len() as u32;
    let within = |total: u32, got: u32| (total / k..=total.div_ceil(k)).contains(&got);
    let off: Vec<String> = serving
        .iter()
        .filter(|n| !within(partitions, n.primaries) || !within(partitions * replicas, n.replicas))
        .map(|n| name(cluster, n.node))
        .collect();
    (!off.is_empty()).then(|| {
        format!(
            "balancing is empty but {} hold more or less than their share of {partitions} primaries \
             and {} replicas over {k} serving nodes [{}]",
            off.join(", "),
            partitions * replicas,
            loads(cluster, s)
        )
    })
}

/// Waits until `done` accepts a balanced status, printing each new thing the balancer reports
/// it is doing (so a failure shows how far it got).
async fn wait_balanced(
    cluster: &Cluster,
    what: &str,
    partitions: u32,
    replicas: u32,
    done: impl Fn(&pb::ClusterStatusResponse) -> Result<(), String>,
) -> pb::ClusterStatusResponse {
    let last = Mutex::new(String::new());
    let start = Instant::now();
    cluster
        .wait_for(what, BALANCE, || async {
            let s = cluster.status().await.map_err(|e| format!("status: {e}"))?;
            {
                let mut last = last.lock().unwrap();
                if !s.balancing.is_empty() && *last != s.balancing {
                    eprintln!("e2e: balancer, {:.1?} in: {}", start.elapsed(), s.balancing);
                    s.balancing.clone_into(&mut last);
                }
            }
            if let Some(why) = unbalanced(cluster, &s, partitions, replicas) {
                return Err(why);
            }
            done(&s)?;
            Ok(s)
        })
        .await
}

/// The table of every test here: `t`, `PARTITIONS` partitions of `REPLICAS` replicas.
const PARTITIONS: u32 = 8;
const REPLICAS: u32 = 3;

/// A cluster of `nodes` replica servers with table `t`, balanced, and 4 writers on it (keys
/// starting `prefix`) that have had 300 writes acknowledged; also the balanced status.
async fn balanced_under_load(nodes: usize, prefix: &str) -> (Cluster, pb::ClusterStatusResponse, Writers) {
    let cluster = Cluster::start(options(nodes)).await;
    cluster.create_table("t", PARTITIONS, REPLICAS).await;
    let what = format!("a balanced table on {nodes} nodes");
    let s = wait_balanced(&cluster, &what, PARTITIONS, REPLICAS, |_| Ok(())).await;
    let writers = Writers::start(cluster.client(), "t", PARTITIONS, 4, prefix);
    writers.wait_progress(&cluster, &vec![0; PARTITIONS as usize], SETTLE).await;
    writers.wait_acks(&cluster, 0, 300, SETTLE).await;
    (cluster, s, writers)
}

/// Stops the writers and checks every write they had acknowledged reads back.
async fn stop_and_verify(writers: Writers, client: &Arc<TernClient>) -> Ledger {
    let errors = writers.errors();
    let ledger = writers.stop().await;
    ledger.assert_no_fatal_errors();
    let applied = verify(client, "t", &ledger).await;
    eprintln!("e2e: {}, {errors} write errors, all read back", ledger.summary(applied));
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_node_receives_its_share_of_primaries_and_replicas() {
    let t0 = Instant::now();
    let (mut cluster, _, writers) = balanced_under_load(3, "an").await;
    let client = cluster.client();

    let added = cluster.start_replica().await;
    let id = cluster.node_id(added).unwrap();
    let started = Instant::now();
    eprintln!("e2e: {added} ({id:016x}) joined {:?} into the run", t0.elapsed());
    // Holding primaries and replicas is implied by the share check (2 primaries and 6 replicas
    // each); said for clarity.
    let s =
        wait_balanced(&cluster, &format!("the table to spread onto {added}"), PARTITIONS, REPLICAS, |s| {
            node_is(s, id, added, |n| n.primaries > 0 && n.replicas > 0)
        })
        .await;
    eprintln!("e2e: balanced {:?} after {added} joined: {}", started.elapsed(), loads(&cluster, &s));
    wait_garbage_collected(&cluster).await;
    let moved: usize = cluster.replicas().into_iter().map(|p| garbage(&cluster, p)).sum();
    assert!(moved > 0, "replicas moved to {added} left no garbage behind on the others");
    eprintln!("e2e: {moved} replicas moved away were garbage-collected");
    // Writes flow on every partition of the final configuration.
    let before = writers.acks();
    writers.wait_progress(&cluster, &before, SETTLE).await;

    stop_and_verify(writers, &client).await;
    // Still balanced after the verification's reads: the balancer does not oscillate.
    let s = cluster.status().await.unwrap();
    assert_eq!(unbalanced(&cluster, &s, PARTITIONS, REPLICAS), None);
    eprintln!("e2e: {:?} in all", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decommissioned_node_is_drained_and_then_holds_nothing_needed() {
    let t0 = Instant::now();
    let (mut cluster, s, writers) = balanced_under_load(4, "dc").await;
    let client = cluster.client();

    // The node leading the most partitions, so that draining must switch primaries too.
    let victim_id = s.nodes.iter().max_by_key(|n| (n.primaries, std::cmp::Reverse(n.node))).unwrap().node;
    let victim = cluster.replica_with_id(victim_id).unwrap();
    let hex = format!("{victim_id:016x}");
    eprintln!("e2e: decommissioning {victim} ({hex}) [{}]", loads(&cluster, &s));
    let meta = cluster.meta_arg();
    let out = cluster.cli(&["--output", "json", "cluster", "decommission", &hex, "--meta", &meta]).await.ok();
    assert_eq!(out.json(), serde_json::json!({"node": hex, "decommissioned": true}));
    let started = Instant::now();

    let s = wait_balanced(&cluster, &format!("{victim} to be drained"), PARTITIONS, REPLICAS, |s| {
        node_is(s, victim_id, victim, |n| n.decommissioned && n.replicas == 0 && n.primaries == 0)
    })
    .await;
    eprintln!(
        "e2e: {victim} drained {:?} after the decommission: {}",
        started.elapsed(),
        loads(&cluster, &s)
    );
    // The CLI reports the same.
    let out = cluster.cli(&["--output", "json", "cluster", "status", "--meta", &meta]).await.ok().json();
    assert_eq!(out["balanced"], true, "{out}");
    let node = out["nodes"].as_array().unwrap().iter().find(|n| n["node"] == hex.as_str()).unwrap();
    assert_eq!(
        (&node["decommissioned"], &node["replicas"], &node["primaries"]),
        (&true.into(), &0.into(), &0.into()),
        "{out}"
    );
    if std::path::Path::new("/proc/self/smaps_rollup").exists() {
        for n in out["nodes"].as_array().unwrap() {
            let resident = n["resident_bytes"].as_u64().unwrap_or(0);
            assert!(resident > 0 && n["huge_page_bytes"].is_u64(), "every server reports its memory: {out}");
        }
    }
    wait_garbage_collected(&cluster).await;
    assert_eq!(replica_dirs(&cluster, victim), Vec::<String>::new());
    assert!(garbage(&cluster, victim) > 0, "{victim} had replicas before the drain");
    let before = writers.acks();
    writers.wait_progress(&cluster, &before, SETTLE).await;

    let ledger = stop_and_verify(writers, &client).await;

    // Nothing depends on the drained node: once it is gone (and known dead), every partition
    // is still healthy and every acknowledged write still reads back.
    cluster.kill9(victim);
    cluster.wait_node(victim, "to be declared dead", |n| !n.alive).await;
    let s = cluster.status().await.unwrap();
    assert_eq!(unbalanced(&cluster, &s, PARTITIONS, REPLICAS), None, "after killing {victim}");
    verify(&client, "t", &ledger).await;
    eprintln!("e2e: all read back with {victim} dead");

    // Three servers serve a 3-replica table: decommissioning another must be refused, and
    // change nothing.
    let other_id = s.nodes.iter().find(|n| n.alive && !n.decommissioned).unwrap().node;
    let other = name(&cluster, other_id);
    let out = cluster.cli(&["cluster", "decommission", &format!("{other_id:x}"), "--meta", &meta]).await;
    assert_eq!(out.code, 1, "decommissioning {other} with 3 serving servers was not refused: {out:?}");
    assert!(
        out.stderr.contains("would leave 2 serving replica servers, fewer than the 3 replicas a table needs"),
        "{out:?}"
    );
    eprintln!("e2e: refused: {}", out.stderr.trim());
    let s = cluster.status().await.unwrap();
    let n = s.nodes.iter().find(|n| n.node == other_id).unwrap();
    assert!(!n.decommissioned, "{other} was marked decommissioned although refused: {n:?}");
    assert_eq!(unbalanced(&cluster, &s, PARTITIONS, REPLICAS), None);

    // The drained server comes back and is recommissioned: it gets its share again.
    let out = cluster.cli(&["cluster", "recommission", "00000000000000ff", "--meta", &meta]).await;
    assert_eq!(out.code, 1, "recommissioning an unknown node was not refused: {out:?}");
    assert!(out.stderr.contains("no replica server 00000000000000ff"), "{out:?}");
    cluster.restart(victim);
    let out = cluster.cli(&["--output", "json", "cluster", "recommission", &hex, "--meta", &meta]).await.ok();
    assert_eq!(out.json(), serde_json::json!({"node": hex, "decommissioned": false}));
    let started = Instant::now();
    let s = wait_balanced(&cluster, &format!("{victim} to get its share back"), PARTITIONS, REPLICAS, |s| {
        node_is(s, victim_id, victim, |n| n.alive && !n.decommissioned && n.primaries > 0 && n.replicas > 0)
    })
    .await;
    eprintln!(
        "e2e: {victim} recommissioned, balanced {:?} later: {}",
        started.elapsed(),
        loads(&cluster, &s)
    );
    verify(&client, "t", &ledger).await;
    eprintln!("e2e: {:?} in all", t0.elapsed());
}
