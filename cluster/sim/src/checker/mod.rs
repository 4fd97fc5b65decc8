//! Checkers of simulated runs. Each invariant lives in its own module and cites the PacificA
//! paper (Lin et al., MSR 2008) section it comes from, or the duplication design
//! (`docs/duplication.md`) for the checks between clusters. The committed-prefix, confirmed-is-
//! exact, horizon and clock-bound checks run online; the others run at the end.

pub mod acked_writes;
pub mod clock_bound;
pub mod convergence;
pub mod cross_cluster;
pub mod dup_confirmed;
pub mod horizon;
pub mod linearizability;
pub mod resurrection;
pub mod single_primary;

use crate::client::History;
use crate::keys::KeySpace;

/// Linearizability of every key's history (PacificA §2.2: the replicated store behaves like one
/// copy; checked per key, which suffices because linearizability is local). Only keys one
/// cluster writes and reads: keys both clusters write merge by last-writer-wins, which is not a
/// single copy (the cross-cluster checks judge them).
pub fn linearizability_of(history: &History, keys: &KeySpace) -> Vec<String> {
    let mut out = Vec::new();
    for (key, ops) in history {
        if !keys.checked(*key) {
            continue;
        }
        let ops: Vec<linearizability::Op> = ops.iter().flatten().cloned().collect();
        if let Err(v) = linearizability::check_key(&None, &ops) {
            out.push(format!(
                "key {} is not linearizable (PacificA §2.2): {}",
                String::from_utf8_lossy(keys.name(*key)),
                v.message
            ));
        }
    }
    out
}
