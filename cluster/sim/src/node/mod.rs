//! A simulated replica server: what `tern-server`'s replica host does, over in-memory stores and
//! logs on its own simulated disk. The replicas' actions are carried out by the server's own
//! executor (`tern_host::drive`); `host.rs` says what its `ReplicaHost` means here.

mod host;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rand::Rng;
use tern_confman::NodeLease;
use tern_core::{
    Ballot, Decree, Error, Gpid, ManualClock, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus,
};
use tern_duplication::DupRules;
use tern_replica::{Event, Now, Replica, ReplicaOptions, RequestId};
use tern_storage::{MemDisk, MemMutationLog, MemPartitionStore, MutationLog, PartitionStore};

pub(crate) use self::host::ReplicaIo;
use self::host::SimHost;
use crate::clock::NodeClock;
use crate::dup::NodeDup;
use crate::net::{Addr, Msg, RequestBody, ResponseBody};
use crate::world_ctx::{Ctx, Ev};

pub const TICK_MS: u64 = 50;
pub const BEACON_MS: u64 = 500;
pub const FLUSH_MS: u64 = 2_000;

pub(crate) struct Hosted {
    pub(crate) sm: Replica,
    pub(crate) io: ReplicaIo,
}

#[allow(missing_debug_implementations)]
pub struct SimNode {
    pub id: NodeId,
    pub idx: usize,
    /// The cluster's number in the run (0 for the first).
    pub cluster: usize,
    pub up: bool,
    pub incarnation: u64,
    pub clock: NodeClock,
    disk: MemDisk,
    /// The store clock (reads' "now"), set to the node's clock before every event.
    store_clock: Arc<ManualClock>,
    lease: NodeLease,
    pub(crate) replicas: BTreeMap<Gpid, Hosted>,
    /// Partitions this node is a member of without holding a replica (reported as failed).
    missing: BTreeMap<Gpid, Ballot>,
    requests: BTreeMap<RequestId, (Addr, u64)>,
    pub(crate) next_request: RequestId,
    next_beacon_ms: u64,
    pub(crate) opts: ReplicaOptions,
    /// Shippers and the receiving side (two-cluster runs).
    pub(crate) dup: Option<NodeDup>,
    /// The duplication decisions (the server's own, with the run's planted bugs, if any).
    pub(crate) rules: DupRules,
    /// The DR write gate (runs with `SimConfig::dr`, see `dr/`).
    pub(crate) dr: Option<crate::dr::NodeDr>,
}

fn store_path(g: Gpid) -> PathBuf {
    PathBuf::from(format!("/{g}/store"))
}

fn log_path(g: Gpid) -> PathBuf {
    PathBuf::from(format!("/{g}/log"))
}

impl SimNode {
    /// Node `idx` of the run (its index in the world's list), of cluster `cluster`.
    pub fn new(
        idx: usize,
        cluster: usize,
        id: NodeId,
        clock: NodeClock,
        opts: ReplicaOptions,
        dup: Option<NodeDup>,
        rules: DupRules,
    ) -> SimNode {
        SimNode {
            id,
            idx,
            cluster,
            dup,
            rules,
            up: true,
            incarnation: 0,
            clock,
            disk: MemDisk::new(),
            store_clock: Arc::new(ManualClock::new(0)),
            lease: NodeLease::default(),
            replicas: BTreeMap::new(),
            missing: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_request: 1,
            next_beacon_ms: 0,
            opts,
            dr: None,
        }
    }

    pub(crate) fn addr(&self) -> Addr {
        Addr::Node(self.id)
    }

    fn meta(&self) -> Addr {
        Addr::Meta(self.cluster as u8)
    }

    /// The replica of `g` and its host, for the shared executor.
    fn host<'a, 'c>(
        &'a mut self,
        g: Gpid,
        ctx: &'a mut Ctx<'c>,
    ) -> Option<(&'a mut Replica, SimHost<'a, 'c>)> {
        let h = self.replicas.get_mut(&g)?;
        let host = SimHost {
            gpid: g,
            me: self.id,
            idx: self.idx,
            incarnation: self.incarnation,
            meta: Addr::Meta(self.cluster as u8),
            cluster: self.cluster,
            io: &mut h.io,
            disk: &self.disk,
            requests: &mut self.requests,
            dup: &mut self.dup,
            rules: &self.rules,
            ctx,
        };
        Some((&mut h.sm, host))
    }

