//! Decision tests: feed events, assert the exact configuration changes.

use tern_core::{
    Ballot, ConfigChange, Decree, Gpid, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus, TableId,
};

use crate::{CmAction, CmEvent, CmOptions, ConfigManager};

const G: Gpid = Gpid::new(1, 0);
const N: [NodeId; 5] = [NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)];

pub(crate) fn h(cm: &mut ConfigManager, now: u64, e: CmEvent) -> Vec<CmAction> {
    let mut out = Vec::new();
    cm.handle(now, e, &mut out);
    out
}

/// `from` proposes `change` to partition `gpid` at `ballot`.
pub(crate) fn propose(from: NodeId, gpid: Gpid, ballot: u64, change: ConfigChange) -> CmEvent {
    CmEvent::Propose { from, gpid, ballot: Ballot(ballot), change }
}

fn report(ballot: u64, status: ReplicaStatus, last_prepared: u64) -> ReplicaReport {
    ReplicaReport {
        gpid: G,
        ballot: Ballot(ballot),
        status,
        committed: Decree(0),
        last_prepared: Decree(last_prepared),
    }
}

fn beacon(cm: &mut ConfigManager, now: u64, node: NodeId, reports: Vec<ReplicaReport>) -> Vec<CmAction> {
    h(cm, now, CmEvent::Beacon { node, sent_at_ms: now, reports })
}

fn changes(actions: &[CmAction]) -> Vec<PartitionConfig> {
    actions
        .iter()
        .filter_map(|a| if let CmAction::Changed { config, .. } = a { Some(config.clone()) } else { None })
        .collect()
}

/// Four live nodes and one 3-replica partition on N1 (primary), N2, N3.
fn cluster() -> ConfigManager {
    let mut cm = ConfigManager::new(CmOptions::default());
    for n in &N[..4] {
        beacon(&mut cm, 0, *n, vec![]);
    }
    let a = h(&mut cm, 0, CmEvent::CreatePartitions { table: TableId(1), partitions: 1, replicas: 3 });
    let created: Vec<NodeId> = a
        .iter()
        .filter_map(|x| if let CmAction::CreateReplica { to, .. } = x { Some(*to) } else { None })
        .collect();
    assert_eq!(created, vec![N[0], N[1], N[2]]);
    let c = cm.config(G).unwrap().clone();
    assert_eq!((c.ballot, c.primary, c.secondaries.clone()), (Ballot(1), Some(N[0]), vec![N[1], N[2]]));
    cm
}

fn alive(cm: &mut ConfigManager, now: u64, nodes: &[(NodeId, ReplicaReport)]) {
    for (n, r) in nodes {
        beacon(cm, now, *n, vec![r.clone()]);
    }
}

#[test]
fn creation_spreads_partitions_over_the_least_loaded_nodes() {
    let mut cm = cluster();
    h(&mut cm, 0, CmEvent::CreatePartitions { table: TableId(2), partitions: 1, replicas: 3 });
    let c = cm.config(Gpid::new(2, 0)).unwrap();
    assert_eq!(c.primary, Some(N[3]), "the one node without a replica comes first");
}

