//! Engine tests of atomic-op resolution and duplicated-write admission.

use tern_core::mutation::{IncrTtl, WriteOutcome};
use tern_core::resolved::ResolvedOutcome;
use tern_core::{Ballot, ClusterId, Decree, Error, ErrorCode, Timetag, WriteOp};

use crate::ReplicaOptions;
use crate::message::{Action, Event};
use crate::tests::{S1, S2, T0, ack, active_primary, active_primary_with, appended, applied, h, opts, set};

fn incr(k: &str) -> WriteOp {
    WriteOp::Incr { hash_key: k.as_bytes().to_vec(), sort_key: vec![], delta: 1, ttl: IncrTtl::Keep }
}

fn resolves(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| if let Action::Resolve { req, .. } = a { Some(*req) } else { None })
        .collect()
}

fn resolved(k: &str, n: i64) -> WriteOp {
    WriteOp::Resolved {
        hash_key: k.as_bytes().to_vec(),
        records: vec![tern_core::RecordState {
            sort_key: vec![],
            value: Some(n.to_string().into()),
            expire_ts: 0,
        }],
        outcome: ResolvedOutcome::Incr { new_value: n },
    }
}

/// The primary's own state (its queue and parked ops).
fn primary(r: &crate::Replica) -> &crate::primary::PrimaryState {
    r.role.primary().expect("a primary")
}

fn commit(r: &mut crate::Replica, d: u64) -> Vec<Action> {
    h(r, T0, Event::Appended { entries: vec![(Ballot(1), Decree(d))] });
    h(r, T0, Event::Peer { from: S1, msg: ack(1, 1, d) });
    h(r, T0, Event::Peer { from: S2, msg: ack(1, 1, d) })
}

#[test]
fn an_idle_primary_resolves_an_atomic_op_at_once_and_logs_its_result() {
    let mut r = active_primary();
    let a = h(&mut r, T0, Event::ClientWrite { req: 1, op: incr("k") });
    assert_eq!(resolves(&a), vec![1], "nothing touches k: resolve now");
    assert!(appended(&a).is_empty(), "nothing is logged before the result is known");
    let a = h(&mut r, T0, Event::Resolved { req: 1, result: Ok(resolved("k", 1)) });
    match &a[..] {
        [.., Action::Append { entries }] => assert_eq!(entries[0].mutation.ops, vec![resolved("k", 1)]),
        other => panic!("expected the result to be logged, got {other:?}"),
    }
}

#[test]
fn an_atomic_op_waits_for_uncommitted_writes_to_its_hash_key_and_later_writes_wait_for_it() {
    // One entry in flight at a time, so that writes to other hash keys are seen batching.
    let mut r = active_primary_with(ReplicaOptions { batch_max_uncommitted: 1, ..opts() });
    let a = h(&mut r, T0, Event::ClientWrite { req: 1, op: set("k") });
    assert_eq!(appended(&a), vec![(Ballot(1), Decree(2))]);
    let a = h(&mut r, T0, Event::ClientWrite { req: 2, op: incr("k") });
    assert!(resolves(&a).is_empty(), "decree 2 writes k and is not committed");
    let a = h(&mut r, T0, Event::ClientWrite { req: 3, op: set("k") });
    assert!(appended(&a).is_empty(), "a later write to k waits behind the incr");
    h(&mut r, T0, Event::ClientWrite { req: 4, op: set("other") });
    assert!(
        primary(&r).queued.iter().any(|(q, _)| *q == 4),
        "other hash keys are not held up: batched as usual"
    );
    assert_eq!(primary(&r).parked.iter().map(|(q, _)| *q).collect::<Vec<_>>(), vec![2, 3]);

    let a = commit(&mut r, 2);
    assert_eq!(applied(&a), vec![Decree(2)]);
    let apply_at = a.iter().position(|x| matches!(x, Action::Apply { .. })).unwrap();
    let resolve_at = a.iter().position(|x| matches!(x, Action::Resolve { .. })).unwrap();
    assert!(apply_at < resolve_at, "the store holds decree 2 before the incr reads it: {a:?}");
    assert_eq!(resolves(&a), vec![2], "the set behind it still waits");

    h(&mut r, T0, Event::Resolved { req: 2, result: Ok(resolved("k", 1)) });
    assert!(
        primary(&r).queued.iter().any(|(q, op)| *q == 2 && *op == resolved("k", 1)),
        "the result joins the next batch"
    );
    assert_eq!(
        primary(&r).parked.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
        vec![3],
        "the set waits for the incr to commit"
    );
}

