//! Builders of observations for the decision tests (status, switchover).
#![allow(clippy::unwrap_used)]

use tern_client::admin::{DrLeaseState, Link, LinkReport, PartitionProgress, TableInfo, TableLease};
use tern_core::{DrRole, LinkMode, LinkStatus, TableId, TableStatus};

use crate::observe::{ClusterObs, Observed};

pub const T: &str = "orders";

pub fn table(role: DrRole, epoch: u64) -> TableInfo {
    TableInfo {
        id: TableId(1),
        name: T.into(),
        partitions: 2,
        replicas: 3,
        status: TableStatus::Serving,
        role,
        epoch,
        restoring: None,
    }
}

pub fn lease(held_ms: u64) -> DrLeaseState {
    DrLeaseState {
        used: true,
        voters: vec!["p1".into()],
        majority: 1,
        waiver: None,
        grants: Vec::new(),
        tables: vec![TableLease {
            table: T.into(),
            epoch: 1,
            lease_left_ms: held_ms,
            detail: "expired".into(),
        }],
        renew_interval_ms: 1000,
    }
}

/// Partition progress: (seconds behind, report age ms).
pub fn link(to: &str, status: LinkStatus, parts: &[(f64, u64)]) -> LinkReport {
    let n = parts.len();
    let link = Link {
        id: 7,
        table: TableId(1),
        table_name: T.into(),
        remote_cluster: to.into(),
        remote_cluster_id: 2,
        remote_metas: vec!["127.0.0.1:1".into()],
        remote_table: T.into(),
        status,
        mode: LinkMode::OneWay,
        max_bytes_per_sec: 0,
        confirmed: vec![5; n],
        started: vec![true; n],
        created_at_ms: 0,
    };
    let partitions = parts
        .iter()
        .enumerate()
        .map(|(i, &(secs, age))| PartitionProgress {
            partition: i as u32,
            confirmed: 5,
            committed: 6,
            decrees_behind: 1,
            bytes_behind: 100,
            seconds_behind: secs,
            reported_ms_ago: Some(age),
            ..PartitionProgress::default()
        })
        .collect();
    LinkReport { link, partitions, conflicts: 0, overwritten: 0, conflicts_dropped: 0 }
}

pub fn cluster(name: &str, tables: Vec<TableInfo>, links: Vec<LinkReport>) -> ClusterObs {
    ClusterObs {
        name: name.into(),
        metas: vec![format!("{name}:1")],
        unreachable: None,
        tables,
        links,
        lease: Ok(lease(5_000)),
        failovers: Vec::new(),
        reconciles: Vec::new(),
        backup_policies: Vec::new(),
        drills: Vec::new(),
    }
}

/// dc1 active with a shipping link to dc2, standby: everything fine.
pub fn healthy_pair() -> Observed {
    let dc1 = cluster(
        "dc1",
        vec![table(DrRole::Active, 1)],
        vec![link("dc2", LinkStatus::Shipping, &[(0.2, 300), (0.0, 100)])],
    );
    let dc2 = cluster("dc2", vec![table(DrRole::Standby, 1)], Vec::new());
    Observed { clusters: vec![dc1, dc2], at_ms: 1_000 }
}
