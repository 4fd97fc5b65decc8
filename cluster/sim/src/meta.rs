//! The simulated meta server: the configuration manager behind a network address. (Its Raft
//! replication is the meta server's business, issue #4; here its state simply persists.)

use tern_confman::{CmAction, CmEvent, CmOptions, ConfigManager};
use tern_core::{NodeId, TableId};

use crate::clock::NodeClock;
use crate::net::{Addr, Msg};
use crate::world_ctx::{Ctx, Ev};

pub const META_TICK_MS: u64 = 100;

pub struct SimMeta {
    pub cm: ConfigManager,
    pub clock: NodeClock,
    pub decommissioned: Vec<NodeId>,
    /// Configuration changes made by the balancer.
    pub balancer_changes: u64,
}

impl SimMeta {
    pub fn new(opts: CmOptions, clock: NodeClock) -> SimMeta {
        SimMeta { cm: ConfigManager::new(opts), clock, decommissioned: Vec::new(), balancer_changes: 0 }
    }

    pub fn decommission(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        ctx.trace(format!("meta: decommission {node}"));
        self.decommissioned.push(node);
        self.run(ctx, CmEvent::Decommission { node });
    }

    fn run(&mut self, ctx: &mut Ctx<'_>, event: CmEvent) {
        let now = self.clock.local_ms(ctx.now_us);
        let mut out = Vec::new();
        self.cm.handle(now, event, &mut out);
        for a in out {
            match a {
                CmAction::BeaconAck { to, sent_at_ms, lease_ms, configs } => {
                    ctx.send(Addr::Meta, Addr::Node(to), Msg::BeaconAck { sent_at_ms, lease_ms, configs })
                }
                CmAction::ConfigUpdate { to, config } => {
                    ctx.send(Addr::Meta, Addr::Node(to), Msg::ConfigUpdate { config })
                }
                CmAction::CreateReplica { to, config } => {
                    ctx.send(Addr::Meta, Addr::Node(to), Msg::CreateReplica { config })
                }
                CmAction::AddLearner { to, config, learner, .. } => {
                    ctx.send(Addr::Meta, Addr::Node(to), Msg::AddLearner { config, learner })
                }
                CmAction::Changed { config, reason, .. } => {
                    if reason.starts_with("balancer") {
                        self.balancer_changes += 1;
                    }
                    ctx.trace(format!("meta: {config} ({reason})"))
                }
            }
        }
    }

    pub fn create_table(&mut self, ctx: &mut Ctx<'_>, partitions: u32, replicas: usize) {
        self.run(ctx, CmEvent::CreatePartitions { table: TableId(1), partitions, replicas });
    }

    pub fn on_tick(&mut self, ctx: &mut Ctx<'_>) {
        self.run(ctx, CmEvent::Tick);
        ctx.after(self.clock.global_us_for(META_TICK_MS), Ev::MetaTick);
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_>, from: Addr, msg: Msg) {
        match (from, msg) {
            (Addr::Node(node), Msg::Beacon { sent_at_ms, reports }) => {
                self.run(ctx, CmEvent::Beacon { node, sent_at_ms, reports })
            }
            (Addr::Node(from), Msg::Propose { gpid, ballot, change }) => {
                self.run(ctx, CmEvent::Propose { from, gpid, ballot, change })
            }
            (Addr::Client(c), Msg::QueryConfigs) => {
                let configs = self.cm.configs().cloned().collect();
                ctx.send(Addr::Meta, Addr::Client(c), Msg::Configs { configs });
            }
            _ => {}
        }
    }
}
