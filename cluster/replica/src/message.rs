//! What goes in and out of the replica state machine.

use tern_core::mutation::WriteOutcome;
pub use tern_core::read::ReadOp;
use tern_core::{
    Ballot, ConfigChange, Decree, Error, Gpid, NodeId, PartitionConfig, Result, Timetag, WriteOp,
};
use tern_storage::LogEntry;

/// The time of an event, read by the runtime from two clocks: the monotonic clock drives leases
/// and timers (a wall-clock step must never stretch a lease), the wall clock stamps timetags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: u64,
}

impl Now {
    /// Both clocks at `ms` (tests and the simulator, whose clocks are one).
    pub fn at(ms: u64) -> Now {
        Now { mono_ms: ms, wall_ms: ms }
    }
}

/// Identifies a client request inside one runtime (which maps it back to its connection).
pub type RequestId = u64;

/// A primary's reign: the ballot at which it became primary and the decree it knew committed
/// then. A reign ends when another replica becomes primary (always with a higher ballot); the
/// ballot may rise within a reign as members are added or removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reign {
    pub ballot: Ballot,
    pub base: Decree,
}

/// Messages between replicas of one partition.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerMessage {
    /// Primary → secondaries and learners: log this entry. Carries the commit point.
    Prepare { config: PartitionConfig, reign: Reign, committed: Decree, entry: LogEntry },
    /// Reply to a prepare: `entry_ballot`/`decree` name the entry; `durable_through` is the
    /// sender's contiguous durable decree (used for learners); `refusal` says why it was not
    /// logged.
    PrepareAck {
        ballot: Ballot,
        entry_ballot: Ballot,
        decree: Decree,
        durable_through: Decree,
        refusal: Option<Refusal>,
    },
    /// Primary → members and learners, periodically: the configuration and commit point.
    GroupCheck { config: PartitionConfig, reign: Reign, committed: Decree },
    /// Primary → a new learner: start learning from me.
    LearnInvite { config: PartitionConfig, reign: Reign },
    /// Learner → primary: my store holds everything up to `applied`; send the rest.
    LearnRequest { ballot: Ballot, applied: Decree },
    /// Primary → learner (built by the runtime): a checkpoint if the log does not reach back
    /// far enough, then log entries through `through`, and the commit point.
    LearnResponse {
        config: PartitionConfig,
        reign: Reign,
        committed: Decree,
        through: Decree,
        checkpoint: Option<CheckpointRef>,
        entries: Vec<LogEntry>,
    },
    /// Learner → primary: everything through `through` is durable here.
    LearnAck { ballot: Ballot, through: Decree },
}

/// A checkpoint a learner fetches from its primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointRef {
    pub id: u64,
    pub decree: Decree,
    pub timetag: Timetag,
}

