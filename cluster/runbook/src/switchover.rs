//! `tern dr switchover` as a pure decision: given what the clusters say now, the next step of
//! a planned move of a table's active role to cluster `to`, with nothing lost. The executor
//! ([`crate::run_switchover`]) observes, asks [`next_step`], carries the step out and repeats;
//! since every step is decided from the observed state alone (plus when the drain began), an
//! interrupted switchover is finished by running it again.
//!
//! The steps, in the order a switchover meets them:
//! 1. `StopWrites`: the active copy (in `from`) becomes standby at an epoch above every copy's
//!    (compare-and-set):
//!    its replica servers refuse client writes once they hear of it (their next beacon), and no
//!    copy is active meanwhile (the proxies answer "unavailable": this is the write
//!    unavailability the report measures).
//! 2. `Wait` (drain): until every partition of the link `from` -> `to` has shipped everything
//!    its partition committed, in a progress report taken at least `propagation` after the
//!    drain began (so writes taken by a server that had not yet heard of step 1 are in it).
//! 3. `AddReverseLink`: the link `to` -> `from`, unless there is one (a two-way pair has it),
//!    and `Wait` until it has started in every partition — before any write can reach `to`, so
//!    the old side misses none of them.
//! 4. `Promote`: `to` becomes active at `from`'s new epoch + 1 (compare-and-set); proxies route to
//!    the highest active epoch, so clients follow.
//!
//! Rolled back ([`rollback_step`]) when the drain does not finish in time: `from` becomes
//! active again at the next epoch. Nothing was promoted, so nothing is lost.

use serde::Serialize;
use tern_core::{DrRole, LinkStatus};

use crate::observe::{ClusterObs, Observed};

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// The switchover cannot go on; why, and what to do instead.
    Refuse { why: String },
    /// Make `cluster`'s copy standby at `epoch`, if it is at `expect`.
    StopWrites { cluster: String, epoch: u64, expect: u64 },
    /// Observe again later; what is not drained yet.
    Wait { why: String },
    /// Make `cluster`'s copy active at `epoch`, if it is at `expect`.
    Promote { cluster: String, epoch: u64, expect: u64 },
    /// Add a link shipping the table from `from` to `to`.
    AddReverseLink { from: String, to: String },
    /// Nothing left to do.
    Done { summary: String },
}

/// The drain's clock: when the executor first saw the active role stopped (ms, wall), and how
/// long replica servers may take to hear of a role change (a few beacon intervals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    pub since_ms: u64,
    pub propagation_ms: u64,
}

/// A copy's role and epoch in one cluster.
fn copy(c: &ClusterObs, table: &str) -> Option<(DrRole, u64)> {
    c.tables.iter().find(|t| t.name == table).map(|t| (t.role, t.epoch))
}

/// The next step of moving `table`'s active role to `to`. `drain`: `None` until the executor has
/// seen the writes stopped (it then passes the time it first did).
pub fn next_step(obs: &Observed, table: &str, to: &str, drain: Option<Drain>) -> Step {
    if let Some(c) = obs.clusters.iter().find(|c| c.unreachable.is_some()) {
        let why = c.unreachable.as_deref().unwrap_or_default();
        return Step::Refuse {
            why: format!(
                "cluster {} is unreachable ({why}): a switchover needs both sides (for a lost active cluster, use tern dr failover)",
                c.name
            ),
        };
    }
    let Some(target) = obs.clusters.iter().find(|c| c.name == to) else {
        return Step::Refuse { why: format!("{to} is not one of the clusters given") };
    };
    let Some((to_role, to_epoch)) = copy(target, table) else {
        return Step::Refuse { why: format!("cluster {to} has no copy of table {table}") };
    };
    let copies: Vec<(&ClusterObs, DrRole, u64)> =
        obs.clusters.iter().filter_map(|c| copy(c, table).map(|(r, e)| (c, r, e))).collect();
    // Proxies route to the active copy at the highest epoch among active copies; a standby
    // may hold a higher epoch than the active copy (it was made standby after it).
    let top = copies.iter().map(|(_, _, e)| *e).max().unwrap_or(0);
    let actives: Vec<&(&ClusterObs, DrRole, u64)> =
        copies.iter().filter(|(_, r, _)| *r == DrRole::Active).collect();
    let top_active = actives.iter().map(|(_, _, e)| *e).max();
    let top_actives: Vec<_> = actives.iter().filter(|(_, _, e)| Some(*e) == top_active).collect();
    if top_actives.len() > 1 {
        let names: Vec<&str> = top_actives.iter().map(|(c, _, _)| c.name.as_str()).collect();
        return Step::Refuse {
            why: format!(
                "split brain: {} are all active at epoch {}; settle it before a switchover",
                names.join(", "),
                top_active.unwrap_or(0)
            ),
        };
    }
    // Promoted already.
    if to_role == DrRole::Active && Some(to_epoch) == top_active {
        let old = copies
            .iter()
            .filter(|(c, r, _)| c.name != to && *r == DrRole::Standby)
            .max_by_key(|(_, _, e)| *e);
        let follows = match old {
            Some((old, _, _)) if target.link_to(table, &old.name).is_none() => format!(
                "; no link ships it to {} (add one with tern dup add --full-sync to keep a standby there)",
                old.name
            ),
            Some((old, _, _)) => format!("; {} follows it by link", old.name),
            None => String::new(),
        };
        return Step::Done { summary: format!("{table} is active in {to} at epoch {to_epoch}{follows}") };
    }
    // Active elsewhere: stop its writes, once the link to `to` is there and shipping.
    // Its new epoch is above every copy's, so the stopped side is the one copy at the highest
    // epoch: what a re-run recognises.
    if let Some((from, _, epoch)) = top_actives.first().map(|x| ***x) {
        if let Some(why) = link_problem(from, table, to) {
            return Step::Refuse { why };
        }
        return Step::StopWrites { cluster: from.name.clone(), epoch: top + 1, expect: epoch };
    }
    // No copy active: ours if the highest epoch is one standby elsewhere (the stopped side).
    let stopped = copies.iter().filter(|(c, _, e)| c.name != to && *e == top).collect::<Vec<_>>();
    let [(from, _, from_epoch)] = stopped.as_slice() else {
        return Step::Refuse {
            why: format!(
                "no copy of {table} is active and its highest epoch {top} is not one stopped copy outside {to}: this is not a switchover under way (use tern dr status, then tern dr failover)"
            ),
        };
    };
    let Some(drain) = drain else {
        return Step::Wait { why: format!("writes stopped in {}: the drain starts now", from.name) };
    };
    if let Err(why) = drained(obs, from, table, to, drain) {
        return Step::Wait { why };
    }
    // The way back before the way in: writes `to` takes once active must reach `from`.
    match target.link_to(table, &from.name) {
        None => Step::AddReverseLink { from: to.to_string(), to: from.name.clone() },
        Some(l)
            if (0..l.link.started.len() as u32).any(|p| !l.link.started(p)) || l.link.started.is_empty() =>
        {
            Step::Wait { why: format!("the link from {to} back to {} is starting", from.name) }
        }
        Some(l) if l.link.status != LinkStatus::Shipping => Step::Refuse {
            why: format!(
                "link #{} from {to} back to {} is {}: resume it (tern dup resume {}), then run the switchover again",
                l.link.id, from.name, l.link.status, l.link.id
            ),
        },
        Some(_) => Step::Promote { cluster: to.to_string(), epoch: from_epoch + 1, expect: to_epoch },
    }
}

