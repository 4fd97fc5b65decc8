//! Golden JSON of the replicated state and its commands: what the Raft log and snapshots hold.
//! Meta servers read back what older builds wrote, so the serde form of every state enum (DR
//! role, link status and mode, table status, link change) must not change. If one of these
//! tests fails, the change breaks existing data: add a versioned migration instead.

use std::collections::VecDeque;

use super::dr::{DrRole, RoleChange};
use super::dup::{
    ConflictCounter, ConflictKind, ConflictRecord, LinkChange, LinkMode, LinkRecord, LinkStatus, NewLink,
};
use super::*;

/// The link the state's links and the `AddLink` command start from.
fn new_link() -> NewLink {
    NewLink {
        table: 1,
        table_name: "t".into(),
        remote_cluster: "dc2".into(),
        remote_cluster_id: 2,
        remote_metas: vec!["b:1".into()],
        remote_table: "t".into(),
        mode: LinkMode::OneWay,
        status: LinkStatus::Init,
        max_bytes_per_sec: 0,
        created_at_ms: 9,
    }
}

fn state() -> MetaState {
    let mut s = MetaState { cluster_name: "dc1".into(), cluster_id: 1, ..MetaState::default() };
    s.tables.insert(
        1,
        TableRecord {
            id: 1,
            name: "t".into(),
            partitions: 2,
            replicas: 3,
            status: TableStatus::Serving,
            role: DrRole::Active,
            epoch: 0,
            restoring: None,
        },
    );
    s.tables.insert(
        2,
        TableRecord {
            id: 2,
            name: "old".into(),
            partitions: 1,
            replicas: 1,
            status: TableStatus::Dropped { at_ms: 5 },
            role: DrRole::Standby,
            epoch: 3,
            restoring: None,
        },
    );
    s.next_table_id = 2;
    let link = |id, mode, status| LinkRecord {
        confirmed: vec![4],
        started: vec![true],
        conflicts_total: 1,
        overwritten_total: 0,
        conflicts_dropped: 0,
        recent_conflicts: VecDeque::from([ConflictRecord {
            hash_key: b"h".to_vec(),
            sort_key: vec![],
            incoming: 10,
            stored: 11,
            kind: ConflictKind::ShippedLost,
        }]),
        partition_conflicts: vec![ConflictCounter { node: 7, reported: 1, total: 1, ..Default::default() }],
        // Links recorded before the replicated-up-to existed have none: their JSON is unchanged.
        replicated_up_to: vec![],
        ..LinkRecord::new(id, &NewLink { mode, status, ..new_link() }, 1)
    };
    let statuses = [
        (LinkMode::OneWay, LinkStatus::Init),
        (LinkMode::TwoWay, LinkStatus::SyncingCheckpoint),
        (LinkMode::OneWay, LinkStatus::Shipping),
        (LinkMode::TwoWay, LinkStatus::Paused),
        (LinkMode::OneWay, LinkStatus::Removed),
    ];
    for (i, (mode, status)) in statuses.into_iter().enumerate() {
        let id = i as u64 + 1;
        s.links.insert(id, link(id, mode, status));
    }
    s.next_link_id = 5;
    s
}

