//! No split brain (issue #24, item 4; docs/meta-proxy.md, "The DR lease", invariant 11): the
//! proxies are cut off from the active cluster by fault-injecting TCP proxies while a client
//! still writes to it directly. The active side stops taking client writes by itself (its DR
//! lease is not renewed through a majority of the DR voters) before a proxy promotes the
//! standby; the promotion waits until the old lease has certainly expired and says so. Once the
//! network heals, the old active copy is fenced, and no acknowledged write of either side is
//! lost or overwritten by an older one.
//!
//! The same scenario without the DR lease (the behaviour before it, now only with
//! `--unsafe-failover-without-lease`) shows what the test guards against: the old active side
//! keeps acknowledging writes after the promotion.
//!
//! Layout: clusters `left` (active) and `right` (standby), a two-way link; DR voters `p1`, `p2`
//! (proxies, both with automatic failover) and `w` (a witness). Left's meta server reaches each
//! voter through its own fault proxy, and every voter reaches left's meta server through one.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tern_client::{ClientOptions, TernClient};
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{ErrorCode, WriteOp};
use tern_e2e::cluster::SETTLE;
use tern_e2e::faults::FaultProxy;
use tern_e2e::ports::free_addr;
use tern_e2e::process::Process;
use tern_e2e::proxy::{http_get, proxy_status, start_at, table_of};
use tern_e2e::{Cluster, ClusterOptions};

const LEASE: &str = "2s";

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn set(key: &str, value: &str) -> WriteOp {
    WriteOp::Set { hash_key: key.into(), sort_key: b"s".to_vec(), value: value.into(), ttl_secs: 0 }
}

/// An acknowledged write: key, value, and when the acknowledgement arrived (wall ms).
type Ack = (String, String, u64);

/// A refused write: its code, when (wall ms), and the message.
type Refusal = (ErrorCode, u64, String);

/// The DR voters as `tern meta --dr-voters` takes them.
fn voters(addrs: &[(&str, &str)]) -> String {
    addrs.iter().map(|(n, a)| format!("{n}={a}")).collect::<Vec<_>>().join(",")
}

/// The proxies and the witness, and the directory of their logs: if the test fails, the
/// directory is kept and the tail of each log printed (clusters do the same for theirs).
struct Logs {
    dir: Option<tempfile::TempDir>,
    procs: Vec<Process>,
}

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.procs {
                eprintln!("----- {} ({}):\n{}", p.name, p.log.display(), p.tail(60));
            }
            if let Some(dir) = self.dir.take() {
                eprintln!("e2e: proxy logs kept in {}", dir.keep().display());
            }
        }
    }
}

/// A client writing to left directly (its meta servers, never a proxy), recording every
/// acknowledged write and every refusal with its code and time.
struct DirectWriter {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DirectWriter {
    fn start(left: &Cluster) -> DirectWriter {
        let client = TernClient::new(ClientOptions {
            // Short, so that a refusal is recorded soon after the lease runs out.
            timeout: Duration::from_secs(1),
            ..ClientOptions::new(left.meta_addrs())
        })
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let refusals: Arc<Mutex<Vec<Refusal>>> = Arc::default();
        let task = {
            let (stop, acks, refusals) = (stop.clone(), acks.clone(), refusals.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Even writes go to 20 keys right writes later too; odd ones to their own key.
                    let key =
                        if i.is_multiple_of(2) { format!("s{}", (i / 2) % 20) } else { format!("l{i}") };
                    let value = format!("left:{i}");
                    match client.write("t", set(&key, &value)).await {
                        Ok(_) => acks.lock().unwrap().push((key, value, wall_ms())),
                        Err(e) => {
                            refusals.lock().unwrap().push((e.code(), wall_ms(), e.to_string()));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    i += 1;
                }
            })
        };
        DirectWriter { stop, acks, refusals, task }
    }

