use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tern_client::admin::{Link, PartitionProgress, TableInfo, TableRoute};
use tern_core::{Ballot, Gpid, LinkMode, NodeId, PartitionConfig, TableId, TableStatus};

use super::*;

fn route(role: &str, epoch: u64, partitions: u32, with_primary: u32) -> View {
    let table = TableInfo {
        id: TableId(1),
        name: "t".into(),
        partitions,
        replicas: 1,
        status: TableStatus::Serving,
        role: role.parse().unwrap(),
        epoch,
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

fn views(v: Vec<(&str, View)>) -> Vec<(String, View)> {
    v.into_iter().map(|(n, v)| (n.to_string(), v)).collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

struct Setup {
    t0: Instant,
    policy: Policy,
    outage: Outage,
}

fn setup() -> Setup {
    let t0 = Instant::now();
    Setup {
        t0,
        policy: Policy { after: secs(10.0), rpo_budget: secs(2.0) },
        outage: Outage {
            cluster: "dc1".into(),
            epoch: 1,
            since: t0 + secs(1.0),
            why: "meta servers unreachable".into(),
        },
    }
}

fn sample(t0: Instant, lags: Vec<(&str, Result<f64, &str>)>) -> LagSample {
    LagSample {
        at: t0 + secs(0.5),
        from: "dc1".into(),
        lags: lags
            .into_iter()
            .map(|(n, l)| (n.to_string(), l.map(secs).map_err(|e| e.to_string())))
            .collect::<BTreeMap<_, _>>(),
        behind: BTreeMap::new(),
    }
}

#[test]
fn nothing_happens_before_the_outage_is_old_enough() {
    let s = setup();
    let v = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("standby", 1, 4, 4))]);
    let smp = sample(s.t0, vec![("dc2", Ok(0.2))]);
    assert_eq!(decide(&v, &s.outage, Some(&smp), &s.policy, s.t0 + secs(10.9)), Decision::Wait);
    assert!(matches!(
        decide(&v, &s.outage, Some(&smp), &s.policy, s.t0 + secs(11.0)),
        Decision::Promote { .. }
    ));
}

#[test]
fn the_standby_within_the_budget_is_promoted_above_every_epoch_seen() {
    let s = setup();
    let v = views(vec![
        ("dc1", View::Unreachable("refused".into())),
        ("dc2", route("standby", 4, 4, 4)),
        ("dc3", route("standby", 2, 4, 4)),
    ]);
    let smp = sample(s.t0, vec![("dc2", Ok(1.0)), ("dc3", Ok(0.2))]);
    let Decision::Promote { cluster, epoch, expect_epoch, lag, reason } =
        decide(&v, &s.outage, Some(&smp), &s.policy, s.t0 + secs(12.0))
    else {
        panic!("expected a promotion");
    };
    // dc3 has the smaller lag: 0.2 s measured + 0.5 s between the sample and the outage.
    assert_eq!((cluster.as_str(), epoch, expect_epoch), ("dc3", 5, 2));
    assert_eq!(lag, secs(0.7));
    assert!(reason.contains("dc1 (active at epoch 1) has not served for 11.0s"), "{reason}");
    assert!(reason.contains("dc3 is 0.7s behind (budget 2.0s)"), "{reason}");
}

#[test]
fn a_standby_over_the_budget_or_of_unknown_lag_is_refused_with_the_reason() {
    let s = setup();
    let v = views(vec![
        ("dc1", View::Unreachable("refused".into())),
        ("dc2", route("standby", 1, 4, 4)),
        ("dc3", route("standby", 1, 4, 4)),
        ("dc4", route("standby", 1, 4, 3)),
        ("dc5", route("standby", 1, 4, 4)),
    ]);
    let smp = sample(s.t0, vec![("dc2", Ok(1.6)), ("dc3", Err("the link is paused")), ("dc4", Ok(0.0))]);
    let Decision::Refuse(why) = decide(&v, &s.outage, Some(&smp), &s.policy, s.t0 + secs(12.0)) else {
        panic!("expected a refusal");
    };
    assert!(why.contains("dc2: 2.1s behind, over the RPO budget of 2.0s"), "{why}");
    assert!(why.contains("dc3: lag unknown (the link is paused)"), "{why}");
    assert!(why.contains("dc4: 1 of 4 partitions have no primary"), "{why}");
    assert!(why.contains("dc5: lag unknown (no duplication link from dc1 to it)"), "{why}");
}

#[test]
fn without_a_measurement_from_the_lost_cluster_nothing_is_promoted() {
    let s = setup();
    let v = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("standby", 1, 4, 4))]);
    let now = s.t0 + secs(20.0);
    let Decision::Refuse(why) = decide(&v, &s.outage, None, &s.policy, now) else { panic!() };
    assert!(why.contains("no standby's lag behind it was ever measured"), "{why}");
    let mut other = sample(s.t0, vec![("dc2", Ok(0.1))]);
    other.from = "dc3".into();
    assert!(matches!(decide(&v, &s.outage, Some(&other), &s.policy, now), Decision::Refuse(_)));
}

