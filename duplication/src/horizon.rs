//! The purge horizon of a receiving table: below it, no incoming link can still ship a write,
//! so its replicas may drop dead records (tombstones, expired records) older than it.
//!
//! Why: last-writer-wins needs a record's tombstone for as long as an older write of that record
//! may still arrive; a tombstone dropped earlier lets the older write bring the record back
//! (Cassandra's `gc_grace_seconds` problem). A fixed retention window (24 h) breaks exactly when
//! duplication matters most: a link down for longer than the window. So the horizon is bound by
//! the links themselves (as CRDT systems drop tombstones only once every replica has seen them):
//! every sending partition says how far everything it wrote has been applied here (its
//! *replicated-up-to*, which only grows), and the horizon is the smallest of those over every
//! partition of every incoming link — and at least the retention behind the meta server's
//! clock, so that tombstones still outlive the time clients and operators can see them. A link
//! that is down or paused holds the horizon (and the tombstones) back; its writes apply by plain
//! last-writer-wins whenever they arrive, days later included.
//!
//! The horizon never goes back: replicas may already have dropped what was below it. A link
//! registered later (a new link) with older writes cannot be protected from what was dropped
//! before it existed; its writes older than the horizon still apply by last-writer-wins, but a
//! record deleted here before the horizon may come back. Incoming links silent for longer than
//! the hold limit stop holding the horizon (it is logged loudly).

use tern_core::{Decree, Timetag};

use crate::DupRules;

/// What the receiving table's meta server knows of one incoming link (one sending cluster's
/// table): per sending partition, the replicated-up-to it last reported (`None`: not yet).
#[derive(Clone, Copy, Debug)]
pub struct IncomingLink<'a> {
    pub replicated_up_to: &'a [Option<Timetag>],
}

impl DupRules {
    /// The purge horizon of a receiving table: the smallest replicated-up-to of every partition
    /// of every incoming link (a partition not heard from yet counts as zero), and at most
    /// `retention_ms` behind `now_wall_ms`; never below `current`.
    pub fn purge_horizon<'a>(
        &self,
        current: Timetag,
        now_wall_ms: u64,
        retention_ms: u64,
        incoming: impl IntoIterator<Item = IncomingLink<'a>>,
    ) -> Timetag {
        let retained = Timetag::at_physical_ms(now_wall_ms.saturating_sub(retention_ms));
        let bugs = self.bugs();
        let held = if bugs.ignore_incoming_links {
            None
        } else if bugs.unheard_holds_nothing {
            incoming.into_iter().flat_map(|l| l.replicated_up_to.iter().flatten().copied()).min()
        } else {
            incoming.into_iter().flat_map(|l| l.replicated_up_to.iter().map(|w| w.unwrap_or_default())).min()
        };
        current.max(held.map_or(retained, |h| h.min(retained)))
    }
}

impl DupRules {
    /// What a partition's own outgoing links allow it to purge: a bound on the meta server's
    /// horizon (`None`: none). A link that copies records (a full sync, or a resync after a
    /// hole in the log) copies what the store holds, so a tombstone it has not shipped yet must
    /// stay: a primary never applies a horizon past the first log entry a link of the partition
    /// still has to ship (the entry at the links' log floor, `floor`; every delete before it is
    /// acknowledged by the remote table), and none at all while a link has not started
    /// (`floor` zero: it may still copy). `applied`: the store's applied decree (a floor past
    /// it leaves nothing stored unshipped); `at_floor`: the timetag of the log entry at `floor`,
    /// if the log holds it (if not, nothing is purged: the partition may have to resync).
    ///
    /// Without it (simulator, full-sync runs, seed 800083): a partition's copy restarted after
    /// the table's horizon (held only by incoming links) had passed a delete made since the
    /// first attempt; compaction had dropped the tombstone, the new copy could not send it, and
    /// the other cluster kept the deleted record for good.
    pub fn links_purge_bound(
        &self,
        floor: Option<Decree>,
        applied: Decree,
        at_floor: Option<Timetag>,
    ) -> Option<Timetag> {
        if self.bugs().purge_past_unshipped {
            return None;
        }
        let floor = floor?;
        if floor > applied {
            return None;
        }
        Some(at_floor.filter(|_| floor > Decree::ZERO).unwrap_or(Timetag::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600 * 1000;
    const NOW: u64 = 100 * DAY;

    fn at(ms: u64) -> Timetag {
        Timetag::at_physical_ms(ms)
    }

    #[test]
    fn without_incoming_links_it_trails_now_by_the_retention() {
        let r = DupRules::default();
        assert_eq!(r.purge_horizon(Timetag::ZERO, NOW, DAY, []), at(NOW - DAY));
    }

    #[test]
    fn the_slowest_partition_of_any_incoming_link_holds_it_back() {
        let r = DupRules::default();
        let a = [Some(at(NOW - 10_000)), Some(at(NOW - 3 * DAY))];
        let b = [Some(at(NOW - 5_000))];
        let links = [IncomingLink { replicated_up_to: &a }, IncomingLink { replicated_up_to: &b }];
        assert_eq!(
            r.purge_horizon(Timetag::ZERO, NOW, DAY, links),
            at(NOW - 3 * DAY),
            "a link 3 days behind"
        );
        let caught_up = [Some(at(NOW - 10_000))];
        let links = [IncomingLink { replicated_up_to: &caught_up }];
        assert_eq!(
            r.purge_horizon(Timetag::ZERO, NOW, DAY, links),
            at(NOW - DAY),
            "never closer than the retention"
        );
        let unheard = [Some(at(NOW - 10_000)), None];
        let links = [IncomingLink { replicated_up_to: &unheard }];
        assert_eq!(
            r.purge_horizon(Timetag::ZERO, NOW, DAY, links),
            Timetag::ZERO,
            "a partition not heard yet"
        );
    }

    #[test]
    fn a_partition_keeps_the_tombstones_its_own_links_have_not_shipped() {
        let r = DupRules::default();
        let t = at(NOW - 60_000);
        assert_eq!(r.links_purge_bound(None, Decree(50), None), None, "no link");
        assert_eq!(r.links_purge_bound(Some(Decree(51)), Decree(50), None), None, "everything shipped");
        assert_eq!(r.links_purge_bound(Some(Decree(40)), Decree(50), Some(t)), Some(t), "decree 40 on");
        assert_eq!(r.links_purge_bound(Some(Decree::ZERO), Decree(50), None), Some(Timetag::ZERO), "copying");
        assert_eq!(r.links_purge_bound(Some(Decree(40)), Decree(50), None), Some(Timetag::ZERO), "a hole");
    }

    #[test]
    fn it_never_goes_back() {
        let r = DupRules::default();
        let new_link = [Some(at(NOW - 5 * DAY))];
        let links = [IncomingLink { replicated_up_to: &new_link }];
        assert_eq!(r.purge_horizon(at(NOW - 2 * DAY), NOW, DAY, links), at(NOW - 2 * DAY));
    }
}
