//! The pure decisions of a restore: what a stored record becomes, where it goes, how puts are
//! batched, and the table's partition count. No I/O.

use std::collections::BTreeMap;

use tern_core::{Result, WriteOp, key, partition_of, value};

use crate::error::RestoreError;

/// At most this many puts, or about this many bytes, go in one `Restore` request (the sizes a
/// duplication shipper uses).
pub const MAX_BATCH_PUTS: usize = 512;
pub const MAX_BATCH_BYTES: usize = 256 << 10;

/// The restored table's partition count: the flag's, else the backup's.
pub fn target_partitions(
    backup_partitions: u32,
    flag: Option<u32>,
) -> std::result::Result<u32, RestoreError> {
    match flag {
        Some(0) => Err(RestoreError::Invalid("--partitions must be at least 1".into())),
        Some(n) => Ok(n),
        None => Ok(backup_partitions),
    }
}

/// What kind of record a stored one is, for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Live,
    /// Its expiry passed before the restore read it.
    Expired,
    Tombstone,
}

/// A stored record (storage key, stored value) as the put that recreates it exactly: hash key,
/// sort key, value or tombstone, absolute expiry and the timetag it was written with (of any
/// cluster). Tombstones and records already expired are restored too: they order later
/// arrivals by last-writer-wins exactly as they did in the backed-up table (a write shipped late
/// by a peer cluster must not bring back what the backup had deleted), and the restored table's
/// compaction drops them below its purge horizon as the source's would have.
pub fn record_to_put(k: &[u8], v: &[u8], now_secs: u64) -> Result<(WriteOp, RecordKind)> {
    let (hash_key, sort_key) = key::decode(k)?;
    let (header, user) = value::decode(v)?;
    let kind = if header.is_tombstone() {
        RecordKind::Tombstone
    } else if header.is_expired(now_secs) {
        RecordKind::Expired
    } else {
        RecordKind::Live
    };
    let put = WriteOp::Put {
        hash_key: hash_key.to_vec(),
        sort_key: sort_key.to_vec(),
        value: (!header.is_tombstone()).then(|| user.to_vec()),
        expire_ts: if header.is_tombstone() { 0 } else { header.expire_ts },
        timetag: Some(header.timetag),
    };
    Ok((put, kind))
}

/// The bytes a put adds to a request, roughly (keys and value).
pub fn put_bytes(put: &WriteOp) -> usize {
    match put {
        WriteOp::Put { hash_key, sort_key, value, .. } => {
            hash_key.len() + sort_key.len() + value.as_ref().map_or(0, Vec::len) + 24
        }
        _ => 0,
    }
}

/// The partitions of a table of `target` partitions that records of partition `source` of a
/// table of `sources` partitions can land in, when one count divides the other (the usual 2× or
/// ½×); `None` otherwise (any partition). With `partition = crc64(hash key) % count`, doubling
/// sends partition p's records to p and p + sources; halving sends them to p mod target.
pub fn targets_of(source: u32, sources: u32, target: u32) -> Option<Vec<u32>> {
    if target.is_multiple_of(sources) {
        Some((0..target / sources).map(|i| source + i * sources).collect())
    } else if sources.is_multiple_of(target) {
        Some(vec![source % target])
    } else {
        None
    }
}

/// A hash key of partition `p` of `partitions` (to probe that partition).
pub fn hash_key_of(p: u32, partitions: u32) -> Vec<u8> {
    (0u64..)
        .map(|i| format!("tern-restore-probe-{i}").into_bytes())
        .find(|k| partition_of(k, partitions).0 == p)
        .unwrap_or_default()
}

/// Puts gathered per target partition, cut into requests of bounded size.
#[derive(Debug)]
pub struct Batcher {
    partitions: u32,
    open: BTreeMap<u32, (Vec<WriteOp>, usize)>,
}

impl Batcher {
    pub fn new(partitions: u32) -> Batcher {
        Batcher { partitions, open: BTreeMap::new() }
    }

    /// Routes `put` by its hash key; returns a full batch to send, if one filled.
    pub fn push(&mut self, put: WriteOp) -> Option<(u32, Vec<WriteOp>)> {
        let p = partition_of(put.hash_key(), self.partitions).0;
        let bytes = put_bytes(&put);
        let (puts, size) = self.open.entry(p).or_default();
        puts.push(put);
        *size += bytes;
        if puts.len() >= MAX_BATCH_PUTS || *size >= MAX_BATCH_BYTES {
            let (puts, _) = self.open.remove(&p).unwrap_or_default();
            return Some((p, puts));
        }
        None
    }

