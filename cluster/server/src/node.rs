//! The state a replica server shares between its tasks: identity, clocks, the replicas it hosts,
//! peer addresses, the lease, and its connections.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tern_client::{MetaClient, Pool};
use tern_confman::NodeLease;
use tern_core::Clock;
use tern_core::{Ballot, Decree, Error, Gpid, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus, Result};
use tern_replica::{Event, Now, ReplicaOptions};
use tern_rocks::RocksBackend;
use tern_storage::SystemClock;
use tokio::sync::{mpsc, watch};

use crate::log_writer::LogWriter;
use crate::options::ServerOptions;
use crate::peer::PeerNet;
use crate::replica_task::{self, Input};

/// How a replica task is reached.
#[derive(Clone, Debug)]
pub struct ReplicaHandle {
    pub tx: mpsc::UnboundedSender<Input>,
    pub report: Arc<Mutex<ReplicaReport>>,
}

pub struct Node {
    pub id: NodeId,
    pub opts: ServerOptions,
    pub backend: RocksBackend,
    pub logs: LogWriter,
    pub pool: Pool,
    pub meta: MetaClient,
    pub peers: PeerNet,
    /// Duplication links and this node's shippers.
    pub shipping: crate::shipping::Shipping,
    /// Tables that are DR standbys in this cluster (from beacons): table id → (name, epoch).
    standby: RwLock<HashMap<u32, (String, u64)>>,
    replicas: RwLock<HashMap<Gpid, ReplicaHandle>>,
    addresses: RwLock<HashMap<NodeId, String>>,
    /// Partitions whose configuration lists this node without it holding a replica.
    missing: Mutex<HashMap<Gpid, Ballot>>,
    /// Replicas here that their partition's configuration leaves out, or whose table was
    /// purged: the newest such configuration's ballot (`Ballot(u64::MAX)` for a purged table),
    /// and since when (for `gc.rs`).
    left_out: Mutex<HashMap<Gpid, (Ballot, Instant)>>,
    /// Replicas being garbage-collected: not reopened until their directory has moved.
    collecting: Mutex<HashSet<Gpid>>,
    lease: Mutex<NodeLease>,
    started: Instant,
    pub next_checkpoint: AtomicU64,
    /// Set once the server is asked to stop: long-lived incoming streams end on it, or the
    /// server's graceful shutdown would wait for them forever.
    stopping: watch::Sender<bool>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The ballot `left_out` records for a replica of a purged table (no configuration follows).
const PURGED: Ballot = Ballot(u64::MAX);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    pub fn new(id: NodeId, opts: ServerOptions, backend: RocksBackend, logs: LogWriter) -> Result<Node> {
        let mut meta = MetaClient::new(opts.meta.clone())?;
        meta.deadline = opts.beacon_interval.max(std::time::Duration::from_millis(500));
        Ok(Node {
            id,
            backend,
            logs,
            pool: Pool::new(),
            meta,
            peers: PeerNet::default(),
            shipping: crate::shipping::Shipping::default(),
            standby: RwLock::new(HashMap::new()),
            replicas: RwLock::new(HashMap::new()),
            addresses: RwLock::new(HashMap::new()),
            missing: Mutex::new(HashMap::new()),
            left_out: Mutex::new(HashMap::new()),
            collecting: Mutex::new(HashSet::new()),
            lease: Mutex::new(NodeLease::default()),
            started: Instant::now(),
            next_checkpoint: AtomicU64::new(1),
            stopping: watch::Sender::new(false),
            opts,
        })
    }

    /// The server is stopping: end incoming peer streams.
    pub fn stop_serving(&self) {
        self.stopping.send_replace(true);
    }

    /// Becomes `true` once the server is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// The monotonic clock (leases, timers) and the wall clock (timetags), in milliseconds.
    pub fn now(&self) -> Now {
        Now { mono_ms: self.started.elapsed().as_millis() as u64, wall_ms: SystemClock.now_ms() }
    }

    pub fn replica_dir(&self, g: Gpid) -> PathBuf {
        self.opts.data_dir.join("replicas").join(g.to_string())
    }

    pub fn replica(&self, g: Gpid) -> Option<ReplicaHandle> {
        self.replicas.read().unwrap_or_else(|e| e.into_inner()).get(&g).cloned()
    }

    pub fn replica_gpids(&self) -> Vec<Gpid> {
        self.replicas.read().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }

    pub fn address_of(&self, n: NodeId) -> Option<String> {
        self.addresses.read().unwrap_or_else(|e| e.into_inner()).get(&n).cloned()
    }

