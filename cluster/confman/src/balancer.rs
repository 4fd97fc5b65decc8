//! The balancer's planning: which primaries to switch and which replicas to move so that every
//! table's primaries, then its replicas, are spread evenly over the serving nodes, and so that
//! decommissioned nodes are drained. Pure functions over a snapshot of the configuration; the
//! manager carries the steps out (see `manager.rs`) with the safety rules of role switches.
//!
//! Order of work in one round, like Pegasus: drain decommissioned nodes first, then even out
//! primaries per table by role switches (cheap: a ballot bump, no data copied), then even out
//! replica counts per table by copies (a learner joins, then the surplus replica is removed),
//! rate-limited to `max_moves` copies in flight cluster-wide. Two replicas of a partition never
//! share a node: a copy only goes to a node that is not a member.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tern_core::{Gpid, NodeId, PartitionConfig, TableId};

/// What the planner sees of one partition.
#[derive(Clone, Debug)]
pub(crate) struct PartView<'a> {
    pub config: &'a PartitionConfig,
    /// Every member reported its role at the current ballot, and nothing is in flight for it
    /// (no copy, no unacknowledged switch, no missing member): it may be touched.
    pub settled: bool,
}

/// One balancing step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Make secondary `to` the primary; the old primary becomes a secondary.
    Switch { gpid: Gpid, to: NodeId, reason: String },
    /// Copy the replica on `from` to `to` (not a member), then remove the one on `from`.
    Move { gpid: Gpid, from: NodeId, to: NodeId, reason: String },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Switch { gpid, to, reason } => write!(f, "{gpid}: make {to} the primary ({reason})"),
            Step::Move { gpid, from, to, reason } => {
                write!(f, "{gpid}: copy the replica on {from} to {to} ({reason})")
            }
        }
    }
}

