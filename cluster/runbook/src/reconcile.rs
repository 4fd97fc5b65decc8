//! `tern dr reconcile` as pure decisions: after an unplanned failover, when the old active side
//! is back, ship exactly its unshipped tail into the promoted copy under last-writer-wins, say
//! what became of it, and make the table flow the new way. The executor
//! ([`crate::run_reconcile`]) observes, asks [`next_step`], carries the step out and repeats.
//!
//! The data path is the old side's own link `from -> to`, which the fence paused (the old
//! cluster's meta leader pauses a fenced table's links: `cluster/meta/src/drlease`): resumed, it
//! ships from the decree the promoted side confirmed, and since the fenced copy takes no client
//! writes and never ships what arrived by duplication, what it ships is exactly the tail. The
//! receiver judges each write by LWW and the link counts both kinds of conflict completely (its
//! journal keeps the last few).
//!
//! The steps, in the order a reconcile meets them:
//! 1. `Fence`: the old copy is standby below the promoted copy's epoch: raise it to that epoch.
//! 2. `Begin`: measure the tail (per partition of the old copy: the link's confirmed decree + 1
//!    to the committed decree the old side reports) and the link's conflict counts, and keep
//!    them in the promoted cluster's meta state: a re-run goes on from this baseline.
//! 3. `ResumeLink`: the paused link ships again.
//! 4. Wait until the link confirmed the tail's last decree in every partition.
//! 5. `ReverseLink`: a link `to -> from` ships (resumed, or added with a full sync when there is
//!    none: the promoted side's log does not hold what the old side lacks).
//! 6. `Finish`: the counts since the baseline and the tail's conflicts, kept with the baseline.
//!
//! Refused when no failover is recorded, the old side is unreachable, or it could still take
//! writes (active). A reconcile that finished answers `Done`: nothing to do.

use tern_client::admin::{LinkConflicts, LinkReport};
use tern_core::{
    ConflictKind, DrRole, FailoverRecord, LinkStatus, ReconcileConflict, ReconcilePartition,
    ReconcileSummary, Timetag, partition_of,
};

use crate::observe::{ClusterObs, Observed, wall_text};

/// A partition's progress report older than this is not trusted to measure the tail.
pub const FRESH_REPORT_MS: u64 = 10_000;

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The reconcile cannot go on; why, and what to do instead.
    Refuse { why: String },
    /// Nothing left to do (`summary` says what was done, when).
    Done { summary: String },
    /// Not yet: why.
    Wait { why: String },
    /// Make the old copy standby at `epoch`, if it is at `expect`.
    Fence { cluster: String, epoch: u64, expect: u64 },
    /// Keep the measured tail (unfinished summary) in `to`'s meta state.
    Begin { summary: ReconcileSummary },
    /// Resume link `link` of cluster `cluster` (the old side's, paused by the fence).
    ResumeLink { cluster: String, link: u64 },
    /// Make a link ship the table from `from` (the promoted side) back to `to`.
    ReverseLink { from: String, to: String, how: Reverse },
    /// The tail is shipped: count what became of it and keep the summary.
    Finish { summary: ReconcileSummary },
}

/// How the link in the new direction is made to ship.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reverse {
    Resume {
        link: u64,
    },
    /// No link: add one, with a full sync (the promoted side's log does not hold what the old
    /// side lacks).
    AddFullSync,
}

fn copy(c: &ClusterObs, table: &str) -> Option<(DrRole, u64)> {
    c.tables.iter().find(|t| t.name == table).map(|t| (t.role, t.epoch))
}