const STATE: &str = r#"{"cluster_name":"dc1","cluster_id":1,"tables":{"1":{"id":1,"name":"t","partitions":2,"replicas":3,"status":"Serving","role":"Active","epoch":0},"2":{"id":2,"name":"old","partitions":1,"replicas":1,"status":{"Dropped":{"at_ms":5}},"role":"Standby","epoch":3}},"next_table_id":2,"partitions":{},"nodes":{},"links":{"1":{"id":1,"table":1,"table_name":"t","remote_cluster":"dc2","remote_cluster_id":2,"remote_metas":["b:1"],"remote_table":"t","mode":"OneWay","status":"Init","max_bytes_per_sec":0,"confirmed":[4],"started":[true],"created_at_ms":9,"conflicts_total":1,"recent_conflicts":[{"hash_key":[104],"sort_key":[],"incoming":10,"stored":11}],"partition_conflicts":[{"node":7,"reported":1,"total":1}]},"2":{"id":2,"table":1,"table_name":"t","remote_cluster":"dc2","remote_cluster_id":2,"remote_metas":["b:1"],"remote_table":"t","mode":"TwoWay","status":"SyncingCheckpoint","max_bytes_per_sec":0,"confirmed":[4],"started":[true],"created_at_ms":9,"conflicts_total":1,"recent_conflicts":[{"hash_key":[104],"sort_key":[],"incoming":10,"stored":11}],"partition_conflicts":[{"node":7,"reported":1,"total":1}]},"3":{"id":3,"table":1,"table_name":"t","remote_cluster":"dc2","remote_cluster_id":2,"remote_metas":["b:1"],"remote_table":"t","mode":"OneWay","status":"Shipping","max_bytes_per_sec":0,"confirmed":[4],"started":[true],"created_at_ms":9,"conflicts_total":1,"recent_conflicts":[{"hash_key":[104],"sort_key":[],"incoming":10,"stored":11}],"partition_conflicts":[{"node":7,"reported":1,"total":1}]},"4":{"id":4,"table":1,"table_name":"t","remote_cluster":"dc2","remote_cluster_id":2,"remote_metas":["b:1"],"remote_table":"t","mode":"TwoWay","status":"Paused","max_bytes_per_sec":0,"confirmed":[4],"started":[true],"created_at_ms":9,"conflicts_total":1,"recent_conflicts":[{"hash_key":[104],"sort_key":[],"incoming":10,"stored":11}],"partition_conflicts":[{"node":7,"reported":1,"total":1}]},"5":{"id":5,"table":1,"table_name":"t","remote_cluster":"dc2","remote_cluster_id":2,"remote_metas":["b:1"],"remote_table":"t","mode":"OneWay","status":"Removed","max_bytes_per_sec":0,"confirmed":[4],"started":[true],"created_at_ms":9,"conflicts_total":1,"recent_conflicts":[{"hash_key":[104],"sort_key":[],"incoming":10,"stored":11}],"partition_conflicts":[{"node":7,"reported":1,"total":1}]}},"next_link_id":5}"#;

fn commands() -> Vec<Command> {
    vec![
        Command::SetTableRole {
            change: RoleChange { table: "t".into(), role: DrRole::Standby, epoch: 2, expect_epoch: Some(1) },
        },
        Command::SetTableRole {
            change: RoleChange { table: "t".into(), role: DrRole::Active, epoch: 3, expect_epoch: None },
        },
        Command::AddLink {
            link: NewLink {
                mode: LinkMode::TwoWay,
                status: LinkStatus::SyncingCheckpoint,
                max_bytes_per_sec: 1024,
                ..new_link()
            },
        },
        Command::ChangeLink { id: 1, change: LinkChange::Pause },
        Command::ChangeLink { id: 1, change: LinkChange::Resume },
        Command::ChangeLink { id: 1, change: LinkChange::Remove },
        Command::ChangeLink { id: 1, change: LinkChange::SetThrottle { max_bytes_per_sec: 10 } },
        Command::DropTable { name: "t".into(), at_ms: 5 },
    ]
}

const COMMANDS: [&str; 8] = [
    r#"{"SetTableRole":{"change":{"table":"t","role":"Standby","epoch":2,"expect_epoch":1}}}"#,
    r#"{"SetTableRole":{"change":{"table":"t","role":"Active","epoch":3,"expect_epoch":null}}}"#,
    r#"{"AddLink":{"link":{"table":1,"table_name":"t","remote_cluster":"dc2","remote_cluster_id":2,"remote_metas":["b:1"],"remote_table":"t","mode":"TwoWay","status":"SyncingCheckpoint","max_bytes_per_sec":1024,"created_at_ms":9}}}"#,
    r#"{"ChangeLink":{"id":1,"change":"Pause"}}"#,
    r#"{"ChangeLink":{"id":1,"change":"Resume"}}"#,
    r#"{"ChangeLink":{"id":1,"change":"Remove"}}"#,
    r#"{"ChangeLink":{"id":1,"change":{"SetThrottle":{"max_bytes_per_sec":10}}}}"#,
    r#"{"DropTable":{"name":"t","at_ms":5}}"#,
];