/// Why a replica refused a prepare or group check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The sender's ballot is older than the receiver's.
    StaleBallot,
    /// The receiver is not (or no longer) a member or learner of the sender's configuration.
    NotMember,
    /// The receiver is inactive or failed.
    Inactive,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The runtime opened this replica's store and log (at start or restart): the store's applied
    /// decree, largest applied timetag and ballot, and the log's entries after it. The replica
    /// starts inactive, at the largest ballot found in the store or the log.
    Open {
        applied: Decree,
        applied_timetag: Timetag,
        applied_ballot: Ballot,
        /// The store's purge horizon (`tern_storage::PartitionStore::purge_horizon`).
        purge_below: Timetag,
        log: Vec<LogEntry>,
    },
    /// The configuration manager created this replica for a new, empty partition.
    Create {
        config: PartitionConfig,
    },
    /// The configuration manager's current configuration.
    ConfigUpdate {
        config: PartitionConfig,
    },
    /// The configuration manager asks this primary to bring `learner` in.
    AddLearner {
        config: PartitionConfig,
        learner: NodeId,
    },
    /// The node's lease from the meta server now ends at this local time.
    Lease {
        expires_at_ms: u64,
    },
    /// Timers.
    Tick,
    ClientWrite {
        req: RequestId,
        op: WriteOp,
    },
    /// Client writes that arrived together (one frame of a client's pipeline): handled like
    /// as many `ClientWrite`s, except that they go out as one entry even when the primary is
    /// idle (as far as `batch_max_ops`, `batch_max_bytes` and distinct hash keys allow).
    ClientWrites {
        writes: Vec<(RequestId, WriteOp)>,
    },
    ClientRead {
        req: RequestId,
        read: ReadOp,
    },
    Peer {
        from: NodeId,
        msg: PeerMessage,
    },
    /// These appended entries are durable (fsync'ed).
    Appended {
        entries: Vec<(Ballot, Decree)>,
    },
    /// The log could not be written: the replica must stop.
    AppendFailed {
        error: Error,
    },
    /// The learner's store was replaced by the checkpoint.
    CheckpointInstalled {
        decree: Decree,
        timetag: Timetag,
    },
    CheckpointFailed {
        error: Error,
    },
    /// The meta server's purge horizon for this partition's table: below it no duplicated
    /// write can arrive any more (`docs/duplication.md`). A primary logs a newer one in an
    /// entry of its own, so every replica applies it at the same decree; others ignore it.
    PurgeHorizon {
        below: Timetag,
    },
    /// The answer to `Action::Resolve`: the op's result as a `WriteOp::Resolved`, or why it is
    /// refused (e.g. incr of a value that is not an integer).
    Resolved {
        req: RequestId,
        result: tern_core::Result<WriteOp>,
    },
}

/// Who waits for the outcome of op `op` of the entry at `decree`: a primary puts the client
/// writes that arrive while its previous entry is being logged into one entry (see
/// `admission.rs`), so one decree may answer several requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub decree: Decree,
    pub op: usize,
    pub req: RequestId,
}

