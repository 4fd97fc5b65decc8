//! `tern dr status` (issue #27, item 1) against two real clusters: the health it reports and
//! its exit status follow what is wrong — a lease not used (no DR voters), a paused link, a
//! lost active cluster — and what a failover now could lose is a measured figure, never 0 for
//! an unknown.
#![allow(clippy::unwrap_used)]

use tern_e2e::cluster::{Cluster, SETTLE};
use tern_e2e::pair::dr_pair;

/// `tern dr status` of table `t` over both clusters, as JSON, with its exit code.
async fn dr_status(a: &Cluster, b: &Cluster, extra: &[&str]) -> (i32, serde_json::Value) {
    let ca = format!("main={}", a.meta_arg());
    let cb = format!("spare={}", b.meta_arg());
    let mut args =
        vec!["--output", "json", "dr", "status", "--cluster", &ca, "--cluster", &cb, "--table", "t"];
    args.extend_from_slice(extra);
    let out = a.cli(&args).await;
    assert!(matches!(out.code, 0 | 3 | 4), "a health, not a failure: {out:?}");
    (out.code, out.json())
}

fn findings(s: &serde_json::Value) -> Vec<String> {
    s["tables"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["what"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dr_status_reports_roles_lag_and_health_with_its_exit_status() {
    let (mut a, b) = dr_pair(("main", 11), ("spare", 12)).await;
    a.kv("t", &["set", "k", "s", "v"]).await.ok();

    // Both copies seen, the standby's RPO measured. The clusters have no DR voters: degraded,
    // and that is the only finding.
    let (code, s) = a
        .wait_for("the standby's lag to be known", SETTLE, || async {
            let (code, s) = dr_status(&a, &b, &[]).await;
            if s["tables"][0]["standbys"][0]["rpo_ms"].is_u64() {
                Ok((code, s))
            } else {
                Err(format!("{s:#}"))
            }
        })
        .await;
    let t = &s["tables"][0];
    assert_eq!((t["active"].as_str(), t["epoch"].as_u64()), (Some("main"), Some(0)), "{s:#}");
    assert_eq!(t["copies"][1]["role"], "standby", "{s:#}");
    assert_eq!(t["standbys"][0]["cluster"], "spare");
    assert_eq!(t["standbys"][0]["link_status"], "shipping");
    assert_eq!(code, 3, "degraded: {s:#}");
    let f = findings(&s);
    assert!(f.len() == 1 && f[0].contains("no DR voters"), "{f:?}");

    // A paused link says so (and its lag keeps being measured).
    let id = a.first_link_id().await;
    a.cli(&["dup", "pause", &id, "--meta", &a.meta_arg()]).await.ok();
    a.wait_for("the paused link to be reported", SETTLE, || async {
        let (code, s) = dr_status(&a, &b, &[]).await;
        let f = findings(&s);
        if code == 3 && f.iter().any(|w| w.contains("link main->spare is paused")) {
            Ok(())
        } else {
            Err(format!("{f:?}"))
        }
    })
    .await;

    // A wrong cluster name is caught, not silently taken for the cluster that answers.
    let wrong = format!("dc9={}", a.meta_arg());
    let right = format!("spare={}", b.meta_arg());
    let out = a.cli(&["--output", "json", "dr", "status", "--cluster", &wrong, "--cluster", &right]).await;
    assert_eq!(out.code, 4, "no copy of t is active where it was looked for: {out:?}");
    assert!(out.stdout.contains("belong to cluster \\\"main\\\", not \\\"dc9\\\""), "{out:?}");

    // The active cluster lost: unsafe, exit 4, naming why; the report does not hang on it.
    for p in a.metas().into_iter().chain(a.replicas()) {
        a.kill9(p);
    }
    let (code, s) = dr_status(&a, &b, &["--timeout", "2s"]).await;
    assert_eq!(code, 4, "{s:#}");
    let f = findings(&s);
    assert!(f.iter().any(|w| w.contains("no reachable copy is active")), "{f:?}");
    assert!(f.iter().any(|w| w.contains("main is unreachable")), "{f:?}");
}
