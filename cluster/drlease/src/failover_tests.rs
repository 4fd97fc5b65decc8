use std::collections::BTreeMap;
use std::time::Duration;

use tern_core::{DrRole, ErrorCode};

use super::*;
use crate::Ms;

/// A cluster's copy as a test sees it.
#[derive(Clone, Debug)]
enum View {
    Copy { role: DrRole, epoch: u64, partitions: u32, with_primary: u32 },
    NoTable,
    Unreachable(String),
}

impl Watched for View {
    fn seen(&self) -> Seen<'_> {
        match self {
            View::Copy { role, epoch, partitions, with_primary } => Seen::Copy {
                role: *role,
                epoch: *epoch,
                partitions: *partitions,
                with_primary: *with_primary,
            },
            View::NoTable => Seen::NoTable,
            View::Unreachable(e) => Seen::Unreachable(e),
        }
    }
}

fn route(role: &str, epoch: u64, partitions: u32, with_primary: u32) -> View {
    View::Copy { role: role.parse().unwrap(), epoch, partitions, with_primary }
}

fn views(v: Vec<(&str, View)>) -> Vec<(String, View)> {
    v.into_iter().map(|(n, v)| (n.to_string(), v)).collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `s` seconds on the watcher's clock.
fn at(s: f64) -> Ms {
    Ms((s * 1000.0).round() as u64)
}

struct Setup {
    t0: Ms,
    policy: Policy,
    outage: Outage<Ms>,
}

fn setup() -> Setup {
    Setup {
        t0: at(0.0),
        policy: Policy { after: secs(10.0), rpo_budget: secs(2.0) },
        outage: Outage {
            cluster: "dc1".into(),
            epoch: 1,
            since: at(1.0),
            why: "meta servers unreachable".into(),
        },
    }
}

fn sample(t0: Ms, lags: Vec<(&str, Result<f64, &str>)>) -> LagSample<Ms> {
    LagSample {
        at: t0.after(secs(0.5)),
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
    assert_eq!(decide(&v, &s.outage, Some(&smp), &s.policy, at(10.9)), Decision::Wait);
    assert!(matches!(decide(&v, &s.outage, Some(&smp), &s.policy, at(11.0)), Decision::Promote { .. }));
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
        decide(&v, &s.outage, Some(&smp), &s.policy, at(12.0))
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
    let Decision::Refuse(why) = decide(&v, &s.outage, Some(&smp), &s.policy, at(12.0)) else {
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
    let now = at(20.0);
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
    let Decision::Refuse(why) = decide(&v, &s.outage, Some(&smp), &s.policy, at(12.0)) else { panic!() };
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

fn deposing() -> Deposing<Ms> {
    Deposing {
        old: "dc1".into(),
        old_epoch: 1,
        epoch: 2,
        target: "dc2".into(),
        expires_at: at(5.0),
        promised_by: vec!["p1".into(), "w".into()],
        reason: "dc1 has not served".into(),
    }
}

#[test]
fn a_promotion_under_way_waits_for_the_old_lease_then_promotes_the_target_at_the_promised_epoch() {
    let d = deposing();
    let v = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("standby", 1, 4, 4))]);
    match finish(&v, &d, 3, at(4.9)) {
        Finish::Wait(why) => assert!(
            why.contains("2 of 3 DR voters (p1, w) promised no lease for a copy below epoch 2 (replacing dc1 at epoch 1)"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    match finish(&v, &d, 3, at(5.0)) {
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
    assert_eq!(finish(&v, &d, 3, at(6.0)), Finish::Done);
}

#[test]
fn a_promotion_under_way_is_finished_even_if_the_old_copy_returns_and_never_on_a_copy_that_cannot_serve() {
    let d = deposing();
    // The old copy came back and fenced itself at the promised epoch: the target is promoted
    // at it.
    let v = views(vec![("dc1", route("standby", 2, 4, 4)), ("dc2", route("standby", 1, 4, 4))]);
    match finish(&v, &d, 3, at(6.0)) {
        Finish::Promote { cluster, epoch, expect_epoch, .. } => {
            assert_eq!((cluster.as_str(), epoch, expect_epoch), ("dc2", 2, 1))
        }
        other => panic!("{other:?}"),
    }
    // The target is down: the old copy replaces it, after new promises above the promised
    // epoch (the target may have been made active at it by another proxy).
    let v = views(vec![("dc1", route("standby", 2, 4, 4)), ("dc2", route("standby", 1, 4, 1))]);
    match finish(&v, &d, 3, at(6.0)) {
        Finish::Redepose { old, old_epoch, epoch, target, reason } => {
            assert_eq!((old.as_str(), old_epoch, epoch, target.as_str()), ("dc2", 1, 3, "dc1"));
            assert!(
                reason.contains("dc2 cannot serve (3 of 4 partitions have no primary) but dc1 serves again"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Neither can serve: wait, and say so.
    let v = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("standby", 1, 4, 2))]);
    match finish(&v, &d, 3, at(6.0)) {
        Finish::Wait(why) => assert!(why.contains("neither dc2 nor dc1 can serve now"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// Regression (simulator, `seeds_dr` seeds 91, 900031, 900408, 900897): one proxy made the target active
/// at the promised epoch (or above it) and the target was then cut off; another proxy (or the
/// same one, from a view taken before its promotion) finished its own move by making the old
/// copy active, which had come back (still active at its old epoch, or fenced at the promised
/// one), at that same epoch. Two copies were active at one epoch, and the voters, which refuse
/// only copies *below* their floor, renewed both leases. The old copy now replaces the target
/// only after new promises above the promised epoch, and a wait for the target's lease.
#[test]
fn the_old_copy_is_never_made_active_without_new_promises_deposing_the_target() {
    let d = deposing();
    for old in [route("active", 0, 4, 4), route("standby", 2, 4, 4)] {
        let v = views(vec![("dc1", old), ("dc2", View::Unreachable("refused".into()))]);
        match finish(&v, &d, 3, at(6.0)) {
            Finish::Redepose { old, old_epoch, epoch, target, reason } => {
                assert_eq!((old.as_str(), old_epoch, epoch, target.as_str()), ("dc2", 2, 3, "dc1"));
                assert!(reason.contains("dc2 cannot serve (meta servers unreachable (refused))"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A copy seen above the promised epoch means another move took over (new promises at a higher
/// epoch): this one is dropped rather than finished above its promises (the copy above may be
/// active, and hold the lease, where this proxy cannot see it).
#[test]
fn nothing_is_promoted_above_the_promised_epoch_without_new_promises() {
    let d = deposing();
    let v = views(vec![("dc1", route("standby", 3, 4, 4)), ("dc2", route("standby", 1, 4, 4))]);
    match finish(&v, &d, 3, at(6.0)) {
        Finish::Abandon(why) => assert!(why.contains("dc1 is at epoch 3, above the promised 2"), "{why}"),
        other => panic!("{other:?}"),
    }
}

fn numbered(v: Vec<View>) -> Vec<(String, View)> {
    v.into_iter().enumerate().map(|(i, v)| (format!("dc{}", i + 1), v)).collect()
}

#[test]
fn the_active_copy_at_the_highest_epoch_wins() {
    let r = |role, epoch| route(role, epoch, 0, 0);
    assert_eq!(choose("t", &numbered(vec![r("active", 1), r("standby", 1)])).unwrap(), 0);
    assert_eq!(choose("t", &numbered(vec![r("active", 1), r("active", 2)])).unwrap(), 1);
    assert_eq!(choose("t", &numbered(vec![r("standby", 5), r("active", 2)])).unwrap(), 1);
    let v = numbered(vec![View::Unreachable("down".into()), r("active", 0)]);
    assert_eq!(choose("t", &v).unwrap(), 1);
}

#[test]
fn no_active_copy_or_two_at_one_epoch_is_refused_with_the_reason() {
    let r = |role, epoch| route(role, epoch, 0, 0);
    let e = choose("t", &numbered(vec![r("active", 3), r("active", 3)])).unwrap_err();
    assert!(e.to_string().contains("active in both dc1 and dc2 at epoch 3"), "{e}");
    let e = choose("t", &numbered(vec![r("standby", 3), View::Unreachable("refused".into())])).unwrap_err();
    assert!(e.to_string().contains("dc1: standby at epoch 3; dc2: unreachable (refused)"), "{e}");
    let e = choose("t", &numbered(vec![View::NoTable, View::NoTable])).unwrap_err();
    assert_eq!(e.code(), ErrorCode::TableNotFound);
}

#[test]
fn an_outage_of_the_routed_copy_starts_when_the_failing_question_was_asked_and_ends_with_a_role_move() {
    let down = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("standby", 1, 4, 4))]);
    // Routed to dc1 (epoch 0) before; now no copy is routable.
    let o = outage_now(None, Some((0, 0)), &down, None, at(3.0)).unwrap();
    assert_eq!((o.cluster.as_str(), o.epoch, o.since), ("dc1", 0, at(3.0)));
    assert!(o.why.contains("unreachable"), "{}", o.why);
    // Still down later: the outage keeps its start.
    let o = outage_now(Some(o), None, &down, None, at(4.0)).unwrap();
    assert_eq!(o.since, at(3.0));
    // Routed (and healthy) elsewhere after a promotion: over.
    let moved = views(vec![("dc1", View::Unreachable("refused".into())), ("dc2", route("active", 2, 4, 4))]);
    assert_eq!(outage_now(Some(o.clone()), None, &moved, Some((1, 2)), at(5.0)), None);
    // Reachable but made standby on purpose: not an outage.
    let fenced = views(vec![("dc1", route("standby", 2, 4, 1)), ("dc2", route("standby", 1, 4, 4))]);
    assert_eq!(outage_now(Some(o), None, &fenced, None, at(5.0)), None);
    // Routed, but a partition has no primary.
    let sick = views(vec![("dc1", route("active", 0, 4, 3)), ("dc2", route("standby", 1, 4, 4))]);
    let o = outage_now(None, Some((0, 0)), &sick, Some((0, 0)), at(6.0)).unwrap();
    assert!(o.why.contains("1 of 4 partitions have no primary"), "{}", o.why);
}
