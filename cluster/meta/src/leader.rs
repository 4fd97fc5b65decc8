//! What only the leading meta server does: run the configuration manager. One task takes the
//! inputs (beacons, proposals, table creation, ticks) one at a time and carries out the
//! manager's actions in order. A changed configuration is written through Raft *before* any
//! later action (a push to a replica server, a beacon answer) can reveal it; if the write fails
//! because this server no longer leads, the task stops and the new leader takes over from the
//! replicated state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_client::Pool;
use tern_confman::{CmAction, CmEvent, CmOptions, ConfigManager, NodeSummary};
use tern_core::{Ballot, ConfigChange, Error, Gpid, NodeId, PartitionConfig, ReplicaReport, Result, TableId};
use tern_proto::convert::config_to_pb;
use tern_proto::pb;
use tokio::sync::{mpsc, oneshot};

use crate::MetaSm;
use crate::dup::{DupStats, ReportedProgress, ShareDemands, accept_progress, share_demand};
use crate::horizon::{Horizons, IncomingView};
use crate::raft::{RaftGroup, WriteError};
use crate::state::dup::LinkStatus;
use crate::state::{Command, ConfigRecord, PartitionRecord, TableStatus};

/// What a replica server learns from its beacon.
#[derive(Debug)]
pub struct BeaconAnswer {
    pub configs: Vec<PartitionConfig>,
    pub lease_ms: u64,
    /// What each (link, partition) wants of its link's throttle: the answer's links carry the
    /// shares split from it.
    pub dup_demands: ShareDemands,
}

/// Requests to the leader task.
#[derive(Debug)]
pub enum LeaderInput {
    Beacon {
        node: NodeId,
        addr: String,
        sent_at_ms: u64,
        reports: Vec<ReplicaReport>,
        /// Shipping progress of this node's primaries.
        dup_progress: Vec<pb::DupProgress>,
        /// What this node's receiving primaries heard of incoming links.
        incoming: Vec<pb::IncomingWatermark>,
        reply: oneshot::Sender<Result<BeaconAnswer>>,
    },
    Propose {
        from: NodeId,
        gpid: Gpid,
        ballot: Ballot,
        change: ConfigChange,
    },
    CreatePartitions {
        table: TableId,
        partitions: u32,
        replicas: usize,
        reply: oneshot::Sender<Result<()>>,
    },
    Status {
        reply: oneshot::Sender<StatusReport>,
    },
    /// The last accepted duplication progress report of every partition of every link.
    DupStats {
        reply: oneshot::Sender<DupStats>,
    },
    /// Every incoming link with what this leader heard of it.
    Incoming {
        reply: oneshot::Sender<Vec<IncomingView>>,
    },
}

/// What the configuration manager knows beyond the replicated state: liveness and balance.
#[derive(Debug)]
pub struct StatusReport {
    pub nodes: Vec<NodeSummary>,
    pub unhealthy: Vec<PartitionConfig>,
    /// What the balancer still has to do, if anything.
    pub balancing: Option<String>,
}

/// Settings of the leader task.
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    pub cm: CmOptions,
    pub tick: Duration,
    /// How long a dropped table can be recalled.
    pub recall_window: Duration,
    /// How many recent conflicts each duplication link keeps.
    pub dup_conflict_journal: u32,
    /// See `MetaOptions::tombstone_retention` and `dup_hold_limit`.
    pub tombstone_retention: Duration,
    pub dup_hold_limit: Duration,
}

pub fn write_error(e: WriteError) -> Error {
    match e {
        WriteError::NotLeader { .. } => Error::Unavailable("this meta server is no longer the leader".into()),
        WriteError::Other(e) => e,
    }
}

/// Starts the leader's task; it runs until `rx` closes or leadership is lost.
pub fn spawn(
    group: Arc<RaftGroup<MetaSm>>,
    opts: LeaderOptions,
    pool: Arc<Pool>,
) -> mpsc::Sender<LeaderInput> {
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(async move {
        if let Err(e) = run(group, opts, pool, rx).await {
            tracing::warn!("leader duties ended: {e}");
        }
    });
    tx
}

struct Leader {
    group: Arc<RaftGroup<MetaSm>>,
    cm: ConfigManager,
    pool: Arc<Pool>,
    started: Instant,
    recall_window: Duration,
    dup_conflict_journal: u32,
    /// Accepted progress reports and when they arrived, by (link, partition): only the
    /// confirmed decrees and conflicts are replicated.
    dup_stats: HashMap<(u64, u32), (pb::DupProgress, Instant)>,
    /// What it heard of incoming links; table purge horizons (`horizon.rs`).
    horizons: Horizons,
    tombstone_retention: Duration,
    dup_hold_limit: Duration,
}

