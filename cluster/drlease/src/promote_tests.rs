use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A base for the test's moments (each is an offset from it): the promoter's clock of the
/// proxy is an `Instant`, exact to the nanosecond, as the bound below is checked.
#[allow(clippy::disallowed_methods)]
fn base() -> Instant {
    Instant::now()
}

fn lease_expiry(promises: &[Promise<Instant>], voters: usize) -> Result<Instant, String> {
    DrRules::default().lease_expiry(promises, voters)
}

fn promise(t0: Instant, voter: &str, at: f64, since_grant: f64) -> Promise<Instant> {
    Promise {
        voter: voter.into(),
        received_at: t0 + secs(at),
        since_grant: secs(since_grant),
        lease: secs(5.0),
    }
}

#[test]
fn enough_promises_that_no_majority_can_renew_are_needed_and_the_right_one_bounds_the_wait() {
    let t0 = base();
    let stretched = 5.0 * 1.01 / 0.99;
    let margin = PROMOTION_MARGIN.as_secs_f64();
    // Three voters: two must promise. With two, the later of their grants' ends counts.
    let e = lease_expiry(&[promise(t0, "p1", 10.0, 9.0)], 3).unwrap_err();
    assert!(e.contains("1 of 3 DR voters promised; 2 must"), "{e}");
    let two = [promise(t0, "p1", 10.0, 9.0), promise(t0, "p2", 10.0, 1.0)];
    let at = lease_expiry(&two, 3).unwrap();
    assert!(((at - t0).as_secs_f64() - (10.0 + stretched - 1.0 + margin)).abs() < 1e-6, "{:?}", at - t0);
    // With all three, the second latest: the one most recently granted cannot make a majority.
    let three = [two[0].clone(), two[1].clone(), promise(t0, "w", 10.0, 7.0)];
    let at = lease_expiry(&three, 3).unwrap();
    assert!(((at - t0).as_secs_f64() - (10.0 + margin)).abs() < 1e-6, "{:?}", at - t0);
    // Two voters (both needed to hold it): one promise is enough. One voter: its own.
    assert!(lease_expiry(&[promise(t0, "p1", 10.0, 9.0)], 2).is_ok());
    assert!(lease_expiry(&[promise(t0, "p1", 10.0, 9.0)], 1).is_ok());
    assert!(lease_expiry(&[], 1).is_err());
}

#[test]
fn a_promoter_refuses_unless_it_can_know_when_the_old_lease_ends_or_is_told_to_risk_it() {
    let voters = names(&["p1", "p2", "w"]);
    let lease = LeaseSeen { used: true, voters: voters.clone(), ..LeaseSeen::default() };
    assert_eq!(lease_check("left", Some(&lease), &names(&["w", "p2", "p1"]), false), LeaseCheck::AskPromises);
    let refused = |l: Option<&LeaseSeen>, v: &[String]| match lease_check("left", l, v, false) {
        LeaseCheck::Refuse(why) => why,
        other => panic!("{other:?}"),
    };
    assert!(refused(None, &voters).contains("never saw left's DR lease"));
    let none = LeaseSeen::default();
    assert!(refused(Some(&none), &voters).contains("left runs without a DR lease"));
    let waived = LeaseSeen { waived: true, ..lease.clone() };
    assert!(refused(Some(&waived), &voters).contains("waived by an operator"));
    assert!(refused(Some(&lease), &[]).contains("this proxy has no --dr-voters"));
    let other = refused(Some(&lease), &names(&["p1", "p2"]));
    assert!(other.contains("through [p1, p2, w] but this proxy counts [p1, p2]"), "{other}");
    assert!(other.contains("--unsafe-failover-without-lease overrides"), "{other}");
    match lease_check("left", Some(&none), &voters, true) {
        LeaseCheck::Go(note) => assert!(note.contains("WITHOUT waiting"), "{note}"),
        other => panic!("{other:?}"),
    }
}

/// One voter in the model below: its clock rate, when it promised, its last grant before that,
/// and when it last started.
#[derive(Clone, Debug)]
struct Modelled {
    rate: f64,
    /// (real time it promised, real time the promoter got the answer), if it promised.
    promised: Option<(f64, f64)>,
    /// How long before promising it last granted the copy (`None`: never).
    granted_before: Option<f64>,
    /// How long before promising it (re)started: it forgot grants made before.
    started_before: f64,
}

/// A clock rate within the allowed error, its extremes often (where bugs live).
fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0 - CLOCK_RATE_ERROR),
        Just(1.0 + CLOCK_RATE_ERROR),
        (1.0 - CLOCK_RATE_ERROR)..(1.0 + CLOCK_RATE_ERROR),
    ]
}