#[test]
fn a_beacon_gets_a_lease_counted_from_its_send_time_and_the_configs() {
    let mut cm = cluster();
    let a = h(&mut cm, 1_000, CmEvent::Beacon { node: N[1], sent_at_ms: 777, reports: vec![] });
    match &a[..] {
        [CmAction::BeaconAck { to, sent_at_ms: 777, lease_ms: 5_000, configs }] => {
            assert_eq!(*to, N[1]);
            assert_eq!(configs.len(), 1, "the node belongs to the partition even without reporting it");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_node_is_declared_dead_only_after_the_grace_period() {
    let mut cm = cluster();
    alive(
        &mut cm,
        1_000,
        &[
            (N[1], report(1, ReplicaStatus::Secondary, 5)),
            (N[2], report(1, ReplicaStatus::Secondary, 7)),
            (N[3], report(0, ReplicaStatus::Inactive, 0)),
        ],
    );
    // N1 (primary) last beaconed at 0.
    assert!(changes(&h(&mut cm, 10_000, CmEvent::Tick)).is_empty(), "grace is 10 s: not yet");
    alive(
        &mut cm,
        10_001,
        &[(N[1], report(1, ReplicaStatus::Secondary, 5)), (N[2], report(1, ReplicaStatus::Secondary, 7))],
    );
    let a = h(&mut cm, 10_001, CmEvent::Tick);
    let c = changes(&a);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].ballot, c[0].primary, c[0].secondaries.clone()),
        (Ballot(2), Some(N[2]), vec![N[1]]),
        "the longest log wins"
    );
    let told: Vec<NodeId> = a
        .iter()
        .filter_map(|x| if let CmAction::ConfigUpdate { to, .. } = x { Some(*to) } else { None })
        .collect();
    assert_eq!(told, vec![N[0], N[1], N[2]], "old and new members hear of it");
}

#[test]
fn a_dead_secondary_is_removed() {
    let mut cm = cluster();
    alive(
        &mut cm,
        10_001,
        &[(N[0], report(1, ReplicaStatus::Primary, 3)), (N[1], report(1, ReplicaStatus::Secondary, 3))],
    );
    let c = changes(&h(&mut cm, 10_001, CmEvent::Tick));
    assert_eq!((c[0].primary, c[0].secondaries.clone()), (Some(N[0]), vec![N[1]]));
}

#[test]
fn reports_count_only_at_the_current_ballot() {
    let mut cm = cluster();
    // A report from before the member adopted ballot 1 proves nothing.
    alive(
        &mut cm,
        100,
        &[
            (N[0], report(0, ReplicaStatus::Inactive, 0)),
            (N[1], report(1, ReplicaStatus::Secondary, 0)),
            (N[2], report(1, ReplicaStatus::Secondary, 0)),
        ],
    );
    assert!(changes(&h(&mut cm, 100, CmEvent::Tick)).is_empty());
    // At ballot 1, the primary says it is inactive (it restarted): replace it.
    alive(&mut cm, 200, &[(N[0], report(1, ReplicaStatus::Inactive, 4))]);
    let c = changes(&h(&mut cm, 200, CmEvent::Tick));
    assert_eq!((c[0].ballot, c[0].primary), (Ballot(2), Some(N[1])));
    // An error at the current ballot removes a secondary.
    alive(
        &mut cm,
        300,
        &[(N[2], report(2, ReplicaStatus::Error, 0)), (N[1], report(2, ReplicaStatus::Primary, 4))],
    );
    let c = changes(&h(&mut cm, 300, CmEvent::Tick));
    assert_eq!((c[0].ballot, c[0].secondaries.clone()), (Ballot(3), vec![]));
}

#[test]
fn proposals_at_a_stale_ballot_are_refused() {
    let mut cm = cluster();
    let a = h(&mut cm, 0, propose(N[0], G, 0, ConfigChange::RemoveSecondary(N[1])));
    assert!(changes(&a).is_empty());
    assert!(
        matches!(&a[..], [CmAction::ConfigUpdate { to, config }] if *to == N[0] && config.ballot == Ballot(1))
    );
    let a = h(&mut cm, 0, propose(N[1], G, 1, ConfigChange::RemoveSecondary(N[2])));
    assert!(changes(&a).is_empty(), "only the primary may propose");
    let a = h(&mut cm, 0, propose(N[0], G, 1, ConfigChange::RemoveSecondary(N[1])));
    assert_eq!(changes(&a)[0].secondaries, vec![N[2]]);
}

