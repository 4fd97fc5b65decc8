//! The world: one seeded event queue driving the meta server, replica servers, clients and the
//! network through a fault phase, a heal phase and final reads, then the checkers.
//! `world/scenarios.rs`: what two-cluster runs add (long link outages, links added with a full
//! sync, a cluster's clock far ahead, meta leader changes).

mod scenarios;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tern_confman::CmOptions;
use tern_core::{ClusterId, NodeId, ReplicaStatus};
use tern_replica::ReplicaOptions;
use tern_storage::MemImage;

use crate::checker;
use crate::client::{History, SimClient};
use crate::clock::NodeClock;
use crate::config::SimConfig;
use crate::dup::NodeDup;
use crate::keys::KeySpace;
use crate::meta::SimMeta;
use crate::net::{Addr, Fate, Network};
use crate::node::SimNode;
use crate::observe::Observations;
use crate::trace::Trace;
use crate::world_ctx::{Ctx, Ev};
use tern_duplication::DupRules;

/// The outcome of one run.
#[derive(Debug)]
pub struct RunResult {
    pub seed: u64,
    pub trace_hash: u64,
    pub violations: Vec<String>,
    /// The last lines of the trace, for a failure report.
    pub trace_tail: Vec<String>,
    /// Every line, when asked for.
    pub trace: Option<Vec<String>>,
    pub stats: Stats,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub messages: u64,
    pub ops: usize,
    pub completed_ops: usize,
    pub acked_writes: usize,
    pub crashes: u64,
    /// Configuration changes the balancer made (role switches, copies) and nodes decommissioned.
    pub balancer_changes: u64,
    pub decommissioned: u64,
    /// Decommissions undone (the node may be drained or still draining).
    pub recommissioned: u64,
    pub converged_at_ms: Option<u64>,
    pub end_ms: u64,
    /// Two-cluster runs: when clients started (every partition's link had started), cuts of
    /// the link between the clusters, and what shipping did.
    pub clients_started_ms: Option<u64>,
    pub link_cuts: u64,
    pub shippers_started: u64,
    pub batches_acked: u64,
    pub batches_failed: u64,
    pub puts_acked: u64,
    pub conflicts: u64,
    /// Runs with the DR lease: promotions, fencing, refusals, cuts (see `dr/`).
    pub dr: crate::dr::DrStats,
    /// Purge horizons: raises (both metas), dead records compaction dropped, the most a link
    /// held a horizon back behind the retention, and keys the resurrection check let pass as
    /// deleted before any link could protect them.
    pub horizon_raises: u64,
    pub purged_records: u64,
    pub max_horizon_held_ms: u64,
    pub unprotected_deletes: u64,
    /// The longest cut of the link between the clusters (ms).
    pub longest_link_cut_ms: u64,
    /// Meta leader changes, batches refused with `CLOCK_AHEAD`, records full syncs copied and
    /// partitions whose copy completed.
    pub meta_leader_changes: u64,
    pub clock_ahead_refusals: u64,
    pub full_sync_records: u64,
    pub full_syncs_done: u64,
    /// Primaries that found a hole in their log and copied their records instead.
    pub resyncs: u64,
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Faults,
    Heal,
    FinalReads,
    Done,
}

struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now_us: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    /// One per cluster.
    metas: Vec<SimMeta>,
    clients: Vec<SimClient>,
    keys: KeySpace,
    net: Network,
    trace: Trace,
    obs: Observations,
    history: History,
    /// Checkpoint images by id, with the log entries they carry (see `dup::keep_log`).
    checkpoints: BTreeMap<u64, (MemImage, Vec<tern_storage::LogEntry>)>,
    next_checkpoint: u64,
    phase: Phase,
    heal_deadline_us: u64,
    stats: Stats,
    /// DR voters and proxies (runs with `SimConfig::dr`).
    dr: Option<crate::dr::DrWorld>,
}

/// The CM and replica timings of simulated clusters.
pub fn cm_options() -> CmOptions {
    CmOptions {
        lease_ms: 3_000,
        grace_ms: 6_000,
        max_clock_drift_ppm: 5_000,
        learner_timeout_ms: 20_000,
        recovery_wait_ms: 3_000,
        balance_interval_ms: 2_000,
        max_moves: 1,
    }
}

