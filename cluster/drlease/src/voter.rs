//! A DR voter (`tern proxy --dr-name`, `tern witness`, a simulated voter): the grants it gives
//! renewing clusters, its floors, and its promises to promoters. Pure: the time of each request
//! (this process's monotonic clock) is passed in.
//!
//! A voter grants a renewing cluster the lease for the active copies it names, unless it knows
//! a copy of that table to be active (or promised) at a higher epoch: its *floor* for the table.
//! A promise raises the floor: from then on this voter grants no lease to a copy of the table
//! below it, and it tells the promoter how long ago it last granted the old copy.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Moment;

/// A voter's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterConfig {
    /// This voter's name (`--dr-name`).
    pub name: String,
    /// Every voter's name: a cluster or a promoter counting another set is refused.
    pub voters: Vec<String>,
    /// The lease it grants.
    pub lease: Duration,
}

/// The answer to a renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// `Err`: why it is refused.
    pub granted: Result<Duration, String>,
    /// Named copies this voter knows active (or promised) at a higher epoch: table → that epoch.
    pub superseded: BTreeMap<String, u64>,
}

/// The answer to a promise request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pledge {
    /// `Err`: why it is refused.
    pub promised: Result<(), String>,
    /// How long ago this voter last granted the old copy a lease covering the table, or since
    /// it started if that is more recent (it may have granted one before a restart).
    pub since_grant: Duration,
    /// The longest lease it grants.
    pub lease: Duration,
    /// The epoch of the old copy this voter last granted a lease to, if it did since it
    /// started: a promise below it would not stop that copy's lease, so the promoter asks again
    /// above it.
    pub granted_epoch: Option<u64>,
}

/// A DR voter's state: in memory (a restarted voter knows floors again from what it sees and
/// from new promises; its pledges count from its start, see [`Pledge::since_grant`]).
#[derive(Clone, Debug)]
pub struct Voter<M> {
    cfg: VoterConfig,
    started: M,
    /// (cluster, table) → when this voter last granted that cluster's copy of the table, and
    /// the copy's epoch then.
    granted: BTreeMap<(String, String), (M, u64)>,
    /// table → the lowest epoch a copy may hold the lease at.
    floors: BTreeMap<String, u64>,
}

fn set_differs(what: &str, theirs: &[String], ours: &[String]) -> String {
    format!(
        "{what} counts the DR voters [{}], this voter [{}]: every cluster, proxy and witness must be given the same --dr-voters",
        theirs.join(", "),
        ours.join(", ")
    )
}

impl<M: Moment> Voter<M> {
    /// A voter started at `now`.
    pub fn new(mut cfg: VoterConfig, now: M) -> Voter<M> {
        cfg.voters.sort();
        Voter { cfg, started: now, granted: BTreeMap::new(), floors: BTreeMap::new() }
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// A copy of `table` was seen active at `epoch` (by this process's watcher).
    pub fn observe(&mut self, table: &str, epoch: u64) {
        let floor = self.floors.entry(table.to_string()).or_default();
        *floor = (*floor).max(epoch);
    }

    /// The lowest epoch a copy of `table` may hold the lease at.
    pub fn floor(&self, table: &str) -> u64 {
        self.floors.get(table).copied().unwrap_or(0)
    }

    /// `cluster` renews its lease at `now` for its active copies `active` (table → epoch),
    /// counting the voters `voters`.
    pub fn renew(
        &mut self,
        now: M,
        cluster: &str,
        voters: &[String],
        active: &BTreeMap<String, u64>,
    ) -> Renewal {
        let mut theirs = voters.to_vec();
        theirs.sort();
        if theirs != self.cfg.voters {
            return Renewal {
                granted: Err(set_differs(&format!("cluster {cluster}"), &theirs, &self.cfg.voters)),
                superseded: BTreeMap::new(),
            };
        }
        let mut superseded = BTreeMap::new();
        for (table, epoch) in active {
            let floor = self.floor(table);
            if floor > *epoch {
                superseded.insert(table.clone(), floor);
            } else {
                self.granted.insert((cluster.to_string(), table.clone()), (now, *epoch));
            }
        }
        Renewal { granted: Ok(self.cfg.lease), superseded }
    }

    /// A promoter asks, at `now`, that no copy of `table` below `epoch` get the lease any more,
    /// to replace `cluster`'s copy.
    pub fn promise(&mut self, now: M, table: &str, cluster: &str, epoch: u64, voters: &[String]) -> Pledge {
        let since_start = now.since(self.started);
        let last = self.granted.get(&(cluster.to_string(), table.to_string())).copied();
        let since_grant = last.map_or(since_start, |(at, _)| now.since(at)).min(since_start);
        let granted_epoch = last.map(|(_, e)| e);
        let mut theirs = voters.to_vec();
        theirs.sort();
        if theirs != self.cfg.voters {
            return Pledge {
                promised: Err(set_differs("the promoter", &theirs, &self.cfg.voters)),
                since_grant,
                lease: self.cfg.lease,
                granted_epoch,
            };
        }
        self.observe(table, epoch);
        Pledge { promised: Ok(()), since_grant, lease: self.cfg.lease, granted_epoch }
    }
}

#[cfg(test)]
#[path = "voter_tests.rs"]
mod tests;
