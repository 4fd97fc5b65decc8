//! The lag of one partition of a link, or why it cannot be told.
//!
//! Lag is measured on the sending partition's own clock: its newest applied write's timetag
//! minus its *replicated-up-to* (every write at or below it is applied by the remote table). No
//! other clock enters it, so clock skew between clusters (or between a meta server and a
//! replica server) can neither hide lag nor invent it, as measuring "now minus the oldest
//! unshipped write" on the meta server's clock did. And unknown is unknown: a partition whose
//! link fails, that copies its records, whose shipper has not reported lately, or that has not
//! started has no lag to show, and says why; it never shows 0. Automatic failover refuses to
//! promote on an unknown lag.

use tern_core::{Decree, LinkStatus, Timetag};

use crate::DupRules;

/// What the meta server last heard from a partition's primary about one link.
#[derive(Clone, Copy, Debug)]
pub struct LagReport<'a> {
    /// How long ago the report came.
    pub age_ms: u64,
    /// Copying the partition's records (full sync or resync).
    pub syncing: bool,
    /// The shipper's last error ("" when the last attempt succeeded).
    pub last_error: &'a str,
    pub committed: Decree,
    /// The timetag of the partition's newest applied write.
    pub committed_timetag: Timetag,
    pub replicated_up_to: Timetag,
}

/// A partition's lag behind the remote table.
#[derive(Clone, Debug, PartialEq)]
pub enum Lag {
    /// Seconds between the newest applied write and what the remote table has applied.
    Known { seconds: f64 },
    /// Why it cannot be told.
    Unknown(String),
}

impl DupRules {
    /// The lag of a partition of a link with status `link` (`started`: the partition has a
    /// confirmed decree), from its last report (`None`: none since this meta leader started);
    /// a report older than `max_age_ms` tells nothing.
    pub fn lag(
        &self,
        link: LinkStatus,
        started: bool,
        report: Option<LagReport<'_>>,
        max_age_ms: u64,
    ) -> Lag {
        if link == LinkStatus::SyncingCheckpoint && !started {
            return Lag::Unknown("copying the table's records (full sync)".into());
        }
        let Some(r) = report else {
            return Lag::Unknown(
                "no report from the partition's primary since this meta leader started".into(),
            );
        };
        if r.age_ms > max_age_ms {
            return Lag::Unknown(format!(
                "the last report from the partition's primary is {:.0} s old",
                r.age_ms as f64 / 1000.0
            ));
        }
        if r.syncing {
            return Lag::Unknown("copying the partition's records".into());
        }
        if !r.last_error.is_empty() {
            return Lag::Unknown(format!("the link fails: {}", r.last_error));
        }
        if !started {
            return Lag::Unknown("shipping has not started in this partition".into());
        }
        if r.committed > Decree::ZERO && r.committed_timetag == Timetag::ZERO {
            return Lag::Unknown("the partition's newest write is not known yet".into());
        }
        let ms = r.committed_timetag.physical_ms().saturating_sub(r.replicated_up_to.physical_ms());
        Lag::Known { seconds: ms as f64 / 1000.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(err: &str) -> LagReport<'_> {
        LagReport {
            age_ms: 500,
            syncing: false,
            last_error: err,
            committed: Decree(90),
            committed_timetag: Timetag::at_physical_ms(100_000),
            replicated_up_to: Timetag::at_physical_ms(40_000),
        }
    }

    #[test]
    fn lag_is_measured_on_the_partitions_own_clock() {
        let r = DupRules::default();
        assert_eq!(r.lag(LinkStatus::Shipping, true, Some(report("")), 10_000), Lag::Known { seconds: 60.0 });
        assert_eq!(
            r.lag(LinkStatus::Paused, true, Some(report("")), 10_000),
            Lag::Known { seconds: 60.0 },
            "paused: it grows"
        );
    }

    #[test]
    fn an_unknown_lag_says_why_and_is_never_zero() {
        let r = DupRules::default();
        let unknown = |lag: Lag, why: &str| match lag {
            Lag::Unknown(s) => assert!(s.contains(why), "{s}"),
            known => panic!("{known:?}, expected unknown because {why}"),
        };
        unknown(r.lag(LinkStatus::Shipping, true, Some(report("TRANSPORT: refused")), 10_000), "fails");
        unknown(r.lag(LinkStatus::Shipping, true, None, 10_000), "no report");
        unknown(
            r.lag(LinkStatus::Shipping, true, Some(LagReport { age_ms: 60_000, ..report("") }), 10_000),
            "60 s old",
        );
        unknown(
            r.lag(LinkStatus::Shipping, true, Some(LagReport { syncing: true, ..report("") }), 10_000),
            "copying",
        );
        unknown(r.lag(LinkStatus::SyncingCheckpoint, false, Some(report("")), 10_000), "full sync");
        unknown(r.lag(LinkStatus::Shipping, false, Some(report("")), 10_000), "not started");
    }
}