async fn run(
    group: Arc<RaftGroup<MetaSm>>,
    opts: LeaderOptions,
    pool: Arc<Pool>,
    mut rx: mpsc::Receiver<LeaderInput>,
) -> Result<()> {
    // Everything committed by earlier leaders is applied here before deciding anything.
    group.barrier().await.map_err(write_error)?;
    let started = Instant::now();
    let (partitions, nodes) = group.read(|s| {
        (
            s.0.persisted_partitions(),
            s.0.nodes.iter().map(|(id, n)| (NodeId(*id), n.decommissioned)).collect(),
        )
    });
    let cm = ConfigManager::restore(opts.cm, 0, partitions, nodes);
    let mut leader = Leader {
        group,
        cm,
        pool,
        started,
        recall_window: opts.recall_window,
        dup_conflict_journal: opts.dup_conflict_journal,
        dup_stats: HashMap::new(),
        horizons: Horizons::new(started),
        tombstone_retention: opts.tombstone_retention,
        dup_hold_limit: opts.dup_hold_limit,
    };
    leader.finish_creations().await?;
    tracing::info!("leading: configuration manager running");
    let mut tick = tokio::time::interval(opts.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            input = rx.recv() => match input {
                Some(i) => leader.on_input(i).await?,
                None => return Ok(()),
            },
            _ = tick.tick() => leader.on_tick().await?,
        }
    }
}

impl Leader {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn write(&self, cmd: Command) -> Result<crate::state::Response> {
        self.group.write(cmd).await.map_err(write_error)
    }

    /// Tables whose creation a previous leader did not finish get their partitions now.
    async fn finish_creations(&mut self) -> Result<()> {
        let missing: Vec<(u32, u32, u32)> = self.group.read(|s| {
            s.0.tables
                .values()
                .filter(|t| t.status == TableStatus::Serving)
                .filter(|t| s.0.table_configs(t.id).len() < t.partitions as usize)
                .map(|t| (t.id, t.partitions, t.replicas))
                .collect()
        });
        for (id, partitions, replicas) in missing {
            let event =
                CmEvent::CreatePartitions { table: TableId(id), partitions, replicas: replicas as usize };
            self.run_cm(event, None).await?;
        }
        Ok(())
    }

