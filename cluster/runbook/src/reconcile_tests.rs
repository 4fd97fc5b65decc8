#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tern_client::admin::{Conflict, LinkConflicts};
use tern_core::{ConflictKind, DrRole, FailoverRecord, LinkStatus, PartitionLoss, Timetag, partition_of};

use super::*;
use crate::testkit::{T, cluster, link, table};

/// The failover record dc2 keeps: dc1 -> dc2 at epoch 2, partition 0 applied through timetag
/// 100, partition 1 unknown.
fn record() -> FailoverRecord {
    FailoverRecord {
        table: T.into(),
        from: "dc1".into(),
        to: "dc2".into(),
        epoch: 2,
        at_ms: 500,
        exact: false,
        writes_end_before_ms: Some(400),
        partitions: vec![
            PartitionLoss {
                partition: 0,
                decrees: Err("unreachable".into()),
                applied_through_timetag: Ok(100),
            },
            PartitionLoss {
                partition: 1,
                decrees: Err("unreachable".into()),
                applied_through_timetag: Err("never heard".into()),
            },
        ],
        took_ms: 3,
        unknown: None,
    }
}

/// After the failover: dc1 back, fenced (standby at 2) with its link to dc2 paused and two
/// decrees unshipped per partition (confirmed 5, committed 6... see `testkit::link`); dc2
/// active at 2 with a shipping link back.
fn after_failover() -> Observed {
    let mut back = link("dc2", LinkStatus::Paused, &[(0.0, 100), (0.0, 100)]);
    back.conflicts = 10;
    back.overwritten = 4;
    let dc1 = cluster("dc1", vec![table(DrRole::Standby, 2)], vec![back]);
    let mut dc2 = cluster(
        "dc2",
        vec![table(DrRole::Active, 2)],
        vec![link("dc1", LinkStatus::Shipping, &[(0.0, 100), (0.0, 100)])],
    );
    dc2.failovers.push(record());
    Observed { clusters: vec![dc1, dc2], at_ms: 1_000 }
}

fn begun(obs: &Observed) -> ReconcileSummary {
    match next_step(obs, T, None) {
        Step::Begin { summary } => summary,
        other => panic!("{other:?}"),
    }
}

fn keep(obs: &mut Observed, s: ReconcileSummary) {
    obs.clusters[1].reconciles = vec![s];
}

#[test]
fn without_a_failover_record_only_a_held_link_is_something_to_reconcile() {
    // An automatic failover (a proxy) keeps no record: the fenced copy's paused link stands for it.
    let mut obs = after_failover();
    obs.clusters[1].failovers.clear();
    let s = begun(&obs);
    assert_eq!((s.from.as_str(), s.to.as_str(), s.epoch), ("dc1", "dc2", 2));
    obs.clusters[0].links[0].link.status = LinkStatus::Shipping;
    let Step::Refuse { why } = next_step(&obs, T, None) else { panic!() };
    assert!(why.starts_with("nothing to reconcile: no reachable cluster keeps a failover record"), "{why}");
    let Step::Refuse { why } = next_step(&after_failover(), T, Some("dc3")) else { panic!() };
    assert!(why.contains("--from dc3: the last failover of orders (epoch 2) was from dc1 to dc2"), "{why}");
}

#[test]
fn an_unreachable_or_writable_old_side_is_refused() {
    let mut obs = after_failover();
    obs.clusters[0].unreachable = Some("connection refused".into());
    let Step::Refuse { why } = next_step(&obs, T, None) else { panic!() };
    assert!(why.starts_with("dc1 is unreachable (connection refused)"), "{why}");
    let mut obs = after_failover();
    obs.clusters[0].tables = vec![table(DrRole::Active, 0)];
    let Step::Refuse { why } = next_step(&obs, T, None) else { panic!() };
    assert!(why.contains("active at epoch 0: it could still take writes"), "{why}");
    assert!(why.contains("tern dr failover --table orders --to dc2 --yes"), "{why}");
}

#[test]
fn an_old_copy_standby_below_the_new_epoch_is_raised_to_it_first() {
    let mut obs = after_failover();
    obs.clusters[0].tables = vec![table(DrRole::Standby, 1)];
    assert_eq!(next_step(&obs, T, None), Step::Fence { cluster: "dc1".into(), epoch: 2, expect: 1 });
}

#[test]
fn the_tail_is_what_the_link_had_not_confirmed_up_to_the_committed_decree() {
    let obs = after_failover();
    let s = begun(&obs);
    assert_eq!(s.link, 7);
    assert_eq!(s.partitions.iter().map(|p| p.decrees).collect::<Vec<_>>(), vec![Some((6, 6)); 2]);
    assert_eq!((s.base_conflicts, s.base_overwritten, s.epoch, s.started_at_ms), (10, 4, 2, 1_000));
    assert!(!s.finished());
    // A partition without a fresh report: its end is not known yet.
    let mut stale = after_failover();
    stale.clusters[0].links[0].partitions[1].reported_ms_ago = Some(FRESH_REPORT_MS + 1);
    let Step::Wait { why } = next_step(&stale, T, None) else { panic!() };
    assert!(why.starts_with("partition 1 of dc1's link 7 has not reported lately"), "{why}");
}