#[test]
fn a_missing_replica_is_replaced_by_a_learner_preferring_one_with_data() {
    let mut cm = cluster();
    h(&mut cm, 0, propose(N[0], G, 1, ConfigChange::RemoveSecondary(N[2])));
    // N4 has old data of the partition; N3 does not report it.
    alive(
        &mut cm,
        100,
        &[(N[0], report(2, ReplicaStatus::Primary, 9)), (N[3], report(1, ReplicaStatus::Inactive, 4))],
    );
    let a = h(&mut cm, 100, CmEvent::Tick);
    assert!(
        a.iter().any(|x| matches!(x, CmAction::AddLearner { to, config, learner, .. } if *to == N[0] && config == cm.config(G).unwrap() && *learner == N[3])),
        "{a:?}"
    );
    assert!(
        !h(&mut cm, 200, CmEvent::Tick).iter().any(|x| matches!(x, CmAction::AddLearner { .. })),
        "one at a time"
    );
    let a = h(&mut cm, 300, propose(N[0], G, 2, ConfigChange::AddSecondary(N[3])));
    assert_eq!(changes(&a)[0].secondaries, vec![N[1], N[3]]);
}

#[test]
fn a_learner_invited_to_a_node_that_then_died_is_invited_again_once_it_is_back() {
    let mut cm = cluster();
    let grace = CmOptions::default().grace_ms;
    // N3 stops answering the primary before the manager notices it is dead; N4 is gone for good.
    h(&mut cm, 0, propose(N[0], G, 1, ConfigChange::RemoveSecondary(N[2])));
    let mut now = 100;
    for n in [N[0], N[1], N[2]] {
        beacon(&mut cm, now, n, vec![]);
    }
    alive(
        &mut cm,
        now,
        &[(N[0], report(2, ReplicaStatus::Primary, 9)), (N[1], report(2, ReplicaStatus::Secondary, 9))],
    );
    // N4 died long ago; N3, the only live candidate, is invited.
    h(&mut cm, now, CmEvent::Tick);
    let learner_of = |a: &[CmAction]| {
        a.iter()
            .find_map(|x| if let CmAction::AddLearner { learner, .. } = x { Some(*learner) } else { None })
    };
    // Keep N1 and N2 alive past the grace period; N3 sends nothing and is declared dead.
    let mut invited = Vec::new();
    while now < 2 * grace + 200 {
        now += 100;
        alive(
            &mut cm,
            now,
            &[(N[0], report(2, ReplicaStatus::Primary, 9)), (N[1], report(2, ReplicaStatus::Secondary, 9))],
        );
        invited.extend(learner_of(&h(&mut cm, now, CmEvent::Tick)));
    }
    assert!(!cm.is_alive(N[2]), "N3 must be dead by now");
    assert!(invited.iter().all(|l| *l == N[2]), "only N3 is a live candidate: {invited:?}");
    // N3 comes back well within the learner timeout: it is invited again at once.
    assert!(now < CmOptions::default().learner_timeout_ms);
    now += 100;
    beacon(&mut cm, now, N[2], vec![]);
    alive(
        &mut cm,
        now,
        &[(N[0], report(2, ReplicaStatus::Primary, 9)), (N[1], report(2, ReplicaStatus::Secondary, 9))],
    );
    let a = h(&mut cm, now, CmEvent::Tick);
    assert_eq!(learner_of(&a), Some(N[2]), "{a:?}");
}

