//! Honest lag (issue #24, item 3): a link's lag is measured on the sending partition's own
//! clock (its newest write minus what the other cluster has applied), and when it cannot be told
//! it is *unknown*, with the reason, never 0. A link whose receiver is down, a link whose batches
//! are refused, and shippers that stopped reporting each show it in `tern dup status` (text and
//! JSON); automatic failover refuses to promote a standby whose lag is unknown and says why. (A
//! paused link's growing lag, and the refusal over the budget, are in `auto_failover.rs`.)
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use tern_client::{ClientOptions, TernClient};
use tern_e2e::cluster::SETTLE;
use tern_e2e::pair::{dr_linked, linked};
use tern_e2e::ports::free_addr;
use tern_e2e::proxy::{copy_of, proxy_status, start_at, table_of, wait_decision};
use tern_e2e::workload::numbered_set as set;
use tern_e2e::{Cluster, ClusterOptions};

const HOUR_MS: &str = "3600000";

/// Every partition of `c`'s links as `tern dup status --output json` shows it.
async fn partitions(c: &Cluster) -> Vec<Value> {
    let out = c.cli(&["dup", "status", "--meta", &c.meta_arg(), "--output", "json"]).await.ok();
    let s: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    s["links"].as_array().unwrap().iter().flat_map(|l| l["partitions"].as_array().unwrap().clone()).collect()
}

/// Waits until every partition of `c`'s links shows its lag unknown for a reason containing
/// `why`; returns one reason.
async fn wait_unknown(c: &Cluster, what: &str, why: &str) -> String {
    c.wait_for(what, SETTLE, || async {
        let parts = partitions(c).await;
        let unknown: Vec<&str> =
            parts.iter().filter_map(|p| p["lag_unknown"].as_str()).filter(|w| w.contains(why)).collect();
        match unknown.first() {
            Some(w) if unknown.len() == parts.len() => Ok(w.to_string()),
            _ => Err(format!(
                "{} of {} partitions unknown because {why}: {parts:?}",
                unknown.len(),
                parts.len()
            )),
        }
    })
    .await
}

/// Waits until every partition of `c`'s links has caught up with a known lag.
async fn wait_known(c: &Cluster, what: &str) {
    c.wait_for(what, SETTLE, || async {
        let parts = partitions(c).await;
        let known = parts.iter().filter(|p| p["lag_known"] == true && p["decrees_behind"] == 0).count();
        if known == parts.len() { Ok(()) } else { Err(format!("{parts:?}")) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_link_and_silent_shippers_show_an_unknown_lag_never_zero() {
    let (mut a, mut b) =
        linked(ClusterOptions::named("near", 51), ClusterOptions::named("far", 52), &[]).await;
    let ca = a.client();
    for i in 0..50 {
        ca.write("t", set(i)).await.unwrap();
    }
    // Caught up: the lag is known, and small.
    wait_known(&a, "a known lag once caught up").await;

    // The receiving cluster loses its replica servers: every batch fails.
    for p in b.replicas() {
        b.kill9(p);
    }
    for i in 50..100 {
        ca.write("t", set(i)).await.unwrap();
    }
    let why = wait_unknown(&a, "the lag to be unknown while the link fails", "the link fails").await;
    eprintln!("e2e: while the receiver is down: {why}");
    let text = a.cli(&["dup", "status", "--meta", &a.meta_arg()]).await.ok().stdout;
    let unknown_rows = text.lines().filter(|l| l.split_whitespace().nth(6) == Some("?")).count();
    assert_eq!(unknown_rows, 4, "every partition's SECONDS reads '?': {text}");
    let list = a.cli(&["dup", "list", "--meta", &a.meta_arg()]).await.ok().stdout;
    assert!(list.contains(" ? ") && list.contains("lag unknown in"), "dup list shows '?': {list}");
    for p in b.replicas() {
        b.restart(p);
    }
    wait_known(&a, "a known lag again once the receiver is back").await;

    // The sending servers stop: their meta server hears nothing more, and after a few seconds
    // the last figures tell nothing.
    for p in a.replicas() {
        a.kill9(p);
    }
    let why = wait_unknown(&a, "the lag to be unknown once the shippers are silent", "s old").await;
    eprintln!("e2e: with the shippers gone: {why}");
}

/// Table `t` active in `left` (whose servers' clocks are an hour ahead: every batch to `right`
/// is refused as CLOCK_AHEAD), standby in `right`; one proxy, the DR voter, fails over
/// automatically with a generous budget. Left is lost: the proxy refuses to promote right,
/// whose lag is unknown, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn automatic_failover_refuses_a_standby_of_unknown_lag_and_says_why() {
    let voter = free_addr();
    let voters = format!("p1={voter}");
    let meta_args =
        vec!["--dr-voters".to_string(), voters.clone(), "--dr-renew-interval".into(), "300ms".into()];
    let left = ClusterOptions {
        replica_args: vec!["--test-clock-offset".into(), HOUR_MS.into()],
        meta_args: meta_args.clone(),
        ..ClusterOptions::named("left", 53)
    };
    let right = ClusterOptions { meta_args, ..ClusterOptions::named("right", 54) };
    let (mut a, b) = dr_linked(left, right).await;
    let dir = tempfile::tempdir().unwrap();
    let clusters = [("left", a.meta_arg()), ("right", b.meta_arg())];
    let policy = [
        "--auto-failover",
        "t,after=2s,rpo=1h",
        "--dr-voters",
        &voters,
        "--dr-name",
        "p1",
        "--dr-lease",
        "2s",
    ];
    let p = start_at(dir.path(), "p1", "proxy", &voter, &clusters, &policy);
    let client = TernClient::new(ClientOptions::new(vec![p.addr.clone()])).unwrap();
    let mut i = 0;
    let detail = a
        .wait_for("the proxy to see right's lag as unknown", SETTLE, || {
            i += 1;
            let (client, proxy) = (&client, p.addr.clone());
            async move {
                client.write("t", set(i)).await.map_err(|e| e.to_string())?;
                let s = proxy_status(&proxy).await?;
                let t = table_of(&s, "t").ok_or("no table t")?;
                let r = copy_of(t, "right").ok_or("no copy in right")?;
                // The decrees waiting are shown with it (the lag itself is unknown).
                match (r["lag_detail"].as_str(), r["decrees_behind"].as_u64()) {
                    (Some(d), Some(n)) if d.contains("ms ahead") && n > 0 => {
                        Ok(format!("{d}; {n} decrees behind"))
                    }
                    _ => Err(format!("{r}")),
                }
            }
        })
        .await;
    eprintln!("e2e: the proxy says of right: {detail}");
    for p in a.metas().into_iter().chain(a.replicas()) {
        a.kill9(p);
    }
    let reason = wait_decision(&p.addr, "t", "refused").await;
    eprintln!("e2e: refused: {reason}");
    assert!(reason.contains("right: lag unknown") && reason.contains("ms ahead"), "{reason}");
    let route = b.route("t").await.unwrap().table.unwrap();
    assert_eq!(route.epoch, 1, "right stays standby at epoch 1");
}
