use tern_core::{ErrorCode, Gpid, PartitionConfig, TableStatus};

use super::*;

fn table(role: DrRole) -> TableInfo {
    TableInfo {
        id: TableId(3),
        name: "t".into(),
        partitions: 2,
        replicas: 3,
        status: TableStatus::Dropped { at_ms: 9 },
        role,
        epoch: 4,
        restoring: None,
    }
}

#[test]
fn routes_round_trip_sorted_by_partition() {
    let config = |p, primary: Option<u64>| PartitionConfig {
        gpid: Gpid::new(3, p),
        ballot: tern_core::Ballot(2),
        primary: primary.map(NodeId),
        secondaries: vec![NodeId(8)],
    };
    let route = TableRoute {
        table: table(DrRole::Standby),
        partitions: vec![config(0, Some(7)), config(1, None)],
        addresses: [(NodeId(7), "a:1".to_string()), (NodeId(8), "b:1".to_string())].into(),
        dr_lease: Some(RouteLease {
            used: true,
            voters: vec!["p1".into(), "w".into()],
            waived: false,
            lease_left_ms: 4_000,
            detail: String::new(),
        }),
    };
    let mut wire = route_to_pb(&route);
    wire.partitions.reverse();
    let back = route_from_pb(wire).unwrap();
    assert_eq!(back, route);
    assert_eq!(back.with_primary(), 1);
    assert_eq!(back.address(NodeId(8)), Some("b:1"));
}

#[test]
fn a_restoring_table_round_trips_and_empty_means_not_restoring() {
    let mut t = table(DrRole::Active);
    assert_eq!(table_from_pb(table_to_pb(&t)).unwrap().restoring, None);
    t.restoring = Some("20261208T032824Z-demo-463cd728".into());
    assert_eq!(table_from_pb(table_to_pb(&t)).unwrap(), t);
}

