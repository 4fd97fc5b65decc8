//! Duplication links in the replicated state: what a link is, its status machine, and how
//! shipping progress reported by primaries is recorded. Applied identically on every meta
//! server; every decision that depends on a local setting (the journal bound) travels in the
//! command.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tern_core::Decree;
pub use tern_core::{ConflictKind, LinkChange, LinkMode, LinkStatus};
use tern_duplication::LinkProgress;

use super::{MetaState, Response, TableStatus};

/// A conflict between a write shipped on the link and a record of the remote side: the shipped
/// write lost, or it replaced a record the remote cluster had written itself (`kind`). The
/// origin cluster is the low bits of each timetag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    pub hash_key: Vec<u8>,
    pub sort_key: Vec<u8>,
    /// The shipped write's timetag.
    pub incoming: u64,
    /// The timetag of the record the remote side had stored.
    pub stored: u64,
    /// Absent in records written before the second kind existed, which were all of the first.
    #[serde(default, skip_serializing_if = "is_shipped_lost")]
    pub kind: ConflictKind,
}

fn is_shipped_lost(k: &ConflictKind) -> bool {
    *k == ConflictKind::ShippedLost
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where the running counts reported by a partition's primary stood when last recorded:
/// reports carry counts since that primary took over (journal drops: since its server started),
/// so only the growth from the same node is new. Fields added after the first version are left
/// out of the serialized form while 0, so older state reads and writes back unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictCounter {
    pub node: u64,
    /// Conflicts of both kinds.
    pub reported: u64,
    /// Every conflict recorded for this partition.
    pub total: u64,
    /// Of the conflicts, remote records that shipped writes replaced.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overwritten_reported: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overwritten_total: u64,
    /// Journal entries the reporting server dropped before a beacon could carry them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_reported: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_total: u64,
}

/// The growth of a running count from `before` (as `before_node` last reported it) to `now`
/// (as `node` reports it): another node, or a count that went back (the same one restarted),
/// started from zero.
fn grown(before_node: u64, before: u64, node: u64, now: u64) -> u64 {
    if before_node == node && now >= before { now - before } else { now }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub id: u64,
    /// The source table's id (links outlive the table's name: a dropped and purged table's
    /// links stay until removed).
    pub table: u32,
    pub table_name: String,
    pub remote_cluster: String,
    pub remote_cluster_id: u8,
    pub remote_metas: Vec<String>,
    pub remote_table: String,
    pub mode: LinkMode,
    pub status: LinkStatus,
    /// 0 = unlimited.
    pub max_bytes_per_sec: u64,
    /// Per source partition: every write through this decree is acknowledged by the remote
    /// side. Meaningless until `started`.
    pub confirmed: Vec<u64>,
    /// Per source partition: whether a primary has started shipping (and reported).
    pub started: Vec<bool>,
    pub created_at_ms: u64,
    /// Conflicts of both kinds.
    pub conflicts_total: u64,
    /// Of `conflicts_total`, remote records that shipped writes replaced.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overwritten_total: u64,
    /// Journal entries dropped by servers before a beacon could carry them (the conflicts are
    /// counted all the same).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conflicts_dropped: u64,
    /// The last conflicts, oldest first, at most the journal bound of the command that added
    /// the newest.
    #[serde(default)]
    pub recent_conflicts: VecDeque<ConflictRecord>,
    #[serde(default)]
    pub partition_conflicts: Vec<ConflictCounter>,
    /// Per source partition: the replicated-up-to (a timetag of the partition's clock) recorded
    /// with `confirmed` (empty in links recorded before it existed: zero).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicated_up_to: Vec<u64>,
    /// The backup the remote table was seeded from (`tern dup add --seed-from-backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_backup: Option<String>,
}

/// Where a link seeded from a backup starts: the backup, and per source partition its decree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSeed {
    pub backup: String,
    pub decrees: Vec<u64>,
}

/// What `AddLink` carries: everything but the id and the per-partition progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLink {
    pub table: u32,
    pub table_name: String,
    pub remote_cluster: String,
    pub remote_cluster_id: u8,
    pub remote_metas: Vec<String>,
    pub remote_table: String,
    pub mode: LinkMode,
    pub status: LinkStatus,
    pub max_bytes_per_sec: u64,
    pub created_at_ms: u64,
}

/// One partition's progress on one link, from a report the leader accepted (sent by the
/// partition's current primary at its current ballot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressUpdate {
    pub link: u64,
    pub partition: u32,
    /// The reporting primary.
    pub node: u64,
    pub confirmed: u64,
    /// Conflicts (both kinds) counted by the reporting primary since it took over.
    pub conflicts: u64,
    /// Of those, remote records that shipped writes replaced.
    #[serde(default)]
    pub overwritten: u64,
    /// Journal entries its server dropped before they could be reported, since it started.
    #[serde(default)]
    pub conflicts_dropped: u64,
    /// Conflicts new since its previous report, oldest first: journal entries (the counts above
    /// are what add to the totals).
    pub new_conflicts: Vec<ConflictRecord>,
    /// The replicated-up-to that goes with `confirmed` (zero: not said).
    #[serde(default)]
    pub replicated_up_to: u64,
}

