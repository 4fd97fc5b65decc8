//! Automatic failover by `tern proxy --auto-failover` (issue #6, part 4): two clusters with a
//! two-way duplication link, the table active in `left`. When `left` is lost entirely, a proxy
//! promotes `right` (epoch compare-and-set: two proxies, one promotion) only if right's measured
//! lag is within the RPO budget; the old cluster is fenced when it returns, and no acknowledged
//! write is lost. The two proxies are the clusters' DR voters: the promotion waits until left's
//! DR lease has certainly expired (docs/meta-proxy.md, "The DR lease"). With the link paused
//! and the lag over the budget, the proxy refuses and says why.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tern_client::{ClientOptions, TernClient};
use tern_core::DrRole;
use tern_core::read::{ReadOp, ReadResult};
use tern_e2e::Cluster;
use tern_e2e::cluster::SETTLE;
use tern_e2e::pair::{dr_pair, dr_pair_with};
use tern_e2e::ports::free_addr;
use tern_e2e::proxy::{copy_of, http_get, proxy_status, start_at, start_proxy, table_of, wait_decision};
use tern_e2e::workload::numbered_set as set;

fn kill_all(c: &mut Cluster) {
    for p in c.metas().into_iter().chain(c.replicas()) {
        c.kill9(p);
    }
}

/// One Redis connection (the `redis` crate, blocking) used from async code.
#[derive(Clone)]
struct Redis(Arc<std::sync::Mutex<redis::Connection>>);

impl Redis {
    fn open(addr: &str) -> Result<Redis, String> {
        let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
        Ok(Redis(Arc::new(std::sync::Mutex::new(client.get_connection().map_err(|e| e.to_string())?))))
    }

    async fn cmd(&self, args: &[&str]) -> Result<redis::Value, String> {
        let (conn, args) = (self.0.clone(), args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || {
            let mut cmd = redis::cmd(&args[0]);
            for a in &args[1..] {
                cmd.arg(a);
            }
            cmd.query::<redis::Value>(&mut conn.lock().unwrap()).map_err(|e| e.to_string())
        })
        .await
        .unwrap()
    }
}

