//! The version rule of `tern apply` (issue #26: "two applies started together → one refused
//! with 'state changed since plan'") against two real clusters. Two plans of the same state
//! carry the same version; the apply of the first succeeds, the apply of the second is refused
//! (exit 1, told to re-plan) and changes nothing. Then two applies of one plan started at once:
//! exactly one wins, and each cluster's topology version (kept and compared by its meta
//! servers) moved exactly once.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use tern_client::AdminClient;
use tern_client::admin::TopologyVersionBump;
use tern_core::TableStatus;
use tern_e2e::cluster::{Cluster, ClusterOptions};
use tern_e2e::process::{CliOutput, run_cli};

/// A topology file: `dc1` and `dc2` at their real addresses, `tables` only in dc1.
fn file_text(a: &Cluster, b: &Cluster, tables: &[&str]) -> String {
    let mut out = String::from("version: 1\nclusters:\n");
    for (name, id, c) in [("dc1", 1, a), ("dc2", 2, b)] {
        let list = |v: Vec<String>| v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        let replicas = c.replicas().into_iter().map(|p| c.process(p).addr.clone()).collect();
        out.push_str(&format!(
            "  - name: {name}\n    id: {id}\n    meta-servers: [{}]\n    replica-servers: [{}]\n",
            list(c.meta_addrs()),
            list(replicas)
        ));
    }
    out.push_str("tables:\n");
    for t in tables {
        out.push_str(&format!(
            "  - name: {t}\n    partitions: 2\n    replicas: 3\n    copies:\n      - cluster: dc1\n        role: active\n"
        ));
    }
    out
}

async fn tern(args: &[&str]) -> CliOutput {
    let out = run_cli(args, Duration::from_secs(120)).await;
    eprintln!("e2e: tern {} -> exit {}\n{}{}", args.join(" "), out.code, out.stdout, out.stderr);
    out
}

/// The version `tern plan` printed (exit 3: changes pending).
async fn plan_version(file: &str) -> String {
    let out = tern(&["--output", "json", "plan", "-f", file]).await;
    assert_eq!(out.code, 3, "changes pending");
    out.json()["version"].as_str().unwrap().to_string()
}

async fn apply_args(file: &str, version: &str) -> CliOutput {
    tern(&["apply", "-f", file, "--yes", "--expect-version", version]).await
}

/// Serving table names of dc1, sorted.
async fn tables(admin: &AdminClient) -> Vec<String> {
    let mut v: Vec<String> = admin
        .list_tables()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.status == TableStatus::Serving)
        .map(|t| t.name)
        .collect();
    v.sort();
    v
}

fn assert_refused(out: &CliOutput) {
    assert_ne!(out.code, 0, "refused: {out:?}");
    assert!(out.stderr.contains("state changed since plan"), "{}", out.stderr);
    assert!(out.stderr.contains("tern plan"), "told to re-plan: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_applies_planned_against_the_same_state_only_one_wins() {
    let a = Cluster::start(ClusterOptions::named("dc1", 1)).await;
    let b = Cluster::start(ClusterOptions::named("dc2", 2)).await;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("deploy.yaml");
    let file = path.to_str().unwrap();
    let (dc1, dc2) =
        (AdminClient::connect(a.meta_addrs()).unwrap(), AdminClient::connect(b.meta_addrs()).unwrap());
    assert_eq!((dc1.topology_version().await.unwrap(), dc2.topology_version().await.unwrap()), (0, 0));

    // 1. Two plans of the same state: one version. The first apply wins and bumps both
    //    clusters; the second is refused and changes nothing.
    std::fs::write(&path, file_text(&a, &b, &["events"])).unwrap();
    let (first, second) = (plan_version(file).await, plan_version(file).await);
    assert_eq!(first, second, "two plans of one state carry one version");
    let out = apply_args(file, &first).await;
    assert_eq!(out.code, 0, "the first apply wins: {out:?}");
    assert_eq!(tables(&dc1).await, ["events"]);
    assert_eq!((dc1.topology_version().await.unwrap(), dc2.topology_version().await.unwrap()), (1, 1));
    std::fs::write(&path, file_text(&a, &b, &["events", "late"])).unwrap();
    let out = apply_args(file, &second).await;
    assert_refused(&out);
    assert_eq!(tables(&dc1).await, ["events"], "the refused apply changed nothing");
    assert_eq!((dc1.topology_version().await.unwrap(), dc2.topology_version().await.unwrap()), (1, 1));

    // 2. Two applies of one plan started together: exactly one wins; the meta servers let
    //    exactly one bump through per cluster, whichever check stopped the other.
    let version = plan_version(file).await;
    let (x, y) = tokio::join!(apply_args(file, &version), apply_args(file, &version));
    let (won, lost) = match (x.code, y.code) {
        (0, _) => (x, y),
        (_, 0) => (y, x),
        _ => panic!("one of the two applies wins: {x:?}\n{y:?}"),
    };
    assert!(won.stdout.contains("Apply complete: 1 steps"), "{}", won.stdout);
    assert_refused(&lost);
    assert_eq!(tables(&dc1).await, ["events", "late"]);
    assert_eq!((dc1.topology_version().await.unwrap(), dc2.topology_version().await.unwrap()), (2, 2));

    // 3. The meta servers' compare-and-set itself: a bump expecting an old version is refused
    //    (through Raft, naming the cluster and both versions) and changes nothing.
    match dc1.bump_topology_version(1).await.unwrap() {
        TopologyVersionBump::Refused { version, why } => {
            assert_eq!(version, 2);
            assert!(why.contains("\"dc1\" is at topology version 2, not the expected 1"), "{why}");
        }
        other => panic!("a stale bump is refused: {other:?}"),
    }
    assert_eq!(dc1.topology_version().await.unwrap(), 2);

    // 4. Converged: a plan finds nothing to do, and an apply of no steps bumps nothing.
    let out = tern(&["apply", "-f", file, "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!((dc1.topology_version().await.unwrap(), dc2.topology_version().await.unwrap()), (2, 2));
}
