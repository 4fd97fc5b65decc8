//! Where a new primary's shipper starts, decided in one place.
//!
//! A partition that has started shipping resumes after the decree the meta server holds as
//! confirmed (never the new primary's own idea of it: it may have committed writes its
//! predecessor never shipped). A partition that has not started yet either copies its records
//! first (a link added with a full sync) or starts from whatever it has committed when its
//! primary first sees the link: such a link ships only the writes made after it started.

use tern_core::{Decree, Timetag};

use crate::DupRules;
use crate::retention::LinkProgress;

/// Where a shipper starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartPoint {
    /// Ship the log after `decree`; `resumed`: continuing a partition that had started.
    After { decree: Decree, resumed: bool },
    /// Copy the partition's records first (full sync), then ship after the decree the copy
    /// began at.
    CopyFirst,
}

impl DupRules {
    /// Where the shipper of a partition starts: `progress` is the link's progress on it as the
    /// meta server holds it, `full_sync`: the link is still copying records, `committed`: the
    /// new primary's committed decree now.
    pub fn start_point(&self, progress: LinkProgress, full_sync: bool, committed: Decree) -> StartPoint {
        if progress.started && !self.bugs().start_from_committed {
            StartPoint::After { decree: progress.confirmed, resumed: true }
        } else if progress.started || !full_sync {
            StartPoint::After { decree: committed, resumed: progress.started }
        } else {
            StartPoint::CopyFirst
        }
    }
}

impl StartPoint {
    /// What a shipper starting here knows is replicated from the start (its *replicated-up-to*
    /// before any ack, `Shipper::resume_replicated_up_to`): what the meta server recorded with
    /// the confirmed decree (`recorded`), for a partition that resumes; and `applied` (the
    /// timetag of the partition's newest applied write, read before `committed`) where the link
    /// never ships the writes before its start: a partition that starts at its committed decree,
    /// or after a copy of its records (which begins later). Without the latter an idle partition
    /// would show the age of its last write before the link as lag, and would hold the receiving
    /// table's purge horizon at that write forever.
    pub fn replicated_from(self, committed: Decree, applied: Timetag, recorded: Timetag) -> Timetag {
        let floor = match self {
            StartPoint::After { decree, .. } if decree >= committed => applied,
            StartPoint::CopyFirst => applied,
            StartPoint::After { .. } => Timetag::ZERO,
        };
        let resumed = matches!(self, StartPoint::After { resumed: true, .. });
        floor.max(if resumed { recorded } else { Timetag::ZERO })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_partition_resumes_where_the_meta_server_says() {
        let r = DupRules::default();
        let started = LinkProgress { started: true, confirmed: Decree(7) };
        let resumed = StartPoint::After { decree: Decree(7), resumed: true };
        assert_eq!(r.start_point(started, false, Decree(12)), resumed);
        assert_eq!(r.start_point(started, true, Decree(12)), resumed, "its copy is done");
        let fresh = LinkProgress::default();
        assert_eq!(
            r.start_point(fresh, false, Decree(12)),
            StartPoint::After { decree: Decree(12), resumed: false }
        );
        assert_eq!(r.start_point(fresh, true, Decree(12)), StartPoint::CopyFirst);
    }

    #[test]
    fn a_link_is_replicated_up_to_what_it_never_ships() {
        let (applied, recorded) = (Timetag::at_physical_ms(9_000), Timetag::at_physical_ms(4_000));
        let at = |decree, resumed| StartPoint::After { decree: Decree(decree), resumed };
        assert_eq!(at(12, false).replicated_from(Decree(12), applied, Timetag::ZERO), applied, "fresh");
        assert_eq!(StartPoint::CopyFirst.replicated_from(Decree(12), applied, Timetag::ZERO), applied);
        assert_eq!(
            at(7, true).replicated_from(Decree(12), applied, recorded),
            recorded,
            "decrees 8..=12 to ship"
        );
        assert_eq!(
            at(12, true).replicated_from(Decree(12), applied, recorded),
            applied,
            "nothing left to ship"
        );
        assert_eq!(at(7, true).replicated_from(Decree(12), Timetag::ZERO, Timetag::ZERO), Timetag::ZERO);
    }
}