#[test]
fn a_route_without_its_table_or_role_is_refused() {
    let e = route_from_pb(pb::Route::default()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let mut t = table_to_pb(&table(DrRole::Active));
    t.role = 0;
    let e = table_from_pb(t).unwrap_err();
    assert!(e.to_string().contains("table.role is not specified"), "{e}");
}

#[test]
fn sentinels_become_options() {
    let s = cluster_status_from_pb(pb::ClusterStatusResponse {
        cluster_name: "dc1".into(),
        nodes: vec![pb::NodeStatus { node: 5, memory: None, ..Default::default() }],
        ..Default::default()
    })
    .unwrap();
    assert_eq!((s.meta_leader, s.balancing.as_deref(), s.nodes[0].node), (None, None, NodeId(5)));
    let link = pb::DupLink {
        status: LinkStatus::Shipping.to_pb(),
        mode: LinkMode::TwoWay.to_pb(),
        started: vec![true, false],
        ..Default::default()
    };
    let r = link_report_from_pb(pb::DupLinkStatus {
        link: Some(link),
        partitions: vec![
            pb::DupPartitionStatus {
                partition: 0,
                primary: 7,
                reported_ms_ago: 5,
                last_error: "x".into(),
                ..Default::default()
            },
            pb::DupPartitionStatus {
                partition: 1,
                reported_ms_ago: u64::MAX,
                bytes_behind: 3,
                wire_bytes_per_sec: 700,
                ..Default::default()
            },
        ],
        conflicts: 2,
        ..Default::default()
    })
    .unwrap();
    assert_eq!((r.link.status, r.link.mode), (LinkStatus::Shipping, LinkMode::TwoWay));
    assert!(r.link.started(0) && !r.link.started(1) && !r.link.started(9));
    assert_eq!(r.partitions[0].primary, Some(NodeId(7)));
    assert_eq!(r.partitions[1].primary, None);
    assert_eq!(r.partitions[1].reported_ms_ago, None);
    let totals = r.totals();
    assert_eq!((totals.bytes_behind, totals.failing_partitions, totals.wire_bytes_per_sec), (3, 1, 700));
    let e = link_report_from_pb(pb::DupLinkStatus {
        link: Some(pb::DupLink { status: 42, ..Default::default() }),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("link.status"), "{e}");
}

#[test]
fn proxy_status_round_trips() {
    let status = ProxyStatus {
        clusters: vec!["dc1".into(), "dc2".into()],
        tables: vec![
            ProxyTable {
                table: "t".into(),
                active_cluster: Some("dc1".into()),
                epoch: 2,
                route_error: None,
                clusters: vec![
                    CopyView {
                        cluster: "dc1".into(),
                        state: CopyState::Active,
                        epoch: 2,
                        healthy: true,
                        detail: String::new(),
                        lag_seconds: None,
                        lag_detail: String::new(),
                        decrees_behind: None,
                        bytes_behind: None,
                        dr_lease: "held 4.0s".into(),
                    },
                    CopyView {
                        cluster: "dc2".into(),
                        state: CopyState::NoTable,
                        epoch: 0,
                        healthy: false,
                        detail: "no such table".into(),
                        lag_seconds: Some(1.5),
                        lag_detail: String::new(),
                        decrees_behind: Some(12),
                        bytes_behind: Some(3_400),
                        dr_lease: String::new(),
                    },
                ],
                auto_failover: true,
                failover_after_ms: 10_000,
                rpo_budget_ms: 5_000,
                active_unhealthy: Some(Unhealthy { cluster: "dc1".into(), for_ms: 3 }),
                last_decision: Some(FailoverDecision {
                    at_ms: 1,
                    outcome: FailoverOutcome::LostRace,
                    cluster: Some("dc2".into()),
                    epoch: 3,
                    reason: "why".into(),
                }),
                lag_sampled_ms_ago: Some(7),
                lease_wait: Some(LeaseWait { for_ms: 1_200, detail: "promised by p1, w".into() }),
            },
            ProxyTable::not_looked_at("u", false),
        ],
        dr_name: Some("p1".into()),
        dr_voters: vec!["p1".into(), "w".into()],
        witness: false,
    };
    assert_eq!(proxy_status_from_pb(proxy_status_to_pb(&status)).unwrap(), status);
    let mut wire = proxy_status_to_pb(&status);
    wire.tables[0].clusters[0].state = 0;
    let e = proxy_status_from_pb(wire).unwrap_err();
    assert!(e.to_string().contains("cluster.state"), "{e}");
}

#[test]
fn a_new_link_defaults_its_remote_table_to_its_own_name() {
    let l = NewLink {
        table: "t".into(),
        remote_cluster: "dc2".into(),
        remote_metas: vec!["b:1".into()],
        remote_table: None,
        full_sync: true,
        max_bytes_per_sec: 0,
        mode: LinkMode::OneWay,
    };
    let req = new_link_to_pb(&l);
    assert_eq!((req.remote_table.as_str(), req.mode), ("t", LinkMode::OneWay.to_pb()));
}

#[test]
fn a_dr_lease_status_reads_its_sentinels() {
    let s = dr_lease_from_pb(pb::DrLeaseStatus {
        used: true,
        voters: vec!["p1".into()],
        majority: 1,
        waived: true,
        waiver_reason: "proxies lost".into(),
        waived_at_ms: 9,
        grants: vec![pb::DrVoterGrant { voter: "p1".into(), answered_ms_ago: -1, ..Default::default() }],
        tables: vec![],
        renew_interval_ms: 1_000,
    });
    assert_eq!(s.waiver, Some(("proxies lost".to_string(), 9)));
    assert_eq!(s.grants[0].answered_ms_ago, None, "never answered");
    let s = dr_lease_from_pb(pb::DrLeaseStatus::default());
    assert!(!s.used && s.waiver.is_none());
}

#[test]
fn conflicts_carry_their_kind_and_an_unspecified_kind_is_refused() {
    let entry = pb::DupConflict {
        hash_key: b"h".to_vec(),
        sort_key: b"s".to_vec(),
        incoming: 9,
        stored: 8,
        kind: tern_core::ConflictKind::RemoteOverwritten.to_pb(),
    };
    let r = pb::DupConflictsResponse { total: 3, recent: vec![entry.clone()], overwritten: 1, dropped: 2 };
    let c = conflicts_from_pb(r).unwrap();
    assert_eq!((c.total, c.overwritten, c.dropped), (3, 1, 2));
    assert_eq!(c.recent[0].kind, tern_core::ConflictKind::RemoteOverwritten);
    let bad =
        pb::DupConflictsResponse { recent: vec![pb::DupConflict { kind: 0, ..entry }], ..Default::default() };
    let e = conflicts_from_pb(bad).unwrap_err();
    assert!(e.to_string().contains("conflict.kind"), "{e}");
}
