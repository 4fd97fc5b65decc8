//! Bounded clocks between clusters (duplication design; `cluster/core/src/hlc.rs`,
//! `Hlc::observe_remote`): a cluster's hybrid logical clocks never run further ahead than the
//! most advanced wall clock it has shown plus the maximum clock offset, whatever another
//! cluster's clocks say. A duplicated write stamped further ahead is refused (`CLOCK_AHEAD`) and
//! retried until this cluster's clock catches up; admitting it would drag every later local
//! write (and every last-writer-wins decision) along. Checked on every entry when it is first
//! applied in its cluster: its own timetag and every put's it carries. Runs online.

use tern_core::WriteOp;
use tern_storage::LogEntry;

use crate::clock::NodeClock;

/// What the check knows of one cluster: its processes' clocks and its maximum clock offset.
#[derive(Clone, Debug, Default)]
pub struct ClusterClocks {
    pub clocks: Vec<NodeClock>,
    pub max_offset_ms: u64,
}

impl ClusterClocks {
    /// The largest timetag (physical ms) the cluster may hold at global time `now_us`.
    pub fn bound_ms(&self, now_us: u64) -> u64 {
        let most_advanced = self.clocks.iter().map(|c| c.max_wall_ms(now_us)).max().unwrap_or(0);
        most_advanced + self.max_offset_ms
    }
}

/// Checks `entry`, first applied in cluster `cluster` (index) at global time `now_us`.
pub fn check(clocks: &ClusterClocks, cluster: usize, now_us: u64, entry: &LogEntry) -> Option<String> {
    let bound = clocks.bound_ms(now_us);
    let puts = entry.mutation.ops.iter().filter_map(|op| match op {
        WriteOp::Put { timetag: Some(t), .. } => Some(*t),
        _ => None,
    });
    let past = std::iter::once(entry.timetag).chain(puts).find(|t| t.physical_ms() > bound)?;
    Some(format!(
        "bounded clocks: cluster {} applied d{} holding timetag {past}, {} ms past its most advanced wall clock \
         plus the maximum clock offset ({} ms)",
        cluster + 1,
        entry.decree,
        past.physical_ms() - bound,
        clocks.max_offset_ms
    ))
}
