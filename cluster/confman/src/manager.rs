//! The configuration manager state machine.

use std::collections::{BTreeMap, BTreeSet};

use tern_core::{Ballot, ConfigChange, Gpid, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus, TableId};

use crate::balancer::{self, PartView, Step};
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
    /// Move every replica off `node` (it stays a member wherever it is until its replicas are
    /// copied elsewhere), and place nothing new on it.
    Decommission {
        node: NodeId,
    },
    /// Undo a decommission: `node` may receive replicas and primaries again.
    Recommission {
        node: NodeId,
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
    /// Ask a primary to bring a learner in; `reason` says why (for the operator's log).
    AddLearner { to: NodeId, config: PartitionConfig, learner: NodeId, reason: String },
    /// A configuration changed: the meta server persists it (with the members that recovery
    /// would wait for) before it carries out any later action.
    Changed {
        config: PartitionConfig,
        last_members: Vec<NodeId>,
        replicas: usize,
        demoted: Option<Demoted>,
        reason: String,
    },
}

/// A primary that a role switch turned into a secondary, and the ballot of that switch. Until it
/// is known to have stopped acting as primary (it reported at `ballot` or later, or its lease
/// expired), it must not be removed from the configuration: as long as it is a member, the new
/// primary cannot commit anything without its ack, which it gives only after stepping down, so
/// it cannot serve a stale read after a newer write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demoted {
    pub node: NodeId,
    pub ballot: Ballot,
}

/// A partition as persisted by the meta server, to rebuild a manager from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistedPartition {
    pub config: PartitionConfig,
    pub replicas: usize,
    pub last_members: Vec<NodeId>,
    pub demoted: Option<Demoted>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NodeState {
    pub alive: bool,
    /// Being drained: receives nothing new, its replicas are copied away.
    pub decommissioned: bool,
    pub last_beacon_ms: u64,
    /// The latest report per partition, and when it arrived.
    pub reports: BTreeMap<Gpid, (ReplicaReport, u64)>,
    /// A beacon from it reached this manager (a manager restored from the meta state has heard
    /// nothing yet: its `reports` say nothing about what the node holds).
    pub heard: bool,
}

impl NodeState {
    /// Alive and not decommissioned: may receive new replicas and primaries.
    pub fn serving(&self) -> bool {
        self.alive && !self.decommissioned
    }

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
    demoted: Option<Demoted>,
    /// A copy in flight: a learner on `to` joins, then the replica on `from` is removed.
    moving: Option<Move>,
}

#[derive(Clone, Copy, Debug)]
struct Move {
    from: NodeId,
    to: NodeId,
    since_ms: u64,
    /// `to` has been seen a member: if it is not one any more, it was removed (it failed) and
    /// the copy is over, not still learning.
    joined: bool,
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
    pub decommissioned: bool,
}

#[derive(Debug)]
pub struct ConfigManager {
    opts: CmOptions,
    nodes: BTreeMap<NodeId, NodeState>,
    parts: BTreeMap<Gpid, PartState>,
    last_balance_ms: Option<u64>,
}

impl ConfigManager {
    pub fn new(opts: CmOptions) -> ConfigManager {
        ConfigManager { opts, nodes: BTreeMap::new(), parts: BTreeMap::new(), last_balance_ms: None }
    }

    /// A manager for a meta server that just became leader, from the persisted partitions and the
    /// nodes known to exist. Liveness is not persisted: every known node starts alive as of
    /// `now`, so it is declared dead only after a full grace period without beacons to *this*
    /// leader. `nodes` are the known nodes and whether each is decommissioned.
    pub fn restore(
        opts: CmOptions,
        now: u64,
        partitions: Vec<PersistedPartition>,
        nodes: Vec<(NodeId, bool)>,
    ) -> ConfigManager {
        let mut cm = ConfigManager::new(opts);
        for (n, decommissioned) in nodes {
            cm.nodes.insert(
                n,
                NodeState {
                    alive: true,
                    decommissioned,
                    last_beacon_ms: now,
                    reports: BTreeMap::new(),
                    heard: false,
                },
            );
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
                    demoted: p.demoted,
                    moving: None,
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
                NodeSummary {
                    node: *n,
                    alive: s.alive,
                    primaries,
                    replicas,
                    decommissioned: s.decommissioned,
                }
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
            CmEvent::Decommission { node } => {
                self.nodes.entry(node).or_default().decommissioned = true;
            }
            CmEvent::Recommission { node } => {
                if let Some(n) = self.nodes.get_mut(&node) {
                    n.decommissioned = false;
                }
            }
            CmEvent::Tick => self.on_tick(now, out),
        }
    }

