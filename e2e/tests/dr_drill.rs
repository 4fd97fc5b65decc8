//! `tern dr drill` (issue #27, item 6): two clusters whose meta servers take DR leases from a
//! proxy (the DR voter), with table `t` active in `main` and standby in `spare`. The real
//! `tern dr drill --from main --to spare` creates its scratch table, runs its load, switches
//! over and back, fails over, and cleans up. Asserted: both switchovers happened (no rollback)
//! with zero loss, the failover happened with an RTO measured, the loss check passed, the
//! scratch tables are gone and `t` is as it was. Timings are printed, never asserted.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tern_client::admin::AdminClient;
use tern_core::{DrRole, TableStatus};
use tern_e2e::pair::{VotedPair, voted_pair};
use tern_e2e::process::run_cli;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drill_switches_over_and_back_fails_over_checks_the_loss_and_cleans_up() {
    let VotedPair { a, b, proxy: _proxy, proxy_addr: _, ca, cb, dir } = voted_pair((61, 62)).await;
    let report_file = dir.path().join("drill.json");
    let report_arg = report_file.display().to_string();
    let args = [
        "--output",
        "json",
        "dr",
        "drill",
        "--from",
        "main",
        "--to",
        "spare",
        "--cluster",
        &ca,
        "--cluster",
        &cb,
        "--propagation",
        "2s",
        "--report",
        &report_arg,
    ];
    let out = run_cli(&args, Duration::from_secs(600)).await;
    eprintln!("e2e: tern dr drill said:\n{}", out.stderr);
    eprintln!("e2e: report:\n{}", out.stdout);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let r = out.json();
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(kept, r, "--report keeps what was printed");

    let table = r["table"].as_str().unwrap();
    assert!(table.starts_with("_drill_"), "{table}");
    assert_eq!(r["passed"], true, "{r:#}");
    let sw = r["switchovers"].as_array().unwrap();
    assert_eq!(sw.len(), 2, "{r:#}");
    assert_eq!((sw[0]["from"].as_str(), sw[0]["to"].as_str()), (Some("main"), Some("spare")));
    assert_eq!((sw[1]["from"].as_str(), sw[1]["to"].as_str()), (Some("spare"), Some("main")));
    for s in sw {
        assert_eq!(s["rolled_back"], false, "{s}");
        assert!(s["write_unavailable_ms"].is_u64(), "measured: {s}");
    }
    assert_eq!(r["zero_loss"]["passed"], true, "{r:#}");
    assert_eq!(r["zero_loss"]["keys_lost"], 0, "{r:#}");
    assert!(r["zero_loss"]["keys_checked"].as_u64().unwrap() > 0, "{r:#}");
    assert!(r["failover_rto_ms"].is_u64(), "{r:#}");
    let loss = &r["loss"];
    assert_eq!(loss["passed"], true, "{r:#}");
    assert_eq!(loss["outside_report"], 0, "{r:#}");
    assert_eq!(r["loss_report"]["from"], "main");
    assert_eq!(r["loss_report"]["to"], "spare");
    assert!(r["backup_restore"].as_str().unwrap().starts_with("skipped"), "{r:#}");
    assert_eq!(r["cleaned_up"], true, "{r:#}");
    eprintln!(
        "e2e: figures: unavailability {} / {} ms, RTO {} ms, {} of {} writes lost over {} ms, report {} decrees",
        sw[0]["write_unavailable_ms"],
        sw[1]["write_unavailable_ms"],
        r["failover_rto_ms"],
        loss["writes_lost"],
        loss["writes_checked"],
        loss["lost_span_ms"],
        loss["reported_decrees"]
    );

    // Both clusters keep the report; `tern dr status` shows it as the last drill.
    for c in [&a, &b] {
        let kept = AdminClient::connect(c.meta_addrs()).unwrap().drills().await.unwrap();
        let last = kept.last().expect("a drill report kept");
        assert_eq!((last.from.as_str(), last.to.as_str(), last.passed), ("main", "spare", true));
        let stored: serde_json::Value = serde_json::from_str(&last.report_json).unwrap();
        assert_eq!(stored, r, "the kept report is the printed one");
    }
    let status = run_cli(
        &["--output", "json", "dr", "status", "--cluster", &ca, "--cluster", &cb],
        Duration::from_secs(60),
    )
    .await;
    let s = status.json();
    assert_eq!(s["last_drill"], r, "{s:#}");
    let text = run_cli(&["dr", "status", "--cluster", &ca, "--cluster", &cb], Duration::from_secs(60)).await;
    assert!(
        text.stdout.contains("last drill: ") && text.stdout.contains("main -> spare passed"),
        "{}",
        text.stdout
    );

    // The scratch tables are gone; `t` is as it was.
    for c in [&a, &b] {
        let tables = AdminClient::connect(c.meta_addrs()).unwrap().list_tables().await.unwrap();
        assert!(
            !tables.iter().any(|t| t.name == table && t.status == TableStatus::Serving),
            "{table} still serves: {tables:?}"
        );
    }
    assert_eq!(a.dr_role("t").await.unwrap(), (DrRole::Active, 0));
    assert_eq!(b.dr_role("t").await.unwrap(), (DrRole::Standby, 1));

    // A drill refuses a table that is not a scratch table, and one that exists.
    let refused = run_cli(
        &[
            "dr",
            "drill",
            "--from",
            "main",
            "--to",
            "spare",
            "--table",
            "t",
            "--cluster",
            &ca,
            "--cluster",
            &cb,
        ],
        Duration::from_secs(60),
    )
    .await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("never a table with client data"), "{}", refused.stderr);
    assert_eq!(a.dr_role("t").await.unwrap(), (DrRole::Active, 0));
}
