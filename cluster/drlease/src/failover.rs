//! Routing and automatic failover (issue #6, part 4; the DR lease, issue #24 item 4). Pure: a
//! watcher (the proxy's, a simulated proxy) passes in what it saw of each cluster's copy
//! ([`Watched`]) and the time, and carries out what comes out.
//!
//! * [`choose`]: a table is routed to the copy that is active at the highest epoch.
//! * [`outage_now`]: the routed copy stops serving (unreachable, or a partition without a
//!   primary) from when the failing question was asked.
//! * [`decide`]: once the outage is `after` old, promote the standby whose measured duplication
//!   lag is smallest, if that lag is within `rpo_budget`; otherwise refuse and say why. "Lag" is
//!   the window of writes acknowledged by the active cluster that may not have reached the
//!   standby, measured while it still served, plus the time between that measurement and the
//!   outage's start.
//! * [`finish`]: a promotion under way ([`Deposing`]) makes its target active at the promised
//!   epoch once the old copy's DR lease has certainly expired ([`crate::DrRules::lease_expiry`]).
//! * [`to_fence`]: copies still active below the routed epoch are made standby.
//!
//! Role changes are compare-and-set on the epoch, so of two watchers deciding at once exactly
//! one wins.

use std::collections::BTreeMap;
use std::time::Duration;

use tern_core::{DrRole, Error, Result};

use crate::Moment;

/// What a watcher saw of one cluster's copy of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// The copy: its role and epoch, and how many of its partitions have a primary.
    Copy { role: DrRole, epoch: u64, partitions: u32, with_primary: u32 },
    /// The table does not exist there.
    NoTable,
    /// The cluster did not answer (why).
    Unreachable(&'a str),
}

/// A watcher's view of one cluster's copy (the proxy's route answer, a simulated one).
pub trait Watched {
    fn seen(&self) -> Seen<'_>;
}

impl Watched for Seen<'_> {
    fn seen(&self) -> Seen<'_> {
        *self
    }
}

/// Whether a cluster's copy can serve: reachable, and every partition has a primary.
pub fn health(view: &impl Watched) -> std::result::Result<(), String> {
    match view.seen() {
        Seen::Unreachable(e) => Err(format!("meta servers unreachable ({e})")),
        Seen::NoTable => Err("no such table".into()),
        Seen::Copy { partitions, with_primary, .. } => {
            if with_primary < partitions {
                Err(format!("{} of {partitions} partitions have no primary", partitions - with_primary))
            } else {
                Ok(())
            }
        }
    }
}

/// Role and epoch of a reachable copy.
pub fn role_of(view: &impl Watched) -> Option<(DrRole, u64)> {
    match view.seen() {
        Seen::Copy { role, epoch, .. } => Some((role, epoch)),
        _ => None,
    }
}

/// The index of the cluster to route `table` to. Refuses when no reachable copy is active, and
/// when two are active at the same (highest) epoch: a split brain is not resolved by guessing.
pub fn choose<V: Watched>(table: &str, views: &[(String, V)]) -> Result<usize> {
    let mut best: Option<(usize, u64)> = None;
    let mut tie: Option<usize> = None;
    for (i, (_, v)) in views.iter().enumerate() {
        let Some((DrRole::Active, epoch)) = role_of(v) else { continue };
        match best {
            Some((_, e)) if epoch < e => {}
            Some((_, e)) if epoch == e => tie = Some(i),
            _ => {
                best = Some((i, epoch));
                tie = None;
            }
        }
    }
    match (best, tie) {
        (Some((i, epoch)), Some(j)) => Err(Error::Unavailable(format!(
            "table {table} is active in both {} and {} at epoch {epoch}: refusing to pick one (set one standby)",
            views[i].0, views[j].0
        ))),
        (Some((i, _)), None) => Ok(i),
        (None, _) if views.iter().all(|(_, v)| v.seen() == Seen::NoTable) => {
            Err(Error::TableNotFound(table.to_string()))
        }
        (None, _) => {
            let why: Vec<String> = views
                .iter()
                .map(|(name, v)| match v.seen() {
                    Seen::Copy { role, epoch, .. } => format!("{name}: {role} at epoch {epoch}"),
                    Seen::NoTable => format!("{name}: no such table"),
                    Seen::Unreachable(e) => format!("{name}: unreachable ({e})"),
                })
                .collect();
            Err(Error::Unavailable(format!(
                "no reachable cluster has table {table} active: {}",
                why.join("; ")
            )))
        }
    }
}

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
pub struct LagSample<M> {
    pub at: M,
    /// The active cluster the lags were measured from.
    pub from: String,
    /// Per other cluster: its lag, or why it is not known.
    pub lags: BTreeMap<String, std::result::Result<Duration, String>>,
    /// Per other cluster: the decrees and bytes behind on the link the lag was taken from
    /// (shown with the lag; the decision reads the lag).
    pub behind: BTreeMap<String, (u64, u64)>,
}