    /// The node's monotonic clock (leases, timers); also sets the store clock (reads' "now")
    /// to its wall clock.
    pub(crate) fn now_ms(&self, ctx: &Ctx<'_>) -> u64 {
        self.store_clock.set_ms(self.wall_ms(ctx));
        self.clock.local_ms(ctx.now_us)
    }

    /// The node's wall clock (timetags, TTLs, admission of duplicated writes).
    pub(crate) fn wall_ms(&self, ctx: &Ctx<'_>) -> u64 {
        self.clock.wall_ms(ctx.now_us)
    }

    pub fn replica(&self, g: Gpid) -> Option<&Replica> {
        self.replicas.get(&g).map(|h| &h.sm)
    }

    pub fn store(&self, g: Gpid) -> Option<&MemPartitionStore> {
        self.replicas.get(&g).map(|h| &h.io.store)
    }

    // ---- lifecycle ----

    pub fn crash(&mut self, ctx: &mut Ctx<'_>) {
        self.up = false;
        self.incarnation += 1;
        for (_, h) in std::mem::take(&mut self.replicas) {
            h.io.store.crash();
            drop(h.io.log); // unsynced records are lost
        }
        self.lease = NodeLease::default();
        self.requests.clear();
        self.missing.clear();
        if let Some(d) = &mut self.dup {
            d.reset();
        }
        if let Some(d) = &mut self.dr {
            d.reset();
        }
        ctx.trace(format!("{} crashed", self.id));
    }

    pub fn restart(&mut self, ctx: &mut Ctx<'_>) {
        self.up = true;
        self.incarnation += 1;
        let now = self.now_ms(ctx);
        for path in self.disk.store_paths() {
            let Some(g) = parse_gpid(&path) else { continue };
            self.open_replica(ctx, g, now);
        }
        self.next_beacon_ms = now;
        ctx.trace(format!("{} restarted with {} replicas", self.id, self.replicas.len()));
        ctx.after(0, Ev::NodeTick(self.idx));
        ctx.after(
            self.clock.global_us_for(FLUSH_MS),
            Ev::StoreFlush { node: self.idx, incarnation: self.incarnation },
        );
    }

    /// Opens (or creates, empty) the replica of `g` from disk and tells it what it holds.
    fn open_replica(&mut self, ctx: &mut Ctx<'_>, g: Gpid, now: u64) {
        let store = MemPartitionStore::open(&self.disk, store_path(g), self.store_clock.clone());
        store.flush().ok(); // make its existence durable
        let (log, _) = MemMutationLog::open(&self.disk, log_path(g));
        let applied = store.last_applied_decree();
        let open = Event::Open {
            applied,
            applied_timetag: store.last_applied_timetag(),
            applied_ballot: store.last_applied_ballot(),
            purge_below: store.purge_horizon(),
            log: log.read(applied.next(), usize::MAX).unwrap_or_default(),
        };
        let sm = Replica::new(g, self.id, self.opts.clone(), now);
        let io = ReplicaIo { store, log, unsynced: vec![], sync_scheduled: false };
        self.replicas.insert(g, Hosted { sm, io });
        self.missing.remove(&g);
        self.feed(ctx, g, open);
    }

    // ---- events ----

