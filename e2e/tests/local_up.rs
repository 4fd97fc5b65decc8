//! The local deployment of `tern up` as a library (`tern_topology::local`), with the real
//! binary: two clusters come up with the demo table active in the first and a standby in the
//! second, linked both ways, a write through the proxy reaches the other cluster; a second `up`
//! on the same directory reuses ports, data and links; stopping leaves no process behind.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use tern_client::admin::LinkReport;
use tern_client::{AdminClient, ClientOptions, TernClient};
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{DrRole, LinkMode, LinkStatus};
use tern_e2e::cluster::SETTLE;
use tern_e2e::process::alive;
use tern_e2e::workload::set_op;
use tern_topology::local::{self, LocalSpec, State};

async fn links(admin: &AdminClient) -> Vec<LinkReport> {
    admin.links(None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_come_up_linked_and_stop_without_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = LocalSpec {
        replicas: 1,
        partitions: 2,
        worker_threads: Some(1),
        ..LocalSpec::new(tmp.path().join("local"), PathBuf::from(env!("CARGO_BIN_EXE_tern")))
    };
    let running = local::up(&spec, |s| eprintln!("e2e: {s}")).await.unwrap();
    let clusters = running.clusters().to_vec();
    let (dc1, dc2) = (clusters[0].clone(), clusters[1].clone());
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

    let via_proxy = TernClient::new(ClientOptions::new(vec![running.proxy().unwrap().to_string()])).unwrap();
    via_proxy.write("demo", set_op("user:1", "name", "alice", 0)).await.unwrap();
    let in_dc2 = TernClient::new(ClientOptions::new(dc2.meta_addrs())).unwrap();
    tern_e2e::wait_until("the write to reach dc2", SETTLE, || async {
        let get = ReadOp::Get { hash_key: b"user:1".to_vec(), sort_key: b"name".to_vec() };
        match in_dc2.read("demo", get).await {
            Ok(ReadResult::Get(Some(v))) if v == b"alice" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let pids = State::read(&spec.dir).unwrap().pids;
    running.stop().await;
    assert!(pids.iter().all(|p| !alive(*p)), "every process stopped");

    let again = local::up(&spec, |s| eprintln!("e2e: again: {s}")).await.unwrap();
    assert_eq!(again.clusters(), clusters.as_slice(), "the same ports");
    let a = AdminClient::connect(dc1.meta_addrs()).unwrap();
    assert_eq!(links(&a).await.len(), 1, "no second link");
    let in_dc1 = TernClient::new(ClientOptions::new(dc1.meta_addrs())).unwrap();
    let get = ReadOp::Get { hash_key: b"user:1".to_vec(), sort_key: b"name".to_vec() };
    assert_eq!(in_dc1.read("demo", get).await.unwrap(), ReadResult::Get(Some(b"alice".to_vec())), "the data");
    let pids = State::read(&spec.dir).unwrap().pids;
    again.detach();
    assert_eq!(local::down(&spec.dir).unwrap(), pids.len());
    tern_e2e::wait_until("down to stop every process", Duration::from_secs(30), || async {
        match pids.iter().filter(|p| alive(**p)).count() {
            0 => Ok(()),
            n => Err(format!("{n} still running")),
        }
    })
    .await;
}