    async fn on_input(&mut self, input: LeaderInput) -> Result<()> {
        match input {
            LeaderInput::Beacon { node, addr, sent_at_ms, reports, dup_progress, incoming, reply } => {
                let known = self.group.read(|s| s.0.nodes.get(&node.0).map(|n| n.addr.clone()));
                if known.as_deref() != Some(addr.as_str()) {
                    self.write(Command::RegisterNode { id: node.0, addr }).await?;
                }
                if !dup_progress.is_empty() {
                    self.on_dup_progress(node, dup_progress).await?;
                }
                if !incoming.is_empty() {
                    let now = Instant::now();
                    let commands = self.group.read(|s| self.horizons.on_reports(&s.0, &incoming, now));
                    for c in commands {
                        self.write(c).await?;
                    }
                }
                self.run_cm(CmEvent::Beacon { node, sent_at_ms, reports }, Some(BeaconReply::Beacon(reply)))
                    .await
            }
            LeaderInput::Propose { from, gpid, ballot, change } => {
                self.run_cm(CmEvent::Propose { from, gpid, ballot, change }, None).await
            }
            LeaderInput::CreatePartitions { table, partitions, replicas, reply } => {
                let r = self.run_cm(CmEvent::CreatePartitions { table, partitions, replicas }, None).await;
                let failed = r.as_ref().err().cloned();
                let _ = reply.send(r);
                match failed {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
            LeaderInput::DupStats { reply } => {
                let stats = self
                    .dup_stats
                    .iter()
                    .map(|(k, (p, at))| {
                        let age_ms = at.elapsed().as_millis() as u64;
                        (*k, ReportedProgress { progress: p.clone(), age_ms })
                    })
                    .collect();
                let _ = reply.send(stats);
                Ok(())
            }
            LeaderInput::Incoming { reply } => {
                let now = Instant::now();
                let _ = reply.send(self.group.read(|s| self.horizons.views(&s.0, now)));
                Ok(())
            }
            LeaderInput::Status { reply } => {
                let _ = reply.send(StatusReport {
                    nodes: self.cm.node_summary(),
                    unhealthy: self.cm.unhealthy(),
                    balancing: self.cm.balancing_pending(),
                });
                Ok(())
            }
        }
    }

    /// Keeps accepted reports in memory and writes what changed (confirmed decrees, conflicts)
    /// in one command, before the beacon is answered.
    async fn on_dup_progress(&mut self, node: NodeId, progress: Vec<pb::DupProgress>) -> Result<()> {
        let (updates, accepted) = self.group.read(|s| accept_progress(&s.0, node.0, progress));
        let now = Instant::now();
        for p in accepted {
            self.dup_stats.insert((p.link, p.partition), (p, now));
        }
        if !updates.is_empty() {
            self.write(Command::RecordDupProgress { updates, journal: self.dup_conflict_journal }).await?;
        }
        Ok(())
    }

    fn dup_demands(&self) -> ShareDemands {
        let demand = |(p, at): &(pb::DupProgress, Instant)| share_demand(p, at.elapsed().as_millis() as u64);
        self.dup_stats.iter().map(|(k, v)| (*k, demand(v))).collect()
    }

    async fn on_tick(&mut self) -> Result<()> {
        // Decommissions (and their undoing) are written by the Meta service; the manager
        // learns them here.
        let nodes: Vec<(NodeId, bool)> =
            self.group.read(|s| s.0.nodes.iter().map(|(id, n)| (NodeId(*id), n.decommissioned)).collect());
        for (node, decommissioned) in nodes {
            if decommissioned {
                self.run_cm(CmEvent::Decommission { node }, None).await?;
            } else if self.cm.is_decommissioned(node) {
                self.run_cm(CmEvent::Recommission { node }, None).await?;
            }
        }
        self.run_cm(CmEvent::Tick, None).await?;
        // Forget dropped tables whose recall window passed.
        let now_wall = crate::wall_ms();
        let window = self.recall_window.as_millis() as u64;
        let expired: Vec<u32> = self.group.read(|s| {
            s.0.tables
                .values()
                .filter(|t| matches!(t.status, TableStatus::Dropped { at_ms } if now_wall.saturating_sub(at_ms) >= window))
                .map(|t| t.id)
                .collect()
        });
        for id in expired {
            self.write(Command::PurgeTable { id }).await?;
            self.cm.remove_table(TableId(id));
            tracing::info!("dropped table {id} purged after its recall window");
        }
        let now = Instant::now();
        let (retention, hold) = (self.tombstone_retention, self.dup_hold_limit);
        let commands = self.group.read(|s| self.horizons.tick(&s.0, now_wall, retention, hold, now));
        for c in commands {
            self.write(c).await?;
        }
        if !self.dup_stats.is_empty() {
            let live: HashSet<u64> = self.group.read(|s| {
                s.0.links.values().filter(|l| l.status != LinkStatus::Removed).map(|l| l.id).collect()
            });
            self.dup_stats.retain(|(link, _), _| live.contains(link));
        }
        Ok(())
    }

    async fn run_cm(&mut self, event: CmEvent, reply: Option<BeaconReply>) -> Result<()> {
        let mut actions = Vec::new();
        self.cm.handle(self.now(), event, &mut actions);
        let mut reply = reply;
        for a in actions {
            match a {
                CmAction::Changed { config, last_members, replicas, demoted, reason } => {
                    tracing::info!("{config}: {reason}");
                    let partition = PartitionRecord {
                        config: ConfigRecord::from(&config),
                        replicas,
                        last_members: last_members.iter().map(|n| n.0).collect(),
                        demoted: demoted.map(|d| (d.node.0, d.ballot.0)),
                    };
                    if let crate::state::Response::Refused(why) =
                        self.write(Command::SetConfig { partition }).await?
                    {
                        // The replicated state moved on without this manager: start over from it.
                        return Err(Error::invariant(format!("configuration manager out of date: {why}")));
                    }
                }
                CmAction::BeaconAck { configs, lease_ms, .. } => {
                    if let Some(BeaconReply::Beacon(r)) = reply.take() {
                        let _ =
                            r.send(Ok(BeaconAnswer { configs, lease_ms, dup_demands: self.dup_demands() }));
                    }
                }
                CmAction::ConfigUpdate { to, config } => {
                    self.push(to, pb::control_message::Msg::ConfigUpdate(config_to_pb(&config)))
                }
                CmAction::CreateReplica { to, config } => {
                    self.push(to, pb::control_message::Msg::CreateReplica(config_to_pb(&config)))
                }
                CmAction::AddLearner { to, config, learner, reason } => {
                    tracing::info!("{config}: learner {learner} asked of primary {to} ({reason})");
                    self.push(
                        to,
                        pb::control_message::Msg::AddLearner(pb::AddLearner {
                            config: Some(config_to_pb(&config)),
                            learner: learner.0,
                        }),
                    )
                }
            }
        }
        Ok(())
    }

    /// Sends a control message to a replica server, without waiting (it is repeated by beacon
    /// answers and retries if lost).
    fn push(&self, to: NodeId, msg: pb::control_message::Msg) {
        let (addr, addresses) = self.group.read(|s| {
            (
                s.0.nodes.get(&to.0).map(|n| n.addr.clone()),
                s.0.nodes
                    .iter()
                    .map(|(id, n)| pb::NodeAddress { node: *id, addr: n.addr.clone() })
                    .collect::<Vec<_>>(),
            )
        });
        let Some(addr) = addr else { return };
        let Ok(channel) = self.pool.channel(&addr) else { return };
        tokio::spawn(async move {
            let mut c = pb::control_client::ControlClient::new(channel);
            let m = pb::ControlMessage { msg: Some(msg), addresses };
            if let Err(e) = tokio::time::timeout(Duration::from_secs(2), c.push(m)).await {
                tracing::debug!("push to {to} at {addr} timed out: {e}");
            }
        });
    }
}

enum BeaconReply {
    Beacon(oneshot::Sender<Result<BeaconAnswer>>),
}