/// Plans one round. `serving` are the nodes that may receive primaries and replicas (alive and
/// not decommissioned); `draining` the decommissioned ones; `moves_free` how many more copies may
/// start now.
pub(crate) fn plan(
    parts: &[PartView<'_>],
    serving: &BTreeSet<NodeId>,
    draining: &BTreeSet<NodeId>,
    mut moves_free: usize,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut touched: BTreeSet<Gpid> = BTreeSet::new();
    let tables: BTreeSet<TableId> = parts.iter().map(|p| p.config.gpid.table).collect();
    if serving.is_empty() {
        return steps;
    }

    // 1. Drain decommissioned nodes.
    for p in parts.iter().filter(|p| p.settled) {
        let c = p.config;
        let Some(d) = c.members().find(|m| draining.contains(m)) else { continue };
        let table_primaries = primaries(parts, c.gpid.table, serving);
        if c.primary == Some(d) {
            let to = c
                .secondaries
                .iter()
                .filter(|s| serving.contains(s))
                .min_by_key(|s| (table_primaries.get(s).copied().unwrap_or(0), **s));
            if let Some(&to) = to {
                steps.push(Step::Switch {
                    gpid: c.gpid,
                    to,
                    reason: format!("balancer: primary off decommissioned {d}"),
                });
                touched.insert(c.gpid);
            }
        } else if moves_free > 0
            && let Some(to) = least_loaded_non_member(parts, c, serving)
        {
            steps.push(Step::Move {
                gpid: c.gpid,
                from: d,
                to,
                reason: format!("balancer: drain decommissioned {d}"),
            });
            touched.insert(c.gpid);
            moves_free -= 1;
        }
    }

    // 2. Primaries per table, by role switches along a path of partitions.
    for &table in &tables {
        if let Some(path) = primary_path(parts, table, serving, &touched) {
            for (gpid, to) in path {
                steps.push(Step::Switch {
                    gpid,
                    to,
                    reason: format!("balancer: even out primaries of table {table}"),
                });
                touched.insert(gpid);
            }
        }
    }

    // 3. Replicas per table, by copies.
    for &table in &tables {
        if moves_free == 0 {
            break;
        }
        if let Some((gpid, from, to)) = replica_move(parts, table, serving, &touched) {
            steps.push(Step::Move {
                gpid,
                from,
                to,
                reason: format!("balancer: even out replicas of table {table}"),
            });
            touched.insert(gpid);
            moves_free -= 1;
        }
    }
    steps
}

/// Primaries of `table` per serving node (0 for nodes without any).
fn primaries(parts: &[PartView<'_>], table: TableId, serving: &BTreeSet<NodeId>) -> BTreeMap<NodeId, usize> {
    let mut count: BTreeMap<NodeId, usize> = serving.iter().map(|n| (*n, 0)).collect();
    for p in parts.iter().filter(|p| p.config.gpid.table == table) {
        if let Some(n) = p.config.primary.filter(|n| serving.contains(n)) {
            *count.entry(n).or_default() += 1;
        }
    }
    count
}

/// Replicas of `table` per serving node (0 for nodes without any).
fn replicas(parts: &[PartView<'_>], table: TableId, serving: &BTreeSet<NodeId>) -> BTreeMap<NodeId, usize> {
    let mut count: BTreeMap<NodeId, usize> = serving.iter().map(|n| (*n, 0)).collect();
    for p in parts.iter().filter(|p| p.config.gpid.table == table) {
        for m in p.config.members().filter(|n| serving.contains(n)) {
            *count.entry(m).or_default() += 1;
        }
    }
    count
}

/// The serving non-member of `c` with the fewest replicas of its table, then overall.
fn least_loaded_non_member(
    parts: &[PartView<'_>],
    c: &PartitionConfig,
    serving: &BTreeSet<NodeId>,
) -> Option<NodeId> {
    let in_table = replicas(parts, c.gpid.table, serving);
    let mut total: BTreeMap<NodeId, usize> = BTreeMap::new();
    for p in parts {
        for m in p.config.members() {
            *total.entry(m).or_default() += 1;
        }
    }
    serving
        .iter()
        .filter(|n| !c.is_member(**n))
        .min_by_key(|n| (in_table.get(n).copied().unwrap_or(0), total.get(n).copied().unwrap_or(0), **n))
        .copied()
}

/// A chain of role switches that moves one primary of `table` from the most loaded node to one
/// with at least two fewer: each switch hands a partition's primary to one of its secondaries,
/// so the nodes in the middle of the chain give one and get one. Breadth-first over settled
/// partitions, so the chain is as short as possible. `None` when the table is balanced (no two
/// nodes differ by more than one) or no chain exists.
fn primary_path(
    parts: &[PartView<'_>],
    table: TableId,
    serving: &BTreeSet<NodeId>,
    touched: &BTreeSet<Gpid>,
) -> Option<Vec<(Gpid, NodeId)>> {
    let count = primaries(parts, table, serving);
    let (&hi, &max) = count.iter().max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n)))?;
    if max < 2 || count.values().all(|c| *c + 1 >= max) {
        return None;
    }
    // Edges: node u -> node v through a partition led by u with secondary v.
    let mut via: BTreeMap<NodeId, (NodeId, Gpid)> = BTreeMap::new();
    let mut queue = VecDeque::from([hi]);
    let mut seen = BTreeSet::from([hi]);
    while let Some(u) = queue.pop_front() {
        for p in
            parts.iter().filter(|p| p.settled && p.config.gpid.table == table && p.config.primary == Some(u))
        {
            if touched.contains(&p.config.gpid) {
                continue;
            }
            for &v in p.config.secondaries.iter().filter(|v| serving.contains(v)) {
                if !seen.insert(v) {
                    continue;
                }
                via.insert(v, (u, p.config.gpid));
                if count.get(&v).copied().unwrap_or(0) + 2 <= max {
                    // Walk back from v to hi.
                    let mut path = Vec::new();
                    let mut at = v;
                    while let Some(&(from, gpid)) = via.get(&at) {
                        path.push((gpid, at));
                        at = from;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(v);
            }
        }
    }
    None
}

/// One copy that evens out `table`'s replica counts: from the most loaded serving node to the
/// least loaded one that is not a member of the partition. Prefers a partition where the source
/// is a secondary (no switch needed before its removal).
fn replica_move(
    parts: &[PartView<'_>],
    table: TableId,
    serving: &BTreeSet<NodeId>,
    touched: &BTreeSet<Gpid>,
) -> Option<(Gpid, NodeId, NodeId)> {
    let count = replicas(parts, table, serving);
    let mut by_load: Vec<(usize, NodeId)> = count.iter().map(|(n, c)| (*c, *n)).collect();
    by_load.sort();
    let &(max, hi) = by_load.iter().max_by_key(|(c, n)| (*c, std::cmp::Reverse(*n)))?;
    let candidates = || {
        parts.iter().filter(move |p| {
            p.settled
                && p.config.gpid.table == table
                && p.config.is_member(hi)
                && !touched.contains(&p.config.gpid)
        })
    };
    for &(min, lo) in &by_load {
        if min + 2 > max {
            break;
        }
        let fits = |p: &&PartView<'_>| !p.config.is_member(lo);
        let chosen = candidates()
            .filter(fits)
            .find(|p| p.config.primary != Some(hi))
            .or_else(|| candidates().find(fits));
        if let Some(p) = chosen {
            return Some((p.config.gpid, hi, lo));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::Ballot;

    fn n(i: u64) -> NodeId {
        NodeId(i)
    }

    fn cfg(p: u32, primary: u64, secondaries: &[u64]) -> PartitionConfig {
        PartitionConfig {
            gpid: Gpid::new(1, p),
            ballot: Ballot(3),
            primary: Some(n(primary)),
            secondaries: secondaries.iter().map(|s| n(*s)).collect(),
        }
    }

    fn views(configs: &[PartitionConfig]) -> Vec<PartView<'_>> {
        configs.iter().map(|config| PartView { config, settled: true }).collect()
    }

    fn nodes(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().map(|i| n(*i)).collect()
    }

    #[test]
    fn a_balanced_table_needs_nothing() {
        let c = [cfg(0, 1, &[2, 3]), cfg(1, 2, &[3, 1]), cfg(2, 3, &[1, 2])];
        assert!(plan(&views(&c), &nodes(&[1, 2, 3]), &BTreeSet::new(), 2).is_empty());
    }

    #[test]
    fn primaries_move_by_a_direct_switch() {
        let c = [cfg(0, 1, &[2, 3]), cfg(1, 1, &[2, 3]), cfg(2, 1, &[2, 3])];
        let steps = plan(&views(&c), &nodes(&[1, 2, 3]), &BTreeSet::new(), 2);
        assert!(
            matches!(steps[0], Step::Switch { gpid, to, .. } if gpid == Gpid::new(1, 0) && to == n(2)),
            "{steps:?}"
        );
        assert_eq!(steps.len(), 1, "one switch per table per round: {steps:?}");
    }

    #[test]
    fn primaries_move_along_a_chain_when_no_direct_switch_helps() {
        // Node 1 leads two partitions whose secondaries (2, 3) lead one each; node 4 leads none
        // and is only a secondary of partitions led by 2 and 3.
        let c = [cfg(0, 1, &[2, 3]), cfg(1, 1, &[2, 3]), cfg(2, 2, &[4, 1]), cfg(3, 3, &[4, 1])];
        let steps = plan(&views(&c), &nodes(&[1, 2, 3, 4]), &BTreeSet::new(), 0);
        let switches: Vec<(Gpid, NodeId)> = steps
            .iter()
            .map(|s| match s {
                Step::Switch { gpid, to, .. } => (*gpid, *to),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(switches, vec![(Gpid::new(1, 0), n(2)), (Gpid::new(1, 2), n(4))]);
    }

    #[test]
    fn unsettled_partitions_are_left_alone() {
        let c = [cfg(0, 1, &[2, 3]), cfg(1, 1, &[2, 3]), cfg(2, 1, &[2, 3])];
        let v: Vec<PartView<'_>> = c.iter().map(|config| PartView { config, settled: false }).collect();
        assert!(plan(&v, &nodes(&[1, 2, 3]), &BTreeSet::new(), 2).is_empty());
    }

    #[test]
    fn a_new_node_receives_replicas_within_the_move_limit() {
        let c = [cfg(0, 1, &[2, 3]), cfg(1, 2, &[3, 1]), cfg(2, 3, &[1, 2]), cfg(3, 1, &[2, 3])];
        let steps = plan(&views(&c), &nodes(&[1, 2, 3, 4]), &BTreeSet::new(), 1);
        assert_eq!(steps.len(), 1, "{steps:?}");
        let Step::Move { gpid, from, to, .. } = &steps[0] else { panic!("{steps:?}") };
        assert_eq!(*to, n(4));
        let moved = c.iter().find(|x| x.gpid == *gpid).unwrap();
        assert!(moved.is_secondary(*from), "prefers moving a secondary: {steps:?}");
        assert!(
            plan(&views(&c), &nodes(&[1, 2, 3, 4]), &BTreeSet::new(), 0).is_empty(),
            "no moves without budget"
        );
    }

    #[test]
    fn a_decommissioned_node_is_drained_primary_first() {
        let c = [cfg(0, 4, &[1, 2]), cfg(1, 1, &[4, 3])];
        let steps = plan(&views(&c), &nodes(&[1, 2, 3]), &nodes(&[4]), 2);
        assert!(
            matches!(&steps[0], Step::Switch { gpid, to, .. } if *gpid == Gpid::new(1, 0) && *to == n(2)),
            "the primary goes to the secondary leading the fewest: {steps:?}"
        );
        assert!(
            matches!(&steps[1], Step::Move { gpid, from, to, .. } if *gpid == Gpid::new(1, 1) && *from == n(4) && *to == n(2)),
            "{steps:?}"
        );
    }

    #[test]
    fn copies_never_go_to_a_member() {
        // Every serving node is already a member: nothing to move to.
        let c = [cfg(0, 1, &[2, 3]), cfg(1, 1, &[2, 3])];
        let steps = plan(&views(&c), &nodes(&[1, 2, 3]), &BTreeSet::new(), 2);
        assert!(steps.iter().all(|s| matches!(s, Step::Switch { .. })), "{steps:?}");
    }
}
