//! `tern up` without a file (issue #26, item 4), with the real binary: its flags describe the
//! bundled two-DC topology, which runs through the same path as `tern up -f` (processes, then
//! `apply`). Two clusters come up with the demo table active in the first and a standby in the
//! second, linked both ways; a write through the proxy reaches the other cluster; a SET/GET
//! through the proxy's Redis gateway (the banner's `redis-cli -p PORT`) works; `tern plan` of
//! the deployed topology is clean; a second `up` while it runs starts nothing, and other flags
//! are refused; `tern down` leaves no process; `up` again on the stopped directory reuses
//! ports, data and links. A drop guard runs `tern down` if the test fails half-way.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use tern_client::admin::LinkReport;
use tern_client::{AdminClient, ClientOptions, TernClient};
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{DrRole, LinkMode, LinkStatus};
use tern_e2e::cluster::SETTLE;
use tern_e2e::process::{CliOutput, DownOnDrop, alive, run_cli};
use tern_e2e::workload::set_op;
use tern_topology::local::State;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn tern(args: &[&str]) -> CliOutput {
    let out = run_cli(args, Duration::from_secs(300)).await;
    eprintln!("e2e: tern {} -> exit {}\n{}{}", args.join(" "), out.code, out.stdout, out.stderr);
    out
}

async fn links(admin: &AdminClient) -> Vec<LinkReport> {
    admin.links(None).await.unwrap()
}

