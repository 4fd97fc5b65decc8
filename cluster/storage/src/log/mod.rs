//! The mutation log: each replica's private write-ahead log of `(ballot, decree, timetag,
//! mutation)` records.
//!
//! It serves crash recovery (replay what the store had not flushed), learning (a learner
//! catches up from it) and duplication (shipped from it). Records are appended in arrival order;
//! a decree may appear more than once when a newer primary re-proposes it under a higher
//! ballot, and the latest appended record of a decree is the one that counts.
//!
//! Durability: `append` makes records readable, `sync` makes them durable (one fsync for
//! everything appended since the last sync: group commit). Only synced records survive a
//! crash; a torn tail is cut off at recovery and reported.

mod file;
mod group;
mod mem;
mod record;
mod shared;

#[cfg(any(test, feature = "testing"))]
pub use file::sync_faults;
pub use file::{FileLogConfig, FileMutationLog, SyncJob, SyncPolicy};
pub use group::GroupCommit;
pub use mem::MemMutationLog;
pub use record::{Decoded, decode_record, encode_record};
pub use shared::{Recovered, SharedLog, remove_durably};

use tern_core::{Ballot, Decree, Mutation, Result, Timetag};

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub ballot: Ballot,
    pub decree: Decree,
    pub timetag: Timetag,
    pub mutation: Mutation,
}

/// What opening a log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records read back.
    pub records: u64,
    /// Bytes cut off the end of the last segment (a torn or zero-filled tail), with why.
    pub truncated_bytes: u64,
    pub truncation_reason: Option<String>,
}

/// A replica's private log. Implementations: [`FileMutationLog`] (segment files) and
/// [`MemMutationLog`] (tests and the simulator).
pub trait MutationLog: Send {
    /// Appends after everything appended so far; readable at once, durable after [`sync`].
    /// An entry for a decree already present replaces it for reads.
    ///
    /// [`sync`]: MutationLog::sync
    fn append(&mut self, entries: &[LogEntry]) -> Result<()>;

    /// Makes every appended entry durable, with one fsync per touched file.
    fn sync(&mut self) -> Result<()>;

    /// Up to `max` entries with decree ≥ `from`, ascending; for a decree appended more than once,
    /// the latest. Decrees may have gaps (records arrive out of order).
    fn read(&self, from: Decree, max: usize) -> Result<Vec<LogEntry>>;

    /// The smallest and largest decree held, if any.
    fn decree_range(&self) -> Option<(Decree, Decree)>;

    /// Frees space below `decree`: drops whole segments whose entries are all below it. Never
    /// drops an entry at or above it. Once it dropped anything, no decree below `decree` is
    /// readable (nor counted by `decree_range`), copies in kept segments included: GC never
    /// leaves a hole that would make the log look as if it reached further back than it does.
    fn gc_below(&mut self, decree: Decree) -> Result<()>;

    /// Removes every entry, durably (a learner starting over).
    fn reset(&mut self) -> Result<()>;
}

/// The entries of `from..=through`, if `entries` (as [`MutationLog::read`] returns them from
/// `from`, ascending) hold every one of them. A log can hold holes (records arrive out of order,
/// and a replica that learned from a checkpoint keeps prepares it got meanwhile), so its decree
/// range alone does not say it reaches back to `from`.
pub fn contiguous_run(mut entries: Vec<LogEntry>, from: Decree, through: Decree) -> Option<Vec<LogEntry>> {
    if from > through {
        return Some(vec![]);
    }
    let n = (through.0 - from.0 + 1) as usize;
    entries.truncate(n);
    let whole =
        entries.len() == n && entries.iter().enumerate().all(|(i, e)| e.decree.0 == from.0 + i as u64);
    whole.then_some(entries)
}