/// Undoes a switchover whose drain did not finish: the stopped side becomes active again.
/// `None` when there is nothing to undo (no copy is stopped by a switchover, or `to` was
/// promoted already: then finishing is the only way).
pub fn rollback_step(obs: &Observed, table: &str, to: &str) -> Option<Step> {
    match next_step(obs, table, to, Some(Drain { since_ms: u64::MAX, propagation_ms: 0 })) {
        Step::Wait { .. } | Step::Promote { .. } => {}
        _ => return None,
    }
    let (from, epoch) = obs
        .clusters
        .iter()
        .filter(|c| c.name != to)
        .filter_map(|c| copy(c, table).map(|(_, e)| (c, e)))
        .max_by_key(|(_, e)| *e)?;
    Some(Step::Promote { cluster: from.name.clone(), epoch: epoch + 1, expect: epoch })
}

/// Why the link from the active copy cannot carry a switchover, if it cannot.
fn link_problem(from: &ClusterObs, table: &str, to: &str) -> Option<String> {
    let Some(l) = from.link_to(table, to) else {
        return Some(format!(
            "no link ships {table} from {} to {to}: {to}'s copy would miss writes (add one with tern dup add --full-sync)",
            from.name
        ));
    };
    match l.link.status {
        LinkStatus::Shipping => None,
        LinkStatus::Paused => Some(format!(
            "link #{} from {} to {to} is paused: resume it first (tern dup resume {})",
            l.link.id, from.name, l.link.id
        )),
        s => Some(format!("link #{} from {} to {to} is {s}: wait until it ships", l.link.id, from.name)),
    }
}

/// Whether the link from the stopped side has shipped everything its partitions committed, as
/// reports taken after the drain's propagation time say.
fn drained(obs: &Observed, from: &ClusterObs, table: &str, to: &str, drain: Drain) -> Result<(), String> {
    let Some(l) = from.link_to(table, to) else {
        return Err(format!("the link from {} to {to} is gone: add it back (tern dup add)", from.name));
    };
    let not_before = drain.since_ms.saturating_add(drain.propagation_ms);
    if l.partitions.is_empty() {
        return Err("the link reports no partitions yet".into());
    }
    for p in &l.partitions {
        if !l.link.started(p.partition) {
            return Err(format!("partition {} has not started shipping", p.partition));
        }
        let Some(age) = p.reported_ms_ago else {
            return Err(format!("partition {} has not reported", p.partition));
        };
        if obs.at_ms.saturating_sub(age) < not_before {
            return Err(format!(
                "partition {}'s last report is older than the moment every server heard writes stopped",
                p.partition
            ));
        }
        if let Some(e) = &p.last_error {
            return Err(format!("partition {} fails: {e}", p.partition));
        }
        if p.confirmed < p.committed {
            return Err(format!(
                "partition {} has shipped through decree {} of {}",
                p.partition, p.confirmed, p.committed
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "switchover_tests.rs"]
mod tests;
