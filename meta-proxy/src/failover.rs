//! Automatic failover decisions (issue #6, part 4). Pure: the watcher ([`crate::watch`]) passes
//! in what it saw and the time, and executes what comes out.
//!
//! The rule: once the active copy of a table has not served for `after`, promote the standby
//! whose measured duplication lag is smallest, if that lag is within `rpo_budget`; otherwise
//! refuse and say why. "Lag" here is the window of writes acknowledged by the active cluster
//! that may not have reached the standby: from the active cluster's own duplication progress,
//! taken while it still served (see [`link_lag`]), plus the time between that measurement and
//! the first sign of the outage (writes in between may exist and be lost). The promotion is a
//! compare-and-set of the standby's epoch, so of two proxies deciding at once exactly one wins.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tern_client::admin::LinkReport;
use tern_core::{DrRole, LinkStatus};

use crate::choose::View;

/// A table's automatic failover settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long the active copy must not serve before a standby is promoted.
    pub after: Duration,
    /// The most lag (window of writes possibly lost) a promotion may accept.
    pub rpo_budget: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { after: Duration::from_secs(10), rpo_budget: Duration::from_secs(5) }
    }
}

/// Every standby's lag behind the active cluster, measured while it served.
#[derive(Clone, Debug)]
pub struct LagSample {
    pub at: Instant,
    /// The active cluster the lags were measured from.
    pub from: String,
    /// Per other cluster: its lag, or why it is not known.
    pub lags: BTreeMap<String, Result<Duration, String>>,
    /// Per other cluster: the decrees and bytes behind on the link the lag was taken from.
    pub behind: BTreeMap<String, (u64, u64)>,
}

/// The active copy has not been serving since `since`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    pub cluster: String,
    pub epoch: u64,
    pub since: Instant,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Nothing to do (yet).
    Wait,
    /// Make `cluster` active at `epoch`, if its epoch is still `expect_epoch`.
    Promote {
        cluster: String,
        epoch: u64,
        expect_epoch: u64,
        lag: Duration,
        reason: String,
    },
    Refuse(String),
}

/// Whether a cluster's copy can serve: reachable, and every partition has a primary.
pub fn health(view: &View) -> Result<(), String> {
    match view {
        View::Unreachable(e) => Err(format!("meta servers unreachable ({e})")),
        View::NoTable => Err("no such table".into()),
        View::Route(r) => {
            let total = r.table.partitions as usize;
            let with_primary = r.with_primary();
            if with_primary < total {
                Err(format!("{} of {total} partitions have no primary", total - with_primary))
            } else {
                Ok(())
            }
        }
    }
}

/// Role and epoch of a reachable copy.
pub fn role_of(view: &View) -> Option<(DrRole, u64)> {
    match view {
        View::Route(r) => Some((r.table.role, r.table.epoch)),
        _ => None,
    }
}

/// The lag a link's progress shows: the worst partition's seconds behind (measured on its own
/// clock by the meta server of the active cluster, see `DupRules::lag`) plus the age of that
/// measurement (writes since may be waiting). Unknown, with the reason, while the link is not
/// shipping or any partition's lag cannot be told: an unknown lag is never read as 0.
pub fn link_lag(link: &LinkReport) -> Result<Duration, String> {
    let l = &link.link;
    match l.status {
        LinkStatus::Shipping | LinkStatus::Paused => {}
        s => return Err(format!("the link from this table is {s}, not shipping")),
    }
    let mut worst = 0f64;
    for p in &link.partitions {
        if let Some(why) = &p.lag_unknown {
            return Err(format!("partition {}: {why}", p.partition));
        }
        if !l.started(p.partition) {
            return Err(format!("partition {} has not started shipping", p.partition));
        }
        let Some(reported_ms_ago) = p.reported_ms_ago else {
            return Err(format!("partition {} never reported progress", p.partition));
        };
        let lag = p.seconds_behind + reported_ms_ago as f64 / 1000.0;
        worst = worst.max(lag);
    }
    Ok(Duration::from_secs_f64(worst.max(0.0)))
}