/// The replica options of cluster `cluster` (0 for the first; its id is `cluster + 1`).
pub fn replica_options(cfg: &SimConfig, cluster: usize) -> ReplicaOptions {
    let mut o = ReplicaOptions::new(ClusterId::new(cluster as u8 + 1).expect("valid"));
    o.max_inflight = 64;
    o.resend_ms = 200;
    o.ack_timeout_ms = 2_000;
    o.learn_timeout_ms = 5_000;
    // Node clocks are up to `offset_ms` off either way (and drift): a peer cluster's timetags
    // may lead by twice that. Runs that test the bound itself set it lower.
    o.max_clock_offset_ms = max_clock_offset_ms(cfg);
    #[cfg(feature = "planted-bugs")]
    {
        o.bug_commit_on_majority = cfg.bugs.commit_on_majority;
        o.bug_read_without_lease = cfg.bugs.read_without_lease;
        o.bug_resolve_past_in_flight = cfg.bugs.resolve_past_in_flight;
        if cfg.dup.as_ref().is_some_and(|d| d.bugs.unbounded_clock_offset) {
            o.max_clock_offset_ms = 3_600_000;
        }
    }
    #[cfg(not(feature = "planted-bugs"))]
    let _ = cfg;
    o
}

/// The maximum clock offset the run's servers are configured with (`tern replica
/// --max-clock-offset`; what the clock-bound check holds them to).
pub fn max_clock_offset_ms(cfg: &SimConfig) -> u64 {
    2 * cfg.faults.offset_ms.unsigned_abs() + 2_000
}

/// The duplication rules of the run's nodes: the servers' own, with the planted bugs.
pub fn dup_rules(cfg: &SimConfig) -> DupRules {
    #[cfg(feature = "planted-bugs")]
    {
        let mut rules = DupRules::default();
        if let Some(d) = &cfg.dup {
            rules.bugs = tern_duplication::PlantedDupBugs {
                start_from_committed: d.bugs.start_from_committed,
                floor_past_confirmed: d.bugs.floor_past_confirmed,
                forget_log_when_learning: d.bugs.forget_log_when_learning,
                ignore_incoming_links: d.bugs.ignore_incoming_links,
                unheard_holds_nothing: d.bugs.unheard_holds_nothing,
                purge_past_unshipped: d.bugs.purge_past_unshipped,
            };
        }
        rules
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = cfg;
        DupRules::default()
    }
}

/// Runs one simulation. `full_trace` keeps every trace line in the result.
pub fn run(cfg: &SimConfig, full_trace: bool) -> RunResult {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let f = &cfg.faults;
    let clock = |rng: &mut ChaCha8Rng, c: usize| NodeClock {
        offset_ms: rng.random_range(-f.offset_ms..=f.offset_ms),
        drift_ppm: rng.random_range(-f.drift_ppm..=f.drift_ppm),
        wall_step: scenarios::wall_step(cfg, c),
    };
    let keys = KeySpace::new(cfg);
    let (mut nodes, mut metas, mut clients) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..cfg.clusters() {
        for i in 0..cfg.nodes {
            // Node ids 1.. in the first cluster, 101.. in the second.
            let id = NodeId((c * 100 + i) as u64 + 1);
            let dup = cfg.dup.as_ref().map(|d| {
                let resync = d.full_sync_at_ms.is_some();
                NodeDup::new(c, 1 - c, cfg.partitions_of(c), d.batch_max_puts, d.bugs.clone(), resync)
            });
            let node = SimNode::new(
                nodes.len(),
                c,
                id,
                clock(&mut rng, c),
                replica_options(cfg, c),
                dup,
                dup_rules(cfg),
            );
            nodes.push(node);
        }
        let meta = SimMeta::new(c as u8, cm_options(), clock(&mut rng, c));
        metas.push(match &cfg.dup {
            Some(d) => meta.with_horizon(dup_rules(cfg), d.retention_ms),
            None => meta,
        });
        for _ in 0..cfg.clients {
            clients.push(SimClient::new(clients.len(), c, &keys, cfg.partitions_of(c)));
        }
    }
    // Drawn after everything else, so runs without the DR lease draw what they always did.
    let dr = crate::dr::equip(cfg, &mut rng, &mut nodes, &mut metas);
    let mut w = World {
        cfg: cfg.clone(),
        rng,
        now_us: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        nodes,
        metas,
        clients,
        keys,
        net: Network::new(),
        trace: Trace::new(400, full_trace),
        obs: Observations::default(),
        history: History::new(),
        checkpoints: BTreeMap::new(),
        next_checkpoint: 1,
        phase: Phase::Faults,
        heal_deadline_us: (cfg.fault_phase_ms + cfg.heal_phase_ms) * 1_000,
        stats: Stats::default(),
        dr,
    };
    w.obs.clocks = scenarios::cluster_clocks(&w.cfg, &w.nodes, &w.metas);
    w.start();
    w.run_loop();
    w.finish()
}

