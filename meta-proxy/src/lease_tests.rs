//! The rules are tested in `tern_drlease` (`voter_tests.rs`, `promote_tests.rs`, with the
//! property test of the bound); these are the proxy's types around them.

use std::time::{Duration, Instant};

use tern_client::admin::RouteLease;

use super::*;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_routes_lease_is_what_the_promoter_checks() {
    let voters = names(&["p1", "p2", "w"]);
    let lease = RouteLease { used: true, voters: voters.clone(), ..RouteLease::default() };
    assert_eq!(lease_check("left", Some(&lease), &names(&["w", "p2", "p1"]), false), LeaseCheck::AskPromises);
    let waived = RouteLease { waived: true, ..lease.clone() };
    assert!(
        matches!(lease_check("left", Some(&waived), &voters, false), LeaseCheck::Refuse(w) if w.contains("waived"))
    );
    assert!(
        matches!(lease_check("left", None, &voters, false), LeaseCheck::Refuse(w) if w.contains("never saw"))
    );
}

#[test]
fn promises_on_this_clock_bound_the_wait() {
    let t0 = Instant::now();
    let p = |voter: &str, since_grant| Promise {
        voter: voter.into(),
        received_at: t0,
        since_grant,
        lease: Duration::from_secs(5),
    };
    let at = lease_expiry(&[p("p1", Duration::from_secs(9)), p("p2", Duration::from_secs(1))], 3).unwrap();
    let waited = (at - t0).as_secs_f64();
    assert!((waited - (5.0 * 1.01 / 0.99 - 1.0 + 1.0)).abs() < 1e-6, "{waited}");
}
