//! The world: one seeded event queue driving the meta server, replica servers, clients and the
//! network through a fault phase, a heal phase and final reads, then the checkers.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tern_confman::CmOptions;
use tern_core::{ClusterId, ReplicaStatus};
use tern_replica::ReplicaOptions;
use tern_storage::MemImage;

use crate::checker;
use crate::client::{History, SimClient};
use crate::clock::NodeClock;
use crate::config::SimConfig;
use crate::meta::SimMeta;
use crate::net::{Addr, Fate, Network};
use crate::node::SimNode;
use crate::observe::Observations;
use crate::trace::Trace;
use crate::world_ctx::{Ctx, Ev};

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
    pub converged_at_ms: Option<u64>,
    pub end_ms: u64,
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
    meta: SimMeta,
    clients: Vec<SimClient>,
    net: Network,
    trace: Trace,
    obs: Observations,
    history: History,
    checkpoints: BTreeMap<u64, MemImage>,
    next_checkpoint: u64,
    phase: Phase,
    heal_deadline_us: u64,
    stats: Stats,
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

pub fn replica_options(cfg: &SimConfig) -> ReplicaOptions {
    let mut o = ReplicaOptions::new(ClusterId::new(1).expect("valid"));
    o.max_inflight = 64;
    o.resend_ms = 200;
    o.ack_timeout_ms = 2_000;
    o.learn_timeout_ms = 5_000;
    #[cfg(feature = "planted-bugs")]
    {
        o.bug_commit_on_majority = cfg.bugs.commit_on_majority;
        o.bug_read_without_lease = cfg.bugs.read_without_lease;
    }
    #[cfg(not(feature = "planted-bugs"))]
    let _ = cfg;
    o
}

