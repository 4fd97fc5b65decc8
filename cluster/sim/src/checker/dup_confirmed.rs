//! The confirmed decree is exact (duplication design, `docs/duplication.md`; the shipper's
//! "confirmed is exact" invariant): whenever a meta server records a partition's confirmed
//! decree going up, every put of every entry up to it has been acknowledged by the remote
//! cluster. A new primary resumes shipping from this decree, so a decree recorded too early
//! loses writes across a primary failover. Runs online, as reports are accepted; the meta
//! server's record never going back is checked there too.

use tern_core::{Decree, Gpid};

use crate::observe::Observations;

/// Checks decrees `after + 1 ..= to` of `g`. Those a completed full sync covered (its records
/// copied at a decree at or past them) need no acknowledged put: a new primary whose view of the
/// link was older than the meta server's copies the records again and reports where its copy
/// began.
pub fn check_advance(obs: &Observations, g: Gpid, after: Decree, to: Decree) -> Option<String> {
    let copied = obs.dup.copied_through.get(&g).copied().unwrap_or_default();
    for d in after.0.max(copied.0) + 1..=to.0 {
        if !obs.applied.contains_key(&(g, d)) {
            return Some(format!(
                "confirmed is exact: {g} recorded confirmed d{to}, but d{d} was never applied"
            ));
        }
        let Some(puts) = obs.dup.origin.get(&(g, d)) else { continue };
        if let Some((h, s, t)) = puts.iter().find(|p| !obs.dup.acked.contains(*p)) {
            return Some(format!(
                "confirmed is exact: {g} recorded confirmed d{to}, but the put of {}/{} stamped {} of d{d} was never acknowledged by the remote cluster",
                String::from_utf8_lossy(h),
                String::from_utf8_lossy(s),
                tern_core::Timetag::from_u64(*t)
            ));
        }
    }
    None
}