impl LinkRecord {
    /// Link `id` as `new` describes it, from a table of `partitions` partitions: nothing
    /// started, confirmed or in conflict yet.
    pub fn new(id: u64, new: &NewLink, partitions: u32) -> LinkRecord {
        let n = partitions as usize;
        LinkRecord {
            id,
            table: new.table,
            table_name: new.table_name.clone(),
            remote_cluster: new.remote_cluster.clone(),
            remote_cluster_id: new.remote_cluster_id,
            remote_metas: new.remote_metas.clone(),
            remote_table: new.remote_table.clone(),
            mode: new.mode,
            status: new.status,
            max_bytes_per_sec: new.max_bytes_per_sec,
            confirmed: vec![0; n],
            started: vec![false; n],
            created_at_ms: new.created_at_ms,
            conflicts_total: 0,
            overwritten_total: 0,
            conflicts_dropped: 0,
            recent_conflicts: VecDeque::new(),
            partition_conflicts: vec![ConflictCounter::default(); n],
            replicated_up_to: vec![0; n],
            seed_backup: None,
        }
    }

    /// Link `id` seeded from a backup: added paused (it ships once the remote table holds the
    /// backup, `tern dup add --seed-from-backup` resumes it), every partition started with the
    /// backup's decree confirmed, so every replica holds its log from the decree after it on
    /// (invariant 11 of docs/duplication.md) and shipping resumes there.
    pub fn seeded(id: u64, new: &NewLink, partitions: u32, seed: &LinkSeed) -> LinkRecord {
        LinkRecord {
            status: LinkStatus::Paused,
            confirmed: seed.decrees.clone(),
            started: vec![true; partitions as usize],
            seed_backup: Some(seed.backup.clone()),
            ..LinkRecord::new(id, new, partitions)
        }
    }

    pub fn partition_count(&self) -> usize {
        self.confirmed.len()
    }

    /// The replicated-up-to recorded for partition `p` (zero when none).
    pub fn replicated_up_to(&self, p: usize) -> u64 {
        self.replicated_up_to.get(p).copied().unwrap_or(0)
    }

    /// What `update` adds to the partition's counts: (conflicts, overwritten, dropped).
    fn counts_added(&self, update: &ProgressUpdate) -> (u64, u64, u64) {
        let c = self.partition_conflicts.get(update.partition as usize).copied().unwrap_or_default();
        let (was, now) = (c.node, update.node);
        (
            grown(was, c.reported, now, update.conflicts),
            grown(was, c.overwritten_reported, now, update.overwritten),
            grown(was, c.dropped_reported, now, update.conflicts_dropped),
        )
    }

    /// Whether recording `update` would change anything (the leader writes only then).
    pub fn progress_changes(&self, update: &ProgressUpdate) -> bool {
        let p = update.partition as usize;
        if self.status == LinkStatus::Removed || p >= self.partition_count() {
            return false;
        }
        let c = self.partition_conflicts.get(p).copied().unwrap_or_default();
        !self.started[p]
            || update.confirmed > self.confirmed[p]
            || update.replicated_up_to > self.replicated_up_to(p)
            || !update.new_conflicts.is_empty()
            || c.node != update.node
            || c.reported != update.conflicts
            || c.overwritten_reported != update.overwritten
            || c.dropped_reported != update.conflicts_dropped
    }

    fn record(&mut self, update: &ProgressUpdate, journal: usize) {
        let p = update.partition as usize;
        if self.status == LinkStatus::Removed || p >= self.partition_count() {
            return;
        }
        let now = LinkProgress { started: self.started[p], confirmed: Decree(self.confirmed[p]) };
        let next = now.after_report(Decree(update.confirmed));
        (self.started[p], self.confirmed[p]) = (next.started, next.confirmed.0);
        if self.replicated_up_to.len() < self.partition_count() {
            self.replicated_up_to.resize(self.partition_count(), 0);
        }
        self.replicated_up_to[p] = self.replicated_up_to[p].max(update.replicated_up_to);
        // A full sync is over once every partition has copied its records and ships its log.
        if self.status == LinkStatus::SyncingCheckpoint && self.started.iter().all(|s| *s) {
            self.status = LinkStatus::Shipping;
        }
        let (added, overwritten, dropped) = self.counts_added(update);
        if self.partition_conflicts.len() < self.partition_count() {
            self.partition_conflicts.resize(self.partition_count(), ConflictCounter::default());
        }
        let c = &mut self.partition_conflicts[p];
        c.node = update.node;
        c.reported = update.conflicts;
        c.total += added;
        c.overwritten_reported = update.overwritten;
        c.overwritten_total += overwritten;
        c.dropped_reported = update.conflicts_dropped;
        c.dropped_total += dropped;
        self.conflicts_total += added;
        self.overwritten_total += overwritten;
        self.conflicts_dropped += dropped;
        self.recent_conflicts.extend(update.new_conflicts.iter().cloned());
        while self.recent_conflicts.len() > journal {
            self.recent_conflicts.pop_front();
        }
    }
}