    /// Whether `node` is decommissioned as far as this manager knows.
    pub fn is_decommissioned(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.decommissioned)
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
                demoted: None,
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
                    demoted: None,
                    moving: None,
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
        state.heard = true;
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
            ConfigChange::RemoveSecondary(n) if config.is_secondary(n) && !self.may_remove(p, n) => {
                // A demoted primary that may still think it leads: keep it until it is known
                // to have stepped down. The primary will ask again.
                out.push(CmAction::ConfigUpdate { to: from, config });
                return;
            }
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
            demoted: p.demoted,
            reason,
        });
        for n in notify {
            out.push(CmAction::ConfigUpdate { to: n, config: config.clone() });
        }
    }

    fn on_tick(&mut self, now: u64, out: &mut Vec<CmAction>) {
        let grace = self.opts.grace_ms;
        let mut died = Vec::new();
        for (id, state) in self.nodes.iter_mut() {
            if state.alive && now.saturating_sub(state.last_beacon_ms) > grace {
                state.alive = false;
                died.push(*id);
            }
        }
        // A learner invited to a node that then died will not learn: forget the invitation, so
        // that the node is invited afresh as soon as it is back (not only after the learner
        // timeout), or another node now.
        if !died.is_empty() {
            for p in self.parts.values_mut() {
                if p.pending_learner.is_some_and(|(l, _)| died.contains(&l)) {
                    p.pending_learner = None;
                }
            }
        }
        let gpids: Vec<Gpid> = self.parts.keys().copied().collect();
        for gpid in gpids {
            self.check_partition(now, gpid, out);
            self.trim_surplus(now, gpid, out);
        }
        let interval = self.opts.balance_interval_ms;
        if interval > 0 && self.last_balance_ms.is_none_or(|at| now.saturating_sub(at) >= interval) {
            self.last_balance_ms = Some(now);
            self.balance(now, out);
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
        self.clear_demoted(&p);
        if p.moving.is_some() {
            return self.continue_move(now, gpid, out);
        }
        if p.pending_learner.is_some() && p.config.members().count() >= p.replicas {
            // Complete again (another learner, or the missing member, made it): whatever learner
            // was asked for is not waited for any more.
            if let Some(ps) = self.parts.get_mut(&gpid) {
                ps.pending_learner = None;
            }
        }
        self.maybe_add_learner(now, &p, primary, out);
    }

    /// The primary failed: promote the secondary with the longest log, or, with none left, wait
    /// for the last members to come back.
    fn replace_primary(&mut self, now: u64, p: &PartState, failed: NodeId, out: &mut Vec<CmAction>) {
        let healthy: Vec<NodeId> =
            p.config.secondaries.iter().copied().filter(|s| self.healthy(*s, p, false)).collect();
        // Only a secondary that reported the partition: one that never did may never have
        // received it (a lost create) and would lead a partition it does not hold (found by the
        // simulator). Without one, the members' reports decide (`try_recover`).
        let chosen = placement::longest_log(
            healthy
                .iter()
                .filter_map(|n| self.nodes.get(n).and_then(|s| s.report(p.config.gpid)).map(|r| (*n, r))),
        );
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
            return self.recreate_if_never_held(now, &p, out);
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

    /// Every last member is alive, has beaconed to this manager, and holds no replica of the
    /// partition at all: then nothing of it was ever committed (a commit needs every member of
    /// its configuration to log it, and the last members hold every committed entry), e.g. a
    /// new table whose servers all died before they opened it. Start it again, empty, on a last
    /// member, rather than wait forever for data that never existed.
    fn recreate_if_never_held(&mut self, now: u64, p: &PartState, out: &mut Vec<CmAction>) {
        let gpid = p.config.gpid;
        let never_held = !p.last_members.is_empty()
            && p.last_members
                .iter()
                .all(|n| self.nodes.get(n).is_some_and(|s| s.alive && s.heard && s.report(gpid).is_none()));
        if !never_held {
            return;
        }
        let since =
            *self.parts.get_mut(&gpid).map(|p| p.recovery_since_ms.get_or_insert(now)).expect("present");
        if now.saturating_sub(since) < self.opts.recovery_wait_ms {
            return;
        }
        let Some(&chosen) = p.last_members.iter().min() else { return };
        let mut config = p.config.clone();
        config.primary = Some(chosen);
        config.secondaries.clear();
        self.set_config(
            now,
            config,
            format!(
                "every last member is back without a replica of it (nothing was ever committed): recreated empty on {chosen}"
            ),
            out,
        );
        if let Some(config) = self.parts.get(&gpid).map(|p| p.config.clone()) {
            out.push(CmAction::CreateReplica { to: chosen, config });
        }
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
        let reason = format!("{} of {} replicas", members.len(), p.replicas);
        out.push(CmAction::AddLearner { to: primary, config: p.config.clone(), learner, reason });
    }

    /// Whether secondary `n` may be removed from `p`'s configuration: anyone but a demoted
    /// primary not yet known to have stepped down (see [`Demoted`]).
    fn may_remove(&self, p: &PartState, n: NodeId) -> bool {
        match p.demoted {
            Some(d) if d.node == n => self.stepped_down(p.config.gpid, d),
            _ => true,
        }
    }

    /// The demoted primary reported at the switch's ballot or later, or its lease expired.
    fn stepped_down(&self, gpid: Gpid, d: Demoted) -> bool {
        match self.nodes.get(&d.node) {
            Some(s) if s.alive => s.report(gpid).is_some_and(|r| r.ballot >= d.ballot),
            _ => true,
        }
    }

    fn clear_demoted(&mut self, p: &PartState) {
        if let Some(d) = p.demoted
            && (!p.config.is_member(d.node) || self.stepped_down(p.config.gpid, d))
            && let Some(ps) = self.parts.get_mut(&p.config.gpid)
        {
            ps.demoted = None;
        }
    }

    /// More members than the table's replica count (two learners were invited because the first
    /// seemed dead, or took longer than the learner timeout, and both caught up): once every
    /// member plays its role, remove one secondary, preferring a decommissioned node, then the
    /// most loaded. Never the primary: a decommissioned primary is switched away by the
    /// balancer once the count is right.
    fn trim_surplus(&mut self, now: u64, gpid: Gpid, out: &mut Vec<CmAction>) {
        let Some(p) = self.parts.get(&gpid) else { return };
        if p.config.members().count() <= p.replicas || !self.playing_roles(p) {
            return;
        }
        if p.moving.is_some() || p.demoted.is_some() {
            return;
        }
        let load = self.load();
        let Some(victim) =
            p.config.secondaries.iter().copied().filter(|s| self.may_remove(p, *s)).max_by_key(|s| {
                let decommissioned = self.nodes.get(s).is_some_and(|n| n.decommissioned);
                (decommissioned, load.get(s).copied().unwrap_or(0), *s)
            })
        else {
            return;
        };
        let mut config = p.config.clone();
        config.secondaries.retain(|s| *s != victim);
        let reason =
            format!("{} members for {} replicas: removed {victim}", p.config.members().count(), p.replicas);
        self.set_config(now, config, reason, out);
    }

    /// Every member is alive and reported its expected role at the current ballot.
    fn playing_roles(&self, p: &PartState) -> bool {
        let Some(primary) = p.config.primary else { return false };
        p.config.members().all(|m| {
            let want = if m == primary { ReplicaStatus::Primary } else { ReplicaStatus::Secondary };
            self.nodes
                .get(&m)
                .filter(|s| s.alive)
                .and_then(|s| s.report(p.config.gpid))
                .is_some_and(|r| r.ballot == p.config.ballot && r.status == want)
        })
    }

    /// Every member reported its expected role at the current ballot and nothing is in flight:
    /// the balancer may touch the partition.
    fn settled(&self, p: &PartState) -> bool {
        if p.moving.is_some()
            || p.demoted.is_some()
            || p.pending_learner.is_some()
            || p.config.members().count() != p.replicas
        {
            return false;
        }
        self.playing_roles(p)
    }

    /// What the balancer still has to do, if anything: a copy or switch in flight, or a step
    /// it would plan with every partition settled. `None` when balancing is off or done.
    pub fn balancing_pending(&self) -> Option<String> {
        if self.opts.balance_interval_ms == 0 {
            return None;
        }
        for p in self.parts.values() {
            if let Some(m) = p.moving {
                return Some(format!("{}: copying the replica on {} to {}", p.config.gpid, m.from, m.to));
            }
            if let Some(d) = p.demoted {
                return Some(format!(
                    "{}: waiting for former primary {} to step down",
                    p.config.gpid, d.node
                ));
            }
        }
        let serving: BTreeSet<NodeId> =
            self.nodes.iter().filter(|(_, s)| s.serving()).map(|(n, _)| *n).collect();
        let draining: BTreeSet<NodeId> =
            self.nodes.iter().filter(|(_, s)| s.decommissioned).map(|(n, _)| *n).collect();
        let views: Vec<PartView<'_>> =
            self.parts.values().map(|p| PartView { config: &p.config, settled: true }).collect();
        balancer::plan(&views, &serving, &draining, self.opts.max_moves).first().map(|s| s.to_string())
    }

    /// Plans one balancing round and starts its steps.
    fn balance(&mut self, now: u64, out: &mut Vec<CmAction>) {
        let serving: BTreeSet<NodeId> =
            self.nodes.iter().filter(|(_, s)| s.serving()).map(|(n, _)| *n).collect();
        let draining: BTreeSet<NodeId> =
            self.nodes.iter().filter(|(_, s)| s.decommissioned).map(|(n, _)| *n).collect();
        let in_flight = self.parts.values().filter(|p| p.moving.is_some()).count();
        let moves_free = self.opts.max_moves.saturating_sub(in_flight);
        let steps = {
            let views: Vec<PartView<'_>> = self
                .parts
                .values()
                .map(|p| PartView { config: &p.config, settled: self.settled(p) })
                .collect();
            balancer::plan(&views, &serving, &draining, moves_free)
        };
        for step in steps {
            match step {
                Step::Switch { gpid, to, reason } => self.switch_primary(now, gpid, to, reason, out),
                Step::Move { gpid, from, to, reason } => self.start_move(now, gpid, from, to, reason, out),
            }
        }
    }

    /// A role switch: secondary `to` becomes the primary and the primary a secondary, at the
    /// next ballot. `to` acked every committed mutation (commits need every secondary), so
    /// nothing committed is lost; the old primary stays a member (see [`Demoted`]).
    fn switch_primary(&mut self, now: u64, gpid: Gpid, to: NodeId, reason: String, out: &mut Vec<CmAction>) {
        let Some(p) = self.parts.get_mut(&gpid) else { return };
        let Some(old) = p.config.primary.filter(|_| p.config.is_secondary(to)) else { return };
        let mut config = p.config.clone();
        config.primary = Some(to);
        config.secondaries.retain(|s| *s != to);
        config.secondaries.insert(0, old);
        p.demoted = Some(Demoted { node: old, ballot: p.config.ballot.next() });
        self.set_config(now, config, format!("{reason}: primary {old} -> {to}"), out);
    }

    fn start_move(
        &mut self,
        now: u64,
        gpid: Gpid,
        from: NodeId,
        to: NodeId,
        reason: String,
        out: &mut Vec<CmAction>,
    ) {
        let Some(p) = self.parts.get_mut(&gpid) else { return };
        let Some(primary) = p.config.primary else { return };
        if p.config.is_member(to) || !p.config.is_member(from) {
            return;
        }
        p.moving = Some(Move { from, to, since_ms: now, joined: false });
        p.pending_learner = Some((to, now));
        out.push(CmAction::AddLearner { to: primary, config: p.config.clone(), learner: to, reason });
    }

    /// A copy in flight: once the learner on `to` is a secondary, remove `from` (switching the
    /// primary away from it first if needed); give up after the learner timeout.
    fn continue_move(&mut self, now: u64, gpid: Gpid, out: &mut Vec<CmAction>) {
        let Some(p) = self.parts.get(&gpid).cloned() else { return };
        let Some(m) = p.moving else { return };
        let done = |cm: &mut ConfigManager| {
            if let Some(ps) = cm.parts.get_mut(&gpid) {
                ps.moving = None;
                if ps.pending_learner.is_some_and(|(l, _)| l == m.to) {
                    ps.pending_learner = None;
                }
            }
        };
        if !p.config.is_member(m.from) {
            return done(self);
        }
        if !p.config.is_member(m.to) {
            if m.joined || now.saturating_sub(m.since_ms) > self.opts.learner_timeout_ms {
                done(self);
            }
            return;
        }
        if !m.joined
            && let Some(mv) = self.parts.get_mut(&gpid).and_then(|ps| ps.moving.as_mut())
        {
            mv.joined = true;
        }
        if p.config.primary == Some(m.from) {
            // The new replica leads first; `from` is removed once it has stepped down.
            let ready = self
                .nodes
                .get(&m.to)
                .and_then(|s| s.report(gpid))
                .is_some_and(|r| r.ballot == p.config.ballot && r.status == ReplicaStatus::Secondary);
            if ready && p.demoted.is_none() {
                self.switch_primary(now, gpid, m.to, "balancer: hand over before removal".into(), out);
            }
            return;
        }
        if !self.may_remove(&p, m.from) {
            return;
        }
        let mut config = p.config.clone();
        config.secondaries.retain(|s| *s != m.from);
        done(self);
        self.set_config(
            now,
            config,
            format!("balancer: copied {} -> {}, removed the original", m.from, m.to),
            out,
        );
    }
}
