//! `tern dr failover` as pure decisions: an unplanned move of a table's active role to cluster
//! `to` when the active cluster is lost. The executor ([`crate::run_failover`]) observes, asks
//! [`next_step`] with the promises it has collected and the time, carries the step out and
//! repeats; [`loss_report`] says what the old side may have lost.
//!
//! The steps, in the order a failover meets them:
//! 1. `AskPromises`: a majority-intersecting set of DR voters promise that no copy of the table
//!    below the new epoch gets the DR lease any more (the proxy's rule and tally,
//!    `tern_drlease::tally_promises`).
//! 2. `WaitLease`: until the old copy's lease has certainly expired
//!    (`DrRules::lease_expiry`): from then on the old side refuses client writes, also if it
//!    comes back. This is the fencing.
//! 3. `Promote`: `to` becomes active at the highest known epoch + 1 (compare-and-set): known
//!    from the reachable copies and from the voters' answers (the epoch they last granted the
//!    old copy's lease at; promises at or below it would not stop that lease, so they are asked
//!    again above it).
//! 4. `Fence`: a reachable old copy still active below that epoch is made standby.
//!
//! Refused when the old active copy is reachable and healthy (a switchover loses nothing), unless
//! forced; when the old side's lease cannot be waited for (no voters, or a lease not used),
//! unless the operator says `--unsafe-without-lease`.

use tern_client::admin::IncomingLinkReport;
use tern_core::{DrRole, FailoverRecord, PartitionLoss};
use tern_drlease::{DrRules, LeaseCheck, LeaseSeen, Moment, Promise, lease_check};

use crate::observe::{ClusterObs, Observed};

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<M> {
    /// The failover cannot go on; why, and what to do instead.
    Refuse { why: String },
    /// Ask every voter to promise no lease for a copy of the table below `epoch` (replacing
    /// `old`'s copy).
    AskPromises { old: String, epoch: u64 },
    /// The old copy's lease may still run until `until`.
    WaitLease { until: M, why: String },
    /// Make `cluster`'s copy active at `epoch`, if it is at `expect`. `note`: an operator's
    /// override that allowed it, if one did.
    Promote { cluster: String, epoch: u64, expect: u64, note: Option<String> },
    /// Make a returning old copy standby at `epoch`, if it is at `expect`.
    Fence { cluster: String, epoch: u64, expect: u64 },
    /// Nothing left to do.
    Done { summary: String },
}

/// The operator's choices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailoverRules {
    /// Fail over even though the old active copy is reachable and healthy.
    pub force: bool,
    /// Promote without waiting for the old copy's DR lease (a split brain is possible).
    pub unsafe_without_lease: bool,
    /// The DR voters' names (the promoter's set, sorted).
    pub voters: Vec<String>,
}

/// The promises collected so far: for which epoch, and from whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promised<M> {
    pub epoch: u64,
    pub promises: Vec<Promise<M>>,
    /// Why the other voters did not promise.
    pub not: Vec<String>,
    /// The highest epoch a voter last granted the old copy a lease at
    /// (`tern_drlease::granted_epoch`): the new epoch must be above it.
    pub granted_epoch: Option<u64>,
}

fn copy(c: &ClusterObs, table: &str) -> Option<(DrRole, u64)> {
    c.tables.iter().find(|t| t.name == table).map(|t| (t.role, t.epoch))
}

/// The old side of a failover to `to`: the reachable copy active at the highest epoch outside
/// `to`, or else the one unreachable cluster. `Err`: why it cannot be told.
pub fn old_side<'a>(obs: &'a Observed, table: &str, to: &str) -> Result<&'a ClusterObs, String> {
    old_side_promised(obs, table, to, None)
}

/// A reachable copy outside `to` that is standby at exactly `promised_epoch`: the old active
/// copy, which made itself standby at that epoch when a DR voter told it of the promises (a
/// forced failover while the old side is reachable).
fn fenced_by_promises<'a>(
    obs: &'a Observed,
    table: &str,
    to: &str,
    promised_epoch: u64,
) -> Option<&'a ClusterObs> {
    obs.clusters
        .iter()
        .filter(|c| c.name != to && c.unreachable.is_none())
        .find(|c| copy(c, table) == Some((DrRole::Standby, promised_epoch)))
}