/// Runs one simulation. `full_trace` keeps every trace line in the result.
pub fn run(cfg: &SimConfig, full_trace: bool) -> RunResult {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let f = &cfg.faults;
    let clock = |rng: &mut ChaCha8Rng| NodeClock {
        offset_ms: rng.random_range(-f.offset_ms..=f.offset_ms),
        drift_ppm: rng.random_range(-f.drift_ppm..=f.drift_ppm),
    };
    let nodes = (0..cfg.nodes).map(|i| SimNode::new(i, clock(&mut rng), replica_options(cfg))).collect();
    let meta = SimMeta::new(cm_options(), clock(&mut rng));
    let clients = (0..cfg.clients).map(SimClient::new).collect();
    let mut w = World {
        cfg: cfg.clone(),
        rng,
        now_us: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        nodes,
        meta,
        clients,
        net: Network::new(),
        trace: Trace::new(400, full_trace),
        obs: Observations::default(),
        history: History::new(),
        checkpoints: BTreeMap::new(),
        next_checkpoint: 1,
        phase: Phase::Faults,
        heal_deadline_us: (cfg.fault_phase_ms + cfg.heal_phase_ms) * 1_000,
        stats: Stats::default(),
    };
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
        self.push(0, Ev::MetaTick);
        // Create the table once every node has beaconed, then start the clients.
        self.with_ctx(|w, ctx| {
            let _ = w;
            ctx.after(1_000_000, Ev::CheckConverged);
        });
        for c in 0..self.clients.len() {
            self.clients[c].active = true;
            self.push(2_000_000 + c as u64 * 1_000, Ev::ClientWake(c));
        }
        let first = self.cfg.faults.step_ms * 1_000 * 2;
        self.push(first, Ev::FaultStep);
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
            meta,
            clients,
            trace,
            obs,
            history,
            checkpoints,
            next_checkpoint,
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
        let mut parts = Parts { nodes, meta, clients, history };
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
                    Addr::Meta => p.meta.on_message(ctx, from, msg),
                    Addr::Client(c) => p.clients[c as usize].on_message(ctx, msg, p.history),
                });
            }
            Ev::NodeTick(i) => self.with_ctx(|p, ctx| p.nodes[i].on_tick(ctx)),
            Ev::MetaTick => self.with_ctx(|p, ctx| p.meta.on_tick(ctx)),
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
        }
    }

    fn fault_step(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let down = self.nodes.iter().filter(|n| !n.up).count();
        let choice = self.rng.random_range(0..100);
        let n = self.nodes.len();
        match choice {
            0..20 if down < self.cfg.faults.max_down => {
                let up: Vec<usize> = (0..n).filter(|i| self.nodes[*i].up).collect();
                let i = up[self.rng.random_range(0..up.len())];
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
                let node = self.nodes[self.rng.random_range(0..n)].id;
                self.stats.decommissioned += 1;
                self.with_ctx(|p, ctx| p.meta.decommission(ctx, node));
            }
            _ => {
                // Cut one process off from everyone (one way or both), or a replica server from
                // the meta server only (its clients still reach it: the lease rule's case), for
                // one to fifteen seconds.
                let target = self.rng.random_range(0..=n);
                let victim = if target == n { Addr::Meta } else { Addr::Node(self.nodes[target].id) };
                let mode = self.rng.random_range(0..5);
                let servers = || self.nodes.iter().map(|x| Addr::Node(x.id)).chain([Addr::Meta]);
                let others: Vec<Addr> = if mode == 3 && victim != Addr::Meta {
                    vec![Addr::Meta]
                } else if mode == 4 && victim != Addr::Meta {
                    // The back-end network splits: no meta, no peers; clients still get through.
                    servers().filter(|a| *a != victim).collect()
                } else {
                    self.nodes
                        .iter()
                        .map(|x| Addr::Node(x.id))
                        .chain([Addr::Meta])
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
        // The table is created at the first check (every node has beaconed by then).
        if self.meta.cm.configs().next().is_none() {
            let (parts, replicas) = (self.cfg.partitions, self.cfg.replicas);
            self.with_ctx(|p, ctx| p.meta.create_table(ctx, parts, replicas));
        }
        match self.phase {
            Phase::Heal => {
                if let Some(why_not) = self.not_converged() {
                    if self.now_us >= self.heal_deadline_us {
                        self.obs.violations.push(format!(
                            "the cluster did not converge after healing (liveness): {why_not}"
                        ));
                        self.phase = Phase::Done;
                        return;
                    }
                } else {
                    self.stats.converged_at_ms = Some(self.now_us / 1_000);
                    self.trace.line(self.now_us, "converged: final reads".into());
                    self.phase = Phase::FinalReads;
                    let keys = self.cfg.registers + self.cfg.counters;
                    for k in 0..keys {
                        let c = k % self.clients.len();
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

    /// Why the cluster has not converged, if it has not: every partition has its full set of
    /// members, all up, in their roles at the current ballot, with nothing in flight and every
    /// member at the same committed and applied decree.
    fn not_converged(&self) -> Option<String> {
        let configs: Vec<_> = self.meta.cm.configs().cloned().collect();
        if configs.is_empty() {
            return Some("no table yet".into());
        }
        if let Some(step) = self.meta.cm.balancing_pending() {
            return Some(format!("balancing: {step}"));
        }
        for c in configs {
            let Some(p) = c.primary else { return Some(format!("{} has no primary", c.gpid)) };
            if let Some(d) = c.members().find(|m| self.meta.decommissioned.contains(m)) {
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
            violations.extend(checker::convergence::check(&self.meta.cm, &self.nodes));
            violations.extend(checker::acked_writes::check(&self.obs, &self.meta.cm, &self.nodes));
        }
        violations.extend(checker::linearizability_of(&self.history));
        self.stats.ops = self.history.values().flatten().flatten().count();
        self.stats.completed_ops =
            self.history.values().flatten().flatten().filter(|o| o.complete_ms.is_some()).count();
        self.stats.acked_writes = self.obs.acked.len();
        self.stats.balancer_changes = self.meta.balancer_changes;
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
    meta: &'a mut SimMeta,
    clients: &'a mut Vec<SimClient>,
    history: &'a mut History,
}
