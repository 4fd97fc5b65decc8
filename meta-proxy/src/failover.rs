//! Automatic failover decisions (issue #6, part 4). The rules are crate `tern-drlease`'s
//! (`failover`: outages, the decision, a promotion under way, fencing), shared with the
//! simulator's proxies; here they are given this process's clock (`Instant`) and the client's
//! views. The watcher ([`crate::watch`]) passes in what it saw and the time, and executes what
//! comes out. What stays here is reading a duplication link's report as a lag ([`link_lag`]).
//!
//! The rule: once the active copy of a table has not served for `after`, promote the standby
//! whose measured duplication lag is smallest, if that lag is within `rpo_budget`; otherwise
//! refuse and say why. "Lag" here is the window of writes acknowledged by the active cluster
//! that may not have reached the standby: from the active cluster's own duplication progress,
//! taken while it still served (see [`link_lag`]), plus the time between that measurement and
//! the first sign of the outage (writes in between may exist and be lost). The promotion is a
//! compare-and-set of the standby's epoch, so of two proxies deciding at once exactly one wins.

use std::time::{Duration, Instant};

use tern_client::admin::LinkReport;
use tern_core::LinkStatus;
pub use tern_drlease::failover::{
    Decision, Finish, Policy, decide, finish, health, outage_now, role_of, to_fence,
};

/// Every standby's lag behind the active cluster, measured while it served.
pub type LagSample = tern_drlease::failover::LagSample<Instant>;

/// The active copy has not been serving since `since`.
pub type Outage = tern_drlease::failover::Outage<Instant>;

/// A promotion under way (`tern_drlease::failover::Deposing`), on this process's clock.
pub type Deposing = tern_drlease::failover::Deposing<Instant>;

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

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
