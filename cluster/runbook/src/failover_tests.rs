#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;
use tern_client::admin::IncomingLinkReport;
use tern_core::{DrRole, Timetag};
use tern_drlease::{Ms, Promise};

use super::{FailoverRules, Promised, Step, loss_report, next_step};
use crate::testkit::{T, cluster, healthy_pair, link, table};
use crate::{ClusterObs, Observed};
use tern_core::LinkStatus;

fn rules() -> FailoverRules {
    FailoverRules { voters: vec!["p1".into()], ..FailoverRules::default() }
}

fn lost(mut c: ClusterObs) -> ClusterObs {
    c.unreachable = Some("connection refused".into());
    c.tables.clear();
    c.links.clear();
    c.lease = Err("not asked".into());
    c
}

/// dc1 (active at epoch 1) is lost; dc2 is standby at epoch 1 with a link back to dc1.
fn dc1_lost() -> Observed {
    let mut obs = healthy_pair();
    obs.clusters[0] = lost(obs.clusters[0].clone());
    obs.clusters[1].links = vec![link("dc1", LinkStatus::Shipping, &[(0.0, 100), (0.0, 100)])];
    obs
}

fn promised(epoch: u64, at: u64, since_grant_ms: u64) -> Promised<Ms> {
    Promised {
        epoch,
        promises: vec![Promise {
            voter: "p1".into(),
            received_at: Ms(at),
            since_grant: Duration::from_millis(since_grant_ms),
            lease: Duration::from_secs(2),
        }],
        not: Vec::new(),
        granted_epoch: None,
    }
}

#[test]
fn a_lost_active_cluster_is_replaced_after_promises_and_its_lease() {
    let obs = dc1_lost();
    assert_eq!(
        next_step::<Ms>(&obs, T, "dc2", &rules(), None, Ms(0)),
        Step::AskPromises { old: "dc1".into(), epoch: 2 }
    );
    // Promises for another epoch do not count.
    let other = promised(7, 100, 0);
    assert_eq!(
        next_step(&obs, T, "dc2", &rules(), Some(&other), Ms(100)),
        Step::AskPromises { old: "dc1".into(), epoch: 2 }
    );
    // Granted 500 ms before the promise arrived: 2 s × 1.01/0.99 − 0.5 s + 1 s margin ≈ 2.54 s later.
    let p = promised(2, 100, 500);
    let step = next_step(&obs, T, "dc2", &rules(), Some(&p), Ms(100));
    let Step::WaitLease { until, why } = step else { panic!("{step:?}") };
    assert_eq!(until, Ms(2_641));
    assert!(why.contains("1 of 1 DR voters (p1) promised no lease below epoch 2"), "{why}");
    assert!(matches!(next_step(&obs, T, "dc2", &rules(), Some(&p), Ms(2_640)), Step::WaitLease { .. }));
    assert_eq!(
        next_step(&obs, T, "dc2", &rules(), Some(&p), Ms(2_641)),
        Step::Promote { cluster: "dc2".into(), epoch: 2, expect: 1, note: None }
    );
}

#[test]
fn promises_below_the_epoch_the_old_copy_was_granted_at_are_asked_again_above_it() {
    // dc2 (standby at 1) is all that is seen, but the voter last granted dc1's copy at epoch 4.
    let obs = dc1_lost();
    let mut p = promised(2, 0, 0);
    p.granted_epoch = Some(4);
    assert_eq!(
        next_step(&obs, T, "dc2", &rules(), Some(&p), Ms(10_000)),
        Step::AskPromises { old: "dc1".into(), epoch: 5 }
    );
    let mut p = promised(5, 0, 0);
    p.granted_epoch = Some(4);
    assert_eq!(
        next_step(&obs, T, "dc2", &rules(), Some(&p), Ms(10_000)),
        Step::Promote { cluster: "dc2".into(), epoch: 5, expect: 1, note: None }
    );
}

#[test]
fn too_few_promises_refuse_and_say_which_voters_did_not_answer() {
    let obs = dc1_lost();
    let three = FailoverRules { voters: vec!["p1".into(), "p2".into(), "p3".into()], ..rules() };
    let mut obs3 = obs.clone();
    for c in &mut obs3.clusters {
        if let Ok(l) = &mut c.lease {
            l.voters = three.voters.clone();
        }
    }
    let mut p = promised(2, 0, 0);
    p.not = vec!["p2: no answer from 127.0.0.1:9 within 1s".into(), "p3: refused (other voters)".into()];
    let step = next_step(&obs3, T, "dc2", &three, Some(&p), Ms(0));
    let Step::Refuse { why } = step else { panic!("{step:?}") };
    assert!(why.contains("1 of 3 DR voters promised; 2 must"), "{why}");
    assert!(why.contains("p2: no answer"), "{why}");
}

