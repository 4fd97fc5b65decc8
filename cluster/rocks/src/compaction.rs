//! The compaction filter: drops dead records (tombstones, expired records) while RocksDB
//! compacts, by the rule every store shares (`tern_storage::purgeable`).
//!
//! Its clock is the largest applied timetag, not the local clock: a record expired at that
//! timetag is expired for every future write too (timetags grow with decrees), so replicas
//! that compact at different times still apply every later write identically. Reads hide
//! expired records and tombstones by themselves before compaction gets to them.
//!
//! Last-writer-wins needs the dead records for a while: a tombstone is what makes a late,
//! older write lose. So a dead record is dropped only once it is older than the partition's
//! purge horizon (replicated state: below it no duplicated write can arrive any more, and the
//! meta server keeps it the retention behind; see `docs/duplication.md`); a store without a
//! purge horizon drops nothing.

use std::ffi::{CStr, CString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::CompactionDecision;
use rocksdb::compaction_filter::CompactionFilter;
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use tern_core::Timetag;
use tern_core::value;
use tern_storage::purgeable;

/// Shared between a store (which advances it on every write) and its compaction filters: the
/// applied timetag and the purge horizon, as applied.
#[derive(Debug, Default)]
pub(crate) struct Horizons {
    pub(crate) applied: AtomicU64,
    pub(crate) purge_below: AtomicU64,
}

pub(crate) type Horizon = Arc<Horizons>;

pub(crate) struct TtlFilterFactory {
    pub(crate) horizon: Horizon,
    name: CString,
}

impl TtlFilterFactory {
    pub(crate) fn new(horizon: Horizon) -> TtlFilterFactory {
        TtlFilterFactory { horizon, name: CString::from(c"tern.ttl_filter_factory") }
    }
}

impl CompactionFilterFactory for TtlFilterFactory {
    type Filter = TtlFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> TtlFilter {
        TtlFilter {
            applied: Timetag::from_u64(self.horizon.applied.load(Ordering::Acquire)),
            purge_below: Timetag::from_u64(self.horizon.purge_below.load(Ordering::Acquire)),
            name: CString::from(c"tern.ttl_filter"),
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

pub(crate) struct TtlFilter {
    applied: Timetag,
    purge_below: Timetag,
    name: CString,
}

impl CompactionFilter for TtlFilter {
    fn filter(&mut self, _level: u32, _key: &[u8], raw: &[u8]) -> CompactionDecision {
        match value::decode(raw) {
            Ok((header, _)) if purgeable(&header, self.applied, self.purge_below) => {
                CompactionDecision::Remove
            }
            // Never drop what we cannot read: corruption is reported by reads, not hidden here.
            _ => CompactionDecision::Keep,
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}