/// One RESP2 command, raw over TCP (redis-cli may not be installed): the whole reply, e.g.
/// `+OK\r\n` or `$5\r\nhello\r\n`.
async fn resp(addr: &str, args: &[&str]) -> String {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        loop {
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the gateway closed the connection after {:?}", String::from_utf8_lossy(&reply));
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply).into_owned();
            let Some((head, rest)) = text.split_once("\r\n") else { continue };
            let complete = match head.strip_prefix('$') {
                Some(len) => match len.parse::<i64>().unwrap() {
                    -1 => true,
                    len => rest.len() >= len as usize + 2,
                },
                None => true,
            };
            if complete {
                return text;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("no whole reply to {args:?} from {addr} within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_without_a_file_applies_the_two_dc_topology_serves_native_and_redis_and_down_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("local");
    let d = dir.to_str().unwrap();
    let _down = DownOnDrop(dir.clone());
    let up = ["up", "--detach", "--dir", d, "--replicas", "1", "--partitions", "2", "--worker-threads", "1"];
    let out = tern(&[&up[..], &["--wait", "120s"]].concat()).await.ok();

    let state = State::read(&dir).unwrap();
    assert_eq!(state.file, None, "started by flags");
    let clusters = state.clusters.clone();
    assert_eq!(
        clusters.iter().map(|c| (c.name.as_str(), c.id)).collect::<Vec<_>>(),
        [("dc1", 1), ("dc2", 2)]
    );
    let (dc1, dc2) = (clusters[0].clone(), clusters[1].clone());
    let proxy = state.proxy.clone().unwrap();
    let redis_addr = state.proxies[0].redis.clone().expect("the proxy has a Redis gateway");
    let redis_port = redis_addr.rsplit_once(':').unwrap().1;
    assert!(out.stdout.contains(&format!("proxy: {proxy} (the native entry point")), "{out:?}");
    assert!(out.stdout.contains(&format!("redis-cli -p {redis_port}")), "the banner: {out:?}");
    assert!(out.stderr.contains("create table demo in dc2"), "apply made the tables: {out:?}");

    // The roles and links `tern up` always made, now by apply.
    let (a, b) =
        (AdminClient::connect(dc1.meta_addrs()).unwrap(), AdminClient::connect(dc2.meta_addrs()).unwrap());
    let (ta, tb) = (a.table_role("demo").await.unwrap(), b.table_role("demo").await.unwrap());
    assert_eq!((ta.role, ta.epoch, tb.role, tb.epoch), (DrRole::Active, 0, DrRole::Standby, 1));
    for (admin, other) in [(&a, "dc2"), (&b, "dc1")] {
        let l = links(admin).await;
        assert_eq!(l.len(), 1, "{l:?}");
        let link = &l[0].link;
        assert_eq!(
            (link.remote_cluster.as_str(), link.mode, link.status),
            (other, LinkMode::TwoWay, LinkStatus::Shipping)
        );
        assert!(link.started.iter().all(|s| *s), "up waits for the links to start: {link:?}");
    }

    // Native writes through the proxy reach dc2; Redis SET/GET through its gateway.
    let via_proxy = TernClient::new(ClientOptions::new(vec![proxy.clone()])).unwrap();
    via_proxy.write("demo", set_op("user:1", "name", "alice", 0)).await.unwrap();
    let get = ReadOp::Get { hash_key: b"user:1".to_vec(), sort_key: b"name".to_vec() };
    let in_dc2 = TernClient::new(ClientOptions::new(dc2.meta_addrs())).unwrap();
    tern_e2e::wait_until("the write to reach dc2", SETTLE, || async {
        match in_dc2.read("demo", get.clone()).await {
            Ok(ReadResult::Get(Some(v))) if v == b"alice" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(resp(&redis_addr, &["SET", "greeting", "hello"]).await, "+OK\r\n");
    assert_eq!(resp(&redis_addr, &["GET", "greeting"]).await, "$5\r\nhello\r\n");

    // The deployed topology plans clean: up and apply agree.
    let deployed = dir.join("topology.yaml");
    let out = tern(&["plan", "-f", deployed.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("No changes"), "{out:?}");

    // ps: every process, alive, under the names `tern up` always gave them.
    let list = tern(&["--output", "json", "ps", "--dir", d]).await.ok().json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    let mut expected = vec!["dc1-meta-1", "dc1-replica-1", "dc2-meta-1", "dc2-replica-1", "proxy"];
    if tern_backup::local_s3::find_s3s_fs().is_some() {
        expected.push("s3");
    }
    assert_eq!(names, expected);
    assert!(list.as_array().unwrap().iter().all(|p| p["alive"] == true), "{list}");

    // A second up while it runs starts nothing; other flags are refused.
    let out = tern(&up).await.ok();
    assert!(out.stdout.contains("already running"), "{out:?}");
    assert!(out.stderr.contains("nothing to change"), "{out:?}");
    assert_eq!(State::read(&dir).unwrap().processes, state.processes, "no process started");
    let out = tern(&["up", "--detach", "--dir", d, "--replicas", "2"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("other clusters, servers or proxies"), "{out:?}");

    // down: no process left.
    let pids = state.pids.clone();
    let out = tern(&["down", "--dir", d]).await.ok();
    assert!(out.stdout.contains(&format!("stopped {} processes", expected.len())), "{out:?}");
    assert!(pids.iter().all(|p| !alive(*p)), "every process stopped");

    // Up again on the stopped directory: the same ports, data and links.
    tern(&[&up[..], &["--wait", "120s"]].concat()).await.ok();
    let again = State::read(&dir).unwrap();
    assert_eq!(again.clusters, clusters, "the same ports");
    assert_eq!(
        (again.proxy.as_deref(), again.proxies[0].redis.as_deref()),
        (Some(proxy.as_str()), Some(redis_addr.as_str()))
    );
    let a = AdminClient::connect(dc1.meta_addrs()).unwrap();
    assert_eq!(links(&a).await.len(), 1, "no second link");
    let in_dc1 = TernClient::new(ClientOptions::new(dc1.meta_addrs())).unwrap();
    assert_eq!(in_dc1.read("demo", get).await.unwrap(), ReadResult::Get(Some(b"alice".to_vec())), "the data");
    assert_eq!(resp(&redis_addr, &["GET", "greeting"]).await, "$5\r\nhello\r\n");
    tern(&["down", "--dir", d]).await.ok();
    assert!(again.pids.iter().all(|p| !alive(*p)), "every process stopped");
    assert!(Path::new(&dir.join("cluster.json")).is_file(), "the state stays for the next up");
}
