//! Checkers of simulated runs. Each invariant lives in its own module and cites the PacificA
//! paper (Lin et al., MSR 2008) section it comes from. The committed-prefix check runs online
//! (in the simulated replica server, as entries are applied); the others run at the end.

pub mod acked_writes;
pub mod convergence;
pub mod linearizability;
pub mod single_primary;

use crate::client::{History, key_name};

/// Linearizability of every key's history (PacificA §2.2: the replicated store behaves like one
/// copy; checked per key, which suffices because linearizability is local).
pub fn linearizability_of(history: &History) -> Vec<String> {
    let mut out = Vec::new();
    for (key, ops) in history {
        let ops: Vec<linearizability::Op> = ops.iter().flatten().cloned().collect();
        if let Err(v) = linearizability::check_key(&None, &ops) {
            out.push(format!(
                "key {} is not linearizable (PacificA §2.2): {}",
                String::from_utf8_lossy(&key_name(*key)),
                v.message
            ));
        }
    }
    out
}