#[test]
fn a_reachable_healthy_active_copy_is_refused_unless_forced() {
    let obs = healthy_pair();
    let step = next_step::<Ms>(&obs, T, "dc2", &rules(), None, Ms(0));
    let Step::Refuse { why } = step else { panic!("{step:?}") };
    assert!(why.contains("dc1 is reachable and orders is active there, holding its DR lease"), "{why}");
    assert!(why.contains("tern dr switchover --table orders --to dc2"), "{why}");
    let forced = FailoverRules { force: true, ..rules() };
    assert_eq!(
        next_step::<Ms>(&obs, T, "dc2", &forced, None, Ms(0)),
        Step::AskPromises { old: "dc1".into(), epoch: 2 }
    );
    // Reachable but its lease is gone (cut off from the voters): not serving, no --force needed.
    let mut cut = healthy_pair();
    if let Ok(l) = &mut cut.clusters[0].lease {
        l.tables[0].lease_left_ms = 0;
    }
    assert_eq!(
        next_step::<Ms>(&cut, T, "dc2", &rules(), None, Ms(0)),
        Step::AskPromises { old: "dc1".into(), epoch: 2 }
    );
}

#[test]
fn without_a_lease_to_wait_for_it_refuses_unless_the_operator_overrides() {
    let mut obs = dc1_lost();
    if let Ok(l) = &mut obs.clusters[1].lease {
        l.used = false;
    }
    let step = next_step::<Ms>(&obs, T, "dc2", &rules(), None, Ms(0));
    let Step::Refuse { why } = step else { panic!("{step:?}") };
    assert!(why.contains("runs without a DR lease"), "{why}");
    let unsafe_rules = FailoverRules { unsafe_without_lease: true, ..rules() };
    let step = next_step::<Ms>(&obs, T, "dc2", &unsafe_rules, None, Ms(0));
    assert!(
        matches!(&step, Step::Promote { epoch: 2, expect: 1, note: Some(n), .. } if n.contains("WITHOUT waiting")),
        "{step:?}"
    );
    // No voters given or found: nothing to wait on either.
    let mut obs = dc1_lost();
    let none = FailoverRules { voters: Vec::new(), ..rules() };
    obs.clusters[1].lease = Err("x".into());
    assert!(matches!(next_step::<Ms>(&obs, T, "dc2", &none, None, Ms(0)), Step::Refuse { .. }));
}

#[test]
fn once_promoted_a_returning_old_copy_is_fenced_and_a_rerun_is_done() {
    let mut obs = healthy_pair();
    obs.clusters[1].tables = vec![table(DrRole::Active, 2)];
    assert_eq!(
        next_step::<Ms>(&obs, T, "dc2", &rules(), None, Ms(0)),
        Step::Fence { cluster: "dc1".into(), epoch: 2, expect: 1 }
    );
    obs.clusters[0].tables = vec![table(DrRole::Standby, 2)];
    assert!(matches!(next_step::<Ms>(&obs, T, "dc2", &rules(), None, Ms(0)), Step::Done { .. }));
    // The old side still lost: done too.
    obs.clusters[0] = lost(obs.clusters[0].clone());
    assert!(matches!(next_step::<Ms>(&obs, T, "dc2", &rules(), None, Ms(0)), Step::Done { .. }));
}

#[test]
fn the_old_side_must_be_known() {
    let mut obs = dc1_lost();
    obs.clusters.push(lost(cluster("dc3", Vec::new(), Vec::new())));
    let step = next_step::<Ms>(&obs, T, "dc2", &rules(), None, Ms(0));
    assert!(
        matches!(&step, Step::Refuse { why } if why.contains("several clusters are unreachable (dc1, dc3)")),
        "{step:?}"
    );
    let mut none = healthy_pair();
    none.clusters[0].tables = vec![table(DrRole::Standby, 2)];
    let step = next_step::<Ms>(&none, T, "dc2", &rules(), None, Ms(0));
    assert!(matches!(&step, Step::Refuse { why } if why.contains("no lost active copy")), "{step:?}");
    let step = next_step::<Ms>(&dc1_lost(), T, "dc1", &rules(), None, Ms(0));
    assert!(matches!(&step, Step::Refuse { why } if why.contains("dc1 is unreachable")), "{step:?}");
}

fn incoming(from_cluster: u32, ups: Vec<Option<u64>>) -> IncomingLinkReport {
    IncomingLinkReport {
        table: T.into(),
        from_cluster,
        source_table: 1,
        replicated_up_to: ups.into_iter().map(|u| u.map(Timetag::from_u64)).collect(),
        heard_ms_ago: Some(10),
        purge_below: Timetag::ZERO,
    }
}

