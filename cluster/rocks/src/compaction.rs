//! The TTL compaction filter: drops expired records while RocksDB compacts.
//!
//! Its horizon is the largest applied timetag, not the local clock: a record expired at that
//! timetag is expired for every future write too (timetags grow with decrees), so replicas
//! that compact at different times still apply every later write identically. Reads hide
//! expired records by the local clock before compaction gets to them.

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
        let horizon = Timetag::from_u64(self.horizon.load(Ordering::Acquire));
        TtlFilter { now_secs: horizon.physical_secs(), name: CString::from(c"tern.ttl_filter") }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

pub(crate) struct TtlFilter {
    now_secs: u64,
    name: CString,
}

impl CompactionFilter for TtlFilter {
    fn filter(&mut self, _level: u32, _key: &[u8], raw: &[u8]) -> CompactionDecision {
        match value::decode(raw) {
            Ok((header, _)) if header.is_expired(self.now_secs) => CompactionDecision::Remove,
            // Never drop what we cannot read: corruption is reported by reads, not hidden here.
            _ => CompactionDecision::Keep,
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}
