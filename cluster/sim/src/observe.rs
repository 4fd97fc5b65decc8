//! What the run observed, for the checkers: every applied decree, every read a primary served,
//! every acknowledged write, and violations found on the way.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use tern_core::{Ballot, Decree, Gpid, NodeId};
use tern_storage::LogEntry;

#[derive(Debug, Default)]
pub struct Observations {
    /// (partition, decree) → digest of the first entry applied there, and who applied it.
    pub applied: BTreeMap<(Gpid, u64), (u64, NodeId)>,
    /// Reads served by primaries: (partition, global µs, node, ballot).
    pub served: Vec<(Gpid, u64, NodeId, Ballot)>,
    /// Writes acknowledged to clients: (partition, decree).
    pub acked: Vec<(Gpid, Decree)>,
    pub violations: Vec<String>,
    /// Duplication (two-cluster runs).
    pub dup: crate::dup::DupObs,
    /// The DR lease (runs with `SimConfig::dr`): promotions and admitted client writes.
    pub dr: crate::dr::DrObs,
    /// Per cluster, its processes' clocks and maximum clock offset (`checker/clock_bound.rs`).
    pub clocks: Vec<crate::checker::clock_bound::ClusterClocks>,
    /// Dead records compaction dropped (below a purge horizon).
    pub purged: u64,
}

pub fn digest(e: &LogEntry) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.timetag.hash(&mut h);
    e.mutation.encode().hash(&mut h);
    h.finish()
}