/// The failover of `table` to reconcile, and the cluster it promoted: the newest failover record
/// any reachable cluster keeps of a move into it. Without one (an automatic failover by a proxy
/// keeps none), a reconcile kept by the active copy's cluster at its epoch, or else a copy fenced
/// with its link to the active copy paused (the hold), stands for the failover: a record without
/// bounds (`unknown` says why).
pub fn last_failover<'a>(obs: &'a Observed, table: &str) -> Option<(&'a ClusterObs, FailoverRecord)> {
    let recorded = obs
        .clusters
        .iter()
        .filter(|c| c.unreachable.is_none())
        .flat_map(|c| c.failovers.iter().map(move |r| (c, r)))
        .filter(|(c, r)| r.table == table && r.to == c.name)
        .max_by_key(|(_, r)| (r.epoch, r.at_ms));
    if let Some((c, r)) = recorded {
        return Some((c, r.clone()));
    }
    let (active, epoch) = obs
        .clusters
        .iter()
        .filter(|c| c.unreachable.is_none())
        .filter_map(|c| copy(c, table).filter(|(r, _)| *r == DrRole::Active).map(|(_, e)| (c, e)))
        .max_by_key(|(_, e)| *e)?;
    let unrecorded = |from: &str| FailoverRecord {
        table: table.to_string(),
        from: from.to_string(),
        to: active.name.clone(),
        epoch,
        at_ms: obs.at_ms,
        exact: false,
        writes_end_before_ms: None,
        partitions: Vec::new(),
        took_ms: 0,
        unknown: Some(format!(
            "no failover record in {}: an automatic failover (a proxy) keeps none",
            active.name
        )),
    };
    if let Some(s) = active.reconciles.iter().find(|s| s.table == table && s.epoch == epoch) {
        return Some((active, unrecorded(&s.from)));
    }
    let held =
        obs.clusters.iter().filter(|c| c.name != active.name && c.unreachable.is_none()).find(|c| {
            matches!(copy(c, table), Some((DrRole::Standby, e)) if e <= epoch)
                && c.link_to(table, &active.name).is_some_and(|l| l.link.status == LinkStatus::Paused)
        })?;
    Some((active, unrecorded(&held.name)))
}

/// The next step of reconciling `table` (`from`: the old side the operator names, if any).
pub fn next_step(obs: &Observed, table: &str, from: Option<&str>) -> Step {
    let Some((newc, record)) = last_failover(obs, table) else {
        return Step::Refuse {
            why: format!(
                "nothing to reconcile: no reachable cluster keeps a failover record of table {table} (tern dr reconcile follows a tern dr failover)"
            ),
        };
    };
    if let Some(f) = from.filter(|f| *f != record.from) {
        return Step::Refuse {
            why: format!(
                "--from {f}: the last failover of {table} (epoch {}) was from {} to {}",
                record.epoch, record.from, record.to
            ),
        };
    }
    let (to, old_name) = (newc.name.as_str(), record.from.as_str());
    let kept = newc.reconciles.iter().find(|s| s.table == table && s.epoch == record.epoch);
    if let Some(s) = kept.filter(|s| s.finished()) {
        return Step::Done { summary: format!("nothing to reconcile: {}", done_text(s)) };
    }
    let new_epoch = match copy(newc, table) {
        Some((DrRole::Active, e)) if e >= record.epoch => e,
        Some((role, e)) => {
            return Step::Refuse {
                why: format!(
                    "{table} in {to} is {role} at epoch {e}, not the active copy the failover at epoch {} made: a later move changed it (tern dr status)",
                    record.epoch
                ),
            };
        }
        None => return Step::Refuse { why: format!("cluster {to} has no copy of table {table}") },
    };
    let Some(old) = obs.clusters.iter().find(|c| c.name == old_name) else {
        return Step::Refuse {
            why: format!(
                "cluster {old_name}, the failover's old side, is not one of the clusters given (add --cluster {old_name}=...)"
            ),
        };
    };
    if let Some(why) = &old.unreachable {
        return Step::Refuse {
            why: format!(
                "{old_name} is unreachable ({why}): reconcile ships its unshipped writes, so it needs {old_name} back"
            ),
        };
    }
    match copy(old, table) {
        None => return Step::Refuse { why: format!("cluster {old_name} has no copy of table {table}") },
        Some((DrRole::Active, e)) => {
            return Step::Refuse {
                why: format!(
                    "{table} in {old_name} is active at epoch {e}: it could still take writes. It fences itself when a DR voter tells it of the failover (its next lease renewal); or run tern dr failover --table {table} --to {to} --yes, which fences a returning old copy"
                ),
            };
        }
        Some((DrRole::Standby, e)) if e > new_epoch => {
            return Step::Refuse {
                why: format!(
                    "{table} in {old_name} is standby at epoch {e}, above the active copy's {new_epoch}: a later role change; see tern dr status"
                ),
            };
        }
        Some((DrRole::Standby, e)) if e < new_epoch => {
            return Step::Fence { cluster: old_name.to_string(), epoch: new_epoch, expect: e };
        }
        Some(_) => {}
    }
    let Some(link) = old.link_to(table, to) else {
        return Step::Refuse {
            why: format!(
                "{old_name} has no link shipping {table} to {to}: its tail cannot be shipped (read the keys from {old_name} with tern kv and write back what should survive)"
            ),
        };
    };
    let Some(summary) = kept else {
        return begin(obs, table, &record, link);
    };
    if summary.link != link.link.id {
        return Step::Refuse {
            why: format!(
                "the reconcile under way ships on link {} of {old_name}, which is gone (now link {}): its tail cannot be told any more",
                summary.link, link.link.id
            ),
        };
    }
    match link.link.status {
        LinkStatus::Paused => {
            return Step::ResumeLink { cluster: old_name.to_string(), link: link.link.id };
        }
        LinkStatus::Shipping => {}
        other => {
            return Step::Refuse {
                why: format!("link {} of {old_name} is {other}: it cannot ship the tail", link.link.id),
            };
        }
    }
    if let Some(why) = draining(summary, link) {
        return Step::Wait { why };
    }
    match newc.link_to(table, old_name) {
        None => {
            return Step::ReverseLink {
                from: to.to_string(),
                to: old_name.to_string(),
                how: Reverse::AddFullSync,
            };
        }
        Some(l) if l.link.status == LinkStatus::Paused => {
            return Step::ReverseLink {
                from: to.to_string(),
                to: old_name.to_string(),
                how: Reverse::Resume { link: l.link.id },
            };
        }
        Some(_) => {}
    }
    let mut done = summary.clone();
    count(&mut done, link);
    Step::Finish { summary: done }
}

