//! No split brain (docs/meta-proxy.md, invariant 11; the DR lease, issue #24 item 4): at no
//! instant do two copies of a table take client writes. Checked online, on true (simulated
//! global) time, whatever the processes' clocks say: a client write that a replica server's
//! write gate let through at `t`, and that then committed, must come from the copy made active
//! last at or before `t` (the first cluster's copy before any promotion). A write the old
//! active copy let through after the new copy's promotion took effect is the violation the
//! lease exists to prevent; so is one a standby let through.
//!
//! The moment a write is let through (not when it commits or is acknowledged) is what the lease
//! bounds: a write admitted just before the old lease ran out may commit later; the promoter's
//! margin is for that (its timetag), and the simulator's clock offsets are too large to compare
//! timetags across clusters.

use tern_core::NodeId;

use crate::observe::Observations;

/// The cluster whose copy was the active one at global time `at_us`.
pub fn owner_at(obs: &Observations, at_us: u64) -> (usize, Option<(u64, u64)>) {
    obs.dr
        .reigns
        .iter()
        .rev()
        .find(|(since, _, _)| *since <= at_us)
        .map_or((0, None), |(since, c, epoch)| (*c, Some((*since, *epoch))))
}

/// A client write let through by `node` of `cluster` at `at_us` committed.
pub fn on_committed(obs: &mut Observations, node: NodeId, at_us: u64, cluster: usize) {
    obs.dr.committed.push((at_us, cluster));
    let (owner, reign) = owner_at(obs, at_us);
    if owner == cluster {
        return;
    }
    obs.dr.split_brain_writes += 1;
    obs.dr.split_brain.push((at_us, cluster));
    let since = match reign {
        Some((since_us, epoch)) => format!(
            "cluster {}'s copy was made active at epoch {epoch} at {}.{:03} ms",
            owner + 1,
            since_us / 1_000,
            since_us % 1_000
        ),
        None => format!("cluster {}'s copy was the active one", owner + 1),
    };
    // One report per run is enough to find it; the count says how many.
    if obs.dr.split_brain_writes == 1 {
        obs.violations.push(format!(
            "split brain (docs/meta-proxy.md, invariant 11): {node} of cluster {} took a client write at {}.{:03} ms (global time) that committed, but {since}",
            cluster + 1,
            at_us / 1_000,
            at_us % 1_000
        ));
    }
}
