//! A dropped table's data leaves the disks once its recall window is over: the meta server
//! purges the table, tells each replica server in its beacon answers, and the servers
//! garbage-collect the table's replicas (`replicas/garbage/`). Other tables are untouched.
//! Short windows here: `tern meta --recall-window 2s`, `tern replica --gc-removed-after 1s`.
#![allow(clippy::unwrap_used)]

use tern_e2e::cluster::SETTLE;
use tern_e2e::{Cluster, ClusterOptions, Proc};

/// The replica directories of `table` on `p`'s disk (`replicas/<table>.<partition>`).
fn replica_dirs(cluster: &Cluster, p: Proc, table: u32) -> Vec<String> {
    let root = cluster.process(p).data_dir.join("replicas");
    let prefix = format!("{table}.");
    let mut dirs: Vec<String> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn all_dirs(cluster: &Cluster, table: u32) -> usize {
    cluster.replicas().into_iter().map(|p| replica_dirs(cluster, p, table).len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purged_tables_replicas_are_garbage_collected_and_others_kept() {
    let cluster = Cluster::start(ClusterOptions {
        metas: 1,
        replicas: 3,
        meta_args: vec!["--recall-window".into(), "2s".into()],
        replica_args: vec!["--gc-removed-after".into(), "1s".into()],
        ..Default::default()
    })
    .await;
    let keep = cluster.create_table("keep", 2, 3).await;
    let gone = cluster.create_table("gone", 4, 3).await;
    cluster.wait_healthy(SETTLE).await;
    for t in ["keep", "gone"] {
        cluster.kv(t, &["set", "k", "s", t]).await.ok();
    }
    assert_eq!((all_dirs(&cluster, keep.id), all_dirs(&cluster, gone.id)), (2 * 3, 4 * 3));

    let meta = cluster.meta_arg();
    cluster.cli(&["table", "drop", "gone", "--yes", "--meta", &meta]).await.ok();
    cluster
        .wait_for("the dropped table's replicas to leave every disk", SETTLE, || async {
            match all_dirs(&cluster, gone.id) {
                0 => Ok(()),
                n => Err(format!("{n} replica directories of table {} left", gone.id)),
            }
        })
        .await;
    let garbage: usize = cluster
        .replicas()
        .into_iter()
        .map(|p| {
            let root = cluster.process(p).data_dir.join("replicas").join("garbage");
            std::fs::read_dir(root).map(|d| d.count()).unwrap_or(0)
        })
        .sum();
    assert_eq!(garbage, 4 * 3, "each replica of the dropped table moved to the garbage");

    // The other table keeps its replicas and its data, and serves.
    assert_eq!(all_dirs(&cluster, keep.id), 2 * 3);
    assert_eq!(cluster.kv("keep", &["get", "k", "s"]).await.ok().stdout, "keep\n");
    cluster.kv("keep", &["set", "k2", "s", "v"]).await.ok();
}
