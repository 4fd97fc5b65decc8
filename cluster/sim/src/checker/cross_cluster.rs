//! After healing (shipping caught up both ways), the two clusters of a link hold the same data
//! (duplication design, `docs/duplication.md`: last-writer-wins on timetags makes the merge
//! order-independent), and no shipped write was lost:
//!
//! * convergence: every record (value, expiry, timetag; tombstones included, in-memory stores
//!   never compact them) is byte-identical in both clusters, whatever their partition counts;
//! * no lost shipped writes: every put of every entry a cluster committed after its link
//!   started is in the other cluster, or superseded there by a record with a larger timetag.
//!
//! Loops (a put shipped back to the cluster that stamped it) and the exactness of confirmed
//! decrees are checked online (`dup/receive.rs`, `dup_confirmed.rs`).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use tern_core::key::{self, KeyRange};
use tern_core::{Decree, Timetag, value};
use tern_storage::PartitionStore;

use crate::meta::SimMeta;
use crate::node::SimNode;
use crate::observe::Observations;

/// Reported per check at most; the rest are counted.
const MAX_REPORTED: usize = 5;

/// Every record of a cluster's table (from each partition's primary), by stored key.
fn records(meta: &SimMeta, nodes: &[SimNode]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut all = BTreeMap::new();
    for c in meta.cm.configs() {
        let store = c.members().find_map(|m| nodes.iter().find(|n| n.id == m).and_then(|n| n.store(c.gpid)));
        let Some(store) = store else { continue };
        let _ = store.raw_scan(&KeyRange::all(), false, &mut |k, v| {
            all.insert(k.to_vec(), v.to_vec());
            Ok(ControlFlow::Continue(()))
        });
    }
    all
}

fn show(k: &[u8], v: Option<&Vec<u8>>) -> String {
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

pub fn check(obs: &Observations, metas: &[SimMeta], nodes: &[SimNode]) -> Vec<String> {
    let held: Vec<_> = metas.iter().map(|m| records(m, nodes)).collect();
    let mut out = Vec::new();
    let mut differ = 0;
    let mut keys: Vec<&Vec<u8>> = held.iter().flat_map(|h| h.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (a, b) = (held[0].get(k), held[1].get(k));
        if a != b {
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
    let mut lost = 0;
    for ((g, d), puts) in &obs.dup.origin {
        if Decree(*d) <= obs.dup.floor.get(g).copied().unwrap_or(Decree::ZERO) {
            continue;
        }
        let remote = if g.table.0 == 1 { 1 } else { 0 };
        for (h, s, t) in puts {
            let Ok(k) = key::encode(h, s) else { continue };
            let stored = held[remote].get(&k).and_then(|v| value::decode(v).ok()).map(|(hd, _)| hd.timetag);
            let t = Timetag::from_u64(*t);
            if stored.is_none_or(|st| st.with_delete(false) < t.with_delete(false)) {
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
