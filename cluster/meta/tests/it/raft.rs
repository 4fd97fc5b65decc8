//! Tests of `tern_meta::raft`: real tonic servers on 127.0.0.1, members on temporary directories.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, StorageError};
use serde::{Deserialize, Serialize};
use tern_meta::raft::{
    Entry, LOG_FILE, LogId, LogStore, RaftGroup, RaftOptions, Replicated, StateMachineStore, Types,
    WriteError,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// The test state: a map of counters.

#[derive(Debug, Default)]
struct Kv(BTreeMap<String, u64>);

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Cmd {
    Set(String, u64),
    Incr(String),
}

impl Replicated for Kv {
    type Command = Cmd;
    type Response = u64;

    fn apply(&mut self, command: &Cmd) -> u64 {
        match command {
            Cmd::Set(k, v) => {
                self.0.insert(k.clone(), *v);
                *v
            }
            Cmd::Incr(k) => {
                let v = self.0.entry(k.clone()).or_default();
                *v += 1;
                *v
            }
        }
    }

    fn snapshot(&self) -> tern_core::Result<Vec<u8>> {
        Ok(serde_json::to_vec(&self.0).unwrap())
    }

    fn restore(&mut self, data: &[u8]) -> tern_core::Result<()> {
        self.0 = serde_json::from_slice(data).map_err(|e| tern_core::Error::corruption(e.to_string()))?;
        Ok(())
    }
}

fn set(k: &str, v: u64) -> Cmd {
    Cmd::Set(k.to_string(), v)
}

fn incr(k: &str) -> Cmd {
    Cmd::Incr(k.to_string())
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` every 20 ms until it holds; panics after `timeout`.
async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fast_opts() -> RaftOptions {
    RaftOptions { election_timeout_ms: (200, 400), heartbeat_ms: 50, ..RaftOptions::default() }
}

/// A running member: its group and its tonic server.
struct Node {
    group: Arc<RaftGroup<Kv>>,
    server: JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
}

/// A group of members on 127.0.0.1, each with a directory under one temporary directory.
/// Dropping it aborts every server (the test's runtime then ends the Raft tasks).
struct Cluster {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    addrs: BTreeMap<u64, String>,
    opts: RaftOptions,
    nodes: BTreeMap<u64, Node>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values() {
            node.server.abort();
        }
    }
}

impl Cluster {
    /// Starts members `1..=n` on OS-chosen ports.
    async fn start(n: u64, opts: RaftOptions) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.insert(id, l);
        }
        let addrs = listeners.iter().map(|(id, l)| (*id, l.local_addr().unwrap().to_string())).collect();
        let mut c =
            Cluster { root: tmp.path().to_path_buf(), _tmp: tmp, addrs, opts, nodes: BTreeMap::new() };
        for (id, l) in listeners {
            c.start_member(id, l).await;
        }
        c
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("m{id}"))
    }

    async fn start_member(&mut self, id: u64, listener: TcpListener) {
        let group = RaftGroup::start(id, self.addrs.clone(), &self.dir(id), Kv::default(), self.opts.clone())
            .await
            .unwrap();
        let group = Arc::new(group);
        let (stop, stopped) = oneshot::channel::<()>();
        let svc = group.service().into_server();
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.nodes.insert(id, Node { group, server, stop: Some(stop) });
    }

    /// Restarts a stopped member from its directory, on its old address.
    async fn restart(&mut self, id: u64) {
        let addr = self.addrs[&id].clone();
        let deadline = Instant::now() + DEADLINE;
        let listener = loop {
            match TcpListener::bind(&addr).await {
                Ok(l) => break l,
                Err(e) => assert!(Instant::now() < deadline, "cannot bind {addr} again: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.start_member(id, listener).await;
    }

    /// Stops a member: its Raft, then its server.
    async fn kill(&mut self, id: u64) {
        let mut node = self.nodes.remove(&id).unwrap();
        node.group.shutdown().await.unwrap();
        if let Some(stop) = node.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(3), &mut node.server).await.is_err() {
            node.server.abort();
        }
    }

    fn group(&self, id: u64) -> &RaftGroup<Kv> {
        &self.nodes[&id].group
    }

    /// The member that leads, once exactly one running member believes it leads and every running
    /// member knows it.
    async fn leader(&self) -> u64 {
        let mut found = 0;
        eventually("an agreed leader", DEADLINE, || {
            let leaders: Vec<u64> =
                self.nodes.iter().filter(|(_, n)| n.group.is_leader()).map(|(id, _)| *id).collect();
            let [l] = leaders[..] else { return false };
            found = l;
            self.nodes.values().all(|n| n.group.leader().map(|(id, _)| id) == Some(l))
        })
        .await;
        found
    }

    /// Writes through the leader, retrying while leadership moves (`NotLeader` means the
    /// command was not appended, so retrying cannot apply it twice).
    async fn write(&self, cmd: Cmd) -> u64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let leader = self.leader().await;
            match self.group(leader).write(cmd.clone()).await {
                Ok(r) => return r,
                Err(WriteError::NotLeader { .. }) => {
                    assert!(Instant::now() < deadline, "no leader took {cmd:?}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("write {cmd:?}: {e}"),
            }
        }
    }

    fn state(&self, id: u64) -> BTreeMap<String, u64> {
        self.group(id).read(|s| s.0.clone())
    }

    /// Waits until every running member has applied `want`.
    async fn converge(&self, want: &BTreeMap<String, u64>) {
        for id in self.nodes.keys() {
            eventually(&format!("member {id} to apply {want:?}"), DEADLINE, || &self.state(*id) == want)
                .await;
        }
    }
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

// ---------------------------------------------------------------------------------------------
// Groups.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_applies_and_restarts() {
    let mut c = Cluster::start(1, fast_opts()).await;
    assert_eq!(c.leader().await, 1);
    assert_eq!(c.write(set("a", 5)).await, 5);
    assert_eq!(c.write(incr("a")).await, 6);
    assert_eq!(c.write(incr("b")).await, 1);
    assert_eq!(c.state(1), map(&[("a", 6), ("b", 1)]));
    c.group(1).barrier().await.unwrap();
    let last_log = c.group(1).metrics().borrow().last_log_index;
    assert!(last_log >= Some(3), "{last_log:?}");

    c.kill(1).await;
    c.restart(1).await;
    // The log is back at once; the state once the entries are re-applied.
    let after = c.group(1).metrics().borrow().last_log_index;
    assert!(after >= last_log, "log after restart: {after:?}, before: {last_log:?}");
    c.leader().await;
    c.converge(&map(&[("a", 6), ("b", 1)])).await;
    assert_eq!(c.write(incr("a")).await, 7);
    assert_eq!(c.state(1), map(&[("a", 7), ("b", 1)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_and_redirect() {
    let c = Cluster::start(3, fast_opts()).await;
    let leader = c.leader().await;
    let mut leader_changes = c.group(leader).leader_changes();
    eventually("the leader's own leader watch", DEADLINE, || {
        *leader_changes.borrow_and_update() == Some(leader)
    })
    .await;
    for i in 0..10 {
        c.write(incr("n")).await;
        c.write(set(&format!("k{i}"), i)).await;
    }
    let mut want = map(&[("n", 10)]);
    want.extend((0..10).map(|i| (format!("k{i}"), i)));
    c.converge(&want).await;

    let follower = *c.nodes.keys().find(|id| **id != leader).unwrap();
    let leader_addr = c.addrs[&leader].clone();
    match c.group(follower).write(incr("n")).await {
        Err(WriteError::NotLeader { leader: Some((id, addr)) }) => {
            assert_eq!((id, addr), (leader, leader_addr.clone()));
        }
        other => panic!("write on a follower: {other:?}"),
    }
    assert!(
        matches!(c.group(follower).barrier().await, Err(WriteError::NotLeader { leader: Some((l, _)) }) if l == leader)
    );
    c.group(leader).barrier().await.unwrap();
    assert_eq!(c.group(follower).leader(), Some((leader, leader_addr)));
    assert_eq!(*c.group(follower).leader_changes().borrow(), Some(leader));
    assert_eq!(c.state(leader)["n"], 10, "the refused write was not applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_and_old_leader_catches_up() {
    let mut c = Cluster::start(3, fast_opts()).await;
    let old = c.leader().await;
    for _ in 0..5 {
        c.write(incr("x")).await;
    }
    c.converge(&map(&[("x", 5)])).await;

    c.kill(old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    for _ in 0..5 {
        c.write(incr("x")).await;
    }
    c.write(set("y", 1)).await;
    c.converge(&map(&[("x", 10), ("y", 1)])).await;

    c.restart(old).await;
    c.converge(&map(&[("x", 10), ("y", 1)])).await;
    let leader = c.leader().await;
    assert_eq!(c.group(old).leader().map(|l| l.0), Some(leader));
    c.write(incr("x")).await;
    c.converge(&map(&[("x", 11), ("y", 1)])).await;
}

fn snapshot_opts() -> RaftOptions {
    RaftOptions { snapshot_every: 10, ..fast_opts() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_survive_restart() {
    let mut c = Cluster::start(1, snapshot_opts()).await;
    c.leader().await;
    for i in 0..50 {
        c.write(if i % 2 == 0 { incr("s") } else { set(&format!("k{}", i % 7), i) }).await;
    }
    let want = c.state(1);
    assert_eq!(want["s"], 25);
    let metrics = c.group(1).metrics();
    eventually("a snapshot and a purge", DEADLINE, || {
        let m = metrics.borrow();
        m.snapshot.is_some_and(|s| s.index >= 40) && m.purged.is_some_and(|p| p.index >= 20)
    })
    .await;
    c.kill(1).await;

    // On disk: the entries the snapshot covers are gone from the log, the snapshot is there.
    let dir = c.dir(1);
    assert!(dir.join(tern_meta::raft::SNAPSHOT_FILE).exists());
    {
        let mut log = LogStore::<Kv>::open(&dir).unwrap();
        let st = log.get_log_state().await.unwrap();
        let purged = st.last_purged_log_id.unwrap().index;
        assert!(purged >= 20, "purged up to {purged}");
        let entries = log.try_get_log_entries(0..).await.unwrap();
        assert!(entries.first().is_some_and(|e| e.log_id.index == purged + 1), "first entry after {purged}");
        assert!(entries.len() < 40, "{} entries left", entries.len());
    }

    c.restart(1).await;
    c.leader().await;
    c.converge(&want).await;
    assert_eq!(c.write(incr("s")).await, 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_member_catches_up_from_a_snapshot() {
    let mut c = Cluster::start(3, snapshot_opts()).await;
    let leader = c.leader().await;
    let lagging = *c.nodes.keys().find(|id| **id != leader).unwrap();
    c.write(incr("z")).await;
    c.converge(&map(&[("z", 1)])).await;
    c.kill(lagging).await;
    for _ in 0..49 {
        c.write(incr("z")).await;
    }
    let leader = c.leader().await;
    let metrics = c.group(leader).metrics();
    eventually("the leader to purge past the lagging member", DEADLINE, || {
        metrics.borrow().purged.is_some_and(|p| p.index >= 20)
    })
    .await;
    c.restart(lagging).await;
    c.converge(&map(&[("z", 50)])).await;
    let m = c.group(lagging).metrics();
    assert!(m.borrow().snapshot.is_some(), "the lagging member got a snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_rejects_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let members = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
    let err = RaftGroup::start(2, members.clone(), tmp.path(), Kv::default(), RaftOptions::default()).await;
    assert!(matches!(err, Err(tern_core::Error::InvalidArgument(_))));
    let bad = RaftOptions { election_timeout_ms: (100, 50), ..RaftOptions::default() };
    let err = RaftGroup::start(1, members, tmp.path(), Kv::default(), bad).await;
    assert!(matches!(err, Err(tern_core::Error::InvalidArgument(_))));
}

// ---------------------------------------------------------------------------------------------
// The log store on its own.

fn entry(term: u64, index: u64, cmd: Cmd) -> Entry<Kv> {
    Entry::<Kv> {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(cmd),
    }
}

async fn indexes(log: &mut LogStore<Kv>) -> Vec<u64> {
    log.try_get_log_entries(0..).await.unwrap().iter().map(|e| e.log_id.index).collect()
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(LOG_FILE)).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_last_record_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut sizes = vec![];
    {
        let mut log = LogStore::<Kv>::open(dir).unwrap();
        for i in 1..=5 {
            log.blocking_append([entry(1, i, set("k", i))]).await.unwrap();
            sizes.push(log_len(dir));
        }
        log.save_vote(&openraft::Vote::new(1, 1)).await.unwrap();
    }
    // A crash in the middle of appending entry 5: its last bytes never reached the disk.
    let f = std::fs::OpenOptions::new().write(true).open(dir.join(LOG_FILE)).unwrap();
    f.set_len(sizes[4] - 3).unwrap();
    drop(f);
    {
        let mut log = LogStore::<Kv>::open(dir).unwrap();
        assert_eq!(indexes(&mut log).await, vec![1, 2, 3, 4]);
        assert_eq!(log.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(4));
        assert_eq!(log.read_vote().await.unwrap(), Some(openraft::Vote::new(1, 1)));
        assert_eq!(log_len(dir), sizes[3], "the torn bytes are gone from the file");
        // Appending goes on after the cut.
        log.blocking_append([entry(2, 5, incr("k"))]).await.unwrap();
    }
    // Zeros after the last record (a crash after the file grew, before the data landed).
    let mut bytes = std::fs::read(dir.join(LOG_FILE)).unwrap();
    bytes.extend_from_slice(&[0; 64]);
    std::fs::write(dir.join(LOG_FILE), &bytes).unwrap();
    {
        let mut log = LogStore::<Kv>::open(dir).unwrap();
        let entries = log.try_get_log_entries(0..).await.unwrap();
        assert_eq!(entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert_eq!(entries[4].log_id.leader_id.term, 2);
    }
    // Damage before the last record is corruption, not a torn append.
    let mut bytes = std::fs::read(dir.join(LOG_FILE)).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(dir.join(LOG_FILE), &bytes).unwrap();
    let err = LogStore::<Kv>::open(dir).unwrap_err();
    assert!(err.is_fatal(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_and_purge_are_durable_and_compact_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let full;
    {
        let mut log = LogStore::<Kv>::open(dir).unwrap();
        log.blocking_append((1..=100).map(|i| entry(1, i, set("k", i)))).await.unwrap();
        log.truncate(LogId::new(CommittedLeaderId::new(1, 1), 91)).await.unwrap();
        log.blocking_append((91..=95).map(|i| entry(2, i, incr("k")))).await.unwrap();
        full = log_len(dir);
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), 80)).await.unwrap();
        log.save_committed(Some(LogId::new(CommittedLeaderId::new(2, 1), 93))).await.unwrap();
    }
    assert!(log_len(dir) < full / 2, "compacted: {} bytes, was {full}", log_len(dir));
    let mut log = LogStore::<Kv>::open(dir).unwrap();
    assert_eq!(indexes(&mut log).await, (81..=95).collect::<Vec<_>>());
    let st = log.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(80));
    assert_eq!(st.last_log_id.map(|l| (l.leader_id.term, l.index)), Some((2, 95)));
    assert_eq!(log.read_committed().await.unwrap().map(|l| l.index), Some(93));
    // Purging everything keeps the last purged id as the last log id.
    log.purge(LogId::new(CommittedLeaderId::new(2, 1), 95)).await.unwrap();
    drop(log);
    let mut log = LogStore::<Kv>::open(dir).unwrap();
    assert!(indexes(&mut log).await.is_empty());
    assert_eq!(log.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(95));
}

// ---------------------------------------------------------------------------------------------
// openraft's storage test suite.

struct Builder;

impl StoreBuilder<Types<Kv>, LogStore<Kv>, StateMachineStore<Kv>, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<Kv>, StateMachineStore<Kv>), StorageError<u64>> {
        let tmp = tempfile::tempdir().unwrap();
        let log = LogStore::open(tmp.path()).unwrap();
        let sm = StateMachineStore::open(tmp.path(), Kv::default()).unwrap();
        Ok((tmp, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
