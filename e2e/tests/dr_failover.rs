//! `tern dr failover` (issue #27, item 3): two clusters with a two-way link, `t` active in
//! `main`, a proxy that is the clusters' DR voter; clients write through the proxy all along,
//! recording every acknowledged write. Every process of `main` is killed; the real `tern dr
//! failover --yes` waits for main's DR lease and promotes `spare`; writes succeed through the
//! proxy again (the RTO, from the kill to the first acknowledged write after it, is printed,
//! not asserted). The loss report is in `tern dr status --output json`, and every acknowledged
//! write that spare lacks falls inside its bounds.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tern_core::read::{ReadOp, ReadResult};
use tern_core::{DrRole, Timetag, partition_of};
use tern_e2e::cluster::{Cluster, SETTLE};
use tern_e2e::pair::{VotedPair, routed_client, voted_pair};
use tern_e2e::workload::set_op;

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An acknowledged write: its key, and the wall times it was sent and acknowledged at.
#[derive(Clone, Debug)]
struct Acked {
    sent_ms: u64,
    acked_ms: u64,
}

fn kill_all(c: &mut Cluster) {
    for p in c.metas().into_iter().chain(c.replicas()) {
        c.kill9(p);
    }
}

fn clusters_args<'a>(ca: &'a str, cb: &'a str) -> [&'a str; 4] {
    ["--cluster", ca, "--cluster", cb]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_over_a_lost_active_cluster_fences_it_promotes_the_standby_and_bounds_the_loss() {
    let VotedPair { mut a, b, proxy: _proxy, proxy_addr, ca, cb, dir: _dir } = voted_pair((41, 42)).await;
    let client = routed_client(&a, &proxy_addr).await;
    // Writers through the proxy, recording every acknowledged write.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<String, Acked>>> = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let key = format!("fo-w{w}-{seq:06}");
                    let sent_ms = wall_ms();
                    match client.write("t", set_op(key.clone(), "v", "v", 0)).await {
                        Ok(_) => {
                            acked.lock().unwrap().insert(key, Acked { sent_ms, acked_ms: wall_ms() });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect();
    let count = || acked.lock().unwrap().len();
    a.wait_for("writes through the proxy", SETTLE, || async {
        if count() >= 400 { Ok(()) } else { Err(format!("{} acknowledged", count())) }
    })
    .await;

    // While main serves, a failover is refused (a switchover loses nothing); a dry run with
    // --force says what it would do and changes nothing.
    let base = ["dr", "failover", "--table", "t", "--to", "spare"];
    let refused = b.cli(&[&base[..], &["--yes"], &clusters_args(&ca, &cb)[..]].concat()).await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("main is reachable and t is active there"), "{}", refused.stderr);
    assert!(refused.stderr.contains("use tern dr switchover --table t --to spare"), "{}", refused.stderr);
    let dry = [&["--output", "json"][..], &base[..], &["--dry-run", "--force"], &clusters_args(&ca, &cb)[..]]
        .concat();
    let dry = b.cli(&dry).await.ok().json();
    let said = dry["summary"].as_str().unwrap();
    assert!(said.starts_with("dry run, nothing changed; next: ask 1 DR voters (proxy1)"), "{dry:#}");
    assert_eq!(b.dr_role("t").await.unwrap(), (DrRole::Standby, 1));
    assert_eq!(a.dr_role("t").await.unwrap(), (DrRole::Active, 0));

    eprintln!("e2e: killing every process of main");
    let killed_ms = wall_ms();
    let killed = Instant::now();
    kill_all(&mut a);
    let before_failover = count();

    let args = [
        &["--output", "json", "dr", "failover", "--table", "t", "--to", "spare", "--yes"][..],
        &clusters_args(&ca, &cb)[..],
    ]
    .concat();
    let out = b.cli(&args).await.ok();
    eprintln!("e2e: tern dr failover said:\n{}", out.stderr);
    let report = out.json();
    let promoted_ms = killed.elapsed().as_millis();
    assert_eq!(b.dr_role("t").await.unwrap(), (DrRole::Active, 2), "{report:#}");
    let steps: Vec<&str> =
        report["steps"].as_array().unwrap().iter().map(|s| s["what"].as_str().unwrap()).collect();
    assert!(steps[0].starts_with("observe: main unreachable"), "{steps:?}");
    assert!(steps.iter().any(|s| s.starts_with("promises: asking 1 DR voters (proxy1)")), "{steps:?}");
    // The lease ran out during a wait, or while the command looked at the clusters again.
    assert!(
        steps.iter().any(|s| s.starts_with("fence: 1 of 1 DR voters (proxy1) promised")
            || s.starts_with("fence: main's last DR lease had certainly expired")),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|s| s.starts_with("promote: t in spare becomes active at epoch 2")),
        "{steps:?}"
    );
    assert!(report["lease_wait_ms"].as_u64().unwrap() > 0, "{report:#}");

    // Writes succeed through the proxy again.
    let first_after = b
        .wait_for("a write through the proxy after the failover", SETTLE, || async {
            let found =
                acked.lock().unwrap().values().filter(|a| a.sent_ms > killed_ms).map(|a| a.acked_ms).min();
            found.ok_or_else(|| "no write acknowledged since the kill".to_string())
        })
        .await;
    let rto_ms = first_after.saturating_sub(killed_ms);
    eprintln!(
        "e2e: RTO {rto_ms} ms from the kill to the first acknowledged write (promotion {promoted_ms} ms after the kill; the command: {} ms, {} ms of it waiting for main's lease)",
        report["promoted_after_ms"], report["lease_wait_ms"]
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // The loss report, as tern dr status shows it.
    let status = b
        .cli(
            &[&["--output", "json", "dr", "status", "--table", "t"][..], &clusters_args(&ca, &cb)[..]]
                .concat(),
        )
        .await;
    let status = status.json();
    let text = b.cli(&[&["dr", "status", "--table", "t"][..], &clusters_args(&ca, &cb)[..]].concat()).await;
    eprintln!("e2e: tern dr status says:\n{}", text.stdout);
    let loss = &status["tables"][0]["last_failover"];
    eprintln!("e2e: last failover: {loss:#}");
    assert_eq!(loss["from"], "main");
    assert_eq!(loss["to"], "spare");
    assert_eq!(loss["epoch"], 2);
    assert_eq!(loss["exact"], false, "main is unreachable: bounds");
    let parts = loss["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4, "{loss:#}");
    let end_ms = loss["writes_end_before_ms"].as_u64().unwrap();
    let mut applied_through = Vec::new();
    for p in parts {
        assert!(p["decrees"]["Err"].as_str().unwrap().contains("main is unreachable"), "never 0: {p}");
        applied_through.push(Timetag::from_u64(p["applied_through_timetag"]["Ok"].as_u64().unwrap()));
    }

    // Every acknowledged write spare lacks is inside the bounds: written before main's lease
    // ended, with a timetag after what spare had applied of its partition (timetags are main's
    // wall clock, the same machine's, within its HLC's drift: 500 ms allowed).
    let reader = b.client();
    let mut lost = Vec::new();
    let mut before_kill = 0;
    for (key, w) in &acked {
        let op = ReadOp::Get { hash_key: key.as_bytes().to_vec(), sort_key: b"v".to_vec() };
        let found = match reader.read("t", op).await.unwrap() {
            ReadResult::Get(v) => v.is_some(),
            other => panic!("{other:?}"),
        };
        if w.sent_ms < killed_ms {
            before_kill += 1;
        }
        if !found {
            lost.push((key.clone(), w.clone()));
        }
    }
    for (key, w) in &lost {
        let p = partition_of(key.as_bytes(), 4).0 as usize;
        let after = applied_through[p].physical_ms();
        assert!(
            w.sent_ms < end_ms,
            "{key} lost but sent at {} after the old side's writes ended ({end_ms})",
            w.sent_ms
        );
        assert!(
            w.acked_ms + 500 >= after,
            "{key} (partition {p}) acknowledged at {} is lost, but spare had applied partition {p} through {after}",
            w.acked_ms
        );
    }
    eprintln!(
        "e2e: {} writes acknowledged ({before_kill} sent before the kill, {before_failover} acknowledged by then); {} of them not in spare, all within the reported bounds",
        acked.len(),
        lost.len()
    );
    assert!(acked.len() > before_failover, "writes went on after the failover");

    // A re-run changes nothing.
    let again = b.cli(&args).await.ok().json();
    assert!(again["summary"].as_str().unwrap().contains("active in spare at epoch 2"), "{again:#}");
    // Without --yes and without a terminal it refuses and says why.
    let no_yes: Vec<&str> = args.iter().copied().filter(|a| *a != "--yes").collect();
    let refused = b.cli(&no_yes).await;
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
}