    /// The meta server's table roles (every table, from a beacon answer).
    /// A role that does not decode counts as standby: refusing client writes is the safe side.
    pub fn set_table_roles(&self, roles: &[tern_proto::pb::TableRole]) {
        use tern_proto::convert::PbEnum;
        let active = |r: &tern_proto::pb::TableRole| {
            tern_core::DrRole::from_pb(r.role, "table_roles.role") == Ok(tern_core::DrRole::Active)
        };
        let standby = roles.iter().filter(|r| !active(r)).map(|r| (r.table, (r.name.clone(), r.epoch)));
        *self.standby.write().unwrap_or_else(|e| e.into_inner()) = standby.collect();
    }

    /// `Some((name, epoch))` when `table` is a standby in this cluster: client writes are refused,
    /// reads may lag the active cluster.
    pub fn standby(&self, table: u32) -> Option<(String, u64)> {
        self.standby.read().unwrap_or_else(|e| e.into_inner()).get(&table).cloned()
    }

    pub fn learn_addresses(&self, addrs: impl IntoIterator<Item = (NodeId, String)>) {
        let mut map = self.addresses.write().unwrap_or_else(|e| e.into_inner());
        for (n, a) in addrs {
            map.insert(n, a);
        }
    }

    pub fn replica_options(&self) -> ReplicaOptions {
        let mut o = ReplicaOptions::new(self.opts.cluster_id);
        o.limits = self.opts.limits;
        o.lww_retention_ms = self.backend.config().lww_retention_secs.saturating_mul(1000);
        o
    }

    /// Opens the replica of `g` from disk, creating an empty one if there is none, and starts its
    /// task. Returns the existing handle if it is already open.
    ///
    /// `first` is handed to the replica before anyone else can reach it: a peer message that
    /// waited for the registry while the store opened must not overtake the `Create` that
    /// made this server open the replica. If the replica is already open, `first` is delivered
    /// like any other event.
    pub fn open_replica(self: &Arc<Self>, g: Gpid, first: Option<Event>) -> Result<ReplicaHandle> {
        let mut map = self.replicas.write().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = map.get(&g) {
            if let Some(e) = first {
                let _ = h.tx.send(Input::Event(Box::new(e)));
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
        let store = tokio::task::block_in_place(|| self.backend.open(&dir.join("store")))?;
        let entries = tokio::task::block_in_place(|| {
            self.logs.open(g, dir.join("log"), tern_storage::PartitionStore::last_applied_decree(&store))
        })?;
        let handle = replica_task::spawn(self.clone(), g, store, entries);
        if let Some(e) = first {
            let _ = handle.tx.send(Input::Event(Box::new(e)));
        }
        map.insert(g, handle.clone());
        lock(&self.missing).remove(&g);
        tracing::info!(gpid = %g, "replica opened");
        Ok(handle)
    }

    /// Opens every replica found in the data directory (at start).
    pub fn open_existing(self: &Arc<Self>) -> Result<usize> {
        let root = self.opts.data_dir.join("replicas");
        let Ok(entries) = std::fs::read_dir(&root) else { return Ok(0) };
        let mut n = 0;
        for e in entries {
            let e = e.map_err(|e| Error::io(format!("list {}", root.display()), e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((t, p)) = name.split_once('.') else { continue };
            let (Ok(t), Ok(p)) = (t.parse(), p.parse()) else { continue };
            self.open_replica(Gpid::new(t, p), None)?;
            n += 1;
        }
        Ok(n)
    }

    /// Hands an event to a replica, if this server hosts it.
    pub fn deliver(&self, g: Gpid, event: Event) -> bool {
        match self.replica(g) {
            Some(h) => h.tx.send(Input::Event(Box::new(event))).is_ok(),
            None => false,
        }
    }

    /// A configuration from the meta server (pushed or with a beacon answer).
    pub fn on_config(&self, config: PartitionConfig) {
        let g = config.gpid;
        if self.replica(g).is_some() {
            self.track_membership(&config);
            self.deliver(g, Event::ConfigUpdate { config });
        } else if config.is_member(self.id) && config.ballot > Ballot(1) {
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
        if config.is_member(self.id) || config.primary.is_none() {
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
        let gone: Vec<Gpid> =
            self.replica_gpids().into_iter().filter(|g| tables.contains(&g.table.0)).collect();
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
    /// [`Node::collected`], `g` cannot be reopened.
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
        let inactive = lock(&handle.report).status == ReplicaStatus::Inactive;
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
            .map(|h| lock(&h.report).clone())
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

    /// The meta server acknowledged the beacon sent at monotonic time `sent_at_ms`.
    pub fn on_lease(&self, sent_at_ms: u64, lease_ms: u64) {
        let expires_at_ms = {
            let mut l = lock(&self.lease);
            l.on_ack(sent_at_ms, lease_ms);
            l.expires_at_ms()
        };
        for g in self.replica_gpids() {
            self.deliver(g, Event::Lease { expires_at_ms });
        }
    }
}
