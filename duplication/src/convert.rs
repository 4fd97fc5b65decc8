//! From a committed log entry to the [`WriteOp::Put`]s that carry it to a peer cluster.
//!
//! A put is a record's exact new state (a value with an absolute expiry, or a tombstone) with
//! the timetag it was written under, so that the receiving cluster applies it by
//! last-writer-wins without reading anything and without a clock: the same put applied twice,
//! late, or out of order with other puts leaves the same final state (docs/duplication.md).
//!
//! Rules, per op of the entry's mutation:
//!
//! * set / multi_set: one put per record, value kept, expiry made absolute from the entry
//!   timetag's physical seconds;
//! * del / multi_del: one tombstone put per record;
//! * resolved (an atomic op the primary evaluated): one put per record state, as recorded;
//! * put without timetag (also a primary's resolution): the entry's timetag;
//! * put with a timetag of the local cluster: shipped with that timetag;
//! * put with a *foreign* timetag: dropped. It arrived by duplication; shipping it again
//!   would loop around a two-way link (the origin already has it);
//! * incr / check_and_set / check_and_mutate: refused. Primaries resolve them before logging,
//!   so they only appear in logs written before that; shipping the operation instead of its
//!   result would evaluate it a second time against another cluster's data.
//!
//! Every put carries `timetag: Some(..)` with the delete bit matching its kind (set on
//! tombstones, clear on values). The receiver's apply derives the stored header from `value`
//! anyway (`cluster/storage/src/apply.rs`), so the bit changes nothing there; it is normalized
//! so that a put read anywhere (conflict journal, logs) says what it is.

use std::collections::HashSet;

use tern_core::value::expire_ts_after;
use tern_core::{ClusterId, Error, Result, Timetag, WriteOp, key, value};
use tern_storage::LogEntry;

/// The puts that ship `entry` to a peer cluster, in log order; see the module doc for the
/// rules. `local` is this cluster's id: puts stamped by another cluster are dropped.
///
/// Puts of one entry that write the same record under the same timetag (two ops of one batched
/// mutation on one key, a multi_set naming a sort key twice) collapse to the last one. Applied
/// in order they leave exactly what the last one alone leaves, because an equal timetag passes
/// last-writer-wins; but once pipelined they may arrive in any order, and then only one of them
/// must exist for the result not to depend on arrival.
///
/// Known difference with the source: the source computes TTL expiries from its apply horizon
/// (the largest timetag applied so far), which is the entry's own timetag except for an old
/// entry re-proposed by a new primary; the shipper cannot see the horizon and uses the entry's
/// timetag, so such a re-proposed write may expire a little earlier in the peer.
pub fn entry_to_puts(entry: &LogEntry, local: ClusterId) -> Result<Vec<WriteOp>> {
    let tt = entry.timetag;
    let now_secs = tt.physical_secs();
    let mut puts = Vec::new();
    for op in &entry.mutation.ops {
        match op {
            WriteOp::Set { hash_key, sort_key, value, ttl_secs } => {
                let expire_ts = expire_ts_after(now_secs, *ttl_secs);
                puts.push(put(hash_key, sort_key, Some(value.clone()), expire_ts, tt));
            }
            WriteOp::Del { hash_key, sort_key } => puts.push(put(hash_key, sort_key, None, 0, tt)),
            WriteOp::MultiSet { hash_key, entries, ttl_secs } => {
                let expire_ts = expire_ts_after(now_secs, *ttl_secs);
                for (sort_key, value) in entries {
                    puts.push(put(hash_key, sort_key, Some(value.clone()), expire_ts, tt));
                }
            }
            WriteOp::MultiDel { hash_key, sort_keys } => {
                for sort_key in sort_keys {
                    puts.push(put(hash_key, sort_key, None, 0, tt));
                }
            }
            WriteOp::Resolved { hash_key, records, .. } => {
                for r in records {
                    puts.push(put(hash_key, &r.sort_key, r.value.clone(), r.expire_ts, tt));
                }
            }
            WriteOp::Put { hash_key, sort_key, value, expire_ts, timetag } => {
                let origin = timetag.unwrap_or(tt);
                if origin.cluster() != local {
                    continue;
                }
                puts.push(put(hash_key, sort_key, value.clone(), *expire_ts, origin));
            }
            WriteOp::Incr { .. } | WriteOp::CheckAndSet(_) | WriteOp::CheckAndMutate(_) => {
                return Err(Error::InvalidArgument(format!(
                    "decree {} holds an unresolved {}, which cannot be duplicated (it was logged \
                     before primaries resolved atomic operations; ship this table from a \
                     checkpoint taken after that decree)",
                    entry.decree,
                    op.name()
                )));
            }
        }
    }
    Ok(collapse_same_record(puts))
}

/// A stored record (storage key `k`, stored value `v`) as a full sync copies it: a put with the
/// record's own timetag (tombstones included, so that a delete reaches the peer too), unless
/// another cluster wrote it (it is that cluster's to ship) or it is expired at `now_secs`.
pub fn record_to_put(k: &[u8], v: &[u8], local: ClusterId, now_secs: u64) -> Result<Option<WriteOp>> {
    let (hash_key, sort_key) = key::decode(k)?;
    let (header, user) = value::decode(v)?;
    let tt: Timetag = header.timetag;
    if tt.cluster() != local || (!header.is_tombstone() && header.is_expired(now_secs)) {
        return Ok(None);
    }
    Ok(Some(WriteOp::Put {
        hash_key: hash_key.to_vec(),
        sort_key: sort_key.to_vec(),
        value: (!header.is_tombstone()).then(|| user.to_vec()),
        expire_ts: if header.is_tombstone() { 0 } else { header.expire_ts },
        timetag: Some(tt),
    }))
}

fn put(hash_key: &[u8], sort_key: &[u8], value: Option<Vec<u8>>, expire_ts: u32, tt: Timetag) -> WriteOp {
    let timetag = Some(tt.with_delete(value.is_none()));
    let expire_ts = if value.is_some() { expire_ts } else { 0 };
    WriteOp::Put { hash_key: hash_key.to_vec(), sort_key: sort_key.to_vec(), value, expire_ts, timetag }
}

/// Keeps only the last put of each (record, timetag) pair, in order. Most entries hold one put:
/// nothing to collapse, no allocation.
fn collapse_same_record(puts: Vec<WriteOp>) -> Vec<WriteOp> {
    if puts.len() < 2 {
        return puts;
    }
    let mut seen = HashSet::with_capacity(puts.len());
    let mut keep = vec![true; puts.len()];
    for (i, p) in puts.iter().enumerate().rev() {
        if let WriteOp::Put { hash_key, sort_key, timetag, .. } = p {
            let tt = timetag.map(|t| t.with_delete(false));
            keep[i] = seen.insert((hash_key.as_slice(), sort_key.as_slice(), tt));
        }
    }
    if keep.iter().all(|&k| k) {
        return puts;
    }
    puts.into_iter().zip(keep).filter_map(|(p, k)| k.then_some(p)).collect()
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
