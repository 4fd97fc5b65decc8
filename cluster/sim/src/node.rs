//! A simulated replica server: the runtime around `tern_replica::Replica`, as `tern-server` will
//! be, over in-memory stores and logs on its own simulated disk.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rand::Rng;
use tern_confman::NodeLease;
use tern_core::mutation::WriteOutcome;
use tern_core::{
    Ballot, Decree, Error, Gpid, ManualClock, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus,
};
use tern_replica::{Action, CheckpointRef, Event, ReadOp, Replica, ReplicaOptions, RequestId};
use tern_storage::log::contiguous_run;
use tern_storage::{ApplyEntry, MemDisk, MemMutationLog, MemPartitionStore, MutationLog, PartitionStore};

use crate::clock::NodeClock;
use crate::dup::NodeDup;
use crate::net::{Addr, Msg, RequestBody, ResponseBody};
use crate::observe::digest;
use crate::world_ctx::{Ctx, Ev};

pub const TICK_MS: u64 = 50;
pub const BEACON_MS: u64 = 500;
pub const FLUSH_MS: u64 = 2_000;

pub(crate) struct Hosted {
    pub(crate) sm: Replica,
    store: MemPartitionStore,
    pub(crate) log: MemMutationLog,
    /// Appended, not yet synced.
    unsynced: Vec<(Ballot, Decree)>,
    sync_scheduled: bool,
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
    opts: ReplicaOptions,
    /// Shippers and the receiving side (two-cluster runs).
    pub(crate) dup: Option<NodeDup>,
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
    ) -> SimNode {
        SimNode {
            id,
            idx,
            cluster,
            dup,
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
        }
    }

    pub(crate) fn addr(&self) -> Addr {
        Addr::Node(self.id)
    }

    fn meta(&self) -> Addr {
        Addr::Meta(self.cluster as u8)
    }

    pub(crate) fn now_ms(&self, ctx: &Ctx<'_>) -> u64 {
        let ms = self.clock.local_ms(ctx.now_us);
        self.store_clock.set_ms(ms);
        ms
    }

    pub fn replica(&self, g: Gpid) -> Option<&Replica> {
        self.replicas.get(&g).map(|h| &h.sm)
    }

    pub fn store(&self, g: Gpid) -> Option<&MemPartitionStore> {
        self.replicas.get(&g).map(|h| &h.store)
    }

    // ---- lifecycle ----

    pub fn crash(&mut self, ctx: &mut Ctx<'_>) {
        self.up = false;
        self.incarnation += 1;
        for (_, h) in std::mem::take(&mut self.replicas) {
            h.store.crash();
            drop(h.log); // unsynced records are lost
        }
        self.lease = NodeLease::default();
        self.requests.clear();
        self.missing.clear();
        if let Some(d) = &mut self.dup {
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
        let entries = log.read(applied.next(), usize::MAX).unwrap_or_default();
        let mut sm = Replica::new(g, self.id, self.opts.clone(), now);
        let mut out = Vec::new();
        sm.handle(
            tern_replica::Now::at(now),
            Event::Open {
                applied,
                applied_timetag: store.last_applied_timetag(),
                applied_ballot: store.last_applied_ballot(),
                log: entries,
            },
            &mut out,
        );
        self.replicas.insert(g, Hosted { sm, store, log, unsynced: vec![], sync_scheduled: false });
        self.missing.remove(&g);
        let _ = ctx;
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
            Msg::DupBatch { id, from_cluster, gpid, partition_count, puts } => {
                self.dup_on_batch(ctx, from, id, from_cluster, gpid, partition_count, puts)
            }
            Msg::DupAck { id, result } => self.dup_on_ack(ctx, id, result),
            Msg::DupLinks { partitions } => {
                if let Some(d) = &mut self.dup {
                    d.on_links(partitions);
                }
            }
            Msg::Configs { configs } => {
                if let Some(d) = &mut self.dup {
                    d.on_remote_configs(&configs);
                }
            }
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
        h.sync_scheduled = false;
        if fail {
            // The sync failed: what it was to make durable is gone, and the replica must stop.
            h.unsynced.clear();
            let (log, _) = MemMutationLog::open(&self.disk, log_path(g));
            h.log = log;
            ctx.trace(format!("{} {g} disk fault on log sync", self.id));
            let error = Error::io(format!("sync log of {g}"), "injected disk fault");
            self.feed(ctx, g, Event::AppendFailed { error });
            // A replica server fail-stops on a failed fsync (it cannot know what reached the
            // disk); it is restarted later and recovers from what is durable.
            return self.crash(ctx);
        }
        if let Err(e) = h.log.sync() {
            ctx.obs.violations.push(format!("{} {g}: log sync failed unexpectedly: {e}", self.id));
            return;
        }
        let entries = std::mem::take(&mut h.unsynced);
        if !entries.is_empty() {
            self.feed(ctx, g, Event::Appended { entries });
        }
    }

    pub fn on_store_flush(&mut self, ctx: &mut Ctx<'_>, incarnation: u64) {
        if !self.up || incarnation != self.incarnation {
            return;
        }
        for (g, h) in &mut self.replicas {
            let durable = match h.store.flush() {
                Ok(d) => d,
                Err(e) => {
                    ctx.obs.violations.push(format!("{} {g}: store flush failed: {e}", self.id));
                    continue;
                }
            };
            // The log is needed only above what the store holds durably, and duplication may
            // still need entries the store holds durably (as `tern-server` does).
            let floor = self.dup.as_ref().map_or(Decree(u64::MAX), |d| d.log_floor(*g));
            if let Err(e) = h.log.gc_below(durable.next().min(floor)) {
                ctx.obs.violations.push(format!("{} {g}: log gc failed: {e}", self.id));
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
        if let Some(h) = self.replicas.remove(&g) {
            let Hosted { sm, store, log, unsynced, sync_scheduled } = h;
            drop(store);
            self.disk.remove(&store_path(g));
            self.disk.import(&store_path(g), image);
            let store = MemPartitionStore::open(&self.disk, store_path(g), self.store_clock.clone());
            self.replicas.insert(g, Hosted { sm, store, log, unsynced, sync_scheduled });
        }
        if let (Some(h), Some((_, carried))) = (self.replicas.get_mut(&g), ctx.checkpoints.get(&id)) {
            crate::dup::keep_log(
                &mut h.log,
                carried.iter().filter(|e| e.decree <= decree).cloned().collect(),
            );
        }
        ctx.trace(format!("{} {g} installed checkpoint at d{decree}", self.id));
        self.feed(ctx, g, Event::CheckpointInstalled { decree, timetag });
    }

    /// Hands one event to a replica and carries out its actions.
    pub(crate) fn feed(&mut self, ctx: &mut Ctx<'_>, g: Gpid, event: Event) {
        let now = self.now_ms(ctx);
        let mut out = Vec::new();
        let Some(h) = self.replicas.get_mut(&g) else { return };
        let before = (h.sm.status(), h.sm.ballot());
        h.sm.handle(tern_replica::Now::at(now), event, &mut out);
        let after = (h.sm.status(), h.sm.ballot());
        if before != after {
            ctx.trace(format!(
                "{} {g} {} b{} -> {} b{}",
                self.id,
                before.0.name(),
                before.1,
                after.0.name(),
                after.1
            ));
        }
        for a in out {
            self.execute(ctx, g, a);
        }
    }

    fn respond(&mut self, ctx: &mut Ctx<'_>, req: RequestId, body: ResponseBody) {
        if self.dup_on_answer(ctx, req, &body) {
            return;
        }
        if let Some((to, id)) = self.requests.remove(&req) {
            ctx.send(self.addr(), to, Msg::Response { id, body });
        }
    }

    fn execute(&mut self, ctx: &mut Ctx<'_>, g: Gpid, action: Action) {
        let me = self.id;
        match action {
            Action::Append { entries } => {
                let Some(h) = self.replicas.get_mut(&g) else { return };
                if let Err(e) = h.log.append(&entries) {
                    ctx.obs.violations.push(format!("{me} {g}: log append failed: {e}"));
                    return;
                }
                h.unsynced.extend(entries.iter().map(|e| (e.ballot, e.decree)));
                if !h.sync_scheduled {
                    h.sync_scheduled = true;
                    let delay = ctx.rng.random_range(200..2_000);
                    ctx.after(delay, Ev::LogSync { node: self.idx, gpid: g, incarnation: self.incarnation });
                }
            }
            Action::ResetLog => {
                let Some(h) = self.replicas.get_mut(&g) else { return };
                if let Err(e) = h.store.flush() {
                    ctx.obs.violations.push(format!("{me} {g}: store flush before a log reset failed: {e}"));
                    return;
                }
                h.unsynced.clear();
                // With the log remedy, the committed entries the link still needs survive.
                let kept = self.dup.as_ref().filter(|d| d.keep_log).map_or_else(Vec::new, |d| {
                    let applied = h.store.last_applied_decree();
                    let all = h.log.read(d.log_floor(g).max(Decree(1)), usize::MAX).unwrap_or_default();
                    all.into_iter().filter(|e| e.decree <= applied).collect()
                });
                if let Err(e) = h.log.reset() {
                    ctx.obs.violations.push(format!("{me} {g}: log reset failed: {e}"));
                }
                crate::dup::keep_log(&mut h.log, kept);
            }
            Action::Apply { entries, replies } => {
                let Some(h) = self.replicas.get_mut(&g) else { return };
                let batch: Vec<ApplyEntry<'_>> = entries.iter().map(ApplyEntry::from).collect();
                let outcomes = match h.store.apply_batch(&batch) {
                    Ok(o) => o,
                    Err(e) => {
                        ctx.obs.violations.push(format!(
                            "{me} {g}: applying decrees {}..={} failed: {e}",
                            entries[0].decree,
                            entries[entries.len() - 1].decree
                        ));
                        return;
                    }
                };
                for e in &entries {
                    let d = digest(e);
                    match ctx.obs.applied.get(&(g, e.decree.0)) {
                        Some((first, who)) if *first != d => ctx.obs.violations.push(format!(
                            "committed prefixes disagree (PacificA §2.2 commit invariant): {me} applied decree {} of {g} as a different entry than {who} did",
                            e.decree
                        )),
                        Some(_) => {}
                        None => {
                            ctx.obs.applied.insert((g, e.decree.0), (d, me));
                            if let Some(dup) = &self.dup
                                && let Err(err) = ctx.obs.dup.record_origin(g, e, dup.cluster)
                            {
                                ctx.obs.violations.push(format!("{me} {g}: d{} cannot be shipped: {err}", e.decree));
                            }
                        }
                    }
                }
                for reply in replies {
                    let outcome = match reply.outcome(&entries, &outcomes) {
                        Ok(o) => o,
                        Err(e) => {
                            // Not answered: the client times out and records it as unknown.
                            ctx.obs.violations.push(format!("{me} {g}: {e}"));
                            continue;
                        }
                    };
                    if !matches!(outcome, WriteOutcome::Failed(_)) {
                        ctx.obs.acked.push((g, reply.decree));
                    }
                    self.respond(ctx, reply.req, ResponseBody::Written { outcome, decree: reply.decree });
                }
            }
            Action::Send { to, msg } => ctx.send(Addr::Node(me), Addr::Node(to), Msg::Peer { gpid: g, msg }),
            Action::SendLearnResponse { to, learner_applied, through, config, reign, committed } => {
                self.send_learn_response(ctx, g, to, learner_applied, through, config, reign, committed)
            }
            Action::InstallCheckpoint { from, checkpoint } => {
                // The transfer takes a while and fails if the source is unreachable at the start.
                let delay = ctx.rng.random_range(5_000..50_000);
                let ok = !ctx.faulty || ctx.rng.random_bool(0.9);
                let _ = from;
                ctx.after(
                    delay,
                    Ev::CheckpointFetched {
                        node: self.idx,
                        gpid: g,
                        incarnation: self.incarnation,
                        id: checkpoint.id,
                        ok,
                    },
                );
            }
            Action::Propose { gpid, ballot, change } => {
                ctx.send(Addr::Node(me), self.meta(), Msg::Propose { gpid, ballot, change })
            }
            Action::ServeRead { req, read, ballot } => {
                let Some(h) = self.replicas.get(&g) else { return };
                let value = match read {
                    ReadOp::Get { hash_key, sort_key } => h.store.get(&hash_key, &sort_key),
                    other => Err(Error::InvalidArgument(format!(
                        "the simulator only reads with get, not {other:?}"
                    ))),
                };
                match value {
                    Ok(value) => {
                        ctx.obs.served.push((g, ctx.now_us, me, ballot));
                        self.respond(ctx, req, ResponseBody::Read { value });
                    }
                    Err(e) => ctx.obs.violations.push(format!("{me} {g}: read failed: {e}")),
                }
            }
            Action::Refuse { req, error, not_applied } => {
                self.respond(ctx, req, ResponseBody::Refused { error, not_applied })
            }
            Action::Resolve { req, op, now_secs } => {
                let Some(h) = self.replicas.get(&g) else { return };
                let result = h.store.resolve(&op, now_secs);
                self.feed(ctx, g, Event::Resolved { req, result });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_learn_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        g: Gpid,
        to: NodeId,
        learner_applied: Decree,
        through: Decree,
        config: PartitionConfig,
        reign: tern_replica::Reign,
        committed: Decree,
    ) {
        let me = self.id;
        let Some(h) = self.replicas.get(&g) else { return };
        // From the log if it holds every decree needed, else a checkpoint plus the log after it.
        let run = |from: Decree| {
            let n = through.0.saturating_sub(from.0).saturating_add(1) as usize;
            contiguous_run(h.log.read(from, n).unwrap_or_default(), from, through)
        };
        let need = learner_applied.next();
        let (checkpoint, entries) = if let Some(entries) = run(need) {
            (None, Ok(entries))
        } else {
            let id = *ctx.next_checkpoint;
            *ctx.next_checkpoint += 1;
            let path = PathBuf::from(format!("/checkpoint/{id}"));
            let decree = match h.store.checkpoint(&path) {
                Ok(d) => d,
                Err(e) => {
                    ctx.obs.violations.push(format!("{me} {g}: checkpoint failed: {e}"));
                    return;
                }
            };
            if let Some(image) = self.disk.export(&path) {
                // With the log remedy, the checkpoint carries the log the link still needs.
                let carried = self.dup.as_ref().filter(|d| d.keep_log).map_or_else(Vec::new, |d| {
                    let all = h.log.read(d.log_floor(g).max(Decree(1)), usize::MAX).unwrap_or_default();
                    all.into_iter().filter(|e| e.decree <= decree).collect()
                });
                ctx.checkpoints.insert(id, (image, carried));
            }
            self.disk.remove(&path);
            let from = decree.next();
            (
                Some(CheckpointRef { id, decree, timetag: h.store.last_applied_timetag() }),
                run(from).ok_or(from),
            )
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(from) => {
                ctx.obs.violations.push(format!(
                    "{me} {g}: primary's log lacks decrees {from}..={through} for a learner (it holds {:?})",
                    h.log.decree_range()
                ));
                return;
            }
        };
        let msg = tern_replica::PeerMessage::LearnResponse {
            config,
            reign,
            committed,
            through,
            checkpoint,
            entries,
        };
        ctx.send(Addr::Node(me), Addr::Node(to), Msg::Peer { gpid: g, msg });
    }
}

fn parse_gpid(path: &std::path::Path) -> Option<Gpid> {
    let s = path.to_str()?.strip_prefix('/')?.strip_suffix("/store")?;
    let (t, p) = s.split_once('.')?;
    Some(Gpid::new(t.parse().ok()?, p.parse().ok()?))
}