fn modelled() -> impl Strategy<Value = Modelled> {
    (
        rate(),
        proptest::option::of((30.0..40.0f64, prop_oneof![Just(0.0), 0.0..2.0f64])),
        proptest::option::of(0.0..8.0f64),
        0.0..40.0f64,
    )
        .prop_map(|(rate, promised, granted_before, started_before)| Modelled {
            rate,
            promised: promised.map(|(p, delay)| (p, p + delay)),
            granted_before,
            started_before,
        })
}

proptest! {
    /// The claim of docs/meta-proxy.md, "The DR lease": whatever the clock rates (within
    /// 1 %), delays, restarts, and which voters promised, the old copy's lease (counted by the
    /// holder on its own clock from when it sent each renewal, which is no later than the voter
    /// granted it) has ended, in real time, by the promoter's expiry (read on the promoter's
    /// clock). Voters that did not promise are assumed to grant for ever.
    #[test]
    fn the_old_lease_always_ends_before_the_promoter_promotes(
        voters in proptest::collection::vec(modelled(), 1..6),
        holder_rate in rate(),
        promoter_rate in rate(),
        send_early in prop_oneof![Just(0.0), 0.0..0.5f64],
    ) {
        let lease = 5.0;
        let n = voters.len();
        let t0 = base();
        // Promises as the promoter sees them: its clock reads promoter_rate * real time.
        let promises: Vec<Promise<Instant>> = voters
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let (_, r) = v.promised?;
                // It remembers its last grant only if it made it since it started.
                let since = match v.granted_before {
                    Some(g) if g <= v.started_before => g,
                    _ => v.started_before,
                };
                Some(Promise {
                    voter: format!("v{i}"),
                    received_at: t0 + secs(promoter_rate * r),
                    since_grant: secs(v.rate * since),
                    lease: secs(lease),
                })
            })
            .collect();
        let Ok(expiry) = lease_expiry(&promises, n) else { return Ok(()) };
        // Without the margin: the bound must hold by itself (the margin is for what follows).
        let expiry_real = (expiry - PROMOTION_MARGIN - t0).as_secs_f64() / promoter_rate;
        // The holder's lease from each voter: its request sent a little before the grant, the
        // lease counted on the holder's clock. Voters that did not promise may grant for ever.
        let mut ends: Vec<f64> = voters
            .iter()
            .map(|v| match (v.promised, v.granted_before) {
                (None, _) => f64::INFINITY,
                (Some((p, _)), Some(g)) => p - g - send_early + lease / holder_rate,
                (Some(_), None) => f64::NEG_INFINITY,
            })
            .collect();
        ends.sort_by(|a, b| b.total_cmp(a));
        let holder_end = ends[n / 2];
        prop_assert!(holder_end <= expiry_real + 1e-9, "holder until {holder_end}, promoted at {expiry_real}");
    }
}

#[test]
fn on_a_millisecond_clock_the_wait_rounds_up() {
    use crate::Ms;
    let p = |voter: &str, since_ms: u64| Promise {
        voter: voter.to_string(),
        received_at: Ms(10_000),
        since_grant: Duration::from_millis(since_ms),
        lease: secs(5.0),
    };
    let at = DrRules::default().lease_expiry(&[p("p1", 9_000), p("p2", 1_000)], 3).unwrap();
    // 10 s + 5 s × 1.01 / 0.99 (5.10101... s) − 1 s + the margin, rounded up to the millisecond.
    assert_eq!(at, Ms(15_102));
}

#[test]
fn a_tally_counts_promises_and_says_why_each_other_voter_does_not_count() {
    use crate::{Ms, PromiseAnswer, tally_promises};
    let answer = |voter: &str, promised: Result<(), String>| PromiseAnswer {
        voter: voter.to_string(),
        promised,
        since_grant: Duration::from_millis(300),
        lease: secs(2.0),
        granted_epoch: None,
    };
    let (promises, not) = tally_promises([
        ("p1".to_string(), Ms(5), Ok(answer("p1", Ok(())))),
        ("p2".to_string(), Ms(6), Ok(answer("p9", Ok(())))),
        ("p3".to_string(), Ms(7), Ok(answer("p3", Err("other voters".into())))),
        ("p4".to_string(), Ms(8), Err("no answer within 1s".to_string())),
    ]);
    assert_eq!(
        promises,
        [Promise {
            voter: "p1".into(),
            received_at: Ms(5),
            since_grant: Duration::from_millis(300),
            lease: secs(2.0)
        }]
    );
    assert_eq!(
        not,
        [
            "p2: calls itself \"p9\" (check --dr-voters and --dr-name)",
            "p3: refused (other voters)",
            "p4: no answer within 1s"
        ]
    );
}
