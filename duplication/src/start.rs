//! Where a new primary's shipper starts, decided in one place.
//!
//! A partition that has started shipping resumes after the decree the meta server holds as
//! confirmed (never the new primary's own idea of it: it may have committed writes its
//! predecessor never shipped). A partition that has not started yet either copies its records
//! first (a link added with a full sync) or starts from whatever it has committed when its
//! primary first sees the link: such a link ships only the writes made after it started.

use tern_core::Decree;

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
}
