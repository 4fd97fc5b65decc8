//! Read requests of the data model and their results. Semantics in `docs/data-model.md`.

use std::ops::Bound;

/// Which sort keys (or hash keys, in a table scan) a scan returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyFilter {
    Prefix(Vec<u8>),
    Postfix(Vec<u8>),
    Anywhere(Vec<u8>),
}

impl KeyFilter {
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            KeyFilter::Prefix(p) => key.starts_with(p),
            KeyFilter::Postfix(p) => key.ends_with(p),
            KeyFilter::Anywhere(p) => p.is_empty() || key.windows(p.len()).any(|w| w == p.as_slice()),
        }
    }
}

/// How much one call may return. `None` means no limit of that kind (servers still cap pages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadLimits {
    /// At most this many records.
    pub max_count: Option<u32>,
    /// Stop once keys and values returned reach this many bytes (the record that crosses it is
    /// still returned, so a page always makes progress).
    pub max_bytes: Option<u64>,
}

/// A scan of the sort keys of one hash key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKeyScan {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
    pub filter: Option<KeyFilter>,
    /// Descending sort-key order.
    pub reverse: bool,
    /// Return keys only (values come back empty).
    pub no_value: bool,
    pub limits: ReadLimits,
}

impl Default for SortKeyScan {
    fn default() -> Self {
        SortKeyScan {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            filter: None,
            reverse: false,
            no_value: false,
            limits: ReadLimits::default(),
        }
    }
}

impl SortKeyScan {
    /// The same scan, continuing after a page that ended at `resume`.
    pub fn resume_after(&self, resume: &[u8]) -> SortKeyScan {
        let mut next = self.clone();
        if self.reverse {
            next.end = Bound::Excluded(resume.to_vec());
        } else {
            next.start = Bound::Excluded(resume.to_vec());
        }
        next
    }
}

/// One record returned by a read: `value` is empty when the read asked for keys only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKeyValue {
    pub sort_key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A page of a sort-key scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SortKeyPage {
    pub records: Vec<SortKeyValue>,
    /// Set when there may be more: pass it to [`SortKeyScan::resume_after`]. It is the last
    /// sort key *examined*, which may be past the last one returned (filters, expired records).
    pub resume: Option<Vec<u8>>,
}

/// multi_get: by an explicit list of sort keys, or by a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiGet {
    /// These sort keys; absent ones are left out of the result. An empty list means every sort
    /// key of the hash key.
    Keys {
        sort_keys: Vec<Vec<u8>>,
        no_value: bool,
        limits: ReadLimits,
    },
    Range(SortKeyScan),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MultiGetResult {
    /// In ascending sort-key order (descending for a reverse range).
    pub records: Vec<SortKeyValue>,
    /// False when a limit cut the result short.
    pub complete: bool,
}

/// One page of a full-table scan of a partition (unordered across hash keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableScan {
    /// Continue after this token from a previous page; `None` starts at the beginning.
    pub resume_token: Option<Vec<u8>>,
    pub hash_key_filter: Option<KeyFilter>,
    pub sort_key_filter: Option<KeyFilter>,
    pub no_value: bool,
    pub limits: ReadLimits,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub hash_key: Vec<u8>,
    pub sort_key: Vec<u8>,
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablePage {
    pub records: Vec<Record>,
    /// `None` when the partition is exhausted; otherwise pass it back as `resume_token`.
    pub resume_token: Option<Vec<u8>>,
}

/// The answer to a TTL query on an existing record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The record never expires.
    Persistent,
    /// Seconds until the record expires (at least 1).
    Remaining(u64),
}

/// A read request of the data model (what `Kv.Read` carries). Replicas decide whether they may
/// serve it; stores execute it ([`ReadResult`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOp {
    Get { hash_key: Vec<u8>, sort_key: Vec<u8> },
    MultiGet { hash_key: Vec<u8>, request: MultiGet },
    Scan { hash_key: Vec<u8>, scan: SortKeyScan },
    Count { hash_key: Vec<u8> },
    Ttl { hash_key: Vec<u8>, sort_key: Vec<u8> },
    ScanTable { scan: TableScan },
}

/// The answer to a [`ReadOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadResult {
    Get(Option<Vec<u8>>),
    MultiGet(MultiGetResult),
    Scan(SortKeyPage),
    Count(u64),
    Ttl(Option<Ttl>),
    ScanTable(TablePage),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(KeyFilter::Prefix(b"ab".to_vec()).matches(b"abc"));
        assert!(!KeyFilter::Prefix(b"ab".to_vec()).matches(b"a"));
        assert!(KeyFilter::Postfix(b"bc".to_vec()).matches(b"abc"));
        assert!(KeyFilter::Anywhere(b"b".to_vec()).matches(b"abc"));
        assert!(KeyFilter::Anywhere(vec![]).matches(b""));
        assert!(!KeyFilter::Anywhere(b"x".to_vec()).matches(b"abc"));
    }

    #[test]
    fn resume_moves_the_right_bound() {
        let s = SortKeyScan::default();
        assert_eq!(s.resume_after(b"k").start, Bound::Excluded(b"k".to_vec()));
        let r = SortKeyScan { reverse: true, ..SortKeyScan::default() };
        assert_eq!(r.resume_after(b"k").end, Bound::Excluded(b"k".to_vec()));
    }
}
