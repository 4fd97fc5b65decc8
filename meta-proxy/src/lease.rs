//! The DR lease, as DR voters grant it and as a promoter waits for it to end (issue #24,
//! item 4; docs/meta-proxy.md, "The DR lease"). Pure: the runtime ([`crate::voter`],
//! [`crate::watch`]) passes the time in and carries out what comes out.
//!
//! **Voters** ([`Voter`]): a `tern proxy --dr-name` or a `tern witness`. Each grants a
//! renewing cluster the lease for the active copies it names, unless it knows a copy of that
//! table to be active (or promised) at a higher epoch: its *floor* for the table. A promise
//! raises the floor: from then on this voter grants no lease to a copy of the table below it.
//!
//! **Promoters** (`--auto-failover`): before making a standby active at epoch E, a proxy asks
//! every voter to promise floor E and learns, from each, how long ago it last granted the old
//! active copy. With promises from enough voters that no majority can grant the old copy any
//! more ([`lease_expiry`]), the old copy's lease has certainly expired once the latest of
//! their last grants is a lease (stretched by clock rate errors) plus a margin old.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tern_client::admin::RouteLease;

/// Clock rate error allowed between any two processes (fast or slow by up to 1 %), as for the
/// node lease (`docs/replication.md`, "The lease rule").
pub const CLOCK_RATE_ERROR: f64 = 0.01;

/// Added to the computed end of the old lease before a promotion: a client write admitted just
/// before the old copy's lease ran out is stamped and committed within it, and timetags of the
/// two clusters may differ by up to the maximum clock offset (500 ms by default), so every write
/// the new active copy takes is stamped after every write the old one took.
pub const PROMOTION_MARGIN: Duration = Duration::from_secs(1);

/// A voter's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterConfig {
    /// This voter's name (`--dr-name`).
    pub name: String,
    /// Every voter's name, sorted: a cluster or a promoter counting another set is refused.
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
}

/// A DR voter's state: in memory (a restarted voter knows floors again from what it sees and
/// from new promises; its pledges count from its start, see [`Pledge::since_grant`]).
#[derive(Clone, Debug)]
pub struct Voter {
    cfg: VoterConfig,
    started: Instant,
    /// (cluster, table) → when this voter last granted that cluster's copy of the table.
    granted: HashMap<(String, String), Instant>,
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

impl Voter {
    pub fn new(mut cfg: VoterConfig, now: Instant) -> Voter {
        cfg.voters.sort();
        Voter { cfg, started: now, granted: HashMap::new(), floors: BTreeMap::new() }
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
        now: Instant,
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
                self.granted.insert((cluster.to_string(), table.clone()), now);
            }
        }
        Renewal { granted: Ok(self.cfg.lease), superseded }
    }

    /// `promoter` asks, at `now`, that no copy of `table` below `epoch` get the lease any more,
    /// to replace `cluster`'s copy.
    pub fn promise(
        &mut self,
        now: Instant,
        table: &str,
        cluster: &str,
        epoch: u64,
        voters: &[String],
    ) -> Pledge {
        let since_start = now.saturating_duration_since(self.started);
        let since_grant = self
            .granted
            .get(&(cluster.to_string(), table.to_string()))
            .map_or(since_start, |at| now.saturating_duration_since(*at))
            .min(since_start);
        let mut theirs = voters.to_vec();
        theirs.sort();
        if theirs != self.cfg.voters {
            return Pledge {
                promised: Err(set_differs("the promoter", &theirs, &self.cfg.voters)),
                since_grant,
                lease: self.cfg.lease,
            };
        }
        self.observe(table, epoch);
        Pledge { promised: Ok(()), since_grant, lease: self.cfg.lease }
    }
}

/// A voter's promise as the promoter received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promise {
    pub voter: String,
    /// When the answer arrived (promoter's clock).
    pub received_at: Instant,
    pub since_grant: Duration,
    pub lease: Duration,
}

impl Promise {
    /// After this (promoter's clock), no lease this voter granted the old copy still runs
    /// anywhere: its last grant was at least `since_grant` (its clock) before the answer, and
    /// the holder counted it from before then, for `lease` on clocks that may run slow while
    /// this one runs fast.
    pub fn grants_end_by(&self) -> Instant {
        let stretched = self.lease.mul_f64((1.0 + CLOCK_RATE_ERROR) / (1.0 - CLOCK_RATE_ERROR));
        self.received_at + stretched.saturating_sub(self.since_grant)
    }
}

/// When the old copy's lease has certainly expired, given `promises` from distinct voters out
/// of `voters`, margin included; `Err` if too few promised for that to be known.
///
/// The holder needs a majority `k` of the `n` voters. Voters that did not promise may still
/// grant, so it can hold a lease at time `t` only if `n - |S|` plus the promised voters whose
/// grants may still run after `t` reach `k`. That stops once at most `k - (n - |S|) - 1` of the
/// promised voters' grants run: at the `m`-th latest of their ends, `m = |S| - (n - k)`.
pub fn lease_expiry(promises: &[Promise], voters: usize) -> Result<Instant, String> {
    let k = voters / 2 + 1;
    let needed = voters - k + 1;
    if voters == 0 || promises.len() < needed {
        return Err(format!(
            "{} of {voters} DR voters promised; {needed} must, so that no majority can renew the old copy's lease",
            promises.len()
        ));
    }
    let mut ends: Vec<Instant> = promises.iter().map(Promise::grants_end_by).collect();
    ends.sort_unstable_by(|a, b| b.cmp(a));
    let m = promises.len() - (voters - k);
    Ok(ends[m - 1] + PROMOTION_MARGIN)
}

/// What a promoter does about the old active copy's lease before promoting another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseCheck {
    /// Ask the voters for promises, then wait for [`lease_expiry`].
    AskPromises,
    /// Promote without waiting; the note says why that is allowed (an operator's override).
    Go(String),
    Refuse(String),
}

/// Whether and how a promoter can know that `old`'s copy stopped taking writes: from the DR
/// lease it last reported (`lease`: from its route while it served; `None`: never seen), this
/// proxy's voters, and the operator's override.
pub fn lease_check(
    old: &str,
    lease: Option<&RouteLease>,
    voters: &[String],
    unsafe_override: bool,
) -> LeaseCheck {
    let problem = match lease {
        None => format!("this proxy never saw {old}'s DR lease (it has not seen {old} serve)"),
        Some(l) if !l.used => format!(
            "{old} runs without a DR lease (its meta servers have no --dr-voters): it may still be taking client writes"
        ),
        Some(l) if l.waived => format!(
            "{old}'s DR lease is waived by an operator (tern cluster dr-lease --waive): it may still be taking client writes"
        ),
        Some(_) if voters.is_empty() => {
            format!("this proxy has no --dr-voters, so it cannot learn when {old}'s DR lease ends")
        }
        Some(l) => {
            let mut ours = voters.to_vec();
            ours.sort();
            if l.voters == ours {
                return LeaseCheck::AskPromises;
            }
            format!(
                "{old} renews its DR lease through [{}] but this proxy counts [{}] (--dr-voters must be the same everywhere)",
                l.voters.join(", "),
                ours.join(", ")
            )
        }
    };
    if unsafe_override {
        LeaseCheck::Go(format!(
            "promoted WITHOUT waiting for {old}'s DR lease (--unsafe-failover-without-lease): {problem}"
        ))
    } else {
        LeaseCheck::Refuse(format!(
            "{problem}; refusing to promote (a split brain otherwise); --unsafe-failover-without-lease overrides"
        ))
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
