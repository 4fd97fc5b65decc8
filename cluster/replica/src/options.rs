//! Tunables of a replica. Times are milliseconds of the node's local clock.

use tern_core::{ClusterId, Limits};

#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// This cluster's id, stamped into every timetag.
    pub cluster: ClusterId,
    /// Admission limits for client writes.
    pub limits: Limits,
    /// Most decrees a primary keeps prepared but not committed; more writes get `BUSY`.
    pub max_inflight: u64,
    /// Most client writes, and bytes of them, a primary puts into one entry (batching, see
    /// `admission.rs`). 1 turns batching off.
    pub batch_max_ops: usize,
    pub batch_max_bytes: u64,
    /// While this many entries are prepared but not committed, new client writes queue for the
    /// next entry instead of going out alone (see `admission.rs`). Larger values pipeline
    /// more and batch less; writes that arrive together (one pipeline frame) share an entry
    /// either way.
    pub batch_max_uncommitted: usize,
    /// A primary resends an unacknowledged prepare (and group-checks) this often.
    pub resend_ms: u64,
    /// A primary asks to remove a secondary that has not acknowledged a prepare for this long.
    pub ack_timeout_ms: u64,
    /// A primary forgets a learner that went quiet for this long; a learner asks again.
    pub learn_timeout_ms: u64,
    /// A primary repeats a proposal to the configuration manager this often while it stands.
    pub propose_retry_ms: u64,
    /// Peer timetags further ahead than this are reported by the HLC.
    pub max_clock_offset_ms: u64,
    /// Most client writes a primary holds back waiting on a hash key (behind an atomic op
    /// being resolved, see `resolve.rs`); more get `BUSY`.
    pub max_parked: usize,
    /// Test only: commit once a majority (not every member) has logged a mutation.
    #[cfg(feature = "planted-bugs")]
    pub bug_commit_on_majority: bool,
    /// Test only: serve reads without checking the lease.
    #[cfg(feature = "planted-bugs")]
    pub bug_read_without_lease: bool,
    /// Test only: resolve an atomic op while an uncommitted write to its hash key is in flight
    /// (it reads a store without that write).
    #[cfg(feature = "planted-bugs")]
    pub bug_resolve_past_in_flight: bool,
}

impl ReplicaOptions {
    pub fn new(cluster: ClusterId) -> ReplicaOptions {
        ReplicaOptions {
            cluster,
            limits: Limits::default(),
            max_inflight: 1024,
            batch_max_ops: 64,
            batch_max_bytes: 1 << 20,
            batch_max_uncommitted: 32,
            resend_ms: 200,
            ack_timeout_ms: 2_000,
            learn_timeout_ms: 5_000,
            propose_retry_ms: 1_000,
            max_clock_offset_ms: 500,
            max_parked: 4096,
            #[cfg(feature = "planted-bugs")]
            bug_commit_on_majority: false,
            #[cfg(feature = "planted-bugs")]
            bug_read_without_lease: false,
            #[cfg(feature = "planted-bugs")]
            bug_resolve_past_in_flight: false,
        }
    }
}