/// What to do about `outage` at `now`.
pub fn decide(
    views: &[(String, View)],
    outage: &Outage,
    sample: Option<&LagSample>,
    policy: &Policy,
    now: Instant,
) -> Decision {
    if now.saturating_duration_since(outage.since) < policy.after {
        return Decision::Wait;
    }
    let down = format!(
        "{} (active at epoch {}) has not served for {:.1}s: {}",
        outage.cluster,
        outage.epoch,
        now.saturating_duration_since(outage.since).as_secs_f64(),
        outage.why
    );
    let Some(sample) = sample.filter(|s| s.from == outage.cluster) else {
        return Decision::Refuse(format!(
            "{down}; no standby's lag behind it was ever measured by this proxy (it has not seen {} serve)",
            outage.cluster
        ));
    };
    // Writes between the measurement and the outage's first sign may be missing too.
    let blind = outage.since.saturating_duration_since(sample.at);
    let max_epoch = views.iter().filter_map(|(_, v)| role_of(v)).map(|(_, e)| e).max().unwrap_or(0);
    let mut why_not = Vec::new();
    let mut best: Option<(Duration, &str, u64)> = None;
    for (name, view) in views {
        if *name == outage.cluster {
            continue;
        }
        let Some((role, epoch)) = role_of(view) else {
            if let Err(e) = health(view) {
                why_not.push(format!("{name}: {e}"));
            }
            continue;
        };
        if role != DrRole::Standby {
            why_not.push(format!("{name}: {role} at epoch {epoch}"));
            continue;
        }
        if let Err(e) = health(view) {
            why_not.push(format!("{name}: {e}"));
            continue;
        }
        let lag = match sample.lags.get(name) {
            Some(Ok(lag)) => *lag + blind,
            Some(Err(e)) => {
                why_not.push(format!("{name}: lag unknown ({e})"));
                continue;
            }
            None => {
                why_not
                    .push(format!("{name}: lag unknown (no duplication link from {} to it)", outage.cluster));
                continue;
            }
        };
        if lag > policy.rpo_budget {
            why_not.push(format!(
                "{name}: {:.1}s behind, over the RPO budget of {:.1}s",
                lag.as_secs_f64(),
                policy.rpo_budget.as_secs_f64()
            ));
            continue;
        }
        if best.is_none_or(|(l, n, _)| (lag, name.as_str()) < (l, n)) {
            best = Some((lag, name, epoch));
        }
    }
    match best {
        Some((lag, name, epoch)) => Decision::Promote {
            cluster: name.to_string(),
            epoch: max_epoch.max(outage.epoch) + 1,
            expect_epoch: epoch,
            lag,
            reason: format!(
                "{down}; {name} is {:.1}s behind (budget {:.1}s)",
                lag.as_secs_f64(),
                policy.rpo_budget.as_secs_f64()
            ),
        },
        None if why_not.is_empty() => Decision::Refuse(format!("{down}; there is no other copy")),
        None => Decision::Refuse(format!("{down}; no standby can take over: {}", why_not.join("; "))),
    }
}

/// A promotion under way: enough DR voters promised that `old`'s copy gets no lease below
/// `epoch` any more; a copy is made active at `epoch` once the old lease has certainly expired
/// (`expires_at`, from [`crate::lease::lease_expiry`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposing {
    pub old: String,
    pub old_epoch: u64,
    pub epoch: u64,
    /// The copy to make active (another healthy copy if it cannot serve).
    pub target: String,
    pub expires_at: Instant,
    pub promised_by: Vec<String>,
    /// Why the promotion was decided.
    pub reason: String,
}

impl Deposing {
    /// What the move waits on, for status and the decision log (`voters`: how many there are).
    pub fn describe(&self, voters: usize) -> String {
        format!(
            "{} of {voters} DR voters ({}) promised no lease for a copy below epoch {} (replacing {} at epoch {}); {} is made active once {}'s last lease has certainly expired",
            self.promised_by.len(),
            self.promised_by.join(", "),
            self.epoch,
            self.old,
            self.old_epoch,
            self.target,
            self.old
        )
    }
}

/// What to do about a promotion under way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// A copy is active at the promised epoch or above: nothing left to do.
    Done,
    /// Not yet (the old lease may still run, or no copy can serve); the reason says why.
    Wait(String),
    /// Make `cluster` active at `epoch` if its epoch is still `expect_epoch`.
    Promote { cluster: String, epoch: u64, expect_epoch: u64, reason: String },
}

/// What to do at `now` about the move `d` (`voters`: how many DR voters there are). The promise
/// deposed the old copy, so the move is finished whatever the outage does meanwhile: the target
/// if it can serve, else the old copy if it came back (it fences itself at the promised epoch,
/// so it is promoted above it), never a copy that cannot serve.
pub fn finish(views: &[(String, View)], d: &Deposing, voters: usize, now: Instant) -> Finish {
    let done = views.iter().any(|(_, v)| matches!(role_of(v), Some((DrRole::Active, e)) if e >= d.epoch));
    if done {
        return Finish::Done;
    }
    let what = d.describe(voters);
    if now < d.expires_at {
        return Finish::Wait(format!("{}; {what}", d.reason));
    }
    let max_seen = views.iter().filter_map(|(_, v)| role_of(v)).map(|(_, e)| e).max().unwrap_or(0);
    // The promised epoch, unless a copy got it meanwhile (the old one fencing itself at it).
    let epoch = if max_seen < d.epoch { d.epoch } else { max_seen + 1 };
    let serving =
        |name: &str| views.iter().find(|(n, _)| n == name).and_then(|(_, v)| health(v).ok().and(role_of(v)));
    let pick = [d.target.as_str(), d.old.as_str()]
        .into_iter()
        .find_map(|name| serving(name).map(|(_, current)| (name.to_string(), current)));
    match pick {
        None => {
            Finish::Wait(format!("{}; {what}; neither {} nor {} can serve now", d.reason, d.target, d.old))
        }
        Some((cluster, expect_epoch)) => Finish::Promote {
            cluster,
            epoch,
            expect_epoch,
            reason: format!(
                "{}; {}'s DR lease has certainly expired ({} of {voters} DR voters promised: {})",
                d.reason,
                d.old,
                d.promised_by.len(),
                d.promised_by.join(", ")
            ),
        },
    }
}

/// Copies still active at an epoch below the routed one (`chosen`): a returning old active
/// cluster. Each is to be made standby at the routed epoch (compare-and-set on its own).
pub fn to_fence(views: &[(String, View)], chosen: usize) -> Vec<(String, u64, u64)> {
    let Some((_, top)) = views.get(chosen).and_then(|(_, v)| role_of(v)) else { return Vec::new() };
    views
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != chosen)
        .filter_map(|(_, (name, v))| match role_of(v) {
            Some((DrRole::Active, e)) if e < top => Some((name.clone(), top, e)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