#[test]
fn an_unreachable_old_side_gives_timetag_bounds_and_unknown_decrees() {
    let obs = dc1_lost();
    // dc2's link back to dc1 names dc1's id (2 in the test kit); another cluster's link is ignored.
    let ins = [incoming(9, vec![Some(1), Some(1)]), incoming(2, vec![Some(500), None])];
    let r = loss_report(&obs, T, "dc1", "dc2", 2, &ins, Some(4_000));
    assert!(!r.exact);
    assert_eq!(r.unknown, None);
    assert_eq!(r.partitions.len(), 2);
    assert_eq!(r.partitions[0].applied_through_timetag, Ok(500));
    assert!(r.partitions[1].applied_through_timetag.is_err());
    assert!(r.partitions.iter().all(|p| p.decree_count().is_none()));
    assert_eq!(r.decrees_lost(), None, "unknown, never 0");
    // No incoming link at all: unknown, not none.
    let r = loss_report(&obs, T, "dc1", "dc2", 2, &[], Some(4_000));
    assert!(r.unknown.as_deref().unwrap().contains("no incoming link"), "{r:?}");
    assert_eq!(r.decrees_lost(), None);
}

#[test]
fn a_reachable_old_side_gives_exact_ranges_from_reports_after_its_writes_ended() {
    let mut obs = healthy_pair();
    obs.at_ms = 10_000;
    // Reports 300 and 100 ms old: taken at 9 700 and 9 900.
    let r = loss_report(&obs, T, "dc1", "dc2", 2, &[], Some(9_500));
    assert!(r.exact, "{r:?}");
    assert_eq!(r.partitions[0].decrees, Ok(Some((6, 6))));
    assert_eq!(r.decrees_lost(), Some(2));
    // A report older than the end of the writes: a lower bound, said so.
    let r = loss_report(&obs, T, "dc1", "dc2", 2, &[], Some(9_800));
    assert!(!r.exact);
    assert!(r.partitions[0].decrees.as_ref().unwrap_err().contains("at least decrees 6..=6"), "{r:?}");
    assert_eq!(r.partitions[1].decrees, Ok(Some((6, 6))));
    assert_eq!(r.decrees_lost(), None);
    // Unknown end of writes (promoted without waiting for the lease): never exact.
    assert!(!loss_report(&obs, T, "dc1", "dc2", 2, &[], None).exact);
}

proptest! {
    /// Whatever the copies' roles and epochs, a promotion is always above every epoch seen, at
    /// the target's current epoch (compare-and-set), and only after the lease wait.
    #[test]
    fn a_promotion_is_above_every_epoch_and_after_the_lease(
        e1 in 0u64..20, e2 in 0u64..20, e1_active: bool, reachable: bool, now in 0u64..10_000,
    ) {
        let mut obs = healthy_pair();
        obs.clusters[0].tables = vec![table(if e1_active { DrRole::Active } else { DrRole::Standby }, e1)];
        obs.clusters[1].tables = vec![table(DrRole::Standby, e2)];
        if !reachable {
            obs.clusters[0] = lost(obs.clusters[0].clone());
        }
        let forced = FailoverRules { force: true, ..rules() };
        let top = if reachable { e1.max(e2) } else { e2 };
        let p = promised(top + 1, 0, 0);
        match next_step(&obs, T, "dc2", &forced, Some(&p), Ms(now)) {
            Step::Promote { epoch, expect, .. } => {
                prop_assert!(epoch > e2 && (!reachable || epoch > e1));
                prop_assert_eq!(expect, e2);
                prop_assert!(now >= 3_000, "promoted at {} before the lease ends", now);
            }
            Step::WaitLease { until, .. } => prop_assert!(Ms(now) < until),
            Step::Refuse { .. } => prop_assert!(reachable && !e1_active, "refused with a lost active side"),
            s => prop_assert!(false, "{:?}", s),
        }
    }
}

#[test]
fn a_reachable_old_side_that_fenced_itself_at_the_promised_epoch_is_still_replaced() {
    // A forced failover while dc1 answers: on hearing of the promises for epoch 2, dc1 made
    // itself standby at 2 (the voters told it the table is active elsewhere at 2).
    let mut obs = healthy_pair();
    obs.clusters[0].tables[0].role = DrRole::Standby;
    obs.clusters[0].tables[0].epoch = 2;
    let force = FailoverRules { force: true, ..rules() };
    // Without promises there is no old side to replace.
    assert!(matches!(next_step::<Ms>(&obs, T, "dc2", &force, None, Ms(0)), Step::Refuse { .. }));
    // With the promises for epoch 2, dc1 is the old side and dc2 is promoted at that epoch once
    // the lease has expired (not above it: dc1 would not be seen as the old side again).
    let p = promised(2, 0, 0);
    assert!(matches!(next_step(&obs, T, "dc2", &force, Some(&p), Ms(100)), Step::WaitLease { .. }));
    assert_eq!(
        next_step(&obs, T, "dc2", &force, Some(&p), Ms(10_000)),
        Step::Promote { cluster: "dc2".into(), epoch: 2, expect: 1, note: None }
    );
    assert_eq!(super::old_side_promised(&obs, T, "dc2", Some(2)).unwrap().name, "dc1");
    // Promises for another epoch do not make a standby the old side.
    assert!(super::old_side_promised(&obs, T, "dc2", Some(3)).is_err());
}