/// Measures the tail from the old side's link reports; waits for a fresh report of each
/// partition.
fn begin(obs: &Observed, table: &str, record: &FailoverRecord, link: &LinkReport) -> Step {
    let n = link.link.confirmed.len();
    let mut partitions = Vec::with_capacity(n);
    for p in 0..n {
        let report = link.partitions.iter().find(|r| r.partition as usize == p);
        let Some(r) = report.filter(|r| r.reported_ms_ago.is_some_and(|age| age <= FRESH_REPORT_MS)) else {
            return Step::Wait {
                why: format!(
                    "partition {p} of {}'s link {} has not reported lately: its committed decree (the tail's end) is not known yet",
                    record.from, link.link.id
                ),
            };
        };
        let confirmed = if link.link.started(p as u32) { link.link.confirmed[p] } else { 0 };
        let decrees = (r.committed > confirmed).then_some((confirmed + 1, r.committed));
        partitions.push(ReconcilePartition { partition: p as u32, decrees });
    }
    Step::Begin {
        summary: ReconcileSummary {
            version: tern_core::reconcile::RECONCILE_SUMMARY_VERSION,
            table: table.to_string(),
            from: record.from.clone(),
            to: record.to.clone(),
            epoch: record.epoch,
            link: link.link.id,
            started_at_ms: obs.at_ms,
            partitions,
            base_conflicts: link.conflicts,
            base_overwritten: link.overwritten,
            base_dropped: link.conflicts_dropped,
            ..ReconcileSummary::default()
        },
    }
}

/// Why the link has not shipped the whole tail yet; `None`: it has.
fn draining(summary: &ReconcileSummary, link: &LinkReport) -> Option<String> {
    let behind: Vec<String> = summary
        .partitions
        .iter()
        .filter_map(|p| {
            let (_, last) = p.decrees?;
            let i = p.partition as usize;
            let confirmed = link.link.confirmed.get(i).copied().filter(|_| link.link.started(p.partition));
            if confirmed.is_some_and(|c| c >= last) {
                return None;
            }
            let err = link
                .partitions
                .iter()
                .find(|r| r.partition == p.partition)
                .and_then(|r| r.last_error.clone())
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default();
            Some(format!(
                "partition {}: confirmed {} of {last}{err}",
                p.partition,
                confirmed.map_or_else(|| "nothing".to_string(), |c| c.to_string())
            ))
        })
        .collect();
    (!behind.is_empty()).then(|| format!("shipping the tail on link {}: {}", summary.link, behind.join("; ")))
}

/// The link's counts since the baseline.
fn count(s: &mut ReconcileSummary, link: &LinkReport) {
    let conflicts = link.conflicts.saturating_sub(s.base_conflicts);
    s.overwritten = link.overwritten.saturating_sub(s.base_overwritten);
    s.lost = conflicts.saturating_sub(s.overwritten);
    s.dropped = link.conflicts_dropped.saturating_sub(s.base_dropped);
    s.shipped_puts = link.partitions.iter().map(|p| p.shipped_puts).sum();
}

