//! The `PartitionStore` trait: one partition replica's data.

use std::ops::ControlFlow;
use std::path::Path;

use tern_core::key::KeyRange;
use tern_core::mutation::WriteOutcome;
use tern_core::read::{
    MultiGet, MultiGetResult, ReadOp, ReadResult, SortKeyPage, SortKeyScan, TablePage, TableScan, Ttl,
};
use tern_core::{Ballot, Clock, Decree, Mutation, Result, Timetag, WriteOp};

/// Raw writes for [`PartitionStore::raw_write`]: storage key → `Some(stored value)` to put,
/// `None` to delete. Sorted by key, one entry per key.
pub type RawBatch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Visitor of [`PartitionStore::raw_scan`]: gets each (storage key, stored value) in order and
/// says whether to go on.
pub type RawVisit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>> + 'a;

/// What a store records with every write: the last applied decree, the largest timetag applied
/// so far, and the largest ballot applied so far (with the log, it tells a restarted replica
/// every ballot its durable entries carry, so it never starts a reign at a ballot it used). Timetags grow with decrees (a new primary first observes its log's timetags),
/// so every future write carries a timetag at least this large: a record expired at this
/// timetag is expired for every future write too, which is what lets TTL compaction drop it
/// without making replicas disagree.
///
/// And the partition's purge horizon: the largest one an applied entry carried
/// (`Mutation::purge_below`). Dead records older than it (and than the retention) may be dropped
/// by compaction ([`purgeable`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppliedMark {
    pub decree: Decree,
    pub timetag: Timetag,
    pub ballot: Ballot,
    pub purge_below: Timetag,
}

/// Whether compaction may drop a stored record: it is dead (a tombstone, or expired at the
/// applied horizon `applied`) and older than the partition's purge horizon `purge_below` (below
/// which no duplicated write can arrive any more; the meta server keeps it at least the
/// last-writer-wins retention behind, see `docs/duplication.md`). Both are replicated state, and
/// the rule is monotone in them, so a record one replica dropped counts as droppable on every
/// other (and counts as absent when a write meets it, `apply.rs`): replicas never disagree on
/// what a write does, whenever each compacts. A store without a purge horizon drops nothing.
pub fn purgeable(header: &tern_core::ValueHeader, applied: Timetag, purge_below: Timetag) -> bool {
    purgeable_at(header, applied.physical_secs(), purge_below)
}

pub(crate) fn purgeable_at(header: &tern_core::ValueHeader, now_secs: u64, purge_below: Timetag) -> bool {
    !header.is_live(now_secs) && header.timetag.physical_secs() < purge_below.physical_secs()
}

/// One decree to apply: its number, the ballot it was proposed at, the timetag its primary
/// stamped, and its mutation.
#[derive(Clone, Copy, Debug)]
pub struct ApplyEntry<'a> {
    pub decree: Decree,
    pub ballot: Ballot,
    pub timetag: Timetag,
    pub mutation: &'a Mutation,
}

impl<'a> From<&'a crate::LogEntry> for ApplyEntry<'a> {
    fn from(e: &'a crate::LogEntry) -> Self {
        ApplyEntry { decree: e.decree, ballot: e.ballot, timetag: e.timetag, mutation: &e.mutation }
    }
}

/// The data of one partition replica.
///
/// Writes take `&mut self`: applying is serialized by its owner (the replica's task), which is
/// what makes read-modify-write operations (incr, check-and-set) deterministic. Reads take
/// `&self` and see only live records: not expired at the store clock's "now", not tombstones.
///
/// Durability: `raw_write` makes data visible, not durable. What survives a crash is exactly
/// the state at [`durable_decree`](PartitionStore::durable_decree); the replication log holds
/// everything after it and is replayed on restart. A clean close makes everything durable.
pub trait PartitionStore: Send + Sync {
    // ---- Required: the raw, back-end-specific part. ----

