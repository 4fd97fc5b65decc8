//! The replicas this server hosts: how each one's task is reached, opening them (from disk or
//! new), what the meta server's configurations say about them (members missing here, replicas
//! left out of their partition and due for garbage collection), and what the beacon reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tern_core::{Ballot, Decree, Error, Gpid, PartitionConfig, ReplicaReport, ReplicaStatus, Result};
use tern_replica::Event;
use tokio::sync::mpsc;

use super::HostEnv;
use super::task::{self, Input};

/// Client requests and peer messages a replica's queue holds before it refuses more: a write
/// then gets `BUSY` (not applied), a peer message is dropped (the protocol resends it).
pub const QUEUE: usize = 8_192;

/// How a replica task is reached. Client requests and peer messages go through a bounded queue;
/// what the server itself must deliver (log completions, configurations, leases, checkpoints,
/// stop) through an unbounded one the task serves first, so that overload never loses them.
#[derive(Clone, Debug)]
pub struct ReplicaHandle {
    pub gpid: Gpid,
    requests: mpsc::Sender<Input>,
    control: mpsc::UnboundedSender<Input>,
    pub report: Arc<Mutex<ReplicaReport>>,
    /// The timetag of the newest entry its store applied (what duplication lag is measured
    /// from), updated by the task.
    pub applied_timetag: Arc<std::sync::atomic::AtomicU64>,
}

impl ReplicaHandle {
    pub(super) fn new(
        gpid: Gpid,
        requests: mpsc::Sender<Input>,
        control: mpsc::UnboundedSender<Input>,
        report: Arc<Mutex<ReplicaReport>>,
        applied_timetag: Arc<std::sync::atomic::AtomicU64>,
    ) -> ReplicaHandle {
        ReplicaHandle { gpid, requests, control, report, applied_timetag }
    }

