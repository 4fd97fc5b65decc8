//! The balancer as the manager runs it: role switches and their safety rule, copies, draining.

use tern_core::{Ballot, ConfigChange, Gpid, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus};

use crate::tests::{h, propose};
use crate::{CmAction, CmEvent, CmOptions, ConfigManager, Demoted, PersistedPartition};

const N: [NodeId; 4] = [NodeId(1), NodeId(2), NodeId(3), NodeId(4)];
const INTERVAL: u64 = 10_000;

fn changes(actions: &[CmAction]) -> Vec<(PartitionConfig, Option<Demoted>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            CmAction::Changed { config, demoted, .. } => Some((config.clone(), *demoted)),
            _ => None,
        })
        .collect()
}

fn part(p: u32, ballot: u64, primary: NodeId, secondaries: &[NodeId]) -> PersistedPartition {
    let config = PartitionConfig {
        gpid: Gpid::new(1, p),
        ballot: Ballot(ballot),
        primary: Some(primary),
        secondaries: secondaries.to_vec(),
    };
    PersistedPartition { last_members: config.members().collect(), config, replicas: 3, demoted: None }
}

/// Every node beacons at `now`, reporting each partition it belongs to in its role at the
/// current ballot (a settled cluster).
fn settle(cm: &mut ConfigManager, now: u64, nodes: &[NodeId]) {
    for &n in nodes {
        let reports: Vec<ReplicaReport> = cm
            .configs()
            .filter(|c| c.is_member(n))
            .map(|c| ReplicaReport {
                gpid: c.gpid,
                ballot: c.ballot,
                status: if c.primary == Some(n) { ReplicaStatus::Primary } else { ReplicaStatus::Secondary },
                committed: tern_core::Decree(10),
                last_prepared: tern_core::Decree(10),
            })
            .collect();
        h(cm, now, CmEvent::Beacon { node: n, sent_at_ms: now, reports });
    }
}

fn restored(parts: Vec<PersistedPartition>, nodes: &[NodeId]) -> ConfigManager {
    let opts = CmOptions { balance_interval_ms: INTERVAL, ..CmOptions::default() };
    ConfigManager::restore(opts, 0, parts, nodes.iter().map(|n| (*n, false)).collect())
}

#[test]
fn a_role_switch_keeps_the_old_primary_until_it_has_stepped_down() {
    // N1 leads all three partitions.
    let mut cm = restored((0..3).map(|p| part(p, 5, N[0], &[N[1], N[2]])).collect(), &N[..3]);
    settle(&mut cm, 100, &N[..3]);
    let c = changes(&h(&mut cm, 100, CmEvent::Tick));
    assert_eq!(c.len(), 1, "one switch per table per round: {c:?}");
    let (config, demoted) = &c[0];
    assert_eq!((config.primary, config.ballot), (Some(N[1]), Ballot(6)));
    assert_eq!(config.secondaries, vec![N[0], N[2]], "the old primary stays a member");
    assert_eq!(*demoted, Some(Demoted { node: N[0], ballot: Ballot(6) }), "persisted with the config");
    let g = config.gpid;

    // The new primary wants the old one out (it did not ack in time), but nothing says the old
    // one stopped acting as primary at ballot 5: refused.
    let a = h(&mut cm, 200, propose(N[1], g, 6, ConfigChange::RemoveSecondary(N[0])));
    assert!(changes(&a).is_empty(), "{a:?}");
    assert!(matches!(&a[..], [CmAction::ConfigUpdate { to, .. }] if *to == N[1]), "{a:?}");

    // Once N1 reports at ballot 6, it has stepped down and may be removed.
    settle(&mut cm, 300, &N[..1]);
    let a = h(&mut cm, 300, propose(N[1], g, 6, ConfigChange::RemoveSecondary(N[0])));
    let c = changes(&a);
    assert_eq!(c.len(), 1, "{a:?}");
    assert_eq!((c[0].0.primary, c[0].0.secondaries.clone()), (Some(N[1]), vec![N[2]]));
}

#[test]
fn a_demoted_primary_whose_lease_expired_may_be_removed() {
    let mut cm = restored((0..3).map(|p| part(p, 5, N[0], &[N[1], N[2]])).collect(), &N[..3]);
    settle(&mut cm, 100, &N[..3]);
    let g = changes(&h(&mut cm, 100, CmEvent::Tick))[0].0.gpid;
    // N1 falls silent; N2 and N3 keep beaconing past the grace period.
    settle(&mut cm, 10_200, &N[1..3]);
    let a = h(&mut cm, 10_200, CmEvent::Tick);
    let removed = changes(&a).into_iter().find(|(c, _)| c.gpid == g).expect("a change");
    assert!(!removed.0.is_member(N[0]), "{removed:?}");
}

