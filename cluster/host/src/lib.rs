//! The executor of a replica's actions: the one piece of code that carries out what
//! `tern_replica::Replica` decides, run by the replica server (over RocksDB and the node's
//! group-commit log writer) and by the simulator (over in-memory stores and logs) alike.
//!
//! Read first: [`ReplicaHost`] (what a process must provide; methods that block on disk block:
//! the server's implementation tells its async runtime), then [`drive`] (one event in,
//! every action carried out, follow-up events queued and fed in order) and `exec.rs` (what
//! each action does). The duplication decisions an action needs (what of the log survives a
//! reset, what a checkpoint carries, where garbage collection may cut) are
//! `tern_duplication::DupRules`, so the simulator checks exactly the code the server runs.
//!
//! Invariants:
//! * actions run in the order the replica pushed them; a follow-up event (an atomic op's
//!   resolution, a failed apply or log reset) is fed only after the whole action list ran,
//!   never by re-entering the replica in the middle of one;
//! * a write is answered only with the outcome the store returned for its op: an outcome
//!   that is missing is an invariant failure, never an acknowledgement;
//! * a log that could not be written or reset stops the replica (`AppendFailed`).
//!
//! Must not depend on: tokio, tonic, rocksdb, or any clock or I/O of its own (checked by
//! `scripts/check-deps.sh`). Time comes in as [`tern_replica::Now`].

mod exec;

use tern_core::mutation::WriteOutcome;
use tern_core::read::ReadResult;
use tern_core::{Ballot, ConfigChange, Decree, Error, Gpid, NodeId, ReplicaStatus, Result};
use tern_duplication::DupRules;
use tern_replica::{CheckpointRef, PeerMessage, RequestId};
use tern_storage::{LogEntry, PartitionStore};

pub use exec::{drive, flush, keep_carried};

/// The decree range a log holds (`None` when empty) and entries read from it.
pub type LogRead = (Option<(Decree, Decree)>, Vec<LogEntry>);

/// What a process provides to run one replica's actions: its store, its log, the way to other
/// replicas and the meta server, and where answers go. Completions that come later (a log
/// append made durable, a checkpoint fetched) are the host's to feed back as events.
pub trait ReplicaHost {
    type Store: PartitionStore;

    /// The replica's store; an error while it is being replaced by a checkpoint.
    fn store(&self) -> Result<&Self::Store>;
    fn store_mut(&mut self) -> Result<&mut Self::Store>;

    // ---- the log ----

    /// Appends `entries`; the host later feeds `Appended` once they are durable, or
    /// `AppendFailed`. Appends are durable in order.
    fn append(&mut self, entries: Vec<LogEntry>);
    /// Up to `max` entries from `from`, and the decree range the log holds.
    fn read_log(&self, from: Decree, max: usize) -> Result<LogRead>;
    /// Empties the log, then appends `keep` (entries the store has applied, so no `Appended`
    /// follows), both before anything appended later. An `Err` now, or an `AppendFailed` fed
    /// later, says it failed.
    fn reset_log(&mut self, keep: Vec<LogEntry>) -> Result<()>;
    /// Appends entries the store has applied (no `Appended` follows); a failure is reported
    /// like one of `reset_log`.
    fn append_applied(&mut self, entries: Vec<LogEntry>) -> Result<()>;
    /// Drops the log's entries below `below`.
    fn gc_log(&mut self, below: Decree);
    /// Starts making the store durable (in the background where the store can) and returns
    /// the decree it holds durably now: the periodic flush that lets the log be collected.
    fn flush_store(&mut self) -> Result<Decree>;
    /// Makes everything the store applied durable before returning, and returns that decree
    /// (before a log reset: the log must not be emptied of what only it holds).
    fn sync_store(&mut self) -> Result<Decree>;

    // ---- duplication ----

    fn dup_rules(&self) -> &DupRules;
    /// The lowest decree this replica's links still need (`DupRules::log_floor` over the
    /// links the host knows), `None` if none.
    fn dup_log_floor(&self) -> Option<Decree>;

    // ---- other replicas and the meta server ----

    fn send(&mut self, to: NodeId, msg: PeerMessage);
    fn propose(&mut self, gpid: Gpid, ballot: Ballot, change: ConfigChange);
    /// Makes a checkpoint of the store for a learner.
    fn make_checkpoint(&mut self) -> Result<CheckpointRef>;
    /// Stores `entries` with checkpoint `checkpoint`, for the learner to append to its log.
    fn carry_with_checkpoint(&mut self, checkpoint: &CheckpointRef, entries: Vec<LogEntry>) -> Result<()>;
    /// Fetches `checkpoint` from `from`; the host installs it and then calls [`keep_carried`]
    /// and feeds `CheckpointInstalled`, or feeds `CheckpointFailed`.
    fn fetch_checkpoint(&mut self, from: NodeId, checkpoint: CheckpointRef);

    // ---- answers ----

    /// The outcome of write `req`, logged at `decree` (an `Err` if it failed or is unknown).
    fn write_done(&mut self, req: RequestId, decree: Decree, outcome: Result<WriteOutcome>);
    /// The result of read `req`, served at `ballot`.
    fn read_done(&mut self, req: RequestId, ballot: Ballot, result: Result<ReadResult>);
    /// Request `req` is refused: `not_applied` when it certainly did not and will not happen.
    fn refused(&mut self, req: RequestId, error: Error, not_applied: bool);

    // ---- notes ----

    /// Entries just applied to the store (the simulator checks them); default: nothing.
    fn applied(&mut self, entries: &[LogEntry]) {
        let _ = entries;
    }
    /// The replica changed role or ballot (`failure`: why it stopped, if it did); default:
    /// nothing.
    fn role_changed(
        &mut self,
        before: (ReplicaStatus, Ballot),
        after: (ReplicaStatus, Ballot),
        failure: Option<&Error>,
    ) {
        let _ = (before, after, failure);
    }
    /// Something went wrong that no replica event reports (the server logs it; the simulator,
    /// where it should never happen, counts a violation).
    fn trouble(&mut self, what: String);
}
