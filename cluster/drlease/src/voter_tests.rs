use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::Ms;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `s` seconds on the voter's clock.
fn at(s: f64) -> Ms {
    Ms((s * 1000.0) as u64)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn voter(started: Ms) -> Voter<Ms> {
    Voter::new(
        VoterConfig { name: "p1".into(), voters: names(&["w", "p1", "p2"]), lease: secs(5.0) },
        started,
    )
}

fn active(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
    v.iter().map(|(t, e)| (t.to_string(), *e)).collect()
}

#[test]
fn a_voter_grants_only_to_the_same_set_of_voters_and_withholds_copies_below_its_floor() {
    let t0 = at(0.0);
    let mut v = voter(t0);
    let r = v.renew(t0, "left", &names(&["p1", "p2", "w"]), &active(&[("t", 0), ("u", 1)]));
    assert_eq!(r, Renewal { granted: Ok(secs(5.0)), superseded: BTreeMap::new() });
    let r = v.renew(t0, "left", &names(&["p1", "p2"]), &active(&[("t", 0)]));
    let e = r.granted.unwrap_err();
    assert!(e.contains("cluster left counts the DR voters [p1, p2], this voter [p1, p2, w]"), "{e}");
    // Seen active at epoch 2 elsewhere: left's copy at 0 gets no lease, and left is told.
    v.observe("t", 2);
    let r = v.renew(t0, "left", &names(&["p1", "p2", "w"]), &active(&[("t", 0), ("u", 1)]));
    assert_eq!(r.granted, Ok(secs(5.0)));
    assert_eq!(r.superseded, BTreeMap::from([("t".to_string(), 2)]));
    let r = v.renew(t0, "right", &names(&["p1", "p2", "w"]), &active(&[("t", 2)]));
    assert!(r.superseded.is_empty(), "the copy at the floor is granted");
}

#[test]
fn a_promise_raises_the_floor_and_says_how_long_ago_the_old_copy_was_granted() {
    let mut v = voter(at(0.0));
    let all = names(&["p1", "p2", "w"]);
    v.renew(at(1.0), "left", &all, &active(&[("t", 0)]));
    v.renew(at(2.0), "left", &all, &active(&[("u", 0)]));
    let p = v.promise(at(10.0), "t", "left", 1, &all);
    assert_eq!(p.promised, Ok(()));
    assert_eq!(p.since_grant, secs(9.0), "the last grant covering t, not u's");
    assert_eq!(p.lease, secs(5.0));
    // From now on left's copy of t gets no lease.
    let r = v.renew(at(11.0), "left", &all, &active(&[("t", 0), ("u", 0)]));
    assert_eq!(r.superseded, BTreeMap::from([("t".to_string(), 1)]));
    assert_eq!(v.promise(at(12.0), "t", "left", 1, &all).since_grant, secs(11.0), "no new grant");
    // A voter that never granted counts from its start (it may have granted before a restart).
    let mut fresh = voter(at(20.0));
    assert_eq!(fresh.promise(at(21.0), "t", "left", 1, &all).since_grant, secs(1.0));
    let refused = fresh.promise(at(21.0), "t", "left", 1, &names(&["p1"]));
    assert!(refused.promised.is_err());
}

#[test]
fn a_pledge_names_the_epoch_the_old_copy_was_last_granted_at() {
    let mut v = voter(at(0.0));
    let all = names(&["p1", "p2", "w"]);
    assert_eq!(v.promise(at(1.0), "t", "left", 1, &all).granted_epoch, None, "never granted");
    v.renew(at(2.0), "left", &all, &active(&[("t", 4)]));
    // Asked below the copy's epoch: the promise would not stop its lease; the promoter learns
    // the epoch and asks again above it.
    let p = v.promise(at(3.0), "t", "left", 2, &all);
    assert_eq!(p.granted_epoch, Some(4));
    let r = v.renew(at(3.5), "left", &all, &active(&[("t", 4)]));
    assert!(r.superseded.is_empty(), "a floor of 2 does not fence a copy at 4");
    assert_eq!(v.promise(at(4.0), "t", "left", 5, &all).granted_epoch, Some(4));
    let r = v.renew(at(4.5), "left", &all, &active(&[("t", 4)]));
    assert_eq!(r.superseded, BTreeMap::from([("t".to_string(), 5)]));
}
