use std::collections::BTreeMap;

use tern_core::DrRole;

use super::*;

fn voters() -> Holder {
    Holder::new(["p1", "p2", "w"].map(String::from))
}

fn granted(lease_ms: u64) -> Answer {
    Answer::Granted { lease_ms, superseded: BTreeMap::new() }
}

/// The active copies a renewal named: t and u at epoch 0.
fn asked() -> BTreeMap<String, u64> {
    BTreeMap::from([("t".to_string(), 0), ("u".to_string(), 0)])
}

#[test]
fn a_majority_of_grants_is_needed_and_counts_from_when_each_request_was_sent() {
    let mut h = voters();
    assert_eq!(h.majority(), 2);
    // Sent at 1000, answered at 1800: the lease counts from 1000.
    h.on_answer("p1", 1_000, 1_800, &asked(), granted(5_000));
    assert_eq!(h.lease_end_ms("t", 0), None, "one of three is not a majority");
    assert_eq!(h.lease_left_ms("t", 0, 2_000), 0);
    h.on_answer("p2", 1_500, 1_600, &asked(), granted(5_000));
    // Ends 6000 and 6500: a majority runs until the earlier of the two.
    assert_eq!(h.lease_end_ms("t", 0), Some(6_000));
    assert_eq!(h.lease_left_ms("t", 0, 5_000), 1_000);
    assert_eq!(h.lease_left_ms("t", 0, 6_000), 0, "the end is exclusive");
    // The third voter extends it to the second-latest end.
    h.on_answer("w", 3_000, 3_100, &asked(), granted(5_000));
    assert_eq!(h.lease_end_ms("t", 0), Some(6_500));
}

#[test]
fn a_late_answer_to_an_older_request_never_shortens_or_replaces_a_newer_grant() {
    let mut h = voters();
    h.on_answer("p1", 5_000, 5_100, &asked(), granted(5_000));
    h.on_answer("p2", 5_000, 5_100, &asked(), granted(5_000));
    h.on_answer("p1", 1_000, 5_200, &asked(), granted(5_000));
    assert_eq!(h.lease_end_ms("t", 0), Some(10_000));
    // A refusal or an error does not take back what was granted: it runs out by itself.
    h.on_answer("p2", 6_000, 6_100, &asked(), Answer::Failed("unreachable".into()));
    assert_eq!(h.lease_end_ms("t", 0), Some(10_000));
    assert_eq!(h.lease_left_ms("t", 0, 10_000), 0);
}

#[test]
fn voters_that_are_not_configured_count_for_nothing() {
    let mut h = voters();
    h.on_answer("p1", 0, 1, &asked(), granted(5_000));
    h.on_answer("stranger", 0, 1, &asked(), granted(5_000));
    h.on_answer("another", 0, 1, &asked(), granted(5_000));
    assert_eq!(h.lease_end_ms("t", 0), None);
    assert_eq!(h.standings(1).len(), 3);
    let none = Holder::new(Vec::<String>::new());
    assert!(!none.used());
}

#[test]
fn a_table_active_elsewhere_at_a_higher_epoch_gets_no_lease_from_the_voters_that_say_so() {
    let mut h = voters();
    let superseded = BTreeMap::from([("t".to_string(), 3)]);
    h.on_answer("p1", 0, 1, &asked(), Answer::Granted { lease_ms: 5_000, superseded: superseded.clone() });
    h.on_answer("p2", 0, 1, &asked(), Answer::Granted { lease_ms: 5_000, superseded });
    h.on_answer("w", 0, 1, &asked(), granted(5_000));
    assert_eq!(h.lease_end_ms("t", 2), None, "two of three voters withhold it");
    assert_eq!(h.lease_end_ms("u", 0), Some(5_000), "other tables keep the lease");
    assert_eq!(h.lease_end_ms("t", 3), None, "a copy at the higher epoch waits for a renewal naming it");
    assert_eq!(h.superseded(), BTreeMap::from([("t".to_string(), 3)]));
    let why = h.why_not("t", 2, 10);
    assert!(why.contains("1 of 3 DR voters grant it, 2 needed"), "{why}");
    assert!(why.contains("p1 says it is active elsewhere at epoch 3"), "{why}");
}

#[test]
fn why_not_names_each_voter_that_does_not_grant() {
    let mut h = voters();
    h.on_answer("p1", 0, 100, &asked(), granted(1_000));
    h.on_answer("p2", 0, 100, &asked(), Answer::Failed("voter sets differ".into()));
    let why = h.why_not("t", 0, 2_000);
    assert!(why.starts_with("0 of 3 DR voters grant it, 2 needed"), "{why}");
    assert!(why.contains("p1: last grant ran out"), "{why}");
    assert!(why.contains("p2: voter sets differ") && why.contains("w: no answer yet"), "{why}");
    h.on_answer("w", 1_500, 1_600, &asked(), granted(1_000));
    h.on_answer("p2", 1_500, 1_600, &asked(), granted(1_000));
    assert_eq!(h.why_not("t", 0, 2_000), "");
}

#[test]
fn a_grant_covers_only_the_copies_its_request_named() {
    let mut h = voters();
    for v in ["p1", "p2"] {
        h.on_answer(v, 0, 1, &asked(), granted(5_000));
    }
    assert_eq!(h.lease_end_ms("new", 0), None, "made active after the request was sent");
    assert!(h.why_not("new", 0, 10).contains("not asked for it yet"), "{}", h.why_not("new", 0, 10));
    assert_eq!(h.lease_end_ms("t", 4), Some(5_000), "asked at epoch 0, still active at 4");
    assert_eq!(h.cluster_lease_left_ms(1_000), 4_000);
}

#[test]
fn beacons_carry_the_lease_only_for_active_copies_while_it_is_enforced() {
    let mut h = voters();
    for v in ["p1", "p2"] {
        h.on_answer(v, 0, 1, &asked(), granted(5_000));
    }
    assert_eq!(h.beacon_lease_ms(true, DrRole::Active, "t", 0, 1_000), 4_000);
    assert_eq!(h.beacon_lease_ms(false, DrRole::Active, "t", 0, 1_000), 0, "waived or no voters");
    assert_eq!(h.beacon_lease_ms(true, DrRole::Standby, "t", 0, 1_000), 0);
}