impl MetaState {
    /// The link from `table` (by id) to `remote_cluster`'s `remote_table` that is not removed.
    pub fn live_link_to(&self, table: u32, remote_cluster: &str, remote_table: &str) -> Option<&LinkRecord> {
        self.links.values().find(|l| {
            l.status != LinkStatus::Removed
                && l.table == table
                && l.remote_cluster == remote_cluster
                && l.remote_table == remote_table
        })
    }

    /// `"serving"`, `"dropped"` or `"purged"`: what became of a link's source table.
    pub fn link_table_status(&self, link: &LinkRecord) -> &'static str {
        match self.tables.get(&link.table).map(|t| &t.status) {
            Some(TableStatus::Serving) => "serving",
            Some(TableStatus::Dropped { .. }) => "dropped",
            None => "purged",
        }
    }

    pub(super) fn add_link(&mut self, new: &NewLink) -> Response {
        let partitions = match self.tables.get(&new.table) {
            Some(t) if t.status == TableStatus::Serving && t.name == new.table_name => t.partitions,
            _ => return Response::Refused(format!("no serving table {:?}", new.table_name)),
        };
        if let Some(l) = self.live_link_to(new.table, &new.remote_cluster, &new.remote_table) {
            return Response::Refused(format!(
                "table {:?} already has link {} to table {:?} of cluster {} ({})",
                new.table_name, l.id, l.remote_table, l.remote_cluster, l.status
            ));
        }
        self.next_link_id += 1;
        let link = LinkRecord::new(self.next_link_id, new, partitions);
        self.links.insert(link.id, link.clone());
        Response::Link(Box::new(link))
    }

    /// Adds a link seeded from a backup ([`LinkRecord::seeded`]); refused unless the seed
    /// names a decree for every partition of the table.
    pub(super) fn add_seeded_link(&mut self, new: &NewLink, seed: &LinkSeed) -> Response {
        let partitions = match self.tables.get(&new.table) {
            Some(t) if t.status == TableStatus::Serving && t.name == new.table_name => t.partitions,
            _ => return Response::Refused(format!("no serving table {:?}", new.table_name)),
        };
        if seed.decrees.len() != partitions as usize {
            return Response::Refused(format!(
                "backup {} has {} partitions; table {:?} has {partitions}: it is a backup of another table",
                seed.backup,
                seed.decrees.len(),
                new.table_name
            ));
        }
        if let Some(l) = self.live_link_to(new.table, &new.remote_cluster, &new.remote_table) {
            return Response::Refused(format!(
                "table {:?} already has link {} to table {:?} of cluster {} ({})",
                new.table_name, l.id, l.remote_table, l.remote_cluster, l.status
            ));
        }
        self.next_link_id += 1;
        let link = LinkRecord::seeded(self.next_link_id, new, partitions, seed);
        self.links.insert(link.id, link.clone());
        Response::Link(Box::new(link))
    }

    pub(super) fn change_link(&mut self, id: u64, change: LinkChange) -> Response {
        let Some(link) = self.links.get_mut(&id) else {
            return Response::Refused(format!("no duplication link {id} (see `tern dup list`)"));
        };
        let next = match change {
            LinkChange::Pause => LinkStatus::Paused,
            LinkChange::Resume => LinkStatus::Shipping,
            LinkChange::Remove => LinkStatus::Removed,
            LinkChange::SetThrottle { .. } => link.status,
        };
        if link.status == LinkStatus::Removed && change != LinkChange::Remove {
            return Response::Refused(format!(
                "link {id} is removed, which is final: add a new link instead"
            ));
        }
        // `init → shipping` is the system's step (after a checkpoint), not an operator's resume.
        let resumes_unpaused =
            change == LinkChange::Resume && !matches!(link.status, LinkStatus::Paused | LinkStatus::Shipping);
        if resumes_unpaused || !link.status.can_become(next) {
            return Response::Refused(format!(
                "link {id} is {}: it cannot become {} (only a shipping link can be paused, only a paused one resumed)",
                link.status, next
            ));
        }
        link.status = next;
        if let LinkChange::SetThrottle { max_bytes_per_sec } = change {
            link.max_bytes_per_sec = max_bytes_per_sec;
        }
        Response::Link(Box::new(link.clone()))
    }

    pub(super) fn record_dup_progress(&mut self, updates: &[ProgressUpdate], journal: u32) -> Response {
        for u in updates {
            if let Some(link) = self.links.get_mut(&u.link) {
                link.record(u, journal as usize);
            }
        }
        Response::Done
    }
}

#[cfg(test)]
#[path = "dup_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "seed_tests.rs"]
mod seed_tests;