#[test]
fn a_surplus_member_is_removed_preferring_a_decommissioned_one() {
    let mut cm = cluster();
    // A learner caught up although the partition was already complete (say a first learner
    // seemed dead and a second one was invited): four members for three replicas.
    let a = h(&mut cm, 0, propose(N[0], G, 1, ConfigChange::AddSecondary(N[3])));
    assert_eq!(changes(&a)[0].members().count(), 4);
    h(&mut cm, 0, CmEvent::Decommission { node: N[2] });
    let roles = |cm: &mut ConfigManager, now: u64, up_to_date: bool| {
        let b = if up_to_date { 2 } else { 1 };
        alive(
            cm,
            now,
            &[
                (N[0], report(b, ReplicaStatus::Primary, 9)),
                (N[1], report(b, ReplicaStatus::Secondary, 9)),
                (N[2], report(b, ReplicaStatus::Secondary, 9)),
                (N[3], report(b, ReplicaStatus::Secondary, 9)),
            ],
        )
    };
    // Not before every member plays its role at the current ballot.
    roles(&mut cm, 100, false);
    assert!(changes(&h(&mut cm, 100, CmEvent::Tick)).is_empty());
    roles(&mut cm, 200, true);
    let a = h(&mut cm, 200, CmEvent::Tick);
    let c = changes(&a);
    assert_eq!(c.len(), 1, "{a:?}");
    assert_eq!(
        (c[0].primary, c[0].secondaries.clone()),
        (Some(N[0]), vec![N[1], N[3]]),
        "the decommissioned N3 goes"
    );
}

#[test]
fn a_secondary_that_never_reported_the_partition_is_not_promoted() {
    let mut cm = cluster();
    let grace = CmOptions::default().grace_ms;
    // N2 and N3 are alive but never reported the partition (their creates were lost); N1 dies.
    let mut now = 0;
    let mut a = Vec::new();
    while now <= grace + 500 {
        now += 250;
        beacon(&mut cm, now, N[1], vec![]);
        beacon(&mut cm, now, N[2], vec![]);
        a = h(&mut cm, now, CmEvent::Tick);
        if !changes(&a).is_empty() {
            break;
        }
    }
    let c = changes(&a);
    assert_eq!(c.len(), 1, "{a:?}");
    assert_eq!(c[0].primary, None, "nobody known to hold the partition may lead it: {c:?}");
}

#[test]
fn when_every_replica_is_lost_only_a_last_member_is_promoted_with_the_longest_log() {
    let mut cm = cluster();
    // All three members die; N4 keeps beaconing.
    alive(&mut cm, 10_001, &[(N[3], report(0, ReplicaStatus::Inactive, 0))]);
    let c = changes(&h(&mut cm, 10_001, CmEvent::Tick));
    assert_eq!(c.last().map(|c| c.primary), Some(None), "no primary while waiting");
    // N4 reports an (empty) replica: never promoted, it was not a member.
    alive(&mut cm, 20_000, &[(N[3], report(0, ReplicaStatus::Inactive, 0))]);
    assert!(changes(&h(&mut cm, 20_000, CmEvent::Tick)).is_empty());
    // N2 comes back: the manager waits a while for the others.
    alive(&mut cm, 21_000, &[(N[1], report(1, ReplicaStatus::Inactive, 10))]);
    assert!(changes(&h(&mut cm, 21_000, CmEvent::Tick)).is_empty());
    alive(
        &mut cm,
        22_000,
        &[(N[2], report(1, ReplicaStatus::Inactive, 12)), (N[1], report(1, ReplicaStatus::Inactive, 10))],
    );
    assert!(changes(&h(&mut cm, 22_000, CmEvent::Tick)).is_empty());
    alive(
        &mut cm,
        26_100,
        &[(N[2], report(1, ReplicaStatus::Inactive, 12)), (N[1], report(1, ReplicaStatus::Inactive, 10))],
    );
    let c = changes(&h(&mut cm, 26_100, CmEvent::Tick));
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].primary, c[0].secondaries.clone()),
        (Some(N[2]), vec![]),
        "the longest log among the last members"
    );
    assert!(c[0].ballot > Ballot(2));
}

