//! `tern dr switchover` (issue #27, item 2) with clients writing through a proxy all along:
//! no acknowledged write is lost, the write unavailability is measured and printed, a re-run
//! after the move changes nothing, and a switchover interrupted after its first step is
//! finished by running it again.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tern_client::{ClientOptions, TernClient};
use tern_core::DrRole;
use tern_e2e::cluster::{Cluster, SETTLE};
use tern_e2e::pair::dr_pair;
use tern_e2e::proxy::start_proxy;
use tern_e2e::workload::{Writers, numbered_set, verify};

async fn switchover(a: &Cluster, b: &Cluster, to: &str) -> serde_json::Value {
    let (ca, cb) = (format!("main={}", a.meta_arg()), format!("spare={}", b.meta_arg()));
    let args = [
        "--output",
        "json",
        "dr",
        "switchover",
        "--table",
        "t",
        "--to",
        to,
        "--cluster",
        &ca,
        "--cluster",
        &cb,
    ];
    let out = a.cli(&args).await.ok();
    eprintln!("e2e: switchover to {to}: {}", out.stderr);
    out.json()
}

fn steps(report: &serde_json::Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"]["step"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_loses_no_acknowledged_write_and_a_rerun_finishes_an_interrupted_one() {
    let (a, b) = dr_pair(("main", 15), ("spare", 16)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = start_proxy(dir.path(), "proxy", &[("main", &a), ("spare", &b)], &[]);
    let client = Arc::new(TernClient::new(ClientOptions::new(vec![proxy.addr.clone()])).unwrap());
    a.wait_for("the proxy to route writes", SETTLE, || async {
        client.write("t", numbered_set(0)).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    let writers = Writers::start(client.clone(), "t", 4, 2, "sw");
    writers.wait_progress(&a, &[0; 4], SETTLE).await;

    // main -> spare: stop, drain, (the two-way pair has the link back), promote.
    let report = switchover(&a, &b, "spare").await;
    assert_eq!(steps(&report), ["stop-writes", "promote"], "{report:#}");
    let unavailable = report["write_unavailable_ms"].as_u64().unwrap();
    eprintln!("e2e: writes unavailable for {unavailable} ms");
    assert_eq!(b.dr_role("t").await.unwrap(), (DrRole::Active, 3));
    assert_eq!(a.dr_role("t").await.unwrap(), (DrRole::Standby, 2));
    let moved = writers.total_acks();
    writers.wait_acks(&b, moved, 20, SETTLE).await;

    // Again: nothing to do.
    let again = switchover(&a, &b, "spare").await;
    assert!(steps(&again).is_empty(), "{again:#}");
    assert!(again["summary"].as_str().unwrap().contains("active in spare at epoch 3"), "{again:#}");

    // A switchover back to main interrupted after its first step (spare stopped at epoch 4,
    // no copy active): run again, it drains and promotes main.
    let mb = b.meta_arg();
    b.cli(&["table", "role", "t", "--set", "standby", "--epoch", "4", "--if-epoch", "3", "--meta", &mb])
        .await
        .ok();
    let back = switchover(&a, &b, "main").await;
    assert_eq!(steps(&back), ["promote"], "{back:#}");
    assert_eq!(a.dr_role("t").await.unwrap(), (DrRole::Active, 5));
    let back_at = writers.total_acks();
    writers.wait_acks(&a, back_at, 20, SETTLE).await;

    let ledger = writers.stop().await;
    ledger.assert_no_fatal_errors();
    // Every acknowledged write is in the active copy, and shipped to the standby.
    let applied = verify(&a.client(), "t", &ledger).await;
    eprintln!("e2e: {}", ledger.summary(applied));
    assert!(ledger.acked.len() as u64 > back_at, "writes went on through both moves");
    proxy.kill9();
}
