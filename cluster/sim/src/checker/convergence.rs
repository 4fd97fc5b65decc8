//! After healing, every replica of a partition holds the same data (PacificA §2.2: replicas
//! apply the same sequence of committed mutations): identical stored bytes, same applied decree.

use std::ops::ControlFlow;

use tern_confman::ConfigManager;
use tern_core::key::KeyRange;
use tern_storage::PartitionStore;

use crate::node::SimNode;

fn contents(store: &impl PartitionStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v = Vec::new();
    let _ = store.raw_scan(&KeyRange::all(), false, &mut |k, val| {
        v.push((k.to_vec(), val.to_vec()));
        Ok(ControlFlow::Continue(()))
    });
    v
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
            let here = (store.last_applied_decree(), contents(store));
            match &reference {
                None => reference = Some((m, here)),
                Some((first, r)) if *r != here => out.push(format!(
                    "{}: replicas differ after healing: {first} applied {} with {} records, {m} applied {} with {} records",
                    c.gpid,
                    r.0,
                    r.1.len(),
                    here.0,
                    here.1.len()
                )),
                Some(_) => {}
            }
        }
    }
    out
}
