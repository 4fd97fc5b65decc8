//! The simulated meta server: the configuration manager behind a network address. (Its Raft
//! replication is the meta server's business, issue #4; here its replicated state simply
//! persists.) In two-cluster runs it also holds the link's progress and the table's purge
//! horizon; a simulated leader change loses what a leader keeps only in memory (what it heard
//! of incoming links) and keeps the replicated rest.

use tern_confman::{CmAction, CmEvent, CmOptions, ConfigManager};
use tern_core::{NodeId, TableId, Timetag};
use tern_duplication::DupRules;

use crate::clock::NodeClock;
use crate::dup::{MetaHorizon, MetaLink};
use crate::net::{Addr, Msg};
use crate::world_ctx::{Ctx, Ev};

pub const META_TICK_MS: u64 = 100;

#[allow(missing_debug_implementations)]
pub struct SimMeta {
    /// The cluster's number in the run (0 for the first); its table is `TableId(idx + 1)`.
    pub idx: u8,
    pub cm: ConfigManager,
    /// The duplication link's per-partition progress (two-cluster runs).
    pub link: Option<MetaLink>,
    pub clock: NodeClock,
    pub decommissioned: Vec<NodeId>,
    /// Configuration changes made by the balancer.
    pub balancer_changes: u64,
    /// The table's DR role and the cluster's DR lease (runs with `SimConfig::dr`, see `dr/`).
    pub dr: Option<crate::dr::MetaDr>,
    /// Two-cluster runs: the table's purge horizon, the rules that raise it, and the tombstone
    /// retention (ms).
    pub horizon: Option<MetaHorizon>,
    rules: DupRules,
    retention_ms: u64,
    pub leader_changes: u64,
}

impl SimMeta {
    pub fn new(idx: u8, opts: CmOptions, clock: NodeClock) -> SimMeta {
        SimMeta {
            idx,
            cm: ConfigManager::new(opts),
            link: None,
            clock,
            decommissioned: Vec::new(),
            balancer_changes: 0,
            dr: None,
            horizon: None,
            rules: DupRules::default(),
            retention_ms: 0,
            leader_changes: 0,
        }
    }

    /// Keeps the table's purge horizon (two-cluster runs), raised by `rules`.
    pub fn with_horizon(mut self, rules: DupRules, retention_ms: u64) -> SimMeta {
        self.horizon = Some(MetaHorizon::default());
        self.rules = rules;
        self.retention_ms = retention_ms;
        self
    }

    pub fn addr(&self) -> Addr {
        Addr::Meta(self.idx)
    }

    /// How trace lines name it: `meta` for the first cluster's, `meta2` for the second's.
    fn name(&self) -> String {
        if self.idx == 0 { "meta".into() } else { format!("meta{}", self.idx + 1) }
    }

    pub fn table(&self) -> TableId {
        TableId(u32::from(self.idx) + 1)
    }

    pub fn decommission(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        ctx.trace(format!("{}: decommission {node}", self.name()));
        self.decommissioned.push(node);
        self.run(ctx, CmEvent::Decommission { node });
    }

    pub fn recommission(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        ctx.trace(format!("{}: recommission {node}", self.name()));
        self.decommissioned.retain(|n| *n != node);
        self.run(ctx, CmEvent::Recommission { node });
    }

    fn run(&mut self, ctx: &mut Ctx<'_>, event: CmEvent) {
        let now = self.clock.local_ms(ctx.now_us);
        let mut out = Vec::new();
        self.cm.handle(now, event, &mut out);
        let me = self.addr();
        for a in out {
            match a {
                CmAction::BeaconAck { to, sent_at_ms, lease_ms, configs } => {
                    ctx.send(me, Addr::Node(to), Msg::BeaconAck { sent_at_ms, lease_ms, configs });
                    // The table's role and DR lease, as the beacon answer carries them.
                    crate::dr::on_beacon_answered(self, ctx, to, sent_at_ms);
                }
                CmAction::ConfigUpdate { to, config } => {
                    ctx.send(me, Addr::Node(to), Msg::ConfigUpdate { config })
                }
                CmAction::CreateReplica { to, config } => {
                    ctx.send(me, Addr::Node(to), Msg::CreateReplica { config })
                }
                CmAction::AddLearner { to, config, learner, .. } => {
                    ctx.send(me, Addr::Node(to), Msg::AddLearner { config, learner })
                }
                CmAction::Changed { config, reason, .. } => {
                    if reason.starts_with("balancer") {
                        self.balancer_changes += 1;
                    }
                    ctx.trace(format!("{}: {config} ({reason})", self.name()))
                }
            }
        }
    }

