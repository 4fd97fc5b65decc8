//! `tern up -f FILE` (issue #26, item 4) with the real binary: a two-cluster file comes up
//! detached and healthy, serves writes and reads through the proxy and its Redis gateway, a
//! write reaches the other cluster, `tern plan -f` of the same file (and of the deployed file
//! `up` writes) finds nothing to change, a second `up -f` starts nothing and changes nothing,
//! another file and bad flag combinations are refused, `tern ps` lists every process alive, and
//! `tern down` leaves no process and no listening port. A drop guard runs `tern down` if the
//! test fails half-way.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use tern_client::{ClientOptions, TernClient};
use tern_core::read::{ReadOp, ReadResult};
use tern_e2e::cluster::SETTLE;
use tern_e2e::ports::free_addr;
use tern_e2e::process::{CliOutput, run_cli};
use tern_e2e::process::{DownOnDrop, alive};
use tern_e2e::workload::set_op;
use tern_topology::local::State;

async fn tern(args: &[&str]) -> CliOutput {
    let out = run_cli(args, Duration::from_secs(300)).await;
    eprintln!("e2e: tern {} -> exit {}\n{}{}", args.join(" "), out.code, out.stdout, out.stderr);
    out
}

/// Two clusters of one meta and one replica server at ports the test picked; table `demo`
/// active in dc1, a standby in dc2, linked both ways; one proxy (the DR voter) whose Redis
/// gateway is left at port 0 for `up` to pick.
fn file_text(cluster2: &str) -> String {
    let (m1, r1, m2, r2, p) = (free_addr(), free_addr(), free_addr(), free_addr(), free_addr());
    format!(
        r#"version: 1
clusters:
  - name: dc1
    id: 1
    meta-servers: ["{m1}"]
    replica-servers: ["{r1}"]
  - name: {cluster2}
    id: 2
    meta-servers: ["{m2}"]
    replica-servers: ["{r2}"]
tables:
  - name: demo
    partitions: 2
    replicas: 1
    copies:
      - cluster: dc1
        role: active
      - cluster: {cluster2}
    links:
      - from: dc1
        to: {cluster2}
      - from: {cluster2}
        to: dc1
proxies:
  - name: p1
    listen: "{p}"
    dr-voter: true
    redis:
      listen: "127.0.0.1:0"
      table: demo
"#
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A RESP2 command through the Redis gateway.
fn redis_cmd(addr: &str, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut con = client.get_connection_with_timeout(Duration::from_secs(10)).unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    redis::ConnectionLike::req_command(&mut con, &cmd).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_from_a_file_serves_plans_clean_is_idempotent_and_down_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("local");
    let file = tmp.path().join("two.yaml");
    std::fs::write(&file, file_text("dc2")).unwrap();
    let (d, f) = (s(&dir), s(&file));

    // Bad input first, before anything runs.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, file_text("dc2").replace("partitions: 2", "partitons: 2")).unwrap();
    let out = tern(&["up", "-f", s(&bad), "--dir", d, "--detach"]).await;
    assert_eq!(out.code, 1, "an invalid file");
    assert!(
        out.stderr.contains("bad.yaml:13:5:") && out.stderr.contains("did you mean `partitions`"),
        "{out:?}"
    );
    let out = tern(&["up", "-f", f, "--clusters", "3", "--dir", d]).await;
    assert_eq!(out.code, 2, "clap refuses -f with --clusters");
    assert!(out.stderr.contains("--file") && out.stderr.contains("--clusters"), "{out:?}");
    assert!(!dir.join("cluster.json").exists(), "nothing was started");

    let _down = DownOnDrop(dir.clone());
    let out =
        tern(&["up", "-f", f, "--dir", d, "--detach", "--worker-threads", "1", "--wait", "120s"]).await.ok();
    let state = State::read(&dir).unwrap();
    let proxy = state.proxies[0].listen.clone();
    let redis_addr = state.proxies[0].redis.clone().unwrap();
    assert!(!redis_addr.ends_with(":0"), "up picked the Redis port: {redis_addr}");
    let redis_port = redis_addr.rsplit_once(':').unwrap().1;
    assert!(out.stdout.contains(&format!("proxy p1: {proxy}")), "{out:?}");
    assert!(out.stdout.contains(&format!("redis-cli -p {redis_port}")), "{out:?}");
    assert!(out.stderr.contains("create table demo in dc2"), "apply made the tables: {out:?}");

    // Writes and reads through the proxy, and through the Redis gateway.
    let via_proxy = TernClient::new(ClientOptions::new(vec![proxy.clone()])).unwrap();
    via_proxy.write("demo", set_op("user:1", "name", "alice", 0)).await.unwrap();
    let get = ReadOp::Get { hash_key: b"user:1".to_vec(), sort_key: b"name".to_vec() };
    assert_eq!(via_proxy.read("demo", get.clone()).await.unwrap(), ReadResult::Get(Some(b"alice".to_vec())));
    let in_dc2 = TernClient::new(ClientOptions::new(state.clusters[1].meta_addrs())).unwrap();
    tern_e2e::wait_until("the write to reach dc2", SETTLE, || async {
        match in_dc2.read("demo", get.clone()).await {
            Ok(ReadResult::Get(Some(v))) if v == b"alice" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let r = redis_addr.clone();
    let (set, got) = tokio::task::spawn_blocking(move || {
        (redis_cmd(&r, &["SET", "greeting", "hello"]), redis_cmd(&r, &["GET", "greeting"]))
    })
    .await
    .unwrap();
    assert_eq!(set, redis::Value::Okay);
    assert_eq!(got, redis::Value::BulkString(b"hello".to_vec()));

    // The same file, and the deployed one, plan clean.
    let out = tern(&["plan", "-f", f]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("No changes"), "{out:?}");
    let deployed = dir.join("topology.yaml");
    assert_eq!(tern(&["plan", "-f", s(&deployed)]).await.code, 0, "the deployed file plans clean");

    // A second up starts nothing and changes nothing.
    let out = tern(&["up", "-f", f, "--dir", d, "--detach"]).await.ok();
    assert!(out.stdout.contains("already running"), "{out:?}");
    assert!(out.stderr.contains("nothing to change"), "{out:?}");
    assert_eq!(State::read(&dir).unwrap().processes, state.processes, "no process started");

    // Another file against the running directory is refused, and so is flags-up.
    let other = tmp.path().join("other.yaml");
    std::fs::write(&other, file_text("east")).unwrap();
    let out = tern(&["up", "-f", s(&other), "--dir", d, "--detach"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("runs the deployment of another topology file"), "{out:?}");
    let out = tern(&["up", "--dir", d, "--detach"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("holds the deployment of the topology file"), "{out:?}");

    // ps: every process, alive.
    let out = tern(&["--output", "json", "ps", "--dir", d]).await.ok();
    let list = out.json();
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    // With s3s-fs installed, `up` also runs the local S3 server for backups (last).
    let with_s3 = tern_backup::local_s3::find_s3s_fs().is_some();
    let mut expected = vec!["dc1-meta-1", "dc1-replica-1", "dc2-meta-1", "dc2-replica-1", "proxy-p1"];
    if with_s3 {
        expected.push("s3");
    }
    assert_eq!(names, expected);
    assert!(list.iter().all(|p| p["alive"] == true), "{list:?}");
    assert_eq!(list[4]["role"], "proxy");
    assert_eq!(list[0]["cluster"], "dc1");
    assert!(list.iter().all(|p| Path::new(p["log"].as_str().unwrap()).is_file()), "{list:?}");
    let pids: Vec<u32> = list.iter().map(|p| p["pid"].as_u64().unwrap() as u32).collect();
    let text = tern(&["ps", "--dir", d]).await.ok();
    assert!(text.stdout.starts_with("NAME") && text.stdout.contains("proxy-p1"), "{text:?}");

    // down: no process, no listening port.
    let out = tern(&["down", "--dir", d]).await.ok();
    assert!(out.stdout.contains(&format!("stopped {} processes", expected.len())), "{out:?}");
    let running: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(running.is_empty(), "tern down returns once every process is gone: {running:?} run");
    let mut addrs: Vec<String> =
        state.clusters.iter().flat_map(|c| c.metas.values().chain(c.replicas.values())).cloned().collect();
    addrs.extend([proxy, redis_addr]);
    addrs.extend(state.s3.clone());
    for a in &addrs {
        assert!(tokio::net::TcpStream::connect(a).await.is_err(), "{a} still accepts connections");
    }
    assert_eq!(tern(&["ps", "--dir", d]).await.code, 3, "ps: not running");
}