#[test]
fn a_measured_tail_resumes_the_paused_link_waits_for_it_then_finishes_with_the_counts() {
    let mut obs = after_failover();
    let s = begun(&obs);
    keep(&mut obs, s.clone());
    assert_eq!(next_step(&obs, T, None), Step::ResumeLink { cluster: "dc1".into(), link: 7 });
    obs.clusters[0].links[0].link.status = LinkStatus::Shipping;
    obs.clusters[0].links[0].partitions[1].last_error = Some("unavailable".into());
    let Step::Wait { why } = next_step(&obs, T, None) else { panic!() };
    assert_eq!(
        why,
        "shipping the tail on link 7: partition 0: confirmed 5 of 6; partition 1: confirmed 5 of 6, last error: unavailable"
    );
    // Shipped: 3 more conflicts, 1 of them a dc2 record replaced.
    let l = &mut obs.clusters[0].links[0];
    l.link.confirmed = vec![6, 9];
    (l.conflicts, l.overwritten) = (13, 5);
    l.partitions[0].shipped_puts = 4;
    l.partitions[1].shipped_puts = 2;
    let Step::Finish { summary } = next_step(&obs, T, None) else { panic!() };
    assert_eq!((summary.lost, summary.overwritten, summary.shipped_puts, summary.applied()), (2, 1, 6, 4));
}

#[test]
fn the_link_back_is_resumed_or_added_with_a_full_sync_before_finishing() {
    let mut obs = after_failover();
    let s = begun(&obs);
    keep(&mut obs, s);
    obs.clusters[0].links[0].link.status = LinkStatus::Shipping;
    obs.clusters[0].links[0].link.confirmed = vec![6, 6];
    obs.clusters[1].links[0].link.status = LinkStatus::Paused;
    let want = Step::ReverseLink { from: "dc2".into(), to: "dc1".into(), how: Reverse::Resume { link: 7 } };
    assert_eq!(next_step(&obs, T, None), want);
    obs.clusters[1].links.clear();
    let want = Step::ReverseLink { from: "dc2".into(), to: "dc1".into(), how: Reverse::AddFullSync };
    assert_eq!(next_step(&obs, T, None), want);
}

#[test]
fn a_finished_reconcile_leaves_nothing_to_do() {
    let mut obs = after_failover();
    let s = ReconcileSummary { finished_at_ms: Some(2_000), lost: 3, ..begun(&obs) };
    keep(&mut obs, s);
    let Step::Done { summary } = next_step(&obs, T, None) else { panic!() };
    assert!(
        summary.starts_with("nothing to reconcile: the failover of orders from dc1 to dc2 at epoch 2"),
        "{summary}"
    );
    assert!(summary.contains("3 lost to newer writes in dc2"), "{summary}");
}

fn key_in(partition: u32, n: u32) -> Vec<u8> {
    (0..).map(|i: u32| format!("k{i}").into_bytes()).find(|k| partition_of(k, n).0 == partition).unwrap()
}

fn conflict(partition: u32, incoming: u64, kind: ConflictKind) -> Conflict {
    Conflict {
        hash_key: key_in(partition, 2),
        sort_key: Vec::new(),
        incoming: Timetag::from_u64(incoming),
        stored: Timetag::from_u64(incoming + 1),
        kind,
    }
}

#[test]
fn the_tails_conflicts_come_from_the_journal_and_the_counts_are_at_least_what_is_listed() {
    let mut s = begun(&after_failover());
    s.partitions[1].decrees = None;
    s.lost = 0;
    let journal = LinkConflicts {
        total: 4,
        overwritten: 1,
        dropped: 0,
        recent: vec![
            conflict(0, 50, ConflictKind::ShippedLost), // before what dc2 had applied: not the tail
            conflict(0, 150, ConflictKind::ShippedLost),
            conflict(0, 160, ConflictKind::RemoteOverwritten),
            conflict(1, 170, ConflictKind::ShippedLost), // a partition without a tail
        ],
    };
    let mut listed = tail_conflicts(&s, &record(), &journal);
    merge_conflicts(&mut listed, tail_conflicts(&s, &record(), &journal));
    let done = finish(s, &listed, 9_000);
    let listed: Vec<(u64, u64, ConflictKind)> =
        done.conflicts.iter().map(|c| (c.tail_timetag, c.winner(), c.kind)).collect();
    assert_eq!(
        listed,
        vec![(150, 151, ConflictKind::ShippedLost), (160, 160, ConflictKind::RemoteOverwritten)]
    );
    assert_eq!((done.lost, done.overwritten, done.finished_at_ms), (1, 1, Some(9_000)));
}

proptest! {
    /// Whatever the link confirmed and the old side committed, the tail is exactly the decrees
    /// after the confirmed one through the committed one, and the reconcile finishes only once
    /// the link confirmed every partition's last.
    #[test]
    fn finishes_only_after_the_whole_tail_is_confirmed(
        parts in prop::collection::vec((0u64..20, 0u64..20, 0u64..25), 1..6),
    ) {
        let mut obs = after_failover();
        let l = &mut obs.clusters[0].links[0];
        let n = parts.len();
        l.link.confirmed = parts.iter().map(|p| p.0).collect();
        l.link.started = vec![true; n];
        let template = l.partitions[0].clone();
        l.partitions = vec![template; n];
        for (i, p) in l.partitions.iter_mut().enumerate() {
            p.partition = i as u32;
            p.committed = parts[i].1;
        }
        let s = begun(&obs);
        for (i, p) in s.partitions.iter().enumerate() {
            let (c, k, _) = parts[i];
            prop_assert_eq!(p.decrees, (k > c).then_some((c + 1, k)));
        }
        keep(&mut obs, s.clone());
        let l = &mut obs.clusters[0].links[0];
        l.link.status = LinkStatus::Shipping;
        l.link.confirmed = parts.iter().map(|p| p.0.max(p.2)).collect();
        let all_in = s.partitions.iter().all(|p| p.decrees.is_none_or(|(_, last)| l.link.confirmed[p.partition as usize] >= last));
        match next_step(&obs, T, None) {
            Step::Finish { .. } => prop_assert!(all_in),
            Step::Wait { .. } => prop_assert!(!all_in),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