    /// Creates the table; with `linked`, it has a duplication link from the start.
    pub fn create_table(&mut self, ctx: &mut Ctx<'_>, partitions: u32, replicas: usize, linked: bool) {
        let table = self.table();
        self.run(ctx, CmEvent::CreatePartitions { table, partitions, replicas });
        if linked {
            self.link = Some(MetaLink::new(table, partitions, false));
        }
    }

    /// Adds the table's link to the other cluster (`tern dup add`), with a full sync.
    pub fn add_link(&mut self, ctx: &mut Ctx<'_>, partitions: u32) {
        ctx.trace(format!("{}: link added with a full sync", self.name()));
        self.link = Some(MetaLink::new(self.table(), partitions, true));
    }

    /// A new leader takes over: the old one's memory is lost.
    pub fn leader_change(&mut self, ctx: &mut Ctx<'_>) {
        ctx.trace(format!("{}: leader change", self.name()));
        self.leader_changes += 1;
        if let Some(h) = &mut self.horizon {
            h.leader_change();
        }
    }

    pub fn on_tick(&mut self, ctx: &mut Ctx<'_>) {
        self.run(ctx, CmEvent::Tick);
        crate::dr::on_meta_tick(self, ctx);
        self.raise_horizon(ctx);
        ctx.after(self.clock.global_us_for(META_TICK_MS), Ev::MetaTick(usize::from(self.idx)));
    }

    fn raise_horizon(&mut self, ctx: &mut Ctx<'_>) {
        let now_wall = self.clock.wall_ms(ctx.now_us);
        let (has_table, name) = (self.cm.configs().next().is_some(), self.name());
        let Some(h) = self.horizon.as_mut().filter(|_| has_table) else { return };
        let Some(below) = h.tick(&self.rules, now_wall, self.retention_ms) else { return };
        ctx.trace(format!("{name}: purge horizon raised to {below}"));
        for from in h.incoming_clusters() {
            if let Some(v) = crate::checker::horizon::check_raise(ctx.obs, self.idx + 1, from, below) {
                ctx.obs.violations.push(v);
            }
        }
    }

    /// The table's purge horizon (zero: none yet).
    pub fn purge_below(&self) -> Timetag {
        self.horizon.as_ref().map_or(Timetag::ZERO, |h| h.purge_below)
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_>, from: Addr, msg: Msg) {
        match (from, msg) {
            (Addr::Node(node), Msg::Beacon { sent_at_ms, reports }) => {
                self.run(ctx, CmEvent::Beacon { node, sent_at_ms, reports })
            }
            (Addr::Node(from), Msg::Propose { gpid, ballot, change }) => {
                self.run(ctx, CmEvent::Propose { from, gpid, ballot, change })
            }
            (Addr::Client(_), Msg::QueryConfigs) | (Addr::Node(_), Msg::QueryConfigs) => {
                // Nodes ask the other cluster's meta server: how shippers route.
                let configs = self.cm.configs().cloned().collect();
                ctx.send(self.addr(), from, Msg::Configs { configs });
            }
            (Addr::Node(node), Msg::DupProgress { reports, incoming }) => {
                if let Some(link) = &mut self.link {
                    link.on_progress(ctx, &self.cm, node, &reports);
                }
                let (has_table, name) = (self.cm.configs().next().is_some(), self.name());
                let now_wall = self.clock.wall_ms(ctx.now_us);
                if let Some(h) = self.horizon.as_mut().filter(|_| has_table) {
                    for line in h.on_reports(&incoming, now_wall) {
                        ctx.trace(format!("{name}: {line}"));
                    }
                }
                if self.horizon.is_some() || self.link.is_some() {
                    let link = self.link.as_ref().map(MetaLink::view);
                    let purge_below = self.purge_below();
                    ctx.send(self.addr(), from, Msg::DupLinks { link, purge_below });
                }
            }
            (from, Msg::Dr(m)) => crate::dr::on_meta_message(self, ctx, from, m),
            _ => {}
        }
    }
}