impl Reply {
    /// This reply's outcome, given an `Apply`'s entries and the store's outcomes for them (one
    /// list per entry, one outcome per op). The write is committed: a missing outcome means the
    /// runtime or the store broke an invariant, and the client must not be told the write
    /// succeeded (nor that it failed), so it is an error naming decree and op.
    pub fn outcome(&self, entries: &[LogEntry], outcomes: &[Vec<WriteOutcome>]) -> Result<WriteOutcome> {
        let Some(i) = entries.iter().position(|e| e.decree == self.decree) else {
            return Err(Error::invariant(format!(
                "no outcome for op {} of decree {} (request {}): the applied entries do not include the decree",
                self.op, self.decree, self.req
            )));
        };
        let ops = outcomes.get(i).map_or(0, Vec::len);
        outcomes.get(i).and_then(|o| o.get(self.op)).cloned().ok_or_else(|| {
            Error::invariant(format!(
                "no outcome for op {} of decree {} (request {}): the store returned {ops} outcomes for it",
                self.op, self.decree, self.req
            ))
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Append to the log, then report `Appended` once durable. Appends are durable in order.
    Append {
        entries: Vec<LogEntry>,
    },
    /// Make the store durable through every decree applied so far (flush it), then empty the
    /// log (durably), both before anything appended later. The flush comes first because the log
    /// is what recovers applied-but-unflushed decrees after a crash: without it, a replica that
    /// starts learning from its applied decree could come back from a crash missing decrees it
    /// had acknowledged (found by the simulator). If the flush fails the log must
    /// stay as it is and the replica stop (`AppendFailed`).
    ResetLog,
    /// Apply committed entries to the store, in order, before any later action runs; then reply
    /// to each listed request with the outcome of its op.
    Apply {
        entries: Vec<LogEntry>,
        replies: Vec<Reply>,
    },
    Send {
        to: NodeId,
        msg: PeerMessage,
    },
    /// Build and send a `LearnResponse` to `to`: entries after `learner_applied` through
    /// `through` from the log, preceded by a checkpoint if the log no longer reaches back.
    SendLearnResponse {
        to: NodeId,
        learner_applied: Decree,
        through: Decree,
        config: PartitionConfig,
        reign: Reign,
        committed: Decree,
    },
    /// Fetch checkpoint `checkpoint` from `from` and replace the store with it; then report
    /// `CheckpointInstalled` (or `CheckpointFailed`).
    InstallCheckpoint {
        from: NodeId,
        checkpoint: CheckpointRef,
    },
    /// Ask the configuration manager for a change, at the current ballot.
    Propose {
        gpid: Gpid,
        ballot: Ballot,
        change: ConfigChange,
    },
    /// Serve a read from the store (after every earlier `Apply`) and reply.
    ServeRead {
        req: RequestId,
        read: ReadOp,
        ballot: Ballot,
    },
    /// Evaluate an atomic op against the store (after every earlier `Apply`) at `now_secs`,
    /// without writing, and report `Resolved` (see `tern_storage::PartitionStore::resolve`).
    Resolve {
        req: RequestId,
        op: WriteOp,
        now_secs: u64,
    },
    /// Refuse a request. `not_applied` is true when the write certainly did not and will not
    /// happen; false means its outcome is unknown.
    Refuse {
        req: RequestId,
        error: Error,
        not_applied: bool,
    },
}

#[cfg(test)]
mod tests {
    use tern_core::mutation::WriteOutcome;
    use tern_core::{Ballot, Decree, ErrorCode, Mutation, Timetag};
    use tern_storage::LogEntry;

    use super::Reply;

    fn entry(d: u64, ops: usize) -> LogEntry {
        let op = |i: usize| tern_core::WriteOp::Del { hash_key: vec![i as u8], sort_key: vec![] };
        LogEntry {
            ballot: Ballot(1),
            decree: Decree(d),
            timetag: Timetag::default(),
            mutation: Mutation::new((0..ops).map(op).collect()),
        }
    }

    #[test]
    fn a_reply_takes_the_outcome_of_its_own_op() {
        let entries = [entry(4, 1), entry(5, 2)];
        let outcomes = vec![
            vec![WriteOutcome::Done],
            vec![WriteOutcome::Incr { new_value: 1 }, WriteOutcome::Incr { new_value: 2 }],
        ];
        let reply = Reply { decree: Decree(5), op: 1, req: 9 };
        assert_eq!(reply.outcome(&entries, &outcomes), Ok(WriteOutcome::Incr { new_value: 2 }));
    }

    /// Regression: a missing outcome used to default to `Done`, acknowledging a write whose
    /// result nobody knew.
    #[test]
    fn a_missing_outcome_is_an_invariant_error_never_done() {
        let entries = [entry(4, 1), entry(5, 2)];
        let cases: [(&str, Reply, Vec<Vec<WriteOutcome>>); 4] = [
            (
                "op beyond the store's outcomes",
                Reply { decree: Decree(5), op: 1, req: 9 },
                vec![vec![WriteOutcome::Done], vec![WriteOutcome::Done]],
            ),
            (
                "no outcome list for the entry",
                Reply { decree: Decree(5), op: 0, req: 9 },
                vec![vec![WriteOutcome::Done]],
            ),
            ("no outcomes at all", Reply { decree: Decree(4), op: 0, req: 9 }, vec![]),
            (
                "decree not among the entries",
                Reply { decree: Decree(6), op: 0, req: 9 },
                vec![vec![WriteOutcome::Done], vec![WriteOutcome::Done, WriteOutcome::Done]],
            ),
        ];
        for (case, reply, outcomes) in cases {
            let e = reply.outcome(&entries, &outcomes).expect_err(case);
            assert_eq!(e.code(), ErrorCode::InvariantViolated, "{case}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("op {}", reply.op)), "{case}: names the op: {msg}");
            assert!(msg.contains(&format!("decree {}", reply.decree)), "{case}: names the decree: {msg}");
        }
    }
}