/// [`old_side`] during a failover that collected promises for `promised_epoch`: a reachable old
/// copy that fenced itself at that epoch is still the old side.
pub fn old_side_promised<'a>(
    obs: &'a Observed,
    table: &str,
    to: &str,
    promised_epoch: Option<u64>,
) -> Result<&'a ClusterObs, String> {
    let others: Vec<&ClusterObs> = obs.clusters.iter().filter(|c| c.name != to).collect();
    if let Some(active) = others
        .iter()
        .filter_map(|c| copy(c, table).filter(|(r, _)| *r == DrRole::Active).map(|(_, e)| (*c, e)))
        .max_by_key(|(_, e)| *e)
    {
        return Ok(active.0);
    }
    if let Some(fenced) = promised_epoch.and_then(|e| fenced_by_promises(obs, table, to, e)) {
        return Ok(fenced);
    }
    let lost: Vec<&&ClusterObs> = others.iter().filter(|c| c.unreachable.is_some()).collect();
    match lost.as_slice() {
        [one] => Ok(**one),
        [] => Err(format!(
            "no cluster other than {to} has {table} active and none is unreachable: there is no lost active copy to replace (tern dr status says where it is; for a planned move use tern dr switchover)"
        )),
        many => Err(format!(
            "several clusters are unreachable ({}): give only the lost active one and {to} with --cluster",
            many.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Whether a reachable active copy still serves: its cluster holds the table's DR lease, or
/// runs without one (then nothing stops it).
fn serves(old: &ClusterObs, table: &str) -> Option<String> {
    if old.unreachable.is_some() {
        return None;
    }
    let (role, epoch) = copy(old, table)?;
    if role != DrRole::Active {
        return None;
    }
    match &old.lease {
        Ok(l) if !l.used => {
            Some(format!("{} is reachable and {table} is active there (no DR lease)", old.name))
        }
        Ok(l) if l.waiver.is_some() => {
            Some(format!("{} is reachable and {table} is active there (DR lease waived)", old.name))
        }
        Ok(l) => {
            l.tables.iter().find(|t| t.table == table && t.epoch == epoch && t.lease_left_ms > 0).map(|t| {
                format!(
                    "{} is reachable and {table} is active there, holding its DR lease ({} ms left)",
                    old.name, t.lease_left_ms
                )
            })
        }
        Err(_) => Some(format!("{} is reachable and {table} is active there", old.name)),
    }
}

/// The next step of failing `table` over to `to`, at `now`, with the promises collected so far.
pub fn next_step<M: Moment>(
    obs: &Observed,
    table: &str,
    to: &str,
    rules: &FailoverRules,
    promised: Option<&Promised<M>>,
    now: M,
) -> Step<M> {
    let Some(target) = obs.clusters.iter().find(|c| c.name == to) else {
        return Step::Refuse { why: format!("{to} is not one of the clusters given") };
    };
    if let Some(why) = &target.unreachable {
        return Step::Refuse { why: format!("cluster {to} is unreachable ({why}): it cannot be promoted") };
    }
    let Some((to_role, to_epoch)) = copy(target, table) else {
        return Step::Refuse { why: format!("cluster {to} has no copy of table {table}") };
    };
    let top = obs.clusters.iter().filter_map(|c| copy(c, table)).map(|(_, e)| e).max().unwrap_or(0);
    // Promoted already (this run or an earlier one): fence a reachable old copy, then done.
    if to_role == DrRole::Active && to_epoch == top {
        let stale = obs
            .clusters
            .iter()
            .filter(|c| c.name != to)
            .filter_map(|c| copy(c, table).map(|(r, e)| (c, r, e)))
            .find(|(_, r, e)| *r == DrRole::Active && *e < to_epoch);
        if let Some((c, _, e)) = stale {
            return Step::Fence { cluster: c.name.clone(), epoch: to_epoch, expect: e };
        }
        return Step::Done { summary: format!("{table} is active in {to} at epoch {to_epoch}") };
    }
    let promised_epoch = promised.map(|p| p.epoch);
    let old = match old_side_promised(obs, table, to, promised_epoch) {
        Ok(old) => old,
        Err(why) => return Step::Refuse { why },
    };
    // The old copy fenced itself at the promised epoch: the promises stand at that epoch (asking
    // above it would not find the old side active any more, and it refuses writes already).
    let self_fenced = promised_epoch.filter(|e| copy(old, table) == Some((DrRole::Standby, *e)));
    if let Some(why) = serves(old, table)
        && !rules.force
    {
        return Step::Refuse {
            why: format!(
                "{why}: use tern dr switchover --table {table} --to {to} (it loses nothing); --force fails over anyway"
            ),
        };
    }
    // Above every copy seen, and above the epoch the voters last granted the old copy at (an
    // unreachable old copy may be at an epoch no reachable cluster shows).
    let epoch = match self_fenced {
        Some(e) => e,
        None => top.max(promised.and_then(|p| p.granted_epoch).unwrap_or(0)) + 1,
    };
    // The old copy's lease as its cluster reports it; unreachable, as the target reports its
    // own (every cluster, proxy and witness is given the same --dr-voters).
    let seen = match (&old.lease, &target.lease) {
        (Ok(l), _) | (Err(_), Ok(l)) => Some(LeaseSeen {
            used: l.used,
            voters: l.voters.clone(),
            waived: l.waiver.is_some() && old.unreachable.is_none(),
        }),
        (Err(_), Err(_)) => None,
    };
    match lease_check(&old.name, seen.as_ref(), &rules.voters, rules.unsafe_without_lease) {
        LeaseCheck::Refuse(why) => {
            return Step::Refuse { why: why.replace("this proxy", "this command") };
        }
        LeaseCheck::Go(note) => {
            return Step::Promote { cluster: to.to_string(), epoch, expect: to_epoch, note: Some(note) };
        }
        LeaseCheck::AskPromises => {}
    }
    let Some(p) = promised.filter(|p| p.epoch == epoch) else {
        return Step::AskPromises { old: old.name.clone(), epoch };
    };
    match DrRules::default().lease_expiry(&p.promises, rules.voters.len()) {
        Err(why) => Step::Refuse {
            why: format!(
                "{why} ({}); run it again when the voters answer",
                if p.not.is_empty() { "no other answer".to_string() } else { p.not.join("; ") }
            ),
        },
        Ok(until) if now < until => Step::WaitLease {
            until,
            why: format!(
                "{} of {} DR voters ({}) promised no lease below epoch {epoch}; {}'s last lease certainly expires in {} ms",
                p.promises.len(),
                rules.voters.len(),
                p.promises.iter().map(|p| p.voter.as_str()).collect::<Vec<_>>().join(", "),
                old.name,
                until.since(now).as_millis()
            ),
        },
        Ok(_) => Step::Promote { cluster: to.to_string(), epoch, expect: to_epoch, note: None },
    }
}

/// What the old side may have lost, per partition, when `to` is promoted at `epoch`.
///
/// Reachable old side: from its link to `to` (committed decree vs. confirmed, and the timetag
/// its writes are applied through remotely); exact when every partition's report was taken at
/// or after `writes_end_before_ms` (nothing was written after it), else each decree range is a
/// lower bound and says so. Unreachable: bounds from what `to` knows: per source partition of
/// the incoming link, the timetag its writes are applied through; the decrees are unknown.
/// Never 0 for an unknown.
pub fn loss_report(
    obs: &Observed,
    table: &str,
    old: &str,
    to: &str,
    epoch: u64,
    incoming: &[IncomingLinkReport],
    writes_end_before_ms: Option<u64>,
) -> FailoverRecord {
    let mut r = FailoverRecord {
        table: table.to_string(),
        from: old.to_string(),
        to: to.to_string(),
        epoch,
        at_ms: obs.at_ms,
        exact: false,
        writes_end_before_ms,
        partitions: Vec::new(),
        took_ms: 0,
        unknown: None,
    };
    let old_obs = obs.clusters.iter().find(|c| c.name == old);
    let target = obs.clusters.iter().find(|c| c.name == to);
    if let Some(o) = old_obs.filter(|o| o.unreachable.is_none()) {
        let Some(link) = o.link_to(table, to) else {
            r.unknown = Some(format!("{old} has no link shipping {table} to {to}"));
            return r;
        };
        let mut exact = true;
        for p in &link.partitions {
            let fresh = matches!((p.reported_ms_ago, writes_end_before_ms),
                (Some(age), Some(end)) if obs.at_ms.saturating_sub(age) >= end);
            let started = link.link.started(p.partition);
            exact &= fresh && started;
            let decrees = match (started, p.confirmed >= p.committed, fresh) {
                (false, _, _) => Err(format!("partition {} had not started shipping", p.partition)),
                (true, true, true) => Ok(None),
                (true, false, true) => Ok(Some((p.confirmed + 1, p.committed))),
                (true, true, false) => Err(format!(
                    "at least 0 decrees: its last report (decree {}) predates the end of {old}'s writes",
                    p.committed
                )),
                (true, false, false) => Err(format!(
                    "at least decrees {}..={}: its last report predates the end of {old}'s writes",
                    p.confirmed + 1,
                    p.committed
                )),
            };
            let applied = if started {
                Ok(p.replicated_up_to.as_u64())
            } else {
                Err(format!("partition {} had not started shipping", p.partition))
            };
            r.partitions.push(PartitionLoss {
                partition: p.partition,
                decrees,
                applied_through_timetag: applied,
            });
        }
        if link.partitions.is_empty() {
            r.unknown = Some(format!("the link from {old} to {to} reports no partitions"));
            exact = false;
        }
        r.exact = exact;
        return r;
    }
    // Unreachable: the incoming link on `to` from the old cluster (its id from `to`'s link back
    // to it, if there is one; else the table's only incoming link).
    let old_id = target.and_then(|t| t.link_to(table, old)).map(|l| l.link.remote_cluster_id);
    let ins: Vec<&IncomingLinkReport> = incoming.iter().filter(|i| i.table == table).collect();
    let chosen = match (old_id, ins.as_slice()) {
        (Some(id), _) => ins.iter().find(|i| i.from_cluster == id).copied(),
        (None, [one]) => Some(*one),
        (None, _) => None,
    };
    let Some(inc) = chosen else {
        r.unknown = Some(format!("{old} is unreachable and {to} has no incoming link of {table} from it"));
        return r;
    };
    let why_decrees = format!("{old} is unreachable: its committed decrees are unknown");
    for (i, w) in inc.replicated_up_to.iter().enumerate() {
        r.partitions.push(PartitionLoss {
            partition: i as u32,
            decrees: Err(why_decrees.clone()),
            applied_through_timetag: w.map(|t| t.as_u64()).ok_or_else(|| {
                format!("{to}'s meta leader has not heard from this partition since it started")
            }),
        });
    }
    if r.partitions.is_empty() {
        r.unknown = Some(format!("the incoming link on {to} from {old} lists no partitions"));
    }
    r
}

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
