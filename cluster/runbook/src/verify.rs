//! `tern dr verify` as pure functions: two copies of a table are compared by digests of
//! hash-key buckets, then only the differing buckets by key. Both are independent of the order
//! records are read in and of the partition count, so copies with different partition counts
//! compare (a bucket is a hash of the hash key modulo [`BUCKETS`], not a partition).
//!
//! A record's digest covers its hash key, sort key and value (a table scan returns no TTL or
//! timetag: copies that differ only in expiry are not told apart).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde::Serialize;
use tern_core::partition_of;
use tern_core::read::Record;

/// How many buckets a table's hash keys are spread over for the first comparison.
pub const BUCKETS: u32 = 4096;

/// The bucket of a hash key.
pub fn bucket_of(hash_key: &[u8]) -> u32 {
    partition_of(hash_key, BUCKETS).0
}

/// A record's digest (fixed keys: the same in every process of this build).
pub fn record_digest(hash_key: &[u8], sort_key: &[u8], value: &[u8]) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(0x7465_726e_7665_7269, 0x6679_6469_6765_7374);
    hash_key.hash(&mut h);
    sort_key.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

/// Per bucket: record count, and the wrapping sum and the xor of record digests (both order
/// independent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    buckets: Vec<(u64, u64, u64)>,
    pub records: u64,
}

impl Default for Digests {
    fn default() -> Self {
        Digests { buckets: vec![(0, 0, 0); BUCKETS as usize], records: 0 }
    }
}

impl Digests {
    pub fn add(&mut self, r: &Record) {
        let d = record_digest(&r.hash_key, &r.sort_key, &r.value);
        let b = &mut self.buckets[bucket_of(&r.hash_key) as usize];
        b.0 += 1;
        b.1 = b.1.wrapping_add(d);
        b.2 ^= d;
        self.records += 1;
    }

    /// The buckets whose digests differ from `other`'s.
    pub fn differing(&self, other: &Digests) -> Vec<u32> {
        (0..BUCKETS).filter(|&b| self.buckets[b as usize] != other.buckets[b as usize]).collect()
    }
}

/// A key whose records differ between the two copies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Difference {
    /// The key as bytes (shown below as text, lossily).
    #[serde(skip)]
    pub key: (Vec<u8>, Vec<u8>),
    pub hash_key: String,
    pub sort_key: String,
    /// What each copy holds: `None` for no record, else a short digest of the value.
    pub left: Option<String>,
    pub right: Option<String>,
}

/// The records of some buckets of one copy: key → value digest.
pub type BucketRecords = BTreeMap<(Vec<u8>, Vec<u8>), u64>;

/// Collects `r` if its bucket is one of `buckets` (sorted).
pub fn collect(into: &mut BucketRecords, buckets: &[u32], r: &Record) {
    if buckets.binary_search(&bucket_of(&r.hash_key)).is_ok() {
        into.insert(
            (r.hash_key.clone(), r.sort_key.clone()),
            record_digest(&r.hash_key, &r.sort_key, &r.value),
        );
    }
}

/// The keys whose records differ between two copies' records of the same buckets.
pub fn diff(left: &BucketRecords, right: &BucketRecords) -> Vec<Difference> {
    let shown = |d: Option<&u64>| d.map(|d| format!("{d:016x}"));
    let mut keys: Vec<&(Vec<u8>, Vec<u8>)> = left.keys().chain(right.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| left.get(*k) != right.get(*k))
        .map(|k| Difference {
            key: k.clone(),
            hash_key: String::from_utf8_lossy(&k.0).into_owned(),
            sort_key: String::from_utf8_lossy(&k.1).into_owned(),
            left: shown(left.get(k)),
            right: shown(right.get(k)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(h: &str, s: &str, v: &str) -> Record {
        Record { hash_key: h.into(), sort_key: s.into(), value: v.into() }
    }

    fn digests(records: &[Record]) -> Digests {
        let mut d = Digests::default();
        for r in records {
            d.add(r);
        }
        d
    }

    #[test]
    fn digests_ignore_order_and_find_exactly_the_differing_keys() {
        let a: Vec<Record> = (0..500).map(|i| rec(&format!("user:{i}"), "name", &format!("v{i}"))).collect();
        let mut b: Vec<Record> = a.iter().rev().cloned().collect();
        assert_eq!(digests(&a).differing(&digests(&b)), Vec::<u32>::new(), "same records, other order");

        b.retain(|r| r.hash_key != b"user:7");
        b.push(rec("user:9", "name", "changed"));
        b.retain(|r| r.hash_key != b"user:9" || r.value == b"changed");
        b.push(rec("extra", "x", "y"));
        let buckets = digests(&a).differing(&digests(&b));
        assert!(!buckets.is_empty() && buckets.len() <= 3, "{buckets:?}");

        let (mut left, mut right) = (BucketRecords::new(), BucketRecords::new());
        a.iter().for_each(|r| collect(&mut left, &buckets, r));
        b.iter().for_each(|r| collect(&mut right, &buckets, r));
        let found: Vec<(String, bool, bool)> = diff(&left, &right)
            .into_iter()
            .map(|d| (d.hash_key, d.left.is_some(), d.right.is_some()))
            .collect();
        assert_eq!(
            found,
            [("extra".into(), false, true), ("user:7".into(), true, false), ("user:9".into(), true, true)]
        );
    }

    #[test]
    fn a_swapped_value_between_two_keys_is_a_difference() {
        let a = [rec("k1", "s", "x"), rec("k2", "s", "y")];
        let b = [rec("k1", "s", "y"), rec("k2", "s", "x")];
        assert!(!digests(&a).differing(&digests(&b)).is_empty(), "a digest covers key and value together");
    }
}
