//! A purge horizon is safe (duplication design, `duplication/src/horizon.rs`): whenever a meta
//! server raises its table's purge horizon to `H`, every write that an incoming link still has
//! to deliver is newer than `H` — every put stamped by the sending cluster, committed after its
//! partition started shipping, with a timetag at or below `H` has been acknowledged by this
//! cluster. Otherwise a tombstone that such a write must lose to could be dropped first, and the
//! write would bring the record back (Cassandra's `gc_grace_seconds` problem). Holds across meta
//! leader changes: a new leader that has not heard a partition must not count it as caught up.
//! Runs online, as horizons rise.

use tern_core::Timetag;

use crate::observe::Observations;

/// Cluster `cluster` (id) raised its horizon to `below`; `from` (id) ships to it.
pub fn check_raise(obs: &Observations, cluster: u8, from: u8, below: Timetag) -> Option<String> {
    let (t, h, s) = obs.dup.oldest_unacked(from)?;
    (t.with_delete(false) <= below).then(|| {
        format!(
            "purge horizon: cluster {cluster} raised its purge horizon to {below} while the write of {}/{} \
             stamped {t} by cluster {from} had not reached it (a tombstone it must lose to may be dropped)",
            String::from_utf8_lossy(h),
            String::from_utf8_lossy(s)
        )
    })
}