    /// The stored value (header included) under a storage key.
    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Calls `visit` with every stored entry in `range`, in key order (descending if
    /// `reverse`), until it returns `Break` or the range ends.
    fn raw_scan(&self, range: &KeyRange, reverse: bool, visit: &mut RawVisit<'_>) -> Result<()>;

    /// Atomically writes `batch` and records `mark`: after a crash either both are there or
    /// neither.
    fn raw_write(&mut self, batch: RawBatch, mark: AppliedMark) -> Result<()>;

    /// The mark of the last `raw_write` (or what the store was opened or restored at).
    fn last_applied(&self) -> AppliedMark;

    /// The partition's purge horizon as applied (see [`AppliedMark`]); zero when none.
    fn purge_horizon(&self) -> Timetag {
        self.last_applied().purge_below
    }

    /// The last decree whose writes would survive a crash now.
    fn durable_decree(&self) -> Result<Decree>;

    /// Makes everything applied durable (fsync'ed) and returns the new durable decree.
    fn flush(&self) -> Result<Decree>;

    /// Writes a consistent checkpoint of the whole partition into `dir` (which must not exist)
    /// and returns the decree it contains. A store opened from it starts at that decree.
    fn checkpoint(&self, dir: &Path) -> Result<Decree>;

    /// The clock that decides expiry for reads.
    fn clock(&self) -> &dyn Clock;

    // ---- Provided: the data model, the same for every back end. ----

    /// The last decree whose writes are visible.
    fn last_applied_decree(&self) -> Decree {
        self.last_applied().decree
    }

    /// The largest timetag applied so far (see [`AppliedMark`]).
    fn last_applied_timetag(&self) -> Timetag {
        self.last_applied().timetag
    }

    /// The largest ballot applied so far (see [`AppliedMark`]).
    fn last_applied_ballot(&self) -> Ballot {
        self.last_applied().ballot
    }

    /// Applies one decree outside replication (ballot 0). See [`PartitionStore::apply_batch`].
    fn apply(&mut self, decree: Decree, timetag: Timetag, mutation: &Mutation) -> Result<Vec<WriteOutcome>> {
        let mut out = self.apply_batch(&[ApplyEntry { decree, ballot: Ballot::ZERO, timetag, mutation }])?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Applies consecutive decrees, starting right after the last applied one, in one atomic
    /// write. Returns each op's outcome; an op that is refused (e.g. incr on a non-integer) is a
    /// [`WriteOutcome::Failed`] and writes nothing, and the decree still counts as applied. An
    /// `Err` is a store failure or a decree out of sequence: nothing was written.
    fn apply_batch(&mut self, entries: &[ApplyEntry<'_>]) -> Result<Vec<Vec<WriteOutcome>>> {
        crate::apply::apply_batch(self, entries)
    }

    /// Evaluates an atomic op against the store without writing and returns its result as a
    /// `WriteOp::Resolved` (what a primary logs instead of the op). `now_secs` decides TTLs and
    /// expiry. A refusal (e.g. incr of a non-integer) is an `Err`.
    fn resolve(&self, op: &WriteOp, now_secs: u64) -> Result<WriteOp> {
        crate::apply::resolve(self, op, now_secs)
    }

    /// Executes any read request.
    fn read(&self, op: &ReadOp) -> Result<ReadResult> {
        Ok(match op {
            ReadOp::Get { hash_key, sort_key } => ReadResult::Get(self.get(hash_key, sort_key)?),
            ReadOp::MultiGet { hash_key, request } => {
                ReadResult::MultiGet(self.multi_get(hash_key, request)?)
            }
            ReadOp::Scan { hash_key, scan } => ReadResult::Scan(self.scan(hash_key, scan)?),
            ReadOp::Count { hash_key } => ReadResult::Count(self.sort_key_count(hash_key)?),
            ReadOp::Ttl { hash_key, sort_key } => ReadResult::Ttl(self.ttl(hash_key, sort_key)?),
            ReadOp::ScanTable { scan } => ReadResult::ScanTable(self.scan_table(scan)?),
        })
    }

    fn get(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<Vec<u8>>> {
        crate::read::get(self, hash_key, sort_key)
    }

    fn multi_get(&self, hash_key: &[u8], request: &MultiGet) -> Result<MultiGetResult> {
        crate::read::multi_get(self, hash_key, request)
    }

    /// One page of a scan over the sort keys of `hash_key`.
    fn scan(&self, hash_key: &[u8], scan: &SortKeyScan) -> Result<SortKeyPage> {
        crate::read::scan(self, hash_key, scan)
    }

    /// How many live records `hash_key` has.
    fn sort_key_count(&self, hash_key: &[u8]) -> Result<u64> {
        crate::read::sort_key_count(self, hash_key)
    }

    /// The TTL of a live record, or `None` if there is none.
    fn ttl(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<Ttl>> {
        crate::read::ttl(self, hash_key, sort_key)
    }

    /// One page of a scan over the whole partition.
    fn scan_table(&self, scan: &TableScan) -> Result<TablePage> {
        crate::read::scan_table(self, scan)
    }
}