#[test]
fn the_state_serializes_as_it_always_has() {
    let s = state();
    assert_eq!(serde_json::to_string(&s).unwrap(), STATE);
    assert_eq!(serde_json::from_str::<MetaState>(STATE).unwrap(), s);
}

#[test]
fn commands_serialize_as_they_always_have() {
    for (cmd, golden) in commands().iter().zip(COMMANDS) {
        assert_eq!(serde_json::to_string(cmd).unwrap(), golden);
        assert_eq!(&serde_json::from_str::<Command>(golden).unwrap(), cmd);
    }
}

#[test]
fn responses_serialize_as_they_always_have() {
    let s = state();
    let table = Response::Table(s.tables[&2].clone());
    let golden = r#"{"Table":{"id":2,"name":"old","partitions":1,"replicas":1,"status":{"Dropped":{"at_ms":5}},"role":"Standby","epoch":3}}"#;
    assert_eq!(serde_json::to_string(&table).unwrap(), golden);
    assert_eq!(serde_json::from_str::<Response>(golden).unwrap(), table);
}

/// The DR lease waiver (issue #24, item 4) is new: state without it reads as "not waived" and
/// is written as before; with it, and its command, they are pinned here.
#[test]
fn the_dr_lease_waiver_is_absent_from_older_state_and_pinned_when_set() {
    assert_eq!(serde_json::from_str::<MetaState>(STATE).unwrap().dr_lease_waiver, None);
    let waiver = super::dr::DrLeaseWaiver { reason: "proxies lost with dc3".into(), at_ms: 7 };
    let mut s = state();
    s.dr_lease_waiver = Some(waiver.clone());
    let json = serde_json::to_string(&s).unwrap();
    let tail = r#","next_link_id":5,"dr_lease_waiver":{"reason":"proxies lost with dc3","at_ms":7}}"#;
    assert!(json.ends_with(tail), "{json}");
    assert_eq!(serde_json::from_str::<MetaState>(&json).unwrap(), s);
    let commands = [
        (
            Command::SetDrLeaseWaiver { waiver: Some(waiver) },
            r#"{"SetDrLeaseWaiver":{"waiver":{"reason":"proxies lost with dc3","at_ms":7}}}"#,
        ),
        (Command::SetDrLeaseWaiver { waiver: None }, r#"{"SetDrLeaseWaiver":{"waiver":null}}"#),
    ];
    for (cmd, golden) in commands {
        assert_eq!(serde_json::to_string(&cmd).unwrap(), golden);
        assert_eq!(serde_json::from_str::<Command>(golden).unwrap(), cmd);
        s.apply(&cmd);
    }
    assert_eq!(s.dr_lease_waiver, None, "withdrawn");
}

/// Failover records (issue #27, `tern dr failover`) are new: older state reads as "none" and
/// is written as before; a record and its command are pinned here.
#[test]
fn failover_records_are_absent_from_older_state_and_pinned_when_kept() {
    assert!(serde_json::from_str::<MetaState>(STATE).unwrap().failovers.is_empty());
    let record = tern_core::FailoverRecord {
        table: "t".into(),
        from: "dc1".into(),
        to: "dc2".into(),
        epoch: 2,
        at_ms: 7,
        exact: false,
        writes_end_before_ms: Some(9),
        partitions: vec![tern_core::PartitionLoss {
            partition: 0,
            decrees: Err("dc1 unreachable".into()),
            applied_through_timetag: Ok(5),
        }],
        took_ms: 3,
        unknown: None,
    };
    let cmd = Command::RecordFailover { record };
    let golden = r#"{"RecordFailover":{"record":{"table":"t","from":"dc1","to":"dc2","epoch":2,"at_ms":7,"exact":false,"writes_end_before_ms":9,"partitions":[{"partition":0,"decrees":{"Err":"dc1 unreachable"},"applied_through_timetag":{"Ok":5}}],"took_ms":3}}}"#;
    assert_eq!(serde_json::to_string(&cmd).unwrap(), golden);
    assert_eq!(serde_json::from_str::<Command>(golden).unwrap(), cmd);
    let mut s = state();
    s.apply(&cmd);
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains(r#""failovers":{"t":[{"table":"t","#), "{json}");
    assert_eq!(serde_json::from_str::<MetaState>(&json).unwrap(), s);
}