impl World {
    fn push(&mut self, delay_us: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at: self.now_us + delay_us, seq: self.seq, ev }));
    }

    fn start(&mut self) {
        for i in 0..self.nodes.len() {
            self.push(i as u64 * 7, Ev::NodeTick(i));
            let d = self.nodes[i].clock.global_us_for(crate::node::FLUSH_MS);
            self.push(d, Ev::StoreFlush { node: i, incarnation: 0 });
        }
        for m in 0..self.metas.len() {
            self.push(0, Ev::MetaTick(m));
        }
        // Create the table once every node has beaconed, then start the clients.
        self.with_ctx(|w, ctx| {
            let _ = w;
            ctx.after(1_000_000, Ev::CheckConverged);
        });
        for c in 0..self.clients.len() {
            self.clients[c].active = true;
        }
        // With a link, clients start once it has started everywhere (see `check_progress`),
        // unless the link is added later.
        if self.cfg.dup.as_ref().is_none_or(|d| d.full_sync_at_ms.is_some()) {
            self.start_clients(2_000_000);
        }
        self.start_scenarios();
        let first = self.cfg.faults.step_ms * 1_000 * 2;
        self.push(first, Ev::FaultStep);
        for (delay, ev) in self.dr.as_ref().map(crate::dr::DrWorld::start).unwrap_or_default() {
            self.push(delay, Ev::Dr(ev));
        }
        self.push(self.cfg.fault_phase_ms * 1_000, Ev::EndFaults);
    }

    /// Runs `f` with a context over the world, then carries out what it sent and scheduled.
    fn with_ctx(&mut self, f: impl FnOnce(&mut Parts<'_>, &mut Ctx<'_>)) {
        let faulty = self.phase == Phase::Faults;
        let World {
            cfg,
            rng,
            now_us,
            nodes,
            metas,
            clients,
            trace,
            obs,
            history,
            checkpoints,
            next_checkpoint,
            dr,
            ..
        } = self;
        let mut ctx = Ctx {
            now_us: *now_us,
            rng,
            cfg,
            outbox: Vec::new(),
            schedule: Vec::new(),
            obs,
            trace,
            checkpoints,
            next_checkpoint,
            faulty,
        };
        let mut parts = Parts { nodes, metas, clients, history, dr };
        f(&mut parts, &mut ctx);
        let Ctx { outbox, schedule, .. } = ctx;
        for (delay, ev) in schedule {
            self.push(delay, ev);
        }
        for (from, to, msg) in outbox {
            self.stats.messages += 1;
            match self.net.fate(&mut self.rng, &self.cfg.faults, from, to) {
                Fate::Drop => {}
                Fate::Deliver(delays) => {
                    for d in delays {
                        self.push(d, Ev::Deliver { from, to, msg: msg.clone() });
                    }
                }
            }
        }
    }

    fn run_loop(&mut self) {
        let hard_stop = self.heal_deadline_us + 60_000_000;
        while let Some(Reverse(s)) = self.queue.pop() {
            if s.at > hard_stop || self.phase == Phase::Done {
                break;
            }
            self.now_us = s.at;
            self.stats.events += 1;
            self.dispatch(s.ev);
        }
        if self.phase != Phase::Done {
            self.obs.violations.push("the run ended before its final reads completed (liveness)".into());
        }
        self.stats.end_ms = self.now_us / 1_000;
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { from, to, msg } => {
                let line = format!("{from:?} -> {to:?}: {}", msg.kind());
                self.trace.line(self.now_us, line);
                self.with_ctx(|p, ctx| match to {
                    Addr::Node(n) => {
                        if let Some(node) = p.nodes.iter_mut().find(|x| x.id == n) {
                            node.on_message(ctx, from, msg);
                        }
                    }
                    Addr::Meta(m) => p.metas[m as usize].on_message(ctx, from, msg),
                    Addr::Client(c) => p.clients[c as usize].on_message(ctx, msg, p.history),
                    Addr::Dr(d) => {
                        if let Some(dr) = p.dr.as_mut() {
                            dr.on_message(ctx, d, from, msg);
                        }
                    }
                });
            }
            Ev::NodeTick(i) => self.with_ctx(|p, ctx| p.nodes[i].on_tick(ctx)),
            Ev::MetaTick(m) => self.with_ctx(|p, ctx| p.metas[m].on_tick(ctx)),
            Ev::ClientWake(c) => self.with_ctx(|p, ctx| p.clients[c].on_wake(ctx, p.history)),
            Ev::LogSync { node, gpid, incarnation } => {
                self.with_ctx(|p, ctx| p.nodes[node].on_log_sync(ctx, gpid, incarnation))
            }
            Ev::StoreFlush { node, incarnation } => {
                self.with_ctx(|p, ctx| p.nodes[node].on_store_flush(ctx, incarnation))
            }
            Ev::CheckpointFetched { node, gpid, incarnation, id, ok } => {
                self.with_ctx(|p, ctx| p.nodes[node].on_checkpoint_fetched(ctx, gpid, incarnation, id, ok))
            }
            Ev::FaultStep => self.fault_step(),
            Ev::HealPartition(id) => {
                self.net.heal(id);
                self.trace.line(self.now_us, format!("partition {id} healed"));
            }
            Ev::EndFaults => self.end_faults(),
            Ev::CheckConverged => self.check_progress(),
            Ev::Dr(crate::dr::DrEv::FaultStep) => self.dr_fault_step(),
            Ev::Dr(ev) => self.with_ctx(|p, ctx| {
                if let Some(dr) = p.dr.as_mut() {
                    dr.on_event(ctx, ev);
                }
            }),
            Ev::Scenario(s) => self.on_scenario(s),
        }
    }

    /// A fault of the DR lease's runs, drawn by `dr/faults.rs`: cut the processes it names apart.
    fn dr_fault_step(&mut self) {
        let Some(dr) = self.dr.as_mut() else { return };
        if self.phase != Phase::Faults {
            return;
        }
        let step = dr.fault_step(&mut self.rng, &self.nodes, &self.metas, &mut self.obs, self.now_us);
        if let Some(cut) = step.cut {
            let id = self.net.partition(cut.links);
            self.trace.line(self.now_us, format!("partition {id}: {}", cut.what));
            self.push(cut.lasts_us, Ev::HealPartition(id));
        }
        self.push(step.next_us, Ev::Dr(crate::dr::DrEv::FaultStep));
    }

    fn fault_step(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let down = self.nodes.iter().filter(|n| !n.up).count();
        let choice = self.rng.random_range(0..100);
        let n = self.nodes.len();
        // At most `max_down` servers down per cluster.
        let down_in = |c: usize| self.nodes.iter().filter(|x| x.cluster == c && !x.up).count();
        let crashable: Vec<usize> = (0..n)
            .filter(|i| self.nodes[*i].up && down_in(self.nodes[*i].cluster) < self.cfg.faults.max_down)
            .collect();
        let cut_link = self.cfg.dup.as_ref().map_or(0, |d| d.cut_link_percent);
        let leader_change = self.cfg.dup.as_ref().map_or(0, |d| d.leader_change_percent);
        match choice {
            0..20 if !crashable.is_empty() => {
                let i = crashable[self.rng.random_range(0..crashable.len())];
                self.stats.crashes += 1;
                self.with_ctx(|p, ctx| p.nodes[i].crash(ctx));
            }
            0..45 if down > 0 => {
                let downs: Vec<usize> = (0..n).filter(|i| !self.nodes[*i].up).collect();
                let i = downs[self.rng.random_range(0..downs.len())];
                self.with_ctx(|p, ctx| p.nodes[i].restart(ctx));
            }
            45..48 if self.stats.decommissioned == 0 && n > self.cfg.replicas + 1 => {
                // Drain one node for good: the balancer must move everything off it.
                let victim = &self.nodes[self.rng.random_range(0..n)];
                let (node, m) = (victim.id, victim.cluster);
                self.stats.decommissioned += 1;
                self.with_ctx(|p, ctx| p.metas[m].decommission(ctx, node));
            }
            45..48 if self.stats.decommissioned == 1 && self.stats.recommissioned == 0 => {
                // Change of mind: the decommissioned node serves again, drained or not.
                let found = self
                    .metas
                    .iter()
                    .enumerate()
                    .find_map(|(m, x)| x.decommissioned.first().map(|n| (m, *n)));
                if let Some((m, node)) = found {
                    self.stats.recommissioned += 1;
                    self.with_ctx(|p, ctx| p.metas[m].recommission(ctx, node));
                }
            }
            c if c >= 100 - cut_link => self.cut_link(),
            c if c >= 100 - cut_link - leader_change => self.meta_leader_change(),
            _ => {
                // Cut one process off from everyone (one way or both), or a replica server from
                // the meta server only (its clients still reach it: the lease rule's case), for
                // one to fifteen seconds.
                let target = self.rng.random_range(0..=n + self.metas.len() - 1);
                let (victim, own_meta) = if target >= n {
                    (Addr::Meta((target - n) as u8), None)
                } else {
                    let x = &self.nodes[target];
                    (Addr::Node(x.id), Some(Addr::Meta(x.cluster as u8)))
                };
                let mode = self.rng.random_range(0..5);
                let metas = (0..self.metas.len() as u8).map(Addr::Meta);
                let servers = || self.nodes.iter().map(|x| Addr::Node(x.id)).chain(metas.clone());
                let others: Vec<Addr> = if let (3, Some(own_meta)) = (mode, own_meta) {
                    vec![own_meta]
                } else if mode == 4 && own_meta.is_some() {
                    // The back-end network splits: no meta, no peers; clients still get through.
                    servers().filter(|a| *a != victim).collect()
                } else {
                    self.nodes
                        .iter()
                        .map(|x| Addr::Node(x.id))
                        .chain(metas.clone())
                        .chain((0..self.clients.len() as u32).map(Addr::Client))
                        .filter(|a| *a != victim)
                        .collect()
                };
                let mut links = std::collections::BTreeSet::new();
                for o in others {
                    if mode != 1 {
                        links.insert((victim, o));
                    }
                    if mode != 2 {
                        links.insert((o, victim));
                    }
                }
                let id = self.net.partition(links);
                let how =
                    ["both ways", "inbound", "outbound", "from the meta server", "from all servers"][mode];
                self.trace.line(self.now_us, format!("partition {id}: {victim:?} cut off ({how})"));
                let lasts = self.rng.random_range(1_000_000..15_000_000);
                self.push(lasts, Ev::HealPartition(id));
            }
        }
        let step = self.cfg.faults.step_ms * 1_000;
        let next = self.rng.random_range(step / 2..=step * 3 / 2);
        self.push(next, Ev::FaultStep);
    }

    /// Cuts the link between the two clusters (both ways, or one way) for 1 to 15 s: no
    /// message between a process of one and a process of the other.
    fn cut_link(&mut self) {
        let side = |c: usize| -> Vec<Addr> {
            let nodes = self.nodes.iter().filter(|x| x.cluster == c).map(|x| Addr::Node(x.id));
            nodes.chain([Addr::Meta(c as u8)]).collect()
        };
        let (a, b) = (side(0), side(1));
        let mode = self.rng.random_range(0..3);
        let mut links = std::collections::BTreeSet::new();
        for x in &a {
            for y in &b {
                if mode != 1 {
                    links.insert((*x, *y));
                }
                if mode != 2 {
                    links.insert((*y, *x));
                }
            }
        }
        let id = self.net.partition(links);
        self.stats.link_cuts += 1;
        let how = ["both ways", "cluster 2 to 1 only", "cluster 1 to 2 only"][mode];
        self.trace.line(self.now_us, format!("partition {id}: the clusters are cut apart ({how})"));
        let lasts = self.rng.random_range(1_000_000..15_000_000);
        self.push(lasts, Ev::HealPartition(id));
        if mode == 0 {
            self.stats.longest_link_cut_ms = self.stats.longest_link_cut_ms.max(lasts / 1_000);
        }
    }

    fn end_faults(&mut self) {
        self.phase = Phase::Heal;
        self.net.faulty = false;
        self.net.heal_all();
        self.trace.line(self.now_us, "faults end: heal phase".into());
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                self.with_ctx(|p, ctx| p.nodes[i].restart(ctx));
            }
        }
        for c in &mut self.clients {
            c.active = false;
        }
    }

    fn check_progress(&mut self) {
        // The tables are created at the first check (every node has beaconed by then).
        for m in 0..self.metas.len() {
            if self.metas[m].cm.configs().next().is_none() {
                let (parts, replicas) = (self.cfg.partitions_of(m), self.cfg.replicas);
                let linked = self.cfg.dup.as_ref().is_some_and(|d| d.full_sync_at_ms.is_none());
                self.with_ctx(|p, ctx| p.metas[m].create_table(ctx, parts, replicas, linked));
            }
        }
        if self.cfg.dup.is_some() && self.stats.clients_started_ms.is_none() {
            // A link ships what is written after it started: clients wait for every partition
            // (a link added later with a full sync copies what they wrote before).
            if self.metas.iter().all(|m| m.link.as_ref().is_some_and(|l| l.all_started())) {
                self.stats.clients_started_ms = Some(self.now_us / 1_000);
                self.trace.line(self.now_us, "the link started in every partition: clients start".into());
                if self.cfg.dup.as_ref().is_some_and(|d| d.full_sync_at_ms.is_none()) {
                    self.start_clients(0);
                }
            } else if self.phase != Phase::Faults
                && self.cfg.dup.as_ref().is_some_and(|d| d.full_sync_at_ms.is_none())
            {
                // (A link added later must start by the end of the heal phase: its partitions
                // must ship for the run to converge.)
                self.obs.violations.push(
                    "the link did not start in every partition during the fault phase (liveness)".into(),
                );
                self.phase = Phase::Done;
                return;
            }
        }
        match self.phase {
            Phase::Heal => {
                self.freeze_horizons_once_caught_up();
                if let Some(why_not) = self.not_converged() {
                    if self.now_us >= self.heal_deadline_us {
                        self.obs.violations.push(format!(
                            "the cluster did not converge after healing (liveness): {why_not}"
                        ));
                        self.phase = Phase::Done;
                        return;
                    }
                } else if !self.horizons_settled() {
                    // Checked again in a second.
                } else {
                    self.stats.converged_at_ms = Some(self.now_us / 1_000);
                    self.trace.line(self.now_us, "converged: final reads".into());
                    self.phase = Phase::FinalReads;
                    // Each key that the linearizability checker judges is read by a client of
                    // the cluster that uses it.
                    for k in 0..self.keys.keys.len() {
                        let Some(owner) = self.keys.keys[k].owner else { continue };
                        let of_owner: Vec<usize> =
                            (0..self.clients.len()).filter(|c| self.clients[*c].cluster == owner).collect();
                        let c = of_owner[k % of_owner.len()];
                        self.clients[c].final_reads.push_back(k);
                    }
                    for c in 0..self.clients.len() {
                        self.push(1_000, Ev::ClientWake(c));
                    }
                }
            }
            Phase::FinalReads => {
                if self.clients.iter().all(|c| c.idle()) {
                    self.phase = Phase::Done;
                    return;
                }
                for c in 0..self.clients.len() {
                    self.push(0, Ev::ClientWake(c));
                }
            }
            _ => {}
        }
        self.push(1_000_000, Ev::CheckConverged);
    }

    fn start_clients(&mut self, delay_us: u64) {
        for c in 0..self.clients.len() {
            self.push(delay_us + c as u64 * 1_000, Ev::ClientWake(c));
        }
    }

    /// Why the run has not converged, if it has not: every cluster converged, and with a link,
    /// shipping caught up both ways.
    fn not_converged(&self) -> Option<String> {
        for m in &self.metas {
            if let Some(why) = self.cluster_not_converged(m) {
                return Some(why);
            }
        }
        crate::world_dup::link_not_caught_up(&self.metas, &self.nodes, &self.obs)
    }

    /// Why a cluster has not converged, if it has not: every partition has its full set of
    /// members, all up, in their roles at the current ballot, with nothing in flight and every
    /// member at the same committed and applied decree.
    fn cluster_not_converged(&self, meta: &SimMeta) -> Option<String> {
        let configs: Vec<_> = meta.cm.configs().cloned().collect();
        if configs.is_empty() {
            return Some("no table yet".into());
        }
        if let Some(step) = meta.cm.balancing_pending() {
            return Some(format!("balancing: {step}"));
        }
        for c in configs {
            let Some(p) = c.primary else { return Some(format!("{} has no primary", c.gpid)) };
            if let Some(d) = c.members().find(|m| meta.decommissioned.contains(m)) {
                return Some(format!("{c}: decommissioned {d} still holds a replica"));
            }
            if c.members().count() < self.cfg.replicas {
                return Some(format!("{c} lacks members"));
            }
            let node = |id| self.nodes.iter().find(|n| n.id == id && n.up);
            let Some(pn) = node(p) else { return Some(format!("{c}: primary down")) };
            let Some(pr) = pn.replica(c.gpid) else { return Some(format!("{c}: primary has no replica")) };
            if pr.status() != ReplicaStatus::Primary || pr.ballot() != c.ballot {
                return Some(format!("{c}: primary is {} at b{}", pr.status().name(), pr.ballot()));
            }
            if !pr.is_serving(pn.clock.local_ms(self.now_us)) || pr.last_prepared() != pr.committed() {
                return Some(format!("{c}: primary not serving or writes in flight"));
            }
            for s in &c.secondaries {
                let Some(sn) = node(*s) else { return Some(format!("{c}: secondary {s} down")) };
                let Some(sr) = sn.replica(c.gpid) else { return Some(format!("{c}: {s} has no replica")) };
                if sr.status() != ReplicaStatus::Secondary || sr.committed() != pr.committed() {
                    return Some(format!(
                        "{c}: {s} is {} at committed {} (primary {})",
                        sr.status().name(),
                        sr.committed(),
                        pr.committed()
                    ));
                }
            }
        }
        None
    }

    fn finish(mut self) -> RunResult {
        self.phase = Phase::Done;
        let mut violations = std::mem::take(&mut self.obs.violations);
        violations.extend(checker::single_primary::check(&self.obs.served));
        if self.stats.converged_at_ms.is_some() {
            for m in &self.metas {
                violations.extend(checker::convergence::check(&m.cm, &self.nodes));
                violations.extend(checker::acked_writes::check(&self.obs, &m.cm, &self.nodes));
            }
            if self.cfg.dup.is_some() {
                let held: Vec<_> =
                    self.metas.iter().map(|m| checker::cross_cluster::Held::of(m, &self.nodes)).collect();
                violations.extend(checker::cross_cluster::check(&self.obs, &held));
                let (found, unprotected) = checker::resurrection::check(&self.obs, &self.metas, &held);
                violations.extend(found);
                self.stats.unprotected_deletes = unprotected;
            }
        }
        if let Some(dr) = &self.dr {
            self.stats.dr = dr.stats(&self.obs);
        }
        violations.extend(checker::linearizability_of(&self.history, &self.keys));
        self.stats.ops = self.history.values().flatten().flatten().count();
        self.stats.completed_ops =
            self.history.values().flatten().flatten().filter(|o| o.complete_ms.is_some()).count();
        self.stats.acked_writes = self.obs.acked.len();
        self.stats.balancer_changes = self.metas.iter().map(|m| m.balancer_changes).sum();
        let d = &self.obs.dup;
        self.stats.shippers_started = d.shippers_started;
        self.stats.batches_acked = d.batches_acked;
        self.stats.batches_failed = d.batches_failed;
        self.stats.puts_acked = d.puts_acked;
        self.stats.conflicts = d.superseded;
        self.scenario_stats();
        RunResult {
            seed: self.cfg.seed,
            trace_hash: self.trace.hash(),
            violations,
            trace_tail: self.trace.tail().cloned().collect(),
            trace: self.trace.all().map(|t| t.to_vec()),
            stats: self.stats,
        }
    }
}

/// The world's processes, borrowed separately from the context.
struct Parts<'a> {
    nodes: &'a mut Vec<SimNode>,
    metas: &'a mut Vec<SimMeta>,
    clients: &'a mut Vec<SimClient>,
    history: &'a mut History,
    dr: &'a mut Option<crate::dr::DrWorld>,
}