    /// Queues a client request (or duplicated writes). A full queue refuses it with `BUSY`, a
    /// closing replica with `UNAVAILABLE`: the input's requests are answered with that error,
    /// which is also returned.
    pub fn submit(&self, input: Input) -> Result<()> {
        let (input, e) = match self.requests.try_send(input) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(i)) => {
                (i, Error::Busy(format!("partition {} has {QUEUE} requests queued", self.gpid)))
            }
            Err(mpsc::error::TrySendError::Closed(i)) => {
                (i, Error::Unavailable(format!("replica {} is closing", self.gpid)))
            }
        };
        input.refuse(e.clone());
        Err(e)
    }

    /// Queues a message from a peer replica; dropped when the queue is full.
    pub fn deliver_peer(&self, event: Event) -> bool {
        self.requests.try_send(Input::Event(Box::new(event))).is_ok()
    }

    /// Delivers what the server itself owes the replica (never dropped while it runs).
    pub fn control(&self, input: Input) -> bool {
        self.control.send(input).is_ok()
    }

    pub fn status(&self) -> ReplicaReport {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// See [`ReplicaHandle::applied_timetag`].
    pub fn applied_timetag(&self) -> tern_core::Timetag {
        tern_core::Timetag::from_u64(self.applied_timetag.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The ballot `left_out` records for a replica of a purged table (no configuration follows).
const PURGED: Ballot = Ballot(u64::MAX);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
pub struct Registry {
    env: Arc<HostEnv>,
    replicas: RwLock<BTreeMap<Gpid, ReplicaHandle>>,
    /// Partitions whose configuration lists this node without it holding a replica.
    missing: Mutex<BTreeMap<Gpid, Ballot>>,
    /// Replicas here that their partition's configuration leaves out, or whose table was
    /// purged: the newest such configuration's ballot (`PURGED` for a purged table), and since
    /// when (for `gc.rs`).
    left_out: Mutex<BTreeMap<Gpid, (Ballot, Instant)>>,
    /// Replicas being garbage-collected: not reopened until their directory has moved.
    collecting: Mutex<BTreeSet<Gpid>>,
}

impl Registry {
    pub fn new(env: Arc<HostEnv>) -> Registry {
        Registry {
            env,
            replicas: RwLock::new(BTreeMap::new()),
            missing: Mutex::new(BTreeMap::new()),
            left_out: Mutex::new(BTreeMap::new()),
            collecting: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn env(&self) -> &Arc<HostEnv> {
        &self.env
    }

    pub fn replica_dir(&self, g: Gpid) -> PathBuf {
        self.env.opts.data_dir.join("replicas").join(g.to_string())
    }

    pub fn get(&self, g: Gpid) -> Option<ReplicaHandle> {
        self.replicas.read().unwrap_or_else(|e| e.into_inner()).get(&g).cloned()
    }

    pub fn gpids(&self) -> Vec<Gpid> {
        self.replicas.read().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }

    /// Opens the replica of `g` from disk, creating an empty one if there is none, and starts its
    /// task. Returns the existing handle if it is already open.
    ///
    /// `first` is handed to the replica before anyone else can reach it: a peer message that
    /// waited for the registry while the store opened must not overtake the `Create` that
    /// made this server open the replica. If the replica is already open, `first` is delivered
    /// like any other event from the server.
    pub fn open(&self, g: Gpid, first: Option<Event>) -> Result<ReplicaHandle> {
        let mut map = self.replicas.write().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = map.get(&g) {
            if let Some(e) = first {
                h.control(Input::Event(Box::new(e)));
            }
            return Ok(h.clone());
        }
        if lock(&self.collecting).contains(&g) {
            return Err(Error::Unavailable(format!(
                "the old replica of {g} here is being garbage-collected"
            )));
        }
        let dir = self.replica_dir(g);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let store = tokio::task::block_in_place(|| self.env.backend.open(&dir.join("store")))?;
        let entries = tokio::task::block_in_place(|| {
            self.env.logs.open(g, dir.join("log"), tern_storage::PartitionStore::last_applied_decree(&store))
        })?;
        let handle = task::spawn(self.env.clone(), g, dir, store, entries);
        if let Some(e) = first {
            handle.control(Input::Event(Box::new(e)));
        }
        map.insert(g, handle.clone());
        lock(&self.missing).remove(&g);
        tracing::info!(gpid = %g, "replica opened");
        Ok(handle)
    }

    /// Opens every replica found in the data directory (at start).
    pub fn open_existing(&self) -> Result<usize> {
        let root = self.env.opts.data_dir.join("replicas");
        let Ok(entries) = std::fs::read_dir(&root) else { return Ok(0) };
        let mut n = 0;
        for e in entries {
            let e = e.map_err(|e| Error::io(format!("list {}", root.display()), e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((t, p)) = name.split_once('.') else { continue };
            let (Ok(t), Ok(p)) = (t.parse(), p.parse()) else { continue };
            self.open(Gpid::new(t, p), None)?;
            n += 1;
        }
        Ok(n)
    }

    /// Hands an event from the server (a configuration, a lease) to a replica, if hosted here.
    pub fn deliver(&self, g: Gpid, event: Event) -> bool {
        self.get(g).is_some_and(|h| h.control(Input::Event(Box::new(event))))
    }

    /// A configuration from the meta server (pushed or with a beacon answer).
    pub fn on_config(&self, config: PartitionConfig) {
        let g = config.gpid;
        if self.get(g).is_some() {
            self.track_membership(&config);
            self.deliver(g, Event::ConfigUpdate { config });
        } else if config.is_member(self.env.id) && config.ballot > Ballot(1) {
            // Listed as a member without the replica (its data is gone): say so, so the meta
            // server replaces this member.
            lock(&self.missing).insert(g, config.ballot);
        } else {
            lock(&self.missing).remove(&g);
        }
    }

    /// Notes whether the newest configuration of a replica here leaves this node out.
    fn track_membership(&self, config: &PartitionConfig) {
        let mut left_out = lock(&self.left_out);
        let newest = left_out.get(&config.gpid).is_none_or(|(b, _)| config.ballot >= *b);
        if !newest {
            return; // an older configuration than one already seen
        }
        if config.is_member(self.env.id) || config.primary.is_none() {
            left_out.remove(&config.gpid);
        } else {
            let since = left_out.get(&config.gpid).map_or_else(Instant::now, |(_, t)| *t);
            left_out.insert(config.gpid, (config.ballot, since));
        }
    }

    /// The meta server says these tables were dropped and purged (after their recall window):
    /// every replica of theirs here is left out for good, whatever its role.
    pub fn on_purged_tables(&self, tables: &[u32]) {
        if tables.is_empty() {
            return;
        }
        let gone: Vec<Gpid> = self.gpids().into_iter().filter(|g| tables.contains(&g.table.0)).collect();
        let mut left_out = lock(&self.left_out);
        for g in gone {
            if left_out.get(&g).is_none_or(|(b, _)| *b != PURGED) {
                tracing::info!(gpid = %g, "table purged by the meta server: the replica will be garbage-collected");
                left_out.insert(g, (PURGED, Instant::now()));
            }
        }
    }

    /// Replicas left out of their partition's configuration for at least `after`.
    pub fn left_out_for(&self, after: std::time::Duration) -> Vec<Gpid> {
        lock(&self.left_out).iter().filter(|(_, (_, t))| t.elapsed() >= after).map(|(g, _)| *g).collect()
    }

    /// Takes the replica of `g` out of service for garbage collection if it is still left out
    /// (for at least `after`) and inactive here (not primary, secondary or learning). Until
    /// [`Registry::collected`], `g` cannot be reopened.
    pub fn take_for_collection(&self, g: Gpid, after: std::time::Duration) -> Option<ReplicaHandle> {
        let mut map = self.replicas.write().unwrap_or_else(|e| e.into_inner());
        let Some(handle) = map.get(&g) else {
            lock(&self.left_out).remove(&g); // not open here (any more)
            return None;
        };
        let (still_out, purged) = match lock(&self.left_out).get(&g) {
            Some((b, t)) => (t.elapsed() >= after, *b == PURGED),
            None => (false, false),
        };
        // A replica of a live table only once inactive (not learning its way back in); one of
        // a purged table whatever it thinks it is: nothing routes to it any more.
        let inactive = handle.status().status == ReplicaStatus::Inactive;
        if !still_out || !(inactive || purged) {
            return None;
        }
        lock(&self.left_out).remove(&g);
        lock(&self.collecting).insert(g);
        map.remove(&g)
    }

    /// The collection of `g` is over (its directory moved, or the attempt given up).
    pub fn collected(&self, g: Gpid) {
        lock(&self.collecting).remove(&g);
    }

    /// What this server tells the meta server in a beacon.
    pub fn reports(&self) -> Vec<ReplicaReport> {
        let mut reports: Vec<ReplicaReport> = self
            .replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(ReplicaHandle::status)
            .collect();
        for (g, b) in lock(&self.missing).iter() {
            reports.push(ReplicaReport {
                gpid: *g,
                ballot: *b,
                status: ReplicaStatus::Error,
                committed: Decree::ZERO,
                last_prepared: Decree::ZERO,
            });
        }
        reports
    }

    /// A message from a peer replica (over a peer link), to its replica here. A primary's
    /// invitation to learn a partition this server does not hold yet opens it.
    pub fn on_peer_envelope(&self, env: tern_proto::pb::PeerEnvelope) {
        use tern_core::NodeId;
        use tern_replica::PeerMessage;
        let decoded =
            (tern_proto::convert::gpid_from_pb(env.gpid.as_ref()), tern_replica::codec::decode(&env.message));
        let (gpid, msg) = match decoded {
            (Ok(g), Ok(m)) => (g, m),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("dropping a malformed peer message from {}: {e}", NodeId(env.from));
                return;
            }
        };
        let invite = matches!(msg, PeerMessage::LearnInvite { .. });
        let event = Event::Peer { from: NodeId(env.from), msg };
        let Some(h) = self.get(gpid) else {
            if invite && let Err(e) = self.open(gpid, Some(event)) {
                tracing::error!(%gpid, "cannot create a replica to learn into: {e}");
            }
            return;
        };
        if !h.deliver_peer(event) {
            tracing::debug!(%gpid, "dropped a peer message: the replica's queue is full");
        }
    }
}

#[cfg(test)]
mod tests {
    use tern_core::mutation::WriteOutcome;
    use tern_core::{Ballot, ErrorCode};
    use tokio::sync::oneshot;

    use super::*;
    use crate::host::reply::ReplyTo;

    fn write() -> (Input, oneshot::Receiver<Result<WriteOutcome>>) {
        let (tx, rx) = oneshot::channel();
        let op = tern_core::WriteOp::Del { hash_key: b"h".to_vec(), sort_key: vec![] };
        (Input::Write { op, reply: ReplyTo::Once(tx) }, rx)
    }

    /// Overload refuses client requests (BUSY: certainly not applied) and drops peer messages,
    /// but never what the server owes the replica.
    #[test]
    fn a_full_queue_refuses_requests_and_drops_peer_messages_but_not_control() {
        let (requests, mut requests_rx) = mpsc::channel(2);
        let (control, mut control_rx) = mpsc::unbounded_channel();
        let report = Arc::new(Mutex::new(ReplicaReport {
            gpid: Gpid::new(1, 0),
            ballot: Ballot::ZERO,
            status: ReplicaStatus::Inactive,
            committed: Decree::ZERO,
            last_prepared: Decree::ZERO,
        }));
        let h = ReplicaHandle::new(Gpid::new(1, 0), requests, control, report, Arc::default());
        assert!(h.submit(write().0).is_ok());
        assert!(h.deliver_peer(Event::Tick));
        let (refused, mut answer) = write();
        let e = h.submit(refused).expect_err("the queue holds two");
        assert_eq!(e.code(), ErrorCode::Busy, "{e}");
        let answered = answer.try_recv().expect("the refused write is answered");
        assert_eq!(answered.expect_err("refused").code(), ErrorCode::Busy);
        assert!(!h.deliver_peer(Event::Tick), "a peer message is dropped");
        for _ in 0..10 {
            assert!(h.control(Input::Event(Box::new(Event::Lease { expires_at_ms: 1 }))));
        }
        assert_eq!((requests_rx.len(), control_rx.len()), (2, 10));
        requests_rx.close();
        control_rx.close();
    }
}
