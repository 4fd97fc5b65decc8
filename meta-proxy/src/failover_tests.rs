//! The decisions are tested in `tern_drlease` (`failover_tests.rs`); these are the proxy's
//! views around them and reading a link's report as a lag.

use std::time::{Duration, Instant};

use tern_client::admin::{Link, LinkReport, PartitionProgress, TableInfo, TableRoute};
use tern_core::{Ballot, DrRole, Gpid, LinkMode, NodeId, PartitionConfig, TableId, TableStatus};

use super::*;
use crate::choose::View;

fn route(role: &str, epoch: u64, partitions: u32, with_primary: u32) -> View {
    let table = TableInfo {
        id: TableId(1),
        name: "t".into(),
        partitions,
        replicas: 1,
        status: TableStatus::Serving,
        role: role.parse().unwrap(),
        epoch,
        restoring: None,
    };
    let partitions = (0..partitions)
        .map(|p| PartitionConfig {
            gpid: Gpid::new(1, p),
            ballot: Ballot(1),
            primary: (p < with_primary).then_some(NodeId(1)),
            secondaries: vec![],
        })
        .collect();
    View::Route(TableRoute { table, partitions, addresses: Default::default(), dr_lease: None })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn a_route_is_seen_with_its_role_epoch_and_partitions_with_a_primary() {
    let v = route("active", 3, 4, 3);
    assert_eq!(role_of(&v), Some((DrRole::Active, 3)));
    assert_eq!(health(&v).unwrap_err(), "1 of 4 partitions have no primary");
    assert!(health(&route("standby", 1, 2, 2)).is_ok());
    assert!(health(&View::Unreachable("refused".into())).unwrap_err().contains("unreachable (refused)"));
    let views = vec![
        ("dc1".to_string(), View::Unreachable("x".into())),
        ("dc2".to_string(), route("standby", 1, 4, 4)),
    ];
    let outage = Outage { cluster: "dc1".into(), epoch: 0, since: Instant::now(), why: "down".into() };
    let sample = LagSample {
        at: outage.since,
        from: "dc1".into(),
        lags: [("dc2".to_string(), Ok(secs(0.1)))].into(),
        behind: Default::default(),
    };
    let policy = Policy { after: Duration::ZERO, rpo_budget: secs(1.0) };
    assert!(matches!(
        decide(&views, &outage, Some(&sample), &policy, outage.since),
        Decision::Promote { cluster, epoch: 2, expect_epoch: 1, .. } if cluster == "dc2"
    ));
}

/// `age` in ms; `u64::MAX`: never reported.
fn link(status: &str, started: Vec<bool>, parts: Vec<(f64, u64)>) -> LinkReport {
    let link = Link {
        id: 1,
        table: TableId(1),
        table_name: "t".into(),
        remote_cluster: "dc2".into(),
        remote_cluster_id: 2,
        remote_metas: vec![],
        remote_table: "t".into(),
        status: status.parse().unwrap(),
        mode: LinkMode::TwoWay,
        max_bytes_per_sec: 0,
        confirmed: vec![0; started.len()],
        started,
        created_at_ms: 0,
    };
    let partitions = parts
        .into_iter()
        .enumerate()
        .map(|(i, (sb, age))| PartitionProgress {
            partition: i as u32,
            seconds_behind: sb,
            reported_ms_ago: (age != u64::MAX).then_some(age),
            ..PartitionProgress::default()
        })
        .collect();
    LinkReport { link, partitions, conflicts: 0, overwritten: 0, conflicts_dropped: 0 }
}

#[test]
fn a_links_lag_is_its_worst_partition_and_unknown_until_it_ships_everything() {
    let l = link("shipping", vec![true, true], vec![(0.0, 300), (1.5, 200)]);
    assert_eq!(link_lag(&l).unwrap(), secs(1.7), "measured lag plus the measurement's age");
    let l = link("paused", vec![true, true], vec![(0.0, 900), (0.0, 200)]);
    assert_eq!(link_lag(&l).unwrap(), secs(0.9), "nothing waiting: the report's age bounds it");
    let mut l = link("shipping", vec![true, true], vec![(0.0, 100), (0.0, 100)]);
    l.partitions[1].lag_unknown = Some("the link fails: TRANSPORT: refused".into());
    let e = link_lag(&l).unwrap_err();
    assert!(e.contains("partition 1: the link fails: TRANSPORT: refused"), "an unknown lag is never 0: {e}");
    let e = link_lag(&link("syncing-checkpoint", vec![true], vec![(0.0, 0)])).unwrap_err();
    assert!(e.contains("syncing-checkpoint"), "{e}");
    let e = link_lag(&link("shipping", vec![true, false], vec![(0.0, 0), (0.0, 0)])).unwrap_err();
    assert!(e.contains("partition 1 has not started"), "{e}");
    let e = link_lag(&link("shipping", vec![true], vec![(0.0, u64::MAX)])).unwrap_err();
    assert!(e.contains("never reported"), "{e}");
}