#[test]
fn a_refused_resolution_answers_the_client_and_frees_the_hash_key() {
    let mut r = active_primary();
    h(&mut r, T0, Event::ClientWrite { req: 1, op: incr("k") });
    h(&mut r, T0, Event::ClientWrite { req: 2, op: set("k") });
    let err = Error::NotAnInteger { what: "k".into(), value: "x".into() };
    let a = h(&mut r, T0, Event::Resolved { req: 1, result: Err(err) });
    assert!(
        matches!(&a[0], Action::Refuse { req: 1, error, not_applied: true } if error.code() == ErrorCode::NotAnInteger),
        "{a:?}"
    );
    assert_eq!(appended(&a).len(), 1, "the set behind it goes out: {a:?}");
}

#[test]
fn waiting_ops_are_refused_as_not_applied_when_the_primary_steps_down() {
    let mut r = active_primary();
    h(&mut r, T0, Event::ClientWrite { req: 1, op: incr("k") });
    h(&mut r, T0, Event::ClientWrite { req: 2, op: set("k") });
    let a = h(&mut r, T0, Event::ConfigUpdate { config: crate::tests::cfg(2, S1, &[S2]) });
    let mut refused: Vec<u64> = a
        .iter()
        .filter_map(|x| if let Action::Refuse { req, not_applied: true, .. } = x { Some(*req) } else { None })
        .collect();
    refused.sort();
    assert_eq!(refused, vec![1, 2]);
    let a = h(&mut r, T0, Event::Resolved { req: 1, result: Ok(resolved("k", 1)) });
    assert!(a.is_empty(), "a late resolution of a refused op is dropped: {a:?}");
}

fn dup_put(physical_ms: u64) -> WriteOp {
    WriteOp::Put {
        hash_key: b"k".to_vec(),
        sort_key: vec![],
        value: Some(b"v".to_vec()),
        expire_ts: 0,
        timetag: Some(Timetag::new(physical_ms, 3, ClusterId::new(2).unwrap(), false)),
    }
}

#[test]
fn a_duplicated_write_moves_the_clock_past_its_timetag() {
    let mut r = active_primary();
    let ahead = T0 + 400; // within the maximum clock offset (500 ms)
    let a = h(&mut r, T0, Event::ClientWrite { req: 1, op: dup_put(ahead) });
    let Some(Action::Append { entries }) = a.iter().find(|x| matches!(x, Action::Append { .. })) else {
        panic!("{a:?}")
    };
    assert!(entries[0].timetag.physical_ms() >= ahead, "the entry orders after the put it carries");
    commit(&mut r, 2);
    let a = h(&mut r, T0, Event::ClientWrite { req: 2, op: set("k") });
    let Some(Action::Append { entries: later }) = a.iter().find(|x| matches!(x, Action::Append { .. }))
    else {
        panic!("{a:?}")
    };
    assert!(later[0].timetag > entries[0].timetag);
    assert!(later[0].timetag.physical_ms() >= ahead, "a causally later local write wins despite the skew");
}

/// A peer clock an hour ahead: its write is refused as not applied, naming the offset, and the
/// clock does not move (later local writes keep today's time).
#[test]
fn a_duplicated_write_too_far_ahead_is_refused_and_leaves_the_clock_alone() {
    let mut r = active_primary();
    let a = h(&mut r, T0, Event::ClientWrite { req: 1, op: dup_put(T0 + 3_600_000) });
    let [Action::Refuse { req: 1, error, not_applied: true }] = &a[..] else { panic!("{a:?}") };
    assert_eq!(error.code(), tern_core::ErrorCode::ClockAhead, "{error}");
    assert!(error.to_string().contains("3600000 ms ahead"), "{error}");
    let a = h(&mut r, T0, Event::ClientWrite { req: 2, op: set("k") });
    let Some(Action::Append { entries }) = a.iter().find(|x| matches!(x, Action::Append { .. })) else {
        panic!("{a:?}")
    };
    assert!(entries[0].timetag.physical_ms() < T0 + 1_000, "the clock did not jump: {}", entries[0].timetag);
}

/// No fixed refusal window any more: a duplicated write days old (a link that was down) is
/// logged like any other and applies by last-writer-wins (issue #24).
#[test]
fn a_duplicated_write_days_old_is_logged() {
    let mut r = active_primary();
    let three_days = 3 * 24 * 3600 * 1000;
    let a = h(&mut r, T0, Event::ClientWrite { req: 1, op: dup_put(T0 - three_days) });
    assert_eq!(appended(&a).len(), 1, "logged: {a:?}");
    let _ = WriteOutcome::Done;
}
