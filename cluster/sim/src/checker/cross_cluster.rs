//! After healing (shipping caught up both ways), the two clusters of a link hold the same data
//! (duplication design, `docs/duplication.md`: last-writer-wins on timetags makes the merge
//! order-independent), and no shipped write was lost:
//!
//! * convergence: every record (value, expiry, timetag; tombstones included) is byte-identical
//!   in both clusters, whatever their partition counts — except that a record may be missing
//!   from one cluster if that cluster may have dropped it: it is dead (a tombstone) and below
//!   that cluster's purge horizon (`tern_storage::purgeable`, the rule compaction follows);
//! * no lost shipped writes: every put of every entry a cluster committed after its link
//!   started is in the other cluster, or superseded there by a record with a larger timetag, or
//!   was a delete the other cluster may have dropped since.
//!
//! Loops (a put shipped back to the cluster that stamped it) and the exactness of confirmed
//! decrees are checked online (`dup/receive.rs`, `dup_confirmed.rs`); that no deleted record
//! comes back, in `resurrection.rs`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use tern_core::key::{self, KeyRange};
use tern_core::{Decree, Timetag, partition_of, value};
use tern_storage::{AppliedMark, PartitionStore, purgeable};

use crate::meta::SimMeta;
use crate::node::SimNode;
use crate::observe::Observations;

/// Reported per check at most; the rest are counted.
const MAX_REPORTED: usize = 5;

/// Every record of a cluster's table (from one member of each partition), by stored key, and
/// what each partition applied (its purge horizon among it).
#[derive(Debug, Default)]
pub struct Held {
    pub records: BTreeMap<Vec<u8>, Vec<u8>>,
    marks: BTreeMap<u32, AppliedMark>,
    partitions: u32,
}

impl Held {
    pub fn of(meta: &SimMeta, nodes: &[SimNode]) -> Held {
        let mut held = Held::default();
        for c in meta.cm.configs() {
            held.partitions += 1;
            let store =
                c.members().find_map(|m| nodes.iter().find(|n| n.id == m).and_then(|n| n.store(c.gpid)));
            let Some(store) = store else { continue };
            held.marks.insert(c.gpid.partition.0, store.last_applied());
            let _ = store.raw_scan(&KeyRange::all(), false, &mut |k, v| {
                held.records.insert(k.to_vec(), v.to_vec());
                Ok(ControlFlow::Continue(()))
            });
        }
        held
    }

    /// Whether this cluster may have dropped `v` if it held it under `k`: dead, and below the
    /// purge horizon of the partition `k` belongs to here.
    pub fn may_drop(&self, k: &[u8], v: &[u8]) -> bool {
        let (Ok((hash_key, _)), Ok((header, _))) = (key::decode(k), value::decode(v)) else { return false };
        if self.partitions == 0 {
            return false;
        }
        let p = partition_of(hash_key, self.partitions).0;
        self.marks.get(&p).is_some_and(|m| purgeable(&header, m.timetag, m.purge_below))
    }
}

pub fn show(k: &[u8], v: Option<&Vec<u8>>) -> String {
    let name = key::decode(k).map_or_else(
        |_| String::from_utf8_lossy(k).into_owned(),
        |(h, s)| format!("{}/{}", String::from_utf8_lossy(h), String::from_utf8_lossy(s)),
    );
    let state = match v.map(|v| value::decode(v)) {
        None => "nothing".to_string(),
        Some(Ok((h, user))) => {
            format!("{:?} (expire {}) stamped {}", String::from_utf8_lossy(user), h.expire_ts, h.timetag)
        }
        Some(Err(e)) => format!("an undecodable value: {e}"),
    };
    format!("{name}: {state}")
}

pub fn check(obs: &Observations, held: &[Held]) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = 0;
    let mut keys: Vec<&Vec<u8>> = held.iter().flat_map(|h| h.records.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (a, b) = (held[0].records.get(k), held[1].records.get(k));
        let dropped = match (a, b) {
            (Some(v), None) => held[1].may_drop(k, v),
            (None, Some(v)) => held[0].may_drop(k, v),
            _ => false,
        };
        if a != b && !dropped {
            differ += 1;
            if differ <= MAX_REPORTED {
                out.push(format!(
                    "the clusters differ after healing (last-writer-wins convergence): cluster 1 holds {}, cluster 2 holds {}",
                    show(k, a),
                    show(k, b)
                ));
            }
        }
    }
    if differ > MAX_REPORTED {
        out.push(format!("... {differ} records differ in all"));
    }
    let newest = super::resurrection::newest_writes(obs);
    let mut lost = 0;
    for ((g, d), puts) in &obs.dup.origin {
        if obs.dup.floor.get(g).is_none_or(|f| Decree(*d) <= *f) {
            continue;
        }
        let remote = if g.table.0 == 1 { 1 } else { 0 };
        for (h, s, t) in puts {
            let Ok(k) = key::encode(h, s) else { continue };
            let stored =
                held[remote].records.get(&k).and_then(|v| value::decode(v).ok()).map(|(hd, _)| hd.timetag);
            let t = Timetag::from_u64(*t);
            // Superseded by a delete (its own, or a newer one) the other cluster may have dropped
            // since (its horizon passed it).
            let dropped = stored.is_none()
                && newest.get(&k).is_some_and(|n| {
                    let tombstone = tern_core::ValueHeader { expire_ts: 0, timetag: *n };
                    n.is_delete() && held[remote].may_drop(&k, &value::encode(&tombstone, &[]))
                });
            if !dropped && stored.is_none_or(|st| st.with_delete(false) < t.with_delete(false)) {
                lost += 1;
                if lost <= MAX_REPORTED {
                    out.push(format!(
                        "no lost shipped writes: the write of {}/{} stamped {t} (d{d} of {g}) is not in cluster {} (it holds {})",
                        String::from_utf8_lossy(h),
                        String::from_utf8_lossy(s),
                        remote + 1,
                        stored.map_or("nothing".into(), |st| st.to_string())
                    ));
                }
            }
        }
    }
    if lost > MAX_REPORTED {
        out.push(format!("... {lost} shipped writes lost in all"));
    }
    out
}
