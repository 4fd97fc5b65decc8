//! The DR lease, as DR voters grant it and as a promoter waits for it to end (issue #24,
//! item 4; docs/meta-proxy.md, "The DR lease"). The rules are crate `tern-drlease`'s (its
//! `voter` and `promote` modules), shared with the meta server, the replica servers and the
//! simulator; here they are given this process's clock (`Instant`) and the client's types.
//! The runtime ([`crate::voter`], [`crate::watch`]) passes the time in and carries out what
//! comes out.

use std::time::Instant;

use tern_client::admin::RouteLease;
use tern_drlease::DrRules;
pub use tern_drlease::promote::{CLOCK_RATE_ERROR, LeaseCheck, LeaseSeen, PROMOTION_MARGIN};
pub use tern_drlease::voter::{Pledge, Renewal, VoterConfig};

/// A DR voter's state, on this process's clock.
pub type Voter = tern_drlease::Voter<Instant>;

/// A voter's promise as this promoter received it.
pub type Promise = tern_drlease::Promise<Instant>;

/// When the old copy's lease has certainly expired, given `promises` from distinct voters out
/// of `voters`, margin included (`DrRules::lease_expiry`).
pub fn lease_expiry(promises: &[Promise], voters: usize) -> Result<Instant, String> {
    DrRules::default().lease_expiry(promises, voters)
}

/// Whether and how a promoter can know that `old`'s copy stopped taking writes, from the DR
/// lease its route last carried (`tern_drlease::lease_check`).
pub fn lease_check(
    old: &str,
    lease: Option<&RouteLease>,
    voters: &[String],
    unsafe_override: bool,
) -> LeaseCheck {
    let seen = lease.map(|l| LeaseSeen { used: l.used, voters: l.voters.clone(), waived: l.waived });
    tern_drlease::lease_check(old, seen.as_ref(), voters, unsafe_override)
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