/// The active copy has not been serving since `since`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage<M> {
    pub cluster: String,
    pub epoch: u64,
    pub since: M,
    pub why: String,
}

/// Whether the copy that was routed to has stopped serving, and since when. The outage is of
/// the cluster last routed to: it starts when that cluster's copy is first seen unhealthy or
/// unreachable (`now`: when the failing question was asked), and ends when it serves again or
/// another copy is routed to (a role move). Routes are given as (index in `views`, epoch).
pub fn outage_now<V: Watched, M: Moment>(
    prev: Option<Outage<M>>,
    prev_route: Option<(usize, u64)>,
    views: &[(String, V)],
    route: Option<(usize, u64)>,
    now: M,
) -> Option<Outage<M>> {
    let (name, epoch) = match (route, &prev) {
        (Some((i, epoch)), _) => (views[i].0.clone(), epoch),
        (None, Some(o)) => (o.cluster.clone(), o.epoch),
        (None, None) => match prev_route {
            Some((i, epoch)) => (views.get(i).map_or(String::new(), |v| v.0.clone()), epoch),
            None => return None,
        },
    };
    let view = views.iter().find(|(n, _)| *n == name).map(|(_, v)| v)?;
    // A copy that is reachable but no longer active moved on purpose: not an outage.
    if let Some((role, _)) = role_of(view)
        && role != DrRole::Active
    {
        return None;
    }
    match health(view) {
        Ok(()) => None,
        Err(why) => match prev {
            Some(o) if o.cluster == name && o.epoch == epoch => Some(Outage { why, ..o }),
            _ => Some(Outage { cluster: name, epoch, since: now, why }),
        },
    }
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

/// What to do about `outage` at `now`.
pub fn decide<V: Watched, M: Moment>(
    views: &[(String, V)],
    outage: &Outage<M>,
    sample: Option<&LagSample<M>>,
    policy: &Policy,
    now: M,
) -> Decision {
    if now.since(outage.since) < policy.after {
        return Decision::Wait;
    }
    let down = format!(
        "{} (active at epoch {}) has not served for {:.1}s: {}",
        outage.cluster,
        outage.epoch,
        now.since(outage.since).as_secs_f64(),
        outage.why
    );
    let Some(sample) = sample.filter(|s| s.from == outage.cluster) else {
        return Decision::Refuse(format!(
            "{down}; no standby's lag behind it was ever measured by this proxy (it has not seen {} serve)",
            outage.cluster
        ));
    };
    // Writes between the measurement and the outage's first sign may be missing too.
    let blind = outage.since.since(sample.at);
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
/// `epoch` any more; a copy is made active at `epoch` once the old copy's lease has certainly
/// expired (`expires_at`, from [`crate::DrRules::lease_expiry`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposing<M> {
    pub old: String,
    pub old_epoch: u64,
    pub epoch: u64,
    /// The copy to make active (another healthy copy if it cannot serve).
    pub target: String,
    pub expires_at: M,
    pub promised_by: Vec<String>,
    /// Why the promotion was decided.
    pub reason: String,
}

impl<M> Deposing<M> {
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
    /// The target cannot serve but the old copy came back: make the old copy active instead,
    /// as a new promotion (`target`, at `epoch`) that first deposes the target (`old`, which
    /// another watcher may have made active at the promised epoch meanwhile): new promises,
    /// and a wait for the target's lease.
    Redepose { old: String, old_epoch: u64, epoch: u64, target: String, reason: String },
    /// A copy is at an epoch above the promised one: another move took over; this one is
    /// dropped (the reason says why).
    Abandon(String),
}

/// What to do at `now` about the move `d` (`voters`: how many DR voters there are). The promise
/// deposed the old copy, so the move is finished whatever the outage does meanwhile: the target
/// is made active at the promised epoch once the old lease has certainly expired, and if it
/// cannot serve but the old copy came back, the old copy is made active at a higher epoch after
/// a new promise round deposes the target.
///
/// No copy other than the target is ever made active at the promised epoch, and nothing is
/// made active above it without new promises: the voters' promises keep copies *below* an
/// epoch from the lease, so two copies active at one epoch could both hold it. Another watcher
/// may have made the target active at the promised epoch, and this watcher may not see it now
/// (unreachable, or its view predates that promotion).
pub fn finish<V: Watched, M: Moment>(
    views: &[(String, V)],
    d: &Deposing<M>,
    voters: usize,
    now: M,
) -> Finish {
    let done = views.iter().any(|(_, v)| matches!(role_of(v), Some((DrRole::Active, e)) if e >= d.epoch));
    if done {
        return Finish::Done;
    }
    let what = d.describe(voters);
    if now < d.expires_at {
        return Finish::Wait(format!("{}; {what}", d.reason));
    }
    let seen = |name: &str| views.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if let Some((name, epoch)) = views
        .iter()
        .filter_map(|(n, v)| role_of(v).map(|(_, e)| (n, e)))
        .filter(|(_, e)| *e > d.epoch)
        .max_by_key(|(_, e)| *e)
    {
        return Finish::Abandon(format!(
            "{}; {what}; dropped: {name} is at epoch {epoch}, above the promised {} (another move took over)",
            d.reason, d.epoch
        ));
    }
    let serving = |name: &str| seen(name).and_then(|v| health(v).ok().and(role_of(v)));
    if let Some((_, current)) = serving(&d.target) {
        return Finish::Promote {
            cluster: d.target.clone(),
            epoch: d.epoch,
            expect_epoch: current,
            reason: format!(
                "{}; {}'s DR lease has certainly expired ({} of {voters} DR voters promised: {})",
                d.reason,
                d.old,
                d.promised_by.len(),
                d.promised_by.join(", ")
            ),
        };
    }
    if serving(&d.old).is_some() {
        let why_not = seen(&d.target)
            .map_or_else(|| "not watched".to_string(), |v| health(v).err().unwrap_or_default());
        return Finish::Redepose {
            old: d.target.clone(),
            old_epoch: seen(&d.target).and_then(role_of).map_or(d.epoch, |(_, e)| e),
            epoch: d.epoch + 1,
            target: d.old.clone(),
            reason: format!(
                "{}; {what}; {} cannot serve ({why_not}) but {} serves again: it replaces {} instead",
                d.reason, d.target, d.old, d.target
            ),
        };
    }
    Finish::Wait(format!("{}; {what}; neither {} nor {} can serve now", d.reason, d.target, d.old))
}

/// Copies still active at an epoch below the routed one (`chosen`): a returning old active
/// cluster. Each is to be made standby at the routed epoch (compare-and-set on its own): (cluster,
/// routed epoch, its epoch).
pub fn to_fence<V: Watched>(views: &[(String, V)], chosen: usize) -> Vec<(String, u64, u64)> {
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
