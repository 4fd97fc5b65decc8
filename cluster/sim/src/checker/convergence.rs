//! After healing, every replica of a partition holds the same data (PacificA §2.2: replicas
//! apply the same sequence of committed mutations): same applied decree, and identical stored
//! bytes — except the dead records below the partition's purge horizon
//! (`tern_storage::purgeable`), which each replica's compaction drops in its own time: such a
//! record may be missing from some replicas, never different.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use tern_confman::ConfigManager;
use tern_core::key::KeyRange;
use tern_core::value;
use tern_storage::{AppliedMark, PartitionStore, purgeable};

use crate::node::SimNode;

fn contents(store: &impl PartitionStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut v = BTreeMap::new();
    let _ = store.raw_scan(&KeyRange::all(), false, &mut |k, val| {
        v.insert(k.to_vec(), val.to_vec());
        Ok(ControlFlow::Continue(()))
    });
    v
}

/// The records on which two replicas at the same applied mark `m` disagree: held by both with
/// different bytes, or held by one only while it may not drop it.
fn disagreeing(m: AppliedMark, a: &BTreeMap<Vec<u8>, Vec<u8>>, b: &BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
    let droppable =
        |v: &Vec<u8>| value::decode(v).is_ok_and(|(h, _)| purgeable(&h, m.timetag, m.purge_below));
    let mut keys: Vec<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| match (a.get(*k), b.get(*k)) {
            (Some(x), Some(y)) => x != y,
            (Some(x), None) | (None, Some(x)) => !droppable(x),
            (None, None) => false,
        })
        .count()
}

pub fn check(cm: &ConfigManager, nodes: &[SimNode]) -> Vec<String> {
    let mut out = Vec::new();
    for c in cm.configs() {
        let mut reference = None;
        for m in c.members() {
            let Some(store) = nodes.iter().find(|n| n.id == m).and_then(|n| n.store(c.gpid)) else {
                out.push(format!("{}: member {m} has no store", c.gpid));
                continue;
            };
            let here = (store.last_applied(), contents(store));
            match &reference {
                None => reference = Some((m, here)),
                Some((first, r)) => {
                    let differ = if r.0 == here.0 { disagreeing(here.0, &r.1, &here.1) } else { 1 };
                    if differ > 0 {
                        out.push(format!(
                            "{}: replicas differ after healing: {first} applied {} with {} records, {m} applied {} with {} records ({differ} differ)",
                            c.gpid,
                            r.0.decree,
                            r.1.len(),
                            here.0.decree,
                            here.1.len()
                        ));
                    }
                }
            }
        }
    }
    out
}
