#![allow(clippy::unwrap_used)]

use super::{Drain, Observed, Step, next_step, rollback_step};
use crate::testkit::{T, healthy_pair, link, table};
use tern_core::{DrRole, LinkStatus};

/// dc1 stopped (standby at epoch 2), dc2 standby at epoch 1: the state after `StopWrites`.
fn stopped() -> Observed {
    let mut obs = healthy_pair();
    obs.clusters[0].tables = vec![table(DrRole::Standby, 2)];
    obs
}

fn drained(obs: &mut Observed) {
    for p in &mut obs.clusters[0].links[0].partitions {
        p.confirmed = p.committed;
    }
}

fn with_reverse_link(obs: &mut Observed) {
    obs.clusters[1].links = vec![link("dc1", LinkStatus::Shipping, &[(0.0, 100), (0.0, 100)])];
}

const SINCE_0: Option<Drain> = Some(Drain { since_ms: 0, propagation_ms: 0 });

#[test]
fn a_switchover_stops_writes_then_drains_then_links_back_then_promotes() {
    let step = next_step(&healthy_pair(), T, "dc2", None);
    assert_eq!(step, Step::StopWrites { cluster: "dc1".into(), epoch: 2, expect: 1 });

    let mut obs = stopped();
    assert!(
        matches!(next_step(&obs, T, "dc2", None), Step::Wait { why } if why.contains("drain starts now"))
    );
    let step = next_step(&obs, T, "dc2", SINCE_0);
    assert!(matches!(&step, Step::Wait { why } if why.contains("shipped through decree 5 of 6")), "{step:?}");

    drained(&mut obs);
    assert_eq!(
        next_step(&obs, T, "dc2", SINCE_0),
        Step::AddReverseLink { from: "dc2".into(), to: "dc1".into() }
    );

    with_reverse_link(&mut obs);
    obs.clusters[1].links[0].link.started[1] = false;
    let step = next_step(&obs, T, "dc2", SINCE_0);
    assert!(matches!(&step, Step::Wait { why } if why.contains("back to dc1 is starting")), "{step:?}");

    obs.clusters[1].links[0].link.started[1] = true;
    assert_eq!(
        next_step(&obs, T, "dc2", SINCE_0),
        Step::Promote { cluster: "dc2".into(), epoch: 3, expect: 1 }
    );

    obs.clusters[1].tables = vec![table(DrRole::Active, 3)];
    let step = next_step(&obs, T, "dc2", SINCE_0);
    assert!(
        matches!(&step, Step::Done { summary } if summary.contains("dc1 follows it by link")),
        "{step:?}"
    );
}

#[test]
fn the_stop_goes_above_every_epoch_so_a_rerun_knows_the_stopped_side() {
    // As `tern table role` leaves a pair: active at epoch 0, standby made at epoch 1.
    let mut obs = healthy_pair();
    obs.clusters[0].tables = vec![table(DrRole::Active, 0)];
    assert_eq!(
        next_step(&obs, T, "dc2", None),
        Step::StopWrites { cluster: "dc1".into(), epoch: 2, expect: 0 }
    );
}

#[test]
fn the_drain_trusts_only_reports_taken_after_every_server_heard_writes_stopped() {
    let mut obs = stopped();
    drained(&mut obs);
    with_reverse_link(&mut obs);
    // The observation is at 1000 ms; the reports are 100 and 300 ms old (at 900 and 700).
    let late = Some(Drain { since_ms: 500, propagation_ms: 300 });
    let step = next_step(&obs, T, "dc2", late);
    assert!(
        matches!(&step, Step::Wait { why } if why.contains("partition 0's last report is older")),
        "{step:?}"
    );
    let early = Some(Drain { since_ms: 500, propagation_ms: 200 });
    assert!(matches!(next_step(&obs, T, "dc2", early), Step::Promote { .. }));

    obs.clusters[0].links[0].partitions[1].last_error = Some("TRANSPORT: refused".into());
    let step = next_step(&obs, T, "dc2", early);
    assert!(matches!(&step, Step::Wait { why } if why.contains("partition 1 fails: TRANSPORT")), "{step:?}");
}

#[test]
fn a_switchover_refuses_what_would_lose_writes_or_is_not_its_business() {
    let refused = |obs: &Observed, to: &str, words: &str| match next_step(obs, T, to, SINCE_0) {
        Step::Refuse { why } => assert!(why.contains(words), "{why}"),
        other => panic!("not refused ({words}): {other:?}"),
    };
    let mut obs = healthy_pair();
    obs.clusters[0].links[0].link.status = LinkStatus::Paused;
    refused(&obs, "dc2", "paused: resume it first (tern dup resume 7)");
    obs.clusters[0].links.clear();
    refused(&obs, "dc2", "no link ships orders from dc1 to dc2");

    let mut obs = healthy_pair();
    obs.clusters[1].unreachable = Some("refused".into());
    refused(&obs, "dc2", "dc2 is unreachable (refused)");
    refused(&healthy_pair(), "dc9", "dc9 is not one of the clusters given");

    let mut obs = healthy_pair();
    obs.clusters[1].tables = vec![table(DrRole::Active, 1)];
    refused(&obs, "dc2", "split brain");

    // No copy active, and the highest epoch is the target's: a failover's business.
    let mut obs = healthy_pair();
    obs.clusters[0].tables = vec![table(DrRole::Standby, 1)];
    obs.clusters[1].tables = vec![table(DrRole::Standby, 2)];
    refused(&obs, "dc2", "not a switchover under way");

    let mut obs = stopped();
    drained(&mut obs);
    with_reverse_link(&mut obs);
    obs.clusters[1].links[0].link.status = LinkStatus::Paused;
    refused(&obs, "dc2", "back to dc1 is paused");
}

#[test]
fn a_switchover_to_where_the_table_is_active_is_done_and_rollback_only_undoes_a_stop() {
    let step = next_step(&healthy_pair(), T, "dc1", None);
    assert!(
        matches!(&step, Step::Done { summary } if summary.contains("dc2 follows it by link")),
        "{step:?}"
    );
    let mut obs = healthy_pair();
    obs.clusters[0].links.clear();
    let step = next_step(&obs, T, "dc1", None);
    assert!(
        matches!(&step, Step::Done { summary } if summary.contains("no link ships it to dc2")),
        "{step:?}"
    );

    assert_eq!(rollback_step(&healthy_pair(), T, "dc2"), None, "nothing stopped");
    let mut obs = stopped();
    assert_eq!(
        rollback_step(&obs, T, "dc2"),
        Some(Step::Promote { cluster: "dc1".into(), epoch: 3, expect: 2 })
    );
    drained(&mut obs);
    with_reverse_link(&mut obs);
    assert_eq!(
        rollback_step(&obs, T, "dc2"),
        Some(Step::Promote { cluster: "dc1".into(), epoch: 3, expect: 2 }),
        "drained but not promoted: still undone by making dc1 active again"
    );
    obs.clusters[1].tables = vec![table(DrRole::Active, 3)];
    assert_eq!(rollback_step(&obs, T, "dc2"), None, "promoted: only finishing is left");
}
