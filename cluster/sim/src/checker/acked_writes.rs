//! No acknowledged write is lost (PacificA §2.2 and §2.5: a mutation is acknowledged only once every
//! member logged it, and every later configuration keeps a member that has it): after healing,
//! every replica has applied past every acknowledged decree, and the entry applied at that
//! decree is the one first applied there (the online committed-prefix check).

use std::collections::BTreeMap;

use tern_confman::ConfigManager;
use tern_core::{Decree, Gpid};
use tern_storage::PartitionStore;

use crate::node::SimNode;
use crate::observe::Observations;

pub fn check(obs: &Observations, cm: &ConfigManager, nodes: &[SimNode]) -> Vec<String> {
    let mut newest: BTreeMap<Gpid, Decree> = BTreeMap::new();
    let mut out = Vec::new();
    for (g, d) in &obs.acked {
        if !obs.applied.contains_key(&(*g, d.0)) {
            out.push(format!("{g}: decree {d} was acknowledged but never recorded as applied"));
        }
        let e = newest.entry(*g).or_default();
        *e = (*e).max(*d);
    }
    for c in cm.configs() {
        let Some(&acked) = newest.get(&c.gpid) else { continue };
        for m in c.members() {
            let applied = nodes
                .iter()
                .find(|n| n.id == m)
                .and_then(|n| n.store(c.gpid))
                .map(|s| s.last_applied_decree());
            if applied.is_none_or(|a| a < acked) {
                out.push(format!(
                    "{}: acknowledged write at decree {acked} is missing on member {m} (applied through {:?})",
                    c.gpid, applied
                ));
            }
        }
    }
    out
}