    pub fn on_tick(&mut self, ctx: &mut Ctx<'_>) {
        if !self.up {
            return;
        }
        let now = self.now_ms(ctx);
        let gpids: Vec<Gpid> = self.replicas.keys().copied().collect();
        for g in gpids {
            self.feed(ctx, g, Event::Tick);
        }
        if now >= self.next_beacon_ms {
            self.next_beacon_ms = now + BEACON_MS;
            let mut reports: Vec<ReplicaReport> = self.replicas.values().map(|h| h.sm.report()).collect();
            for (g, b) in &self.missing {
                reports.push(ReplicaReport {
                    gpid: *g,
                    ballot: *b,
                    status: ReplicaStatus::Error,
                    committed: Decree(0),
                    last_prepared: Decree(0),
                });
            }
            ctx.send(self.addr(), self.meta(), Msg::Beacon { sent_at_ms: now, reports });
        }
        self.dup_tick(ctx);
        ctx.after(self.clock.global_us_for(TICK_MS), Ev::NodeTick(self.idx));
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_>, from: Addr, msg: Msg) {
        if !self.up {
            return;
        }
        let now = self.now_ms(ctx);
        match msg {
            Msg::Peer { gpid, msg } => {
                let Addr::Node(from) = from else { return };
                if !self.replicas.contains_key(&gpid) {
                    if !matches!(msg, tern_replica::PeerMessage::LearnInvite { .. }) {
                        return;
                    }
                    self.open_replica(ctx, gpid, now);
                }
                self.feed(ctx, gpid, Event::Peer { from, msg });
            }
            Msg::BeaconAck { sent_at_ms, lease_ms, configs } => {
                // Configurations first, then the lease: a demoted primary must step down before
                // it could serve on a fresh lease.
                for c in configs {
                    self.deliver_config(ctx, c);
                }
                self.lease.on_ack(sent_at_ms, lease_ms);
                let expires_at_ms = self.lease.expires_at_ms();
                let gpids: Vec<Gpid> = self.replicas.keys().copied().collect();
                for g in gpids {
                    self.feed(ctx, g, Event::Lease { expires_at_ms });
                }
            }
            Msg::ConfigUpdate { config } => self.deliver_config(ctx, config),
            Msg::CreateReplica { config } => {
                let g = config.gpid;
                if !self.replicas.contains_key(&g) && !self.disk.exists(&store_path(g)) {
                    self.open_replica(ctx, g, now);
                }
                if self.replicas.contains_key(&g) {
                    self.feed(ctx, g, Event::Create { config });
                }
            }
            Msg::AddLearner { config, learner } => {
                let g = config.gpid;
                if self.replicas.contains_key(&g) {
                    self.feed(ctx, g, Event::AddLearner { config, learner });
                }
            }
            Msg::Request { id, gpid, body } => {
                if !self.replicas.contains_key(&gpid) {
                    let error = Error::NotPrimary { gpid };
                    ctx.send(
                        self.addr(),
                        from,
                        Msg::Response { id, body: ResponseBody::Refused { error, not_applied: true } },
                    );
                    return;
                }
                let req = self.next_request;
                // A client write passes the DR gate (role and lease) before it is logged.
                if matches!(body, RequestBody::Write(_))
                    && let Some(error) = crate::dr::gate_client_write(self, ctx, gpid, req)
                {
                    let body = ResponseBody::Refused { error, not_applied: true };
                    return ctx.send(self.addr(), from, Msg::Response { id, body });
                }
                self.next_request += 1;
                self.requests.insert(req, (from, id));
                let ev = match body {
                    // Every third write arrives the way a pipeline frame delivers writes.
                    RequestBody::Write(op) if req.is_multiple_of(3) => {
                        Event::ClientWrites { writes: vec![(req, op)] }
                    }
                    RequestBody::Write(op) => Event::ClientWrite { req, op },
                    RequestBody::Read(read) => Event::ClientRead { req, read },
                };
                self.feed(ctx, gpid, ev);
            }
            Msg::DupBatch { id, from_cluster, gpid, partition_count, header, puts } => {
                self.dup_on_batch(ctx, from, id, from_cluster, gpid, partition_count, header, puts)
            }
            Msg::DupAck { id, result } => self.dup_on_ack(ctx, id, result),
            Msg::DupLinks { link, purge_below } => {
                if let Some(d) = &mut self.dup {
                    d.on_links(link, purge_below);
                }
                // The table's purge horizon goes to its replicas: a primary logs a newer one.
                let table = tern_core::TableId(self.cluster as u32 + 1);
                if purge_below > tern_core::Timetag::ZERO {
                    let gpids: Vec<Gpid> =
                        self.replicas.keys().filter(|g| g.table == table).copied().collect();
                    for g in gpids {
                        self.feed(ctx, g, Event::PurgeHorizon { below: purge_below });
                    }
                }
            }
            Msg::Configs { configs } => {
                if let Some(d) = &mut self.dup {
                    d.on_remote_configs(&configs);
                }
            }
            Msg::Dr(m) => crate::dr::on_node_message(self, m),
            _ => {}
        }
    }

    fn deliver_config(&mut self, ctx: &mut Ctx<'_>, config: PartitionConfig) {
        let g = config.gpid;
        if self.replicas.contains_key(&g) {
            self.feed(ctx, g, Event::ConfigUpdate { config });
        } else if config.is_member(self.id) && config.ballot > Ballot(1) {
            self.missing.insert(g, config.ballot);
        } else {
            self.missing.remove(&g);
        }
    }

