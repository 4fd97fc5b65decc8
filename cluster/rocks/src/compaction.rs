//! The compaction filter: drops expired records and tombstones while RocksDB compacts.
//!
//! Its horizon is the largest applied timetag, not the local clock: a record expired at that
//! timetag is expired for every future write too (timetags grow with decrees), so replicas
//! that compact at different times still apply every later write identically. Reads hide
//! expired records and tombstones by themselves before compaction gets to them.
//!
//! Last-writer-wins needs the dead records for a while: a tombstone is what makes a late,
//! older write lose. So a tombstone or an expired record is dropped only once its timetag is
//! more than the retention older than the horizon; duplicated writes older than that window
//! are refused before they are logged, so whether a replica compacted already never changes
//! what a write does.

use std::ffi::{CStr, CString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::CompactionDecision;
use rocksdb::compaction_filter::CompactionFilter;
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use tern_core::Timetag;
use tern_core::value;

/// Shared between a store (which advances it on every write) and its compaction filters.
pub(crate) type Horizon = Arc<AtomicU64>;

pub(crate) struct TtlFilterFactory {
    pub(crate) horizon: Horizon,
    retention_secs: u64,
    name: CString,
}

impl TtlFilterFactory {
    pub(crate) fn new(horizon: Horizon, retention_secs: u64) -> TtlFilterFactory {
        TtlFilterFactory { horizon, retention_secs, name: CString::from(c"tern.ttl_filter_factory") }
    }
}

impl CompactionFilterFactory for TtlFilterFactory {
    type Filter = TtlFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> TtlFilter {
        let horizon = Timetag::from_u64(self.horizon.load(Ordering::Acquire));
        let now_secs = horizon.physical_secs();
        TtlFilter {
            now_secs,
            older_than_secs: now_secs.saturating_sub(self.retention_secs),
            name: CString::from(c"tern.ttl_filter"),
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

pub(crate) struct TtlFilter {
    now_secs: u64,
    /// Dead records whose timetag is older than this (seconds) may go.
    older_than_secs: u64,
    name: CString,
}

impl CompactionFilter for TtlFilter {
    fn filter(&mut self, _level: u32, _key: &[u8], raw: &[u8]) -> CompactionDecision {
        match value::decode(raw) {
            Ok((header, _))
                if !header.is_live(self.now_secs)
                    && header.timetag.physical_secs() < self.older_than_secs =>
            {
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
