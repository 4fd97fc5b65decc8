//! How much of a partition's log its duplication links need, decided in one place.
//!
//! Every replica (not only the primary) keeps its log from each link's first unconfirmed decree
//! on, so that whichever replica becomes primary can ship from where the last one stopped. Three
//! moments would otherwise lose that log, and each has a rule here:
//!
//! * **garbage collection** cuts the log only below both what the store holds durably and the
//!   links' floor ([`DupRules::gc_below`]);
//! * a **log reset** (a replica emptying its log to learn) writes back the committed entries
//!   from the floor through the store's applied decree ([`DupRules::needed_range`]);
//! * a **checkpoint** made for a learner carries the entries from the floor through the
//!   checkpoint's decree, and the learner appends them when it installs the checkpoint
//!   ([`DupRules::carried_to_append`]).
//!
//! Entries written back or carried are at or below the store's applied decree, so a restart
//! never replays them into the store (a replica takes only log entries after its applied
//! decree). Until a partition has started shipping, or before a server has heard the links
//! since it started, nothing is known about what the links need: the whole log is kept.

use tern_core::{Ballot, Decree, NodeId, PartitionConfig};
use tern_storage::LogEntry;

use crate::DupRules;

/// One link's progress on one partition, as the meta server holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkProgress {
    /// Shipping has started in this partition (`confirmed` means something).
    pub started: bool,
    /// Every write through this decree is acknowledged by the remote cluster.
    pub confirmed: Decree,
}

impl LinkProgress {
    /// The progress after an accepted report that everything through `confirmed` is
    /// acknowledged: shipping has started, and the confirmed decree only grows (a late report
    /// of an older decree changes nothing).
    pub fn after_report(self, confirmed: Decree) -> LinkProgress {
        LinkProgress { started: true, confirmed: self.confirmed.max(confirmed) }
    }
}

/// Whether a shipper's progress report counts: only one from the partition's current primary at
/// its current ballot does (a deposed primary's shipper may still report a decree that its
/// successor's reign never confirmed).
pub fn report_counts(config: &PartitionConfig, from: NodeId, ballot: Ballot) -> bool {
    config.primary == Some(from) && config.ballot == ballot
}

impl DupRules {
    /// The lowest decree of a partition's log its links still need, or `None` if no link holds
    /// any of it back. `links_known`: the node has heard the links from the meta server since it
    /// started (until then it keeps the whole log); `links`: the progress of every link of the
    /// partition's table.
    pub fn log_floor(
        &self,
        links_known: bool,
        links: impl IntoIterator<Item = LinkProgress>,
    ) -> Option<Decree> {
        if !links_known {
            return Some(Decree::ZERO);
        }
        let past = if self.bugs().floor_past_confirmed { 2 } else { 1 };
        links.into_iter().map(|l| if l.started { Decree(l.confirmed.0 + past) } else { Decree::ZERO }).min()
    }

    /// Where garbage collection may cut a log (it keeps decrees from the returned one on): below
    /// what the store holds durably, and below the links' floor.
    pub fn gc_below(&self, durable: Decree, floor: Option<Decree>) -> Decree {
        durable.next().min(floor.unwrap_or(Decree(u64::MAX)))
    }

    /// The decrees that must survive when a log is emptied (a reset, at the store's applied
    /// decree `upto`) or travel with a checkpoint (at its decree `upto`): from the links' floor
    /// through `upto`; `None` when the links need none of them.
    pub fn needed_range(&self, floor: Option<Decree>, upto: Decree) -> Option<(Decree, Decree)> {
        if self.bugs().forget_log_when_learning {
            return None;
        }
        let from = floor?.max(Decree(1));
        (from <= upto).then_some((from, upto))
    }

    /// Of `entries` read from a log for `range`, those to keep: inside the range, one per decree,
    /// in increasing order.
    pub fn select(&self, entries: Vec<LogEntry>, range: (Decree, Decree)) -> Vec<LogEntry> {
        let mut out: Vec<LogEntry> = Vec::with_capacity(entries.len());
        for e in entries {
            if e.decree >= range.0 && e.decree <= range.1 && out.last().is_none_or(|l| l.decree < e.decree) {
                out.push(e);
            }
        }
        out
    }

    /// Which of the entries a checkpoint at `decree` carried a learner appends to its log once
    /// it installed the checkpoint: those at or below the checkpoint's decree — also when the log
    /// already holds later entries (prepares the learner logged while it installed): logs index
    /// records by decree, so an earlier decree may follow a later one. (Refusing them there, as
    /// the servers once did, left the log with a hole the link could not ship past; the
    /// simulator found it once it ran this code.)
    pub fn carried_to_append(&self, carried: Vec<LogEntry>, decree: Decree) -> Vec<LogEntry> {
        carried.into_iter().filter(|e| e.decree <= decree).collect()
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
