//! Duplication links through the `Meta` service of real meta servers (one per cluster, on
//! 127.0.0.1). Replica servers are played by the test: it beacons as one node, so tables get
//! partitions with that node as primary, and reports shipping progress as that node would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern_client::MetaClient;
use tern_core::{ClusterId, ConflictKind, LinkAction, LinkMode, LinkStatus};
use tern_meta::MetaOptions;
use tern_meta::raft::RaftOptions;
use tern_proto::convert::PbEnum;
use tern_proto::pb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The node id the test beacons as.
const NODE: u64 = 77;

struct Meta {
    opts: MetaOptions,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    client: MetaClient,
}

impl Meta {
    async fn start(dir: PathBuf, name: &str, id: u8, journal: u32) -> Meta {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen: SocketAddr = l.local_addr().unwrap();
        drop(l);
        let opts = MetaOptions {
            id: 1,
            listen,
            members: BTreeMap::from([(1, listen.to_string())]),
            data_dir: dir,
            cluster_name: name.into(),
            cluster_id: ClusterId::new(id).unwrap(),
            cm: tern_confman::CmOptions::default(),
            recall_window: Duration::from_secs(3600),
            dup_conflict_journal: journal,
            tombstone_retention: tern_meta::DEFAULT_TOMBSTONE_RETENTION,
            dup_hold_limit: tern_meta::DEFAULT_DUP_HOLD_LIMIT,
            raft: RaftOptions { election_timeout_ms: (150, 300), heartbeat_ms: 50, ..RaftOptions::default() },
            dr_lease: Default::default(),
            backup: Default::default(),
        };
        let mut m =
            Meta { client: MetaClient::new(vec![listen.to_string()]).unwrap(), opts, stop: None, task: None };
        m.run();
        m
    }