async fn lag_of_right(proxy: &str) -> Result<f64, String> {
    let s = proxy_status(proxy).await?;
    let t = table_of(&s, "t").ok_or(format!("no table t in {s}"))?;
    let r = copy_of(t, "right").ok_or(format!("no copy in right in {t}"))?;
    r["lag_seconds"].as_f64().ok_or(format!("lag not measured yet: {r}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_active_cluster_promotes_the_standby_once_and_fences_the_old_one_on_return() {
    // The two proxies are the DR voters (both must grant a lease; either may promise).
    let (a1, a2) = (free_addr(), free_addr());
    let voters = format!("proxy1={a1},proxy2={a2}");
    let (mut a, b) =
        dr_pair_with(("left", 31), ("right", 32), &["--dr-voters", &voters, "--dr-renew-interval", "300ms"])
            .await;
    let dir = tempfile::tempdir().unwrap();
    let clusters = [("left", a.meta_arg()), ("right", b.meta_arg())];
    // A generous budget: this test is about promoting and fencing (the next one about the budget).
    let policy = ["--auto-failover", "t,after=3s,rpo=30s", "--dr-voters", &voters, "--dr-lease", "2s"];
    let resp = free_addr();
    let p1 = start_at(
        dir.path(),
        "proxy1",
        "proxy",
        &a1,
        &clusters,
        &[&policy[..], &["--dr-name", "proxy1", "--resp-listen", &resp, "--resp-table", "t"]].concat(),
    );
    let p2 = start_at(
        dir.path(),
        "proxy2",
        "proxy",
        &a2,
        &clusters,
        &[&policy[..], &["--dr-name", "proxy2"]].concat(),
    );
    let client =
        Arc::new(TernClient::new(ClientOptions::new(vec![p1.addr.clone(), p2.addr.clone()])).unwrap());
    a.wait_for("the proxies to route writes", SETTLE, || async {
        client.write("t", set(0)).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    // A Redis client of proxy1's gateway, one connection all along.
    let redis = a.wait_for("the Redis gateway", SETTLE, || async { Redis::open(&resp) }).await;
    assert_eq!(redis.cmd(&["SET", "before", "1"]).await.unwrap(), redis::Value::Okay);
    let mut acked = vec![0];
    for i in 1..=300 {
        client.write("t", set(i)).await.unwrap();
        acked.push(i);
    }
    for p in [&p1, &p2] {
        a.wait_for("the proxy to measure right's lag", SETTLE, || lag_of_right(&p.addr)).await;
    }

    eprintln!("e2e: losing every process of left");
    kill_all(&mut a);
    let promoted = b.wait_promoted("t", &p1.addr).await;
    assert_eq!(promoted, 2, "promoted once, above every epoch seen (left 0, right 1)");
    // The same client, never restarted, writes on through the proxies.
    for i in 1000..1050 {
        client.write("t", set(i)).await.unwrap_or_else(|e| panic!("write {i} after the failover: {e}"));
        acked.push(i);
    }
    // So does the Redis client, on the same connection.
    let set = redis.cmd(&["SET", "after", "2"]).await;
    assert_eq!(set, Ok(redis::Value::Okay), "a Redis SET after the failover");
    assert_eq!(redis.cmd(&["GET", "after"]).await, Ok(redis::Value::BulkString(b"2".to_vec())));
    // Both proxies route to right; exactly one of them promoted it.
    let mut promotions = 0;
    for p in [&p1, &p2] {
        let s = tern_e2e::wait_until("the proxy to route to right", SETTLE, || async {
            let s = proxy_status(&p.addr).await?;
            let t = table_of(&s, "t").ok_or("no table t")?.clone();
            if t["active_cluster"] == "right" { Ok(t) } else { Err(format!("{t}")) }
        })
        .await;
        eprintln!("e2e: {} says {}", p.name, s["last_decision"]);
        if s["last_decision"]["outcome"] == "promoted" {
            promotions += 1;
            assert_eq!(s["last_decision"]["cluster"], "right");
            let why = s["last_decision"]["reason"].as_str().unwrap();
            assert!(why.contains("left (active at epoch 0) has not served"), "{why}");
            assert!(why.contains("left's DR lease has certainly expired"), "{why}");
        }
    }
    assert_eq!(promotions, 1, "two proxies, one promotion (the epoch compare-and-set decides)");

    eprintln!("e2e: left returns");
    for p in a.metas().into_iter().chain(a.replicas()) {
        a.restart(p);
    }
    let fenced = a.wait_fenced("t").await;
    assert_eq!(fenced, 2, "fenced at the epoch the proxies route by");
    a.wait_for("left's servers to refuse client writes", SETTLE, || async {
        let out = a.kv("t", &["set", "direct", "s", "v"]).await;
        if out.code != 0 && out.stderr.contains("standby") { Ok(()) } else { Err(format!("{out:?}")) }
    })
    .await;

    // No acknowledged write is lost: what left had not shipped yet was held at the fence (its
    // link paused) and arrives with tern dr reconcile.
    let (cl, cr) = (format!("left={}", a.meta_arg()), format!("right={}", b.meta_arg()));
    let out =
        b.cli(&["dr", "reconcile", "--table", "t", "--yes", "--cluster", &cl, "--cluster", &cr]).await.ok();
    eprintln!("e2e: tern dr reconcile said:\n{}{}", out.stderr, out.stdout);
    let right = b.client();
    let total = acked.len();
    b.wait_for("every acknowledged write to be readable in right", SETTLE, || {
        let (right, acked) = (right.clone(), acked.clone());
        async move {
            let mut missing = 0;
            for i in &acked {
                let op = ReadOp::Get { hash_key: format!("k{i}").into_bytes(), sort_key: b"s".to_vec() };
                if right.read("t", op).await.map_err(|e| e.to_string())?
                    != ReadResult::Get(Some(b"v".to_vec()))
                {
                    missing += 1;
                }
            }
            if missing == 0 { Ok(()) } else { Err(format!("{missing} of {total} missing")) }
        }
    })
    .await;
    // What the Redis client wrote before the failover is there too.
    let before = redis.cmd(&["GET", "before"]).await;
    assert_eq!(
        before,
        Ok(redis::Value::BulkString(b"1".to_vec())),
        "a Redis SET acknowledged before the failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_further_behind_than_the_budget_is_not_promoted_and_the_proxy_says_why() {
    let (mut a, b) = dr_pair(("left", 33), ("right", 34)).await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let p = start_proxy(
        dir.path(),
        "proxy",
        &[("left", &a), ("right", &b)],
        &["--auto-failover", "t,after=2s,rpo=1s", "--metrics-listen", &metrics],
    );
    let client = Arc::new(TernClient::new(ClientOptions::new(vec![p.addr.clone()])).unwrap());
    a.wait_for("the proxy to route writes", SETTLE, || async {
        client.write("t", set(0)).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    a.wait_for("the proxy to measure right's lag", SETTLE, || lag_of_right(&p.addr)).await;

    let (ma, id) = (a.meta_arg(), a.first_link_id().await);
    a.cli(&["dup", "pause", "--meta", &ma, &id]).await.ok();
    let mut i = 1;
    let lag = a
        .wait_for("right's lag to exceed the budget while the link is paused", SETTLE, || {
            i += 1;
            let (client, proxy) = (client.clone(), p.addr.clone());
            async move {
                client.write("t", set(i)).await.map_err(|e| e.to_string())?;
                match lag_of_right(&proxy).await? {
                    l if l > 1.5 => Ok(l),
                    l => Err(format!("lag {l}s")),
                }
            }
        })
        .await;
    eprintln!("e2e: right is {lag:.1}s behind; losing every process of left");
    kill_all(&mut a);

    let decision = wait_decision(&p.addr, "t", "refused").await;
    eprintln!("e2e: refused: {decision}");
    assert!(decision.contains("left (active at epoch 0) has not served"), "{decision}");
    assert!(decision.contains("right: ") && decision.contains("over the RPO budget of 1.0s"), "{decision}");
    assert_eq!(b.dr_role("t").await.unwrap(), (DrRole::Standby, 1), "right stays standby");
    let scraped = http_get(&metrics, "/metrics").await.unwrap();
    assert!(
        scraped.lines().any(|l| l.starts_with("tern_proxy_failover_decisions_total")
            && l.contains("outcome=\"refused\"")
            && l.contains("table=\"t\"")),
        "{scraped}"
    );
    // Clients are told why there is no route.
    let short = TernClient::new(ClientOptions {
        timeout: Duration::from_secs(2),
        ..ClientOptions::new(vec![p.addr.clone()])
    })
    .unwrap();
    let e = short.write("t", set(9999)).await.unwrap_err().to_string();
    assert!(e.contains("no reachable cluster has table t active"), "{e}");
    let text = tern_e2e::process::run_cli(&["proxy", "status", "--proxy", &p.addr], Duration::from_secs(20))
        .await
        .ok();
    assert!(
        text.stdout.contains("last failover decision") && text.stdout.contains("refused"),
        "{}",
        text.stdout
    );
}