    pub fn on_log_sync(&mut self, ctx: &mut Ctx<'_>, g: Gpid, incarnation: u64) {
        if !self.up || incarnation != self.incarnation {
            return;
        }
        let fail = ctx.faulty && ctx.rng.random_bool(ctx.cfg.faults.disk_fault);
        let Some(h) = self.replicas.get_mut(&g) else { return };
        let io = &mut h.io;
        io.sync_scheduled = false;
        if fail {
            // The sync failed: what it was to make durable is gone, and the replica must stop.
            io.unsynced.clear();
            let (log, _) = MemMutationLog::open(&self.disk, log_path(g));
            io.log = log;
            ctx.trace(format!("{} {g} disk fault on log sync", self.id));
            let error = Error::io(format!("sync log of {g}"), "injected disk fault");
            self.feed(ctx, g, Event::AppendFailed { error });
            // A replica server fail-stops on a failed fsync (it cannot know what reached the
            // disk); it is restarted later and recovers from what is durable.
            return self.crash(ctx);
        }
        if let Err(e) = io.log.sync() {
            ctx.obs.violations.push(format!("{} {g}: log sync failed unexpectedly: {e}", self.id));
            return;
        }
        let entries = std::mem::take(&mut io.unsynced);
        if !entries.is_empty() {
            self.feed(ctx, g, Event::Appended { entries });
        }
    }

    pub fn on_store_flush(&mut self, ctx: &mut Ctx<'_>, incarnation: u64) {
        if !self.up || incarnation != self.incarnation {
            return;
        }
        let gpids: Vec<Gpid> = self.replicas.keys().copied().collect();
        for g in gpids {
            if let Some((_, mut host)) = self.host(g, ctx) {
                tern_host::flush(&mut host);
            }
            // Compaction drops the dead records below the purge horizon, as RocksDB's
            // compaction filter does, each replica in its own time.
            if let Some(h) = self.replicas.get_mut(&g) {
                ctx.obs.purged += h.io.store.compact() as u64;
            }
        }
        ctx.after(self.clock.global_us_for(FLUSH_MS), Ev::StoreFlush { node: self.idx, incarnation });
    }

    pub fn on_checkpoint_fetched(&mut self, ctx: &mut Ctx<'_>, g: Gpid, incarnation: u64, id: u64, ok: bool) {
        if !self.up || incarnation != self.incarnation || !self.replicas.contains_key(&g) {
            return;
        }
        let image = ctx.checkpoints.get(&id).map(|(image, _)| image.clone());
        let (Some(image), true) = (image, ok) else {
            let error = Error::Unavailable("checkpoint transfer failed".into());
            return self.feed(ctx, g, Event::CheckpointFailed { error });
        };
        let (decree, timetag) = image.applied();
        let carried = ctx.checkpoints.get(&id).map(|(_, carried)| carried.clone()).unwrap_or_default();
        if let Some(Hosted { sm, io }) = self.replicas.remove(&g) {
            let ReplicaIo { store, log, unsynced, sync_scheduled } = io;
            drop(store); // closed before its files are replaced
            self.disk.remove(&store_path(g));
            self.disk.import(&store_path(g), image);
            let store = MemPartitionStore::open(&self.disk, store_path(g), self.store_clock.clone());
            self.replicas.insert(g, Hosted { sm, io: ReplicaIo { store, log, unsynced, sync_scheduled } });
        }
        ctx.trace(format!("{} {g} installed checkpoint at d{decree}", self.id));
        let kept = self.host(g, ctx).map(|(_, mut host)| tern_host::keep_carried(&mut host, carried, decree));
        let event = match kept {
            Some(Err(error)) => Event::AppendFailed { error },
            _ => Event::CheckpointInstalled { decree, timetag },
        };
        self.feed(ctx, g, event);
    }

    /// Hands one event to a replica; the shared executor carries out its actions.
    pub(crate) fn feed(&mut self, ctx: &mut Ctx<'_>, g: Gpid, event: Event) {
        let now = Now { mono_ms: self.now_ms(ctx), wall_ms: self.wall_ms(ctx) };
        if let Some((sm, mut host)) = self.host(g, ctx) {
            tern_host::drive(&mut host, sm, now, event);
        }
    }
}

fn parse_gpid(path: &std::path::Path) -> Option<Gpid> {
    let s = path.to_str()?.strip_prefix('/')?.strip_suffix("/store")?;
    let (t, p) = s.split_once('.')?;
    Some(Gpid::new(t.parse().ok()?, p.parse().ok()?))
}
