//! The configuration manager state machine.

use std::collections::BTreeMap;

use tern_core::{Ballot, ConfigChange, Gpid, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus, TableId};

use crate::options::CmOptions;
use crate::placement;

#[derive(Clone, Debug)]
pub enum CmEvent {
    /// Create `partitions` empty partitions of `table`, each with `replicas` replicas.
    CreatePartitions {
        table: TableId,
        partitions: u32,
        replicas: usize,
    },
    /// A replica server's beacon: its local send time and a report per replica it holds.
    Beacon {
        node: NodeId,
        sent_at_ms: u64,
        reports: Vec<ReplicaReport>,
    },
    /// A primary asks for a change at its ballot.
    Propose {
        from: NodeId,
        gpid: Gpid,
        ballot: Ballot,
        change: ConfigChange,
    },
    Tick,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmAction {
    /// Answer a beacon: the node may serve until `sent_at_ms + lease_ms` (its clock), and here is
    /// the configuration of every partition it holds or belongs to (apply them first).
    BeaconAck { to: NodeId, sent_at_ms: u64, lease_ms: u64, configs: Vec<PartitionConfig> },
    /// Push a configuration to a node.
    ConfigUpdate { to: NodeId, config: PartitionConfig },
    /// Create an empty replica of a new partition.
    CreateReplica { to: NodeId, config: PartitionConfig },
    /// Ask a primary to bring a learner in.
    AddLearner { to: NodeId, config: PartitionConfig, learner: NodeId },
    /// A configuration changed: the meta server persists it (with the members that recovery
    /// would wait for) before it carries out any later action.
    Changed { config: PartitionConfig, last_members: Vec<NodeId>, replicas: usize, reason: String },
}

/// A partition as persisted by the meta server, to rebuild a manager from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistedPartition {
    pub config: PartitionConfig,
    pub replicas: usize,
    pub last_members: Vec<NodeId>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NodeState {
    pub alive: bool,
    pub last_beacon_ms: u64,
    /// The latest report per partition, and when it arrived.
    pub reports: BTreeMap<Gpid, (ReplicaReport, u64)>,
}

impl NodeState {
    pub fn report(&self, gpid: Gpid) -> Option<&ReplicaReport> {
        self.reports.get(&gpid).map(|(r, _)| r)
    }
}

#[derive(Clone, Debug)]
struct PartState {
    config: PartitionConfig,
    replicas: usize,
    changed_at_ms: u64,
    /// Members of the last configuration that had a primary: when all replicas are lost, only
    /// one of them may become primary (each holds every committed mutation).
    last_members: Vec<NodeId>,
    pending_learner: Option<(NodeId, u64)>,
    /// When the first candidate for recovery reported.
    recovery_since_ms: Option<u64>,
}

/// One replica server as the configuration manager sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSummary {
    pub node: NodeId,
    /// Whether its lease is held (it is not considered dead).
    pub alive: bool,
    /// Partitions it is the primary of.
    pub primaries: usize,
    /// Partitions it is a member (primary or secondary) of.
    pub replicas: usize,
}

#[derive(Debug)]
pub struct ConfigManager {
    opts: CmOptions,
    nodes: BTreeMap<NodeId, NodeState>,
    parts: BTreeMap<Gpid, PartState>,
}

impl ConfigManager {
    pub fn new(opts: CmOptions) -> ConfigManager {
        ConfigManager { opts, nodes: BTreeMap::new(), parts: BTreeMap::new() }
    }

    /// A manager for a meta server that just became leader, from the persisted partitions and the
    /// nodes known to exist. Liveness is not persisted: every known node starts alive as of
    /// `now`, so it is declared dead only after a full grace period without beacons to *this*
    /// leader.
    pub fn restore(
        opts: CmOptions,
        now: u64,
        partitions: Vec<PersistedPartition>,
        nodes: Vec<NodeId>,
    ) -> ConfigManager {
        let mut cm = ConfigManager::new(opts);
        for n in nodes {
            cm.nodes.insert(n, NodeState { alive: true, last_beacon_ms: now, reports: BTreeMap::new() });
        }
        for p in partitions {
            cm.parts.insert(
                p.config.gpid,
                PartState {
                    config: p.config,
                    replicas: p.replicas,
                    changed_at_ms: now,
                    last_members: p.last_members,
                    pending_learner: None,
                    recovery_since_ms: None,
                },
            );
        }
        cm
    }

    /// Forgets every partition of `table` (a dropped table after its recall window).
    pub fn remove_table(&mut self, table: TableId) {
        self.parts.retain(|g, _| g.table != table);
    }