#[test]
fn an_active_copy_elsewhere_is_not_a_candidate() {
    let s = setup();
    let v = views(vec![("dc1", View::Unreachable("x".into())), ("dc2", route("active", 0, 4, 4))]);
    let smp = sample(s.t0, vec![("dc2", Ok(0.1))]);
    let Decision::Refuse(why) = decide(&v, &s.outage, Some(&smp), &s.policy, s.t0 + secs(12.0)) else {
        panic!()
    };
    assert!(why.contains("dc2: active at epoch 0"), "{why}");
}

#[test]
fn a_returning_old_active_copy_is_fenced_at_the_routed_epoch() {
    let v = views(vec![
        ("dc1", route("active", 1, 4, 4)),
        ("dc2", route("active", 2, 4, 4)),
        ("dc3", route("standby", 2, 4, 4)),
    ]);
    assert_eq!(to_fence(&v, 1), vec![("dc1".to_string(), 2, 1)]);
    assert!(to_fence(&v, 0).is_empty(), "nothing is below epoch 1");
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
            confirmed: 0,
            committed: 0,
            decrees_behind: 0,
            bytes_behind: 0,
            seconds_behind: sb,
            lag_unknown: None,
            replicated_up_to: tern_core::Timetag::ZERO,
            shipped_puts: 0,
            failed_batches: 0,
            last_error: None,
            conflicts: 0,
            primary: None,
            reported_ms_ago: (age != u64::MAX).then_some(age),
            clock_ahead: 0,
            syncing: false,
            sync_records: 0,
            share_bytes_per_sec: 0,
            wire_bytes_per_sec: 0,
            wire_bytes: 0,
            throttled: false,
            overwritten: 0,
            conflicts_dropped: 0,
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

fn deposing(t0: Instant) -> Deposing {
    Deposing {
        old: "dc1".into(),
        old_epoch: 1,
        epoch: 2,
        target: "dc2".into(),
        expires_at: t0 + secs(5.0),
        promised_by: vec!["p1".into(), "w".into()],
        reason: "dc1 has not served".into(),
    }
}

#[test]
fn a_promotion_under_way_waits_for_the_old_lease_then_promotes_the_target_at_the_promised_epoch() {
    let t0 = Instant::now();
    let d = deposing(t0);
    let v = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("standby", 1, 4, 4))]);
    match finish(&v, &d, 3, t0 + secs(4.9)) {
        Finish::Wait(why) => assert!(
            why.contains("2 of 3 DR voters (p1, w) promised no lease for a copy below epoch 2 (replacing dc1 at epoch 1)"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    match finish(&v, &d, 3, t0 + secs(5.0)) {
        Finish::Promote { cluster, epoch, expect_epoch, reason } => {
            assert_eq!((cluster.as_str(), epoch, expect_epoch), ("dc2", 2, 1));
            assert!(
                reason.contains("dc1's DR lease has certainly expired (2 of 3 DR voters promised: p1, w)"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Once a copy is active at the promised epoch (another proxy won), nothing is left to do.
    let v = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("active", 2, 4, 4))]);
    assert_eq!(finish(&v, &d, 3, t0 + secs(6.0)), Finish::Done);
}

#[test]
fn a_promotion_under_way_is_finished_even_if_the_old_copy_returns_and_never_on_a_copy_that_cannot_serve() {
    let t0 = Instant::now();
    let d = deposing(t0);
    // The old copy came back and fenced itself at the promised epoch; the target is down.
    let v = views(vec![("dc1", route("standby", 2, 4, 4)), ("dc2", route("standby", 1, 4, 1))]);
    match finish(&v, &d, 3, t0 + secs(6.0)) {
        Finish::Promote { cluster, epoch, expect_epoch, .. } => {
            assert_eq!(
                (cluster.as_str(), epoch, expect_epoch),
                ("dc1", 3, 2),
                "above the epoch it fenced itself at"
            )
        }
        other => panic!("{other:?}"),
    }
    // Target healthy again: it is preferred.
    let v = views(vec![("dc1", route("standby", 2, 4, 4)), ("dc2", route("standby", 1, 4, 4))]);
    assert!(matches!(finish(&v, &d, 3, t0 + secs(6.0)), Finish::Promote { cluster, .. } if cluster == "dc2"));
    // Neither can serve: wait, and say so.
    let v = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("standby", 1, 4, 2))]);
    match finish(&v, &d, 3, t0 + secs(6.0)) {
        Finish::Wait(why) => assert!(why.contains("neither dc2 nor dc1 can serve now"), "{why}"),
        other => panic!("{other:?}"),
    }
}