    /// Every batch still open.
    pub fn drain(&mut self) -> Vec<(u32, Vec<WriteOp>)> {
        std::mem::take(&mut self.open).into_iter().map(|(p, (puts, _))| (p, puts)).collect()
    }
}

#[cfg(test)]
mod tests {
    use tern_core::value::ValueHeader;
    use tern_core::{ClusterId, Timetag};

    use super::*;

    fn tt(ms: u64, cluster: u8, delete: bool) -> Timetag {
        Timetag::new(ms, 3, ClusterId::new(cluster).unwrap(), delete)
    }

    #[test]
    fn a_record_becomes_the_put_that_recreates_it_with_its_own_timetag_and_expiry() {
        let k = key::encode(b"h", b"s").unwrap();
        let live = value::encode(&ValueHeader { expire_ts: 2_000_000_000, timetag: tt(10, 5, false) }, b"v");
        let (put, kind) = record_to_put(&k, &live, 1_000).unwrap();
        assert_eq!(kind, RecordKind::Live);
        assert_eq!(
            put,
            WriteOp::Put {
                hash_key: b"h".to_vec(),
                sort_key: b"s".to_vec(),
                value: Some(b"v".to_vec()),
                expire_ts: 2_000_000_000,
                timetag: Some(tt(10, 5, false)),
            }
        );
        let expired = value::encode(&ValueHeader { expire_ts: 900, timetag: tt(10, 1, false) }, b"v");
        assert_eq!(record_to_put(&k, &expired, 1_000).unwrap().1, RecordKind::Expired);
        let dead = value::encode(&ValueHeader::tombstone(tt(11, 2, true)), b"");
        let (put, kind) = record_to_put(&k, &dead, 1_000).unwrap();
        assert_eq!(kind, RecordKind::Tombstone);
        assert!(
            matches!(put, WriteOp::Put { value: None, expire_ts: 0, timetag: Some(t), .. } if t == tt(11, 2, true))
        );
        assert!(record_to_put(b"\x00", &live, 0).is_err(), "a key that does not decode");
    }

    #[test]
    fn doubling_or_halving_the_partitions_sends_each_record_where_the_hash_says() {
        for (sources, target) in [(4, 8), (8, 4), (4, 4), (3, 5)] {
            for i in 0..2_000u32 {
                let h = format!("key{i}").into_bytes();
                let s = partition_of(&h, sources).0;
                let t = partition_of(&h, target).0;
                if let Some(ts) = targets_of(s, sources, target) {
                    assert!(ts.contains(&t), "{sources}->{target}: {s} -> {t}, expected one of {ts:?}");
                }
            }
        }
        assert_eq!(targets_of(1, 4, 8), Some(vec![1, 5]));
        assert_eq!(targets_of(5, 8, 4), Some(vec![1]));
        assert_eq!(targets_of(1, 3, 5), None);
        for n in [1, 2, 8] {
            for p in 0..n {
                assert_eq!(partition_of(&hash_key_of(p, n), n).0, p);
            }
        }
    }

    #[test]
    fn batches_are_per_partition_bounded_and_drained_whole() {
        let mut b = Batcher::new(4);
        let mut full = vec![];
        let mut sent = 0;
        for i in 0..3_000u32 {
            let put = WriteOp::Put {
                hash_key: format!("h{}", i % 50).into_bytes(),
                sort_key: i.to_be_bytes().to_vec(),
                value: Some(vec![0; 10]),
                expire_ts: 0,
                timetag: Some(tt(1, 1, false)),
            };
            if let Some(batch) = b.push(put) {
                full.push(batch);
            }
        }
        full.extend(b.drain());
        for (p, puts) in &full {
            assert!(puts.len() <= MAX_BATCH_PUTS);
            assert!(puts.iter().all(|w| partition_of(w.hash_key(), 4).0 == *p));
            sent += puts.len();
        }
        assert_eq!(sent, 3_000);
        assert!(b.drain().is_empty());
        assert!(target_partitions(8, Some(0)).is_err());
        assert_eq!(target_partitions(8, None).unwrap(), 8);
        assert_eq!(target_partitions(8, Some(16)).unwrap(), 16);
    }
}