    /// Nodes known and whether each is alive, with its partition counts.
    pub fn node_summary(&self) -> Vec<NodeSummary> {
        self.nodes
            .iter()
            .map(|(n, s)| {
                let primaries = self.parts.values().filter(|p| p.config.primary == Some(*n)).count();
                let replicas = self.parts.values().filter(|p| p.config.is_member(*n)).count();
                NodeSummary { node: *n, alive: s.alive, primaries, replicas }
            })
            .collect()
    }

    /// Partitions with fewer members than wanted, or without a primary.
    pub fn unhealthy(&self) -> Vec<PartitionConfig> {
        self.parts
            .values()
            .filter(|p| p.config.primary.is_none() || p.config.members().count() < p.replicas)
            .map(|p| p.config.clone())
            .collect()
    }

    pub fn config(&self, gpid: Gpid) -> Option<&PartitionConfig> {
        self.parts.get(&gpid).map(|p| &p.config)
    }

    pub fn configs(&self) -> impl Iterator<Item = &PartitionConfig> {
        self.parts.values().map(|p| &p.config)
    }

    pub fn is_alive(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.alive)
    }

    pub fn handle(&mut self, now: u64, event: CmEvent, out: &mut Vec<CmAction>) {
        match event {
            CmEvent::CreatePartitions { table, partitions, replicas } => {
                self.create(now, table, partitions, replicas, out)
            }
            CmEvent::Beacon { node, sent_at_ms, reports } => {
                self.on_beacon(now, node, sent_at_ms, reports, out)
            }
            CmEvent::Propose { from, gpid, ballot, change } => {
                self.on_propose(now, from, gpid, ballot, change, out)
            }
            CmEvent::Tick => self.on_tick(now, out),
        }
    }

    fn load(&self) -> BTreeMap<NodeId, usize> {
        placement::load(&self.nodes, self.parts.values().map(|p| p.config.members()))
    }

    /// How many partitions each node is the primary of.
    fn primary_load(&self) -> BTreeMap<NodeId, usize> {
        let mut load = BTreeMap::new();
        for p in self.parts.values() {
            if let Some(n) = p.config.primary {
                *load.entry(n).or_default() += 1;
            }
        }
        load
    }

    fn create(
        &mut self,
        now: u64,
        table: TableId,
        partitions: u32,
        replicas: usize,
        out: &mut Vec<CmAction>,
    ) {
        for p in 0..partitions {
            let gpid = Gpid { table, partition: tern_core::PartitionIndex(p) };
            if self.parts.contains_key(&gpid) {
                continue;
            }
            let mut members = placement::pick_nodes(&self.nodes, &self.load(), &[], replicas);
            // Spread primaries too: the member leading the fewest partitions leads this one.
            let primaries = self.primary_load();
            if let Some(i) =
                (0..members.len()).min_by_key(|i| primaries.get(&members[*i]).copied().unwrap_or(0))
            {
                members.swap(0, i);
            }
            let config = PartitionConfig {
                gpid,
                ballot: Ballot(1),
                primary: members.first().copied(),
                secondaries: members.iter().skip(1).copied().collect(),
            };
            for m in &members {
                out.push(CmAction::CreateReplica { to: *m, config: config.clone() });
            }
            out.push(CmAction::Changed {
                config: config.clone(),
                last_members: members.clone(),
                replicas,
                reason: "partition created".into(),
            });
            self.parts.insert(
                gpid,
                PartState {
                    last_members: members,
                    config,
                    replicas,
                    changed_at_ms: now,
                    pending_learner: None,
                    recovery_since_ms: None,
                },
            );
        }
    }

    fn on_beacon(
        &mut self,
        now: u64,
        node: NodeId,
        sent_at_ms: u64,
        reports: Vec<ReplicaReport>,
        out: &mut Vec<CmAction>,
    ) {
        let state = self.nodes.entry(node).or_default();
        state.alive = true;
        state.last_beacon_ms = now;
        let mut gpids: Vec<Gpid> = reports.iter().map(|r| r.gpid).collect();
        for r in reports {
            state.reports.insert(r.gpid, (r, now));
        }
        gpids.extend(self.parts.values().filter(|p| p.config.is_member(node)).map(|p| p.config.gpid));
        gpids.sort();
        gpids.dedup();
        let configs = gpids.iter().filter_map(|g| self.parts.get(g)).map(|p| p.config.clone()).collect();
        out.push(CmAction::BeaconAck { to: node, sent_at_ms, lease_ms: self.opts.lease_ms, configs });
    }

    fn on_propose(
        &mut self,
        now: u64,
        from: NodeId,
        gpid: Gpid,
        ballot: Ballot,
        change: ConfigChange,
        out: &mut Vec<CmAction>,
    ) {
        let Some(p) = self.parts.get(&gpid) else { return };
        let mut config = p.config.clone();
        if config.ballot != ballot || config.primary != Some(from) {
            out.push(CmAction::ConfigUpdate { to: from, config });
            return;
        }
        let reason = match change {
            ConfigChange::RemoveSecondary(n) if config.is_secondary(n) => {
                config.secondaries.retain(|s| *s != n);
                format!("primary {from} removed unresponsive secondary {n}")
            }
            // Not a member: the primary gives up a learner it had proposed to add. Raising the
            // ballot voids that proposal, should it still arrive.
            ConfigChange::RemoveSecondary(n) if !config.is_member(n) => {
                format!("primary {from} abandoned adding learner {n}")
            }
            ConfigChange::AddSecondary(n) if !config.is_member(n) && self.is_alive(n) => {
                config.secondaries.push(n);
                format!("learner {n} caught up")
            }
            _ => {
                out.push(CmAction::ConfigUpdate { to: from, config });
                return;
            }
        };
        if matches!(change, ConfigChange::AddSecondary(_))
            && let Some(p) = self.parts.get_mut(&gpid)
        {
            p.pending_learner = None;
        }
        self.set_config(now, config, reason, out);
    }

    /// Commits a new configuration (ballot + 1) and tells everyone involved.
    fn set_config(&mut self, now: u64, mut config: PartitionConfig, reason: String, out: &mut Vec<CmAction>) {
        let Some(p) = self.parts.get_mut(&config.gpid) else { return };
        config.ballot = p.config.ballot.next();
        let mut notify: Vec<NodeId> = p.config.members().chain(config.members()).collect();
        notify.sort();
        notify.dedup();
        if config.primary.is_some() {
            p.last_members = config.members().collect();
            p.recovery_since_ms = None;
        }
        p.config = config.clone();
        p.changed_at_ms = now;
        out.push(CmAction::Changed {
            config: config.clone(),
            last_members: p.last_members.clone(),
            replicas: p.replicas,
            reason,
        });
        for n in notify {
            out.push(CmAction::ConfigUpdate { to: n, config: config.clone() });
        }
    }

    fn on_tick(&mut self, now: u64, out: &mut Vec<CmAction>) {
        let grace = self.opts.grace_ms;
        for state in self.nodes.values_mut() {
            if state.alive && now.saturating_sub(state.last_beacon_ms) > grace {
                state.alive = false;
            }
        }
        let gpids: Vec<Gpid> = self.parts.keys().copied().collect();
        for gpid in gpids {
            self.check_partition(now, gpid, out);
        }
    }

    /// Whether `node` is doing its part as a member (`as_primary` or secondary) of the current
    /// configuration. A member is failed only when its node is dead (its lease has expired), or
    /// when it reports, *at the current ballot or newer*, that it is not playing its role. A
    /// report at an older ballot proves nothing (the member may adopt the configuration any
    /// moment), and the manager never acts on the absence of a report: acting on stale news could
    /// replace a primary that is serving.
    fn healthy(&self, node: NodeId, p: &PartState, as_primary: bool) -> bool {
        let Some(state) = self.nodes.get(&node).filter(|s| s.alive) else { return false };
        let want = if as_primary { ReplicaStatus::Primary } else { ReplicaStatus::Secondary };
        match state.report(p.config.gpid) {
            Some(r) if r.ballot >= p.config.ballot => r.status == want,
            _ => true,
        }
    }

    fn check_partition(&mut self, now: u64, gpid: Gpid, out: &mut Vec<CmAction>) {
        let Some(p) = self.parts.get(&gpid).cloned() else { return };
        let Some(primary) = p.config.primary else {
            return self.try_recover(now, gpid, out);
        };
        self.resend_creates(&p, out);
        if !self.healthy(primary, &p, true) {
            return self.replace_primary(now, &p, primary, out);
        }
        let failed: Vec<NodeId> =
            p.config.secondaries.iter().copied().filter(|s| !self.healthy(*s, &p, false)).collect();
        if !failed.is_empty() {
            let mut config = p.config.clone();
            config.secondaries.retain(|s| !failed.contains(s));
            let names: Vec<String> = failed.iter().map(|n| n.to_string()).collect();
            return self.set_config(now, config, format!("secondaries {} failed", names.join(",")), out);
        }
        self.maybe_add_learner(now, &p, primary, out);
    }

    /// The primary failed: promote the secondary with the longest log, or, with none left, wait
    /// for the last members to come back.
    fn replace_primary(&mut self, now: u64, p: &PartState, failed: NodeId, out: &mut Vec<CmAction>) {
        let healthy: Vec<NodeId> =
            p.config.secondaries.iter().copied().filter(|s| self.healthy(*s, p, false)).collect();
        let chosen = placement::longest_log(
            healthy
                .iter()
                .filter_map(|n| self.nodes.get(n).and_then(|s| s.report(p.config.gpid)).map(|r| (*n, r))),
        )
        .or_else(|| healthy.first().copied());
        let mut config = p.config.clone();
        match chosen {
            Some(c) => {
                config.primary = Some(c);
                config.secondaries = healthy.into_iter().filter(|s| *s != c).collect();
                self.set_config(now, config, format!("primary {failed} failed; promoted {c}"), out);
            }
            None => {
                config.primary = None;
                config.secondaries.clear();
                self.set_config(
                    now,
                    config,
                    format!(
                        "primary {failed} failed with no healthy secondary; waiting for the last members"
                    ),
                    out,
                );
            }
        }
    }

    /// Every replica was lost: once members of the last configuration report back, promote the
    /// one with the longest log. Never promotes anyone else: a replica that was not a member
    /// may lack committed mutations, and an empty one surely does.
    fn try_recover(&mut self, now: u64, gpid: Gpid, out: &mut Vec<CmAction>) {
        let Some(p) = self.parts.get(&gpid).cloned() else { return };
        let candidates: Vec<(NodeId, ReplicaReport)> = p
            .last_members
            .iter()
            .filter_map(|n| {
                let s = self.nodes.get(n).filter(|s| s.alive)?;
                let r = s.report(gpid)?;
                (r.status != ReplicaStatus::Error).then(|| (*n, r.clone()))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let since =
            *self.parts.get_mut(&gpid).map(|p| p.recovery_since_ms.get_or_insert(now)).expect("present");
        let everyone = candidates.len() == p.last_members.len();
        if !everyone && now.saturating_sub(since) < self.opts.recovery_wait_ms {
            return;
        }
        let Some(chosen) = placement::longest_log(candidates.iter().map(|(n, r)| (*n, r))) else { return };
        let mut config = p.config.clone();
        config.primary = Some(chosen);
        config.secondaries.clear();
        self.set_config(
            now,
            config,
            format!("recovered from {chosen}, the longest log among the last members"),
            out,
        );
    }

    /// A brand-new partition whose `CreateReplica` was lost: send it again to members that have
    /// not reported the partition, but only while nothing was written (ballot 1 and no member
    /// reports a decree), so that an empty replica can never stand in for one that had data.
    fn resend_creates(&self, p: &PartState, out: &mut Vec<CmAction>) {
        if p.config.ballot != Ballot(1) {
            return;
        }
        let reports: Vec<Option<&ReplicaReport>> =
            p.config.members().map(|m| self.nodes.get(&m).and_then(|s| s.report(p.config.gpid))).collect();
        if reports.iter().flatten().any(|r| r.last_prepared > tern_core::Decree::ZERO) {
            return;
        }
        for (m, r) in p.config.members().zip(reports) {
            if r.is_none() && self.is_alive(m) {
                out.push(CmAction::CreateReplica { to: m, config: p.config.clone() });
            }
        }
    }

    fn maybe_add_learner(&mut self, now: u64, p: &PartState, primary: NodeId, out: &mut Vec<CmAction>) {
        let members: Vec<NodeId> = p.config.members().collect();
        if members.len() >= p.replicas {
            return;
        }
        if p.pending_learner
            .is_some_and(|(_, since)| now.saturating_sub(since) < self.opts.learner_timeout_ms)
        {
            return;
        }
        let primary_ready = self
            .nodes
            .get(&primary)
            .and_then(|s| s.report(p.config.gpid))
            .is_some_and(|r| r.status == ReplicaStatus::Primary && r.ballot == p.config.ballot);
        if !primary_ready {
            return;
        }
        let Some(learner) = placement::pick_learner(&self.nodes, &self.load(), p.config.gpid, &members)
        else {
            return;
        };
        if let Some(ps) = self.parts.get_mut(&p.config.gpid) {
            ps.pending_learner = Some((learner, now));
        }
        out.push(CmAction::AddLearner { to: primary, config: p.config.clone(), learner });
    }
}