    fn run(&mut self) {
        let (tx, rx) = oneshot::channel::<()>();
        let opts = self.opts.clone();
        self.task = Some(tokio::spawn(async move {
            tern_meta::run(opts, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        }));
        self.stop = Some(tx);
    }

    async fn restart(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        self.run();
    }

    fn addr(&self) -> String {
        self.opts.listen.to_string()
    }

    async fn beacon(&self, progress: Vec<pb::DupProgress>) -> pb::BeaconResponse {
        let req = pb::BeaconRequest {
            node: NODE,
            addr: "127.0.0.1:9".into(),
            sent_at_ms: 1,
            reports: vec![],
            dup_progress: progress,
            memory: None,
            incoming: vec![],
        };
        self.client
            .call(|mut c| {
                let req = req.clone();
                async move { c.beacon(req).await }
            })
            .await
            .unwrap()
    }

    /// A table of `partitions` partitions, all led by the test's node.
    async fn create_table(&self, name: &str, partitions: u32) {
        self.beacon(vec![]).await;
        let req = pb::CreateTableRequest { name: name.into(), partitions, replicas: 1 };
        self.client
            .call(|mut c| {
                let req = req.clone();
                async move { c.create_table(req).await }
            })
            .await
            .unwrap();
    }

    async fn add(&self, req: pb::DupAddRequest) -> tern_core::Result<pb::DupLinkStatus> {
        self.client
            .call(|mut c| {
                let req = req.clone();
                async move { c.dup_add(req).await }
            })
            .await
    }

    async fn list(&self) -> Vec<pb::DupLinkStatus> {
        self.client
            .call(|mut c| async move { c.dup_list(pb::DupListRequest { table: String::new() }).await })
            .await
            .unwrap()
            .links
    }

    /// `action`: a wire value (0 = unspecified).
    async fn change(&self, id: u64, action: i32) -> tern_core::Result<pb::DupLinkStatus> {
        let req = pb::DupChangeRequest { id, action, max_bytes_per_sec: 0 };
        self.client.call(|mut c| async move { c.dup_change(req).await }).await
    }

    async fn conflicts(&self, id: u64) -> pb::DupConflictsResponse {
        let req = pb::DupChangeRequest { id, ..Default::default() };
        self.client.call(|mut c| async move { c.dup_conflicts(req).await }).await.unwrap()
    }
}

fn add_req(remote_cluster: &str, remote: &Meta) -> pb::DupAddRequest {
    pb::DupAddRequest {
        table: "t".into(),
        remote_cluster: remote_cluster.into(),
        remote_metas: vec![remote.addr()],
        mode: LinkMode::OneWay.to_pb(),
        ..Default::default()
    }
}

fn status(l: &pb::DupLink) -> LinkStatus {
    LinkStatus::from_pb(l.status, "link.status").unwrap()
}

fn err_text(r: tern_core::Result<pb::DupLinkStatus>) -> String {
    r.expect_err("refused").to_string()
}

fn conflict(n: u64) -> pb::DupConflict {
    pb::DupConflict {
        hash_key: format!("h{n}").into_bytes(),
        sort_key: vec![],
        incoming: n,
        stored: n + 1,
        kind: ConflictKind::ShippedLost.to_pb(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_validated_recorded_and_survive_a_meta_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut a, b, twin) = tokio::join!(
        Meta::start(tmp.path().join("a"), "a", 1, 2),
        Meta::start(tmp.path().join("b"), "b", 2, 100),
        Meta::start(tmp.path().join("twin"), "twin", 1, 100),
    );
    a.create_table("t", 2).await;
    b.create_table("t", 3).await;
    twin.create_table("t", 1).await;

    // Refusals, each naming what is wrong.
    let e = err_text(a.add(pb::DupAddRequest { table: "x".into(), ..add_req("b", &b) }).await);
    assert!(e.contains("\"x\" not found"), "{e}");
    let e = err_text(a.add(pb::DupAddRequest { remote_metas: vec![], ..add_req("c", &b) }).await);
    assert!(e.contains("unknown cluster c: give its meta addresses (--to-meta)"), "{e}");
    let e = err_text(a.add(add_req("c", &b)).await);
    assert!(e.contains("serve cluster \"b\", not \"c\""), "{e}");
    let e = err_text(a.add(add_req("twin", &twin)).await);
    assert!(e.contains("same cluster id (1)"), "{e}");
    let e = err_text(a.add(pb::DupAddRequest { remote_table: "nope".into(), ..add_req("b", &b) }).await);
    assert!(e.contains("table nope does not exist in cluster b; create it there first"), "{e}");
    let e = err_text(a.add(pb::DupAddRequest { mode: 9, ..add_req("b", &b) }).await);
    assert!(e.contains("mode has the unknown value 9"), "{e}");
    let e = err_text(a.add(pb::DupAddRequest { mode: 0, ..add_req("b", &b) }).await);
    assert!(e.contains("mode is not specified"), "{e}");

    let added = a.add(add_req("b", &b)).await.unwrap();
    assert_eq!(added.link.unwrap().id, 1);
    let e = err_text(a.add(add_req("b", &b)).await);
    assert!(e.contains("already has link 1"), "{e}");

    // The link is in every beacon answer, not started.
    let links = a.beacon(vec![]).await.dup_links;
    assert_eq!(links.len(), 1);
    let l = &links[0];
    assert_eq!(
        (l.id, l.remote_cluster.as_str(), l.remote_cluster_id, status(l)),
        (1, "b", 2, LinkStatus::Shipping)
    );
    assert_eq!((l.confirmed.clone(), l.started.clone()), (vec![0, 0], vec![false, false]));

    // Progress from the primary at its ballot is recorded; a stale ballot is not.
    let configs = a.beacon(vec![]).await.configs;
    let ballot = configs.iter().find(|c| c.gpid.as_ref().unwrap().partition == 0).unwrap().ballot;
    let report = |confirmed, ballot, conflicts, recent: Vec<u64>| pb::DupProgress {
        link: 1,
        partition: 0,
        ballot,
        confirmed,
        committed: 12,
        oldest_unshipped_ms: 0,
        conflicts,
        recent_conflicts: recent.into_iter().map(conflict).collect(),
        ..Default::default()
    };
    a.beacon(vec![report(5, ballot, 1, vec![1])]).await;
    a.beacon(vec![report(9, ballot + 1, 0, vec![])]).await;
    let resp = a.beacon(vec![report(7, ballot, 3, vec![2, 3])]).await;
    assert_eq!(resp.dup_links[0].confirmed, vec![7, 0], "the beacon answer carries what it recorded");
    let st = &a.list().await[0];
    let p0 = &st.partitions[0];
    assert_eq!((p0.confirmed, p0.committed, p0.decrees_behind, p0.primary), (7, 12, 5, NODE));
    assert_eq!(st.partitions[1].reported_ms_ago, u64::MAX, "partition 1 never reported");
    let c = a.conflicts(1).await;
    assert_eq!(c.total, 3);
    assert_eq!(c.recent.iter().map(|c| c.incoming).collect::<Vec<_>>(), vec![2, 3], "a's journal keeps 2");

    // The status machine, through the service.
    let pause = LinkAction::Pause.to_pb();
    assert_eq!(status(&a.change(1, pause).await.unwrap().link.unwrap()), LinkStatus::Paused);
    assert!(err_text(a.change(1, 0).await).contains("action is not specified"));
    assert!(err_text(a.change(9, pause).await).contains("no duplication link 9"));

    // Everything but the in-memory reports survives a restart of the (only) meta server.
    a.restart().await;
    let st = &a.list().await[0];
    let l = st.link.as_ref().unwrap();
    assert_eq!(
        (status(l), l.confirmed.clone(), l.started.clone()),
        (LinkStatus::Paused, vec![7, 0], vec![true, false])
    );
    assert_eq!(st.conflicts, 3);
    assert_eq!(st.partitions[0].reported_ms_ago, u64::MAX);

    let remove = LinkAction::Remove.to_pb();
    assert_eq!(status(&a.change(1, remove).await.unwrap().link.unwrap()), LinkStatus::Removed);
    assert!(err_text(a.change(1, LinkAction::Resume.to_pb()).await).contains("final"));
    assert!(a.beacon(vec![]).await.dup_links.is_empty(), "removed links are not sent to replica servers");
    let again = a.add(add_req("b", &b)).await.unwrap();
    assert_eq!(again.link.unwrap().id, 2, "after removal a new link to the same table may be added");
}