    async fn stop(self) -> (Vec<Ack>, Vec<Refusal>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let acks = self.acks.lock().unwrap().clone();
        let refusals = self.refusals.lock().unwrap().clone();
        (acks, refusals)
    }
}

/// What the scenario observed.
struct Outcome {
    /// When the promotion was sent (the promoting proxy's decision time, wall ms).
    promoted_at: u64,
    left_acks: Vec<Ack>,
    left_refusals: Vec<Refusal>,
    /// Every acknowledged write of both sides, in order of acknowledgement.
    acks: Vec<Ack>,
    /// How often each proxy decided to wait for the old lease (from its metrics).
    lease_waits: u64,
    left: Cluster,
    right: Cluster,
    _logs: Logs,
}

/// Runs the scenario: with the DR lease (`lease`), or without it (left and right have no DR
/// voters and the proxies promote with `--unsafe-failover-without-lease`).
async fn scenario(lease: bool, ids: (u8, u8)) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2, w) = (free_addr(), free_addr(), free_addr());
    // Left's meta server reaches every voter through a fault proxy of its own.
    let (to_p1, to_p2, to_w) =
        (FaultProxy::start(&p1).await, FaultProxy::start(&p2).await, FaultProxy::start(&w).await);
    let direct = voters(&[("p1", &p1), ("p2", &p2), ("w", &w)]);
    let via_faults = voters(&[("p1", &to_p1.addr), ("p2", &to_p2.addr), ("w", &to_w.addr)]);
    let meta_args = |voters: &str| match lease {
        true => {
            vec!["--dr-voters".to_string(), voters.to_string(), "--dr-renew-interval".into(), "300ms".into()]
        }
        false => vec![],
    };
    let (a, b) = tokio::join!(
        Cluster::start(ClusterOptions {
            meta_args: meta_args(&via_faults),
            ..ClusterOptions::named("left", ids.0)
        }),
        Cluster::start(ClusterOptions {
            meta_args: meta_args(&direct),
            ..ClusterOptions::named("right", ids.1)
        })
    );
    a.create_table("t", 4, 3).await;
    b.create_table("t", 4, 3).await;
    a.dup_add("t", &b, &["--mode", "two-way"]).await.ok();
    for c in [&a, &b] {
        c.wait_for("the link to ship from every partition", SETTLE, || async {
            let links = c.dup_links().await;
            match links.iter().all(|l| l.link.as_ref().is_some_and(|d| d.started.iter().all(|s| *s))) {
                true if !links.is_empty() => Ok(()),
                _ => Err(format!("{links:?}")),
            }
        })
        .await;
    }
    let mb = b.meta_arg();
    b.cli(&["table", "role", "t", "--set", "standby", "--epoch", "1", "--if-epoch", "0", "--meta", &mb])
        .await
        .ok();

    // Every voter reaches left's meta server through one fault proxy; right directly.
    let to_left = FaultProxy::start(&a.meta_arg()).await;
    let clusters = [("left", to_left.addr.clone()), ("right", b.meta_arg())];
    let (m1, m2) = (free_addr(), free_addr());
    let proxy = |name: &str, addr: &str, metrics: &str| {
        let mut extra = vec!["--auto-failover", "t,after=2s,rpo=30s", "--metrics-listen", metrics];
        match lease {
            true => extra.extend(["--dr-voters", &direct, "--dr-name", name, "--dr-lease", LEASE]),
            false => extra.push("--unsafe-failover-without-lease"),
        }
        start_at(dir.path(), name, "proxy", addr, &clusters, &extra)
    };
    let mut procs = vec![proxy("p1", &p1, &m1), proxy("p2", &p2, &m2)];
    if lease {
        let extra = ["--dr-voters", &direct, "--dr-name", "w", "--dr-lease", LEASE];
        procs.push(start_at(dir.path(), "w", "witness", &w, &clusters, &extra));
    }
    let logs = Logs { dir: Some(dir), procs };

    // A client of the proxies writes (left holds its lease), and both proxies measure the lag.
    let via_proxies = Arc::new(TernClient::new(ClientOptions::new(vec![p1.clone(), p2.clone()])).unwrap());
    a.wait_for("the proxies to route writes to left", SETTLE, || async {
        via_proxies.write("t", set("first", "v")).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    for p in [&p1, &p2] {
        a.wait_for("the proxy to measure right's lag", SETTLE, || async {
            let s = proxy_status(p).await?;
            let t = table_of(&s, "t").ok_or("no table t")?;
            let right = t["clusters"].as_array().and_then(|c| c.iter().find(|c| c["cluster"] == "right"));
            match right.and_then(|r| r["lag_seconds"].as_f64()) {
                Some(_) => Ok(()),
                None => Err(format!("{t}")),
            }
        })
        .await;
    }

    let writer = DirectWriter::start(&a);
    a.wait_for("direct writes to left to be acknowledged", SETTLE, || async {
        match writer.acks.lock().unwrap().len() {
            n if n >= 50 => Ok(()),
            n => Err(format!("{n} acknowledged")),
        }
    })
    .await;

    eprintln!(
        "e2e: cutting the voters off from left (a client still reaches left directly) at {}",
        wall_ms()
    );
    for f in [&to_left, &to_p1, &to_p2, &to_w] {
        f.cut();
    }
    if lease {
        // Left's meta leader says why its table has no lease (an operator's first question).
        let ma = a.meta_arg();
        a.wait_for("left to report its lost DR lease", SETTLE, || async {
            let out = a.cli(&["cluster", "dr-lease", "--meta", &ma]).await.ok();
            match out.stdout.contains("table t (active at epoch 0): 0 of 3 DR voters grant it, 2 needed") {
                true => Ok(()),
                false => Err(out.stdout),
            }
        })
        .await;
    }
    let epoch = b.wait_promoted("t", &p1).await;
    assert_eq!(epoch, 2, "promoted once, above every epoch seen");
    // When the promotion was sent, by whichever proxy sent it (the other lost the race).
    let mut promoted_at = None;
    let mut lease_waits = 0;
    for (p, metrics) in [(&p1, &m1), (&p2, &m2)] {
        let s = proxy_status(p).await.unwrap();
        let d = &table_of(&s, "t").unwrap()["last_decision"];
        eprintln!("e2e: {p} decided {d}");
        if d["outcome"] == "promoted" {
            promoted_at = d["at_ms"].as_u64();
            if lease {
                let why = d["reason"].as_str().unwrap_or_default();
                assert!(why.contains("left's DR lease has certainly expired"), "{why}");
            }
        }
        let scraped = http_get(metrics, "/metrics").await.unwrap();
        lease_waits += scraped
            .lines()
            .filter(|l| {
                l.starts_with("tern_proxy_failover_decisions_total") && l.contains("waiting-for-lease")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
    }
    let promoted_at = promoted_at.expect("one proxy says it promoted right");

    // The client of the proxies now writes right: the 20 shared keys and keys of its own.
    let mut acks = Vec::new();
    for j in 0..20 {
        for (key, value) in [(format!("s{j}"), format!("right:{j}")), (format!("r{j}"), format!("right:{j}"))]
        {
            via_proxies
                .write("t", set(&key, &value))
                .await
                .unwrap_or_else(|e| panic!("write {key} to right: {e}"));
            acks.push((key, value, wall_ms()));
        }
    }
    // Left is still cut off from the voters; its direct client has been writing all along.
    let (left_acks, left_refusals) = writer.stop().await;

    eprintln!("e2e: healing the network");
    for f in [&to_left, &to_p1, &to_p2, &to_w] {
        f.heal();
    }
    let fenced = a.wait_fenced("t").await;
    assert!(fenced >= 2, "fenced at the promoted epoch or above: {fenced}");
    let mut all = left_acks.clone();
    all.extend(acks);
    all.sort_by_key(|(_, _, at)| *at);
    Outcome { promoted_at, left_acks, left_refusals, acks: all, lease_waits, left: a, right: b, _logs: logs }
}

/// Waits until `c` holds, for every acknowledged key, the value of its latest acknowledged write.
async fn converged(c: &Cluster, name: &str, acks: &[Ack]) {
    let latest: BTreeMap<&str, &str> = acks.iter().map(|(k, v, _)| (k.as_str(), v.as_str())).collect();
    let client = c.client();
    c.wait_for(&format!("{name} to hold the latest acknowledged value of every key"), SETTLE, || {
        let (client, latest) = (client.clone(), latest.clone());
        async move {
            let mut wrong = Vec::new();
            for (k, v) in &latest {
                let get = ReadOp::Get { hash_key: k.as_bytes().to_vec(), sort_key: b"s".to_vec() };
                match client.read("t", get).await.map_err(|e| e.to_string())? {
                    ReadResult::Get(Some(got)) if got == v.as_bytes() => {}
                    other => wrong.push(format!("{k}: {other:?}, want {v}")),
                }
            }
            match wrong.len() {
                0 => Ok(()),
                n => Err(format!(
                    "{n} of {} keys: {}",
                    latest.len(),
                    wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
                )),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_active_cluster_cut_off_from_the_voters_stops_writes_before_the_standby_is_promoted() {
    let o = scenario(true, (41, 42)).await;
    let last_left = o.left_acks.iter().map(|(_, _, at)| *at).max().unwrap();
    eprintln!(
        "e2e: left acknowledged {} direct writes, the last {} ms before the promotion was sent; {} refusals",
        o.left_acks.len(),
        o.promoted_at as i64 - last_left as i64,
        o.left_refusals.len()
    );
    for (code, at, e) in &o.left_refusals {
        eprintln!(
            "e2e: left refused at {at} ({} ms before the promotion): {code}: {e}",
            o.promoted_at as i64 - *at as i64
        );
    }
    eprintln!("e2e: last left ack at {last_left}, promotion sent at {}", o.promoted_at);
    // The invariant: nothing acknowledged by the old active side after the promotion.
    assert!(
        last_left < o.promoted_at,
        "left acknowledged a write {} ms after right was promoted",
        last_left - o.promoted_at
    );
    // It stopped by itself, for lack of the lease, before the promotion (not because of it).
    let first_no_lease =
        o.left_refusals.iter().find(|(code, ..)| *code == ErrorCode::NoDrLease).unwrap_or_else(|| {
            panic!("left never refused for lack of its DR lease: {:?}", o.left_refusals.first())
        });
    assert!(first_no_lease.1 < o.promoted_at, "left refused with NO_DR_LEASE only after the promotion");
    assert!(first_no_lease.2.contains("does not hold the DR lease"), "{}", first_no_lease.2);
    // The promoting proxy waited for the old lease and said so.
    assert!(o.lease_waits >= 1, "a proxy recorded waiting-for-lease");
    // No acknowledged write is lost or overwritten by an older one, in either cluster.
    converged(&o.right, "right", &o.acks).await;
    converged(&o.left, "left", &o.acks).await;

    // The operator's override on the active side: waived (with a reason, confirmed), shown,
    // enforced again.
    let mb = o.right.meta_arg();
    let out = o.right.cli(&["cluster", "dr-lease", "--meta", &mb, "--waive", "drill"]).await;
    assert!(out.code != 0 && out.stderr.contains("add --yes"), "{out:?}");
    let waived = o
        .right
        .cli(&["--output", "json", "cluster", "dr-lease", "--meta", &mb, "--waive", "drill", "--yes"])
        .await;
    let waived = waived.ok().json();
    assert_eq!((waived["waived"].as_bool(), waived["waiver_reason"].as_str()), (Some(true), Some("drill")));
    let enforced =
        o.right.cli(&["--output", "json", "cluster", "dr-lease", "--meta", &mb, "--enforce"]).await;
    assert_eq!(enforced.ok().json()["waived"].as_bool(), Some(false));
}

/// What the lease prevents, shown on the behaviour before it: without the lease, the old active
/// side keeps acknowledging writes after the standby was promoted (a split brain).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_dr_lease_the_old_active_cluster_keeps_taking_writes_after_the_promotion() {
    let o = scenario(false, (43, 44)).await;
    let after = o.left_acks.iter().filter(|(_, _, at)| *at > o.promoted_at).count();
    eprintln!("e2e: without the lease, left acknowledged {after} direct writes after right's promotion");
    assert!(after > 0, "the split brain this test exists to catch did not happen");
    assert!(o.left_refusals.iter().all(|(code, ..)| *code != ErrorCode::NoDrLease));
}