#[test]
fn balancing_waits_for_the_interval_and_for_settled_partitions() {
    let mut cm = restored((0..3).map(|p| part(p, 5, N[0], &[N[1], N[2]])).collect(), &N[..3]);
    // No reports yet (a new leader): nothing is settled.
    assert!(changes(&h(&mut cm, 0, CmEvent::Tick)).is_empty());
    settle(&mut cm, 100, &N[..3]);
    assert!(changes(&h(&mut cm, 100, CmEvent::Tick)).is_empty(), "the last round was at 0");
    assert_eq!(changes(&h(&mut cm, INTERVAL, CmEvent::Tick)).len(), 1);
    assert!(cm.balancing_pending().is_some());
}

#[test]
fn a_decommissioned_node_is_drained_without_losing_a_replica() {
    let mut cm = restored(vec![part(0, 5, N[0], &[N[1], N[2]])], &N);
    settle(&mut cm, 100, &N);
    h(&mut cm, 100, CmEvent::Decommission { node: N[0] });
    // 1. The primary moves off N1 to a secondary.
    let c = changes(&h(&mut cm, 100, CmEvent::Tick));
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].0.primary, c[0].0.ballot), (Some(N[1]), Ballot(6)));
    // 2. Once settled at ballot 6, a copy to N4 starts (the only node that is not a member).
    settle(&mut cm, INTERVAL + 100, &N);
    let a = h(&mut cm, INTERVAL + 100, CmEvent::Tick);
    assert!(changes(&a).is_empty(), "nothing is removed before the copy exists: {a:?}");
    let asked: Vec<_> = a
        .iter()
        .filter_map(|x| match x {
            CmAction::AddLearner { to, learner, .. } => Some((*to, *learner)),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![(N[1], N[3])]);
    // 3. The learner catches up: four members for a moment, then N1 goes.
    let g = Gpid::new(1, 0);
    let a = h(&mut cm, INTERVAL + 200, propose(N[1], g, 6, ConfigChange::AddSecondary(N[3])));
    assert_eq!(changes(&a)[0].0.members().count(), 4);
    settle(&mut cm, INTERVAL + 300, &N);
    let c = changes(&h(&mut cm, INTERVAL + 300, CmEvent::Tick));
    assert_eq!(c.len(), 1, "{c:?}");
    let mut members: Vec<NodeId> = c[0].0.members().collect();
    members.sort();
    assert_eq!(members, vec![N[1], N[2], N[3]]);
    assert_eq!(cm.node_summary().iter().find(|s| s.node == N[0]).map(|s| s.replicas), Some(0));
    settle(&mut cm, INTERVAL + 400, &N[1..]);
    assert_eq!(cm.balancing_pending(), None);
}

#[test]
fn a_recommissioned_node_keeps_what_it_holds() {
    let mut cm = restored(vec![part(0, 5, N[0], &[N[1], N[2]])], &N);
    settle(&mut cm, 100, &N);
    h(&mut cm, 100, CmEvent::Decommission { node: N[0] });
    assert!(cm.is_decommissioned(N[0]));
    h(&mut cm, 100, CmEvent::Recommission { node: N[0] });
    assert!(!cm.is_decommissioned(N[0]));
    // Decommissioned, the tick would switch the primary off N1 (see above); now nothing moves.
    let c = changes(&h(&mut cm, 100, CmEvent::Tick));
    assert!(c.is_empty(), "a recommissioned node keeps its primary: {c:?}");
}

#[test]
fn a_new_node_gets_copies_within_the_move_limit() {
    let parts = vec![
        part(0, 5, N[0], &[N[1], N[2]]),
        part(1, 5, N[1], &[N[2], N[0]]),
        part(2, 5, N[2], &[N[0], N[1]]),
    ];
    let mut cm = restored(parts, &N);
    settle(&mut cm, 100, &N);
    let a = h(&mut cm, 100, CmEvent::Tick);
    let learners: Vec<NodeId> = a
        .iter()
        .filter_map(|x| if let CmAction::AddLearner { learner, .. } = x { Some(*learner) } else { None })
        .collect();
    // Replicas per node: 3, 3, 3, 0 → one copy to N4 evens it out to within one.
    assert_eq!(learners, vec![N[3]], "{a:?}");
    assert!(changes(&a).is_empty());
}