#[test]
fn a_lost_create_is_resent_until_the_partition_has_data() {
    let mut cm = cluster();
    alive(
        &mut cm,
        100,
        &[(N[0], report(1, ReplicaStatus::Primary, 0)), (N[1], report(1, ReplicaStatus::Secondary, 0))],
    );
    let a = h(&mut cm, 100, CmEvent::Tick);
    let creates: Vec<NodeId> = a
        .iter()
        .filter_map(|x| if let CmAction::CreateReplica { to, .. } = x { Some(*to) } else { None })
        .collect();
    assert_eq!(creates, vec![N[2]]);
    alive(&mut cm, 200, &[(N[0], report(1, ReplicaStatus::Primary, 1))]);
    assert!(
        !h(&mut cm, 200, CmEvent::Tick).iter().any(|x| matches!(x, CmAction::CreateReplica { .. })),
        "never once data exists"
    );
}

#[test]
fn creation_spreads_primaries_evenly() {
    let mut cm = ConfigManager::new(CmOptions::default());
    for n in &N[..3] {
        beacon(&mut cm, 0, *n, vec![]);
    }
    h(&mut cm, 0, CmEvent::CreatePartitions { table: TableId(1), partitions: 6, replicas: 3 });
    let mut led = std::collections::BTreeMap::new();
    for p in 0..6 {
        let c = cm.config(Gpid::new(1, p)).unwrap();
        assert_eq!(c.members().count(), 3);
        *led.entry(c.primary.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(led.into_values().collect::<Vec<_>>(), vec![2, 2, 2], "every node leads two of six");
}

#[test]
fn a_partition_no_last_member_ever_held_is_recreated_once_they_are_all_back() {
    let mut cm = cluster();
    // The three members die before any of them opened the partition (no report ever).
    alive(&mut cm, 10_001, &[(N[3], report(0, ReplicaStatus::Inactive, 0))]);
    let c = changes(&h(&mut cm, 10_001, CmEvent::Tick));
    assert_eq!(c.last().map(|c| c.primary), Some(None), "no primary while waiting");
    // Two come back without it: not enough, the third may hold it.
    beacon(&mut cm, 20_000, N[0], vec![]);
    beacon(&mut cm, 20_000, N[1], vec![]);
    assert!(h(&mut cm, 30_000, CmEvent::Tick).iter().all(|a| !matches!(a, CmAction::CreateReplica { .. })));
    // All three are back, none holds it: after the recovery wait it starts again, empty.
    for n in &N[..3] {
        beacon(&mut cm, 30_000, *n, vec![]);
    }
    assert!(changes(&h(&mut cm, 30_000, CmEvent::Tick)).is_empty(), "waits the recovery wait first");
    for n in &N[..3] {
        beacon(&mut cm, 40_000, *n, vec![]);
    }
    let a = h(&mut cm, 40_000, CmEvent::Tick);
    let c = changes(&a);
    assert_eq!(c.len(), 1, "{a:?}");
    assert_eq!((c[0].primary, c[0].secondaries.clone()), (Some(N[0]), vec![]));
    assert!(
        a.iter().any(|x| matches!(x, CmAction::CreateReplica { to, config } if *to == N[0] && config.ballot == c[0].ballot)),
        "{a:?}"
    );
}

#[test]
fn a_restored_manager_never_recreates_a_partition_before_hearing_from_its_members() {
    let mut cm = cluster();
    alive(&mut cm, 10_001, &[(N[3], report(0, ReplicaStatus::Inactive, 0))]);
    h(&mut cm, 10_001, CmEvent::Tick);
    // A new meta leader: nodes restored as alive, nothing heard.
    let config = cm.config(G).unwrap().clone();
    assert_eq!(config.primary, None);
    let persisted =
        vec![crate::PersistedPartition { config, replicas: 3, last_members: N[..3].to_vec(), demoted: None }];
    let nodes = N[..4].iter().map(|n| (*n, false)).collect();
    let mut cm = ConfigManager::restore(CmOptions::default(), 50_000, persisted, nodes);
    for t in [50_000, 60_000, 70_000] {
        let a = h(&mut cm, t, CmEvent::Tick);
        assert!(a.iter().all(|x| !matches!(x, CmAction::CreateReplica { .. })), "{a:?}");
    }
}
