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
pub use tern_drlease::failover::{
    Decision, Finish, Policy, decide, finish, health, outage_now, role_of, to_fence,
};

/// Every standby's lag behind the active cluster, measured while it served.
pub type LagSample = tern_drlease::failover::LagSample<Instant>;

/// The active copy has not been serving since `since`.
pub type Outage = tern_drlease::failover::Outage<Instant>;

/// A promotion under way (`tern_drlease::failover::Deposing`), on this process's clock.
pub type Deposing = tern_drlease::failover::Deposing<Instant>;

/// The lag a link's progress shows ([`LinkReport::lag`]: the worst partition's seconds behind
/// plus the age of that measurement), or why it cannot be told: an unknown lag is never read
/// as 0.
pub fn link_lag(link: &LinkReport) -> Result<Duration, String> {
    link.lag()
}

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