/// The tail's conflicts in the link's journal: entries of partitions with a tail, whose tail
/// write is later than what the promoted side had applied of its partition (when the failover
/// knew it). Entries journaled before the baseline, had the link shipped some of the tail before
/// it was paused, are of the tail too.
pub fn tail_conflicts(
    s: &ReconcileSummary,
    record: &FailoverRecord,
    journal: &LinkConflicts,
) -> Vec<ReconcileConflict> {
    let n = s.partitions.len() as u32;
    let with_tail = |p: u32| s.partitions.iter().any(|q| q.partition == p && q.decrees.is_some());
    let after = |p: u32, t: Timetag| match record.partitions.iter().find(|l| l.partition == p) {
        Some(l) => l.applied_through_timetag.as_ref().map_or(true, |w| t.as_u64() > *w),
        None => true,
    };
    journal
        .recent
        .iter()
        .filter(|c| {
            n > 0
                && with_tail(partition_of(&c.hash_key, n).0)
                && after(partition_of(&c.hash_key, n).0, c.incoming)
        })
        .map(|c| ReconcileConflict {
            hash_key: c.hash_key.clone(),
            sort_key: c.sort_key.clone(),
            tail_timetag: c.incoming.as_u64(),
            other_timetag: c.stored.as_u64(),
            kind: c.kind,
        })
        .collect()
}

/// Adds the conflicts of `new` not in `into` yet (the journal is read again and again while the
/// tail ships, so that more than its bound can be listed).
pub fn merge_conflicts(into: &mut Vec<ReconcileConflict>, new: Vec<ReconcileConflict>) {
    for c in new {
        if !into.contains(&c) {
            into.push(c);
        }
    }
}

/// The finished summary: the counts (the link's since the baseline, at least what is listed) and
/// the first [`RECONCILE_LISTED_CONFLICTS`](tern_core::reconcile::RECONCILE_LISTED_CONFLICTS) of
/// `listed` (every conflict the journal showed while the tail shipped).
pub fn finish(
    mut s: ReconcileSummary,
    listed: &[ReconcileConflict],
    finished_at_ms: u64,
) -> ReconcileSummary {
    let kind_count = |k: ConflictKind| listed.iter().filter(|c| c.kind == k).count() as u64;
    s.lost = s.lost.max(kind_count(ConflictKind::ShippedLost));
    s.overwritten = s.overwritten.max(kind_count(ConflictKind::RemoteOverwritten));
    s.conflicts = listed.iter().take(tern_core::reconcile::RECONCILE_LISTED_CONFLICTS).cloned().collect();
    s.finished_at_ms = Some(finished_at_ms);
    s
}

/// Puts the link shipped, summed over the primaries that shipped them: each look adds what each
/// partition's primary counted since the last look (a new primary counts from zero). Puts an
/// old primary shipped after the last look before it stopped are missed: "at least".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShippedPuts {
    /// Per partition: (primary, its count at the last look).
    last: std::collections::BTreeMap<u32, (Option<tern_core::NodeId>, u64)>,
    pub total: u64,
}

impl ShippedPuts {
    pub fn look(&mut self, link: &LinkReport) {
        for p in &link.partitions {
            let now = (p.primary, p.shipped_puts);
            let added = match self.last.get(&p.partition) {
                Some((who, before)) if *who == p.primary && p.shipped_puts >= *before => {
                    p.shipped_puts - before
                }
                _ => p.shipped_puts,
            };
            self.total += added;
            self.last.insert(p.partition, now);
        }
    }
}

/// A finished reconcile in one line.
pub fn done_text(s: &ReconcileSummary) -> String {
    format!(
        "the failover of {} from {} to {} at epoch {} was reconciled at {}: a tail of {} decrees, {} writes shipped, {} applied, {} lost to newer writes in {}, {} of {}'s writes replaced",
        s.table,
        s.from,
        s.to,
        s.epoch,
        s.finished_at_ms.map_or_else(|| "?".to_string(), wall_text),
        s.tail_decrees(),
        s.shipped_puts,
        s.applied(),
        s.lost,
        s.to,
        s.overwritten,
        s.to
    )
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
