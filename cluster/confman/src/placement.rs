//! Choosing nodes: where new replicas and learners go, and which replica becomes primary.

use std::collections::BTreeMap;

use tern_core::{Gpid, NodeId, ReplicaReport, ReplicaStatus};

use crate::manager::NodeState;

/// How many partition memberships each node holds.
pub(crate) fn load(
    nodes: &BTreeMap<NodeId, NodeState>,
    configs: impl Iterator<Item = impl Iterator<Item = NodeId>>,
) -> BTreeMap<NodeId, usize> {
    let mut load: BTreeMap<NodeId, usize> = nodes.keys().map(|n| (*n, 0)).collect();
    for members in configs {
        for m in members {
            *load.entry(m).or_default() += 1;
        }
    }
    load
}

/// Up to `count` serving nodes (alive, not decommissioned), least loaded first (ties by id), excluding `exclude`.
pub(crate) fn pick_nodes(
    nodes: &BTreeMap<NodeId, NodeState>,
    load: &BTreeMap<NodeId, usize>,
    exclude: &[NodeId],
    count: usize,
) -> Vec<NodeId> {
    let mut live: Vec<NodeId> =
        nodes.iter().filter(|(n, s)| s.serving() && !exclude.contains(n)).map(|(n, _)| *n).collect();
    live.sort_by_key(|n| (load.get(n).copied().unwrap_or(0), *n));
    live.truncate(count);
    live
}

/// A learner for `gpid`: a serving non-member, preferring one that already holds data of the
/// partition (it can learn from the log instead of a checkpoint), then the least loaded.
pub(crate) fn pick_learner(
    nodes: &BTreeMap<NodeId, NodeState>,
    load: &BTreeMap<NodeId, usize>,
    gpid: Gpid,
    members: &[NodeId],
) -> Option<NodeId> {
    nodes
        .iter()
        .filter(|(n, s)| s.serving() && !members.contains(n))
        .filter(|(_, s)| s.report(gpid).is_none_or(|r| r.status != ReplicaStatus::Error))
        .min_by_key(|(n, s)| {
            let has_data = s.report(gpid).is_some();
            (!has_data, load.get(*n).copied().unwrap_or(0), **n)
        })
        .map(|(n, _)| *n)
}

/// The candidate with the longest log (ties: the smallest id).
pub(crate) fn longest_log<'a>(
    candidates: impl Iterator<Item = (NodeId, &'a ReplicaReport)>,
) -> Option<NodeId> {
    candidates.max_by_key(|(n, r)| (r.last_prepared, std::cmp::Reverse(*n))).map(|(n, _)| n)
}
