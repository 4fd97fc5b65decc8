//! Engine tests: feed events, assert the exact actions, one protocol step at a time.

use tern_core::{
    Ballot, ClusterId, ConfigChange, Decree, Error, Gpid, Mutation, NodeId, PartitionConfig, ReplicaStatus,
    Timetag, WriteOp,
};
use tern_storage::LogEntry;

use crate::message::{Action, Event, Now, PeerMessage, ReadOp, Refusal, Reign, Reply, RequestId};
use crate::{Replica, ReplicaOptions};

pub(crate) const G: Gpid = Gpid::new(1, 0);
pub(crate) const P: NodeId = NodeId(1);
pub(crate) const S1: NodeId = NodeId(2);
pub(crate) const S2: NodeId = NodeId(3);
const L: NodeId = NodeId(4);
pub(crate) const T0: u64 = 1_767_225_600_000;

pub(crate) fn cfg(ballot: u64, primary: NodeId, secondaries: &[NodeId]) -> PartitionConfig {
    PartitionConfig {
        gpid: G,
        ballot: Ballot(ballot),
        primary: Some(primary),
        secondaries: secondaries.to_vec(),
    }
}

pub(crate) fn opts() -> ReplicaOptions {
    ReplicaOptions::new(ClusterId::new(1).unwrap())
}

pub(crate) fn replica(me: NodeId) -> Replica {
    Replica::new(G, me, opts(), T0)
}

/// S1, a secondary of P (with S2) at ballot 1.
fn secondary() -> Replica {
    let mut s = replica(S1);
    h(&mut s, T0, Event::Create { config: cfg(1, P, &[S1, S2]) });
    s
}

/// Reign 1: ballot 1, from decree 0.
const R1: Reign = Reign { ballot: Ballot(1), base: Decree(0) };

/// A [`secondary`] that holds decree 1 of reign 1 (setting `key`), durable and not committed.
fn secondary_holding_decree_1(key: &str) -> Replica {
    let mut s = secondary();
    h(&mut s, T0, prepare(1, R1, 0, entry(1, 1, key)));
    h(&mut s, T0, Event::Appended { entries: vec![(Ballot(1), Decree(1))] });
    s
}

/// Opens `r` on a store that applied decree `applied` at ballot `ballot` (timetag zero), with
/// `log` in its log.
fn open(r: &mut Replica, applied: u64, ballot: u64, log: Vec<LogEntry>) -> Vec<Action> {
    let (applied, applied_ballot) = (Decree(applied), Ballot(ballot));
    h(
        r,
        T0,
        Event::Open {
            applied,
            applied_timetag: Timetag::ZERO,
            applied_ballot,
            purge_below: Timetag::ZERO,
            log,
        },
    )
}

pub(crate) fn h(r: &mut Replica, now: u64, e: Event) -> Vec<Action> {
    let mut out = Vec::new();
    r.handle(Now::at(now), e, &mut out);
    out
}

pub(crate) fn set(k: &str) -> WriteOp {
    WriteOp::Set { hash_key: k.as_bytes().to_vec(), sort_key: vec![], value: b"v".to_vec(), ttl_secs: 0 }
}

pub(crate) fn appended(actions: &[Action]) -> Vec<(Ballot, Decree)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Append { entries } => {
                Some(entries.iter().map(|e| (e.ballot, e.decree)).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

pub(crate) fn sends(actions: &[Action]) -> Vec<(NodeId, &PeerMessage)> {
    actions
        .iter()
        .filter_map(|a| if let Action::Send { to, msg } = a { Some((*to, msg)) } else { None })
        .collect()
}

pub(crate) fn applied(actions: &[Action]) -> Vec<Decree> {
    actions
        .iter()
        .filter_map(|a| {
            if let Action::Apply { entries, .. } = a {
                Some(entries.iter().map(|e| e.decree).collect::<Vec<_>>())
            } else {
                None
            }
        })
        .flatten()
        .collect()
}

pub(crate) fn ack(from_ballot: u64, entry_ballot: u64, d: u64) -> PeerMessage {
    PeerMessage::PrepareAck {
        ballot: Ballot(from_ballot),
        entry_ballot: Ballot(entry_ballot),
        decree: Decree(d),
        durable_through: Decree(d),
        refusal: None,
    }
}

/// A primary of a fresh 3-replica partition, its reign marker committed, with a lease.
pub(crate) fn active_primary() -> Replica {
    active_primary_with(opts())
}

/// An [`active_primary`] with a client write (request 1) logged at decree 2 and acknowledged by
/// S1, not yet by S2.
fn primary_waiting_for_s2() -> Replica {
    let mut r = active_primary();
    h(&mut r, T0, Event::ClientWrite { req: 1, op: set("k") });
    h(&mut r, T0, Event::Appended { entries: vec![(Ballot(1), Decree(2))] });
    h(&mut r, T0, Event::Peer { from: S1, msg: ack(1, 1, 2) });
    r
}

pub(crate) fn active_primary_with(opts: ReplicaOptions) -> Replica {
    let mut r = Replica::new(G, P, opts, T0);
    let a = h(&mut r, T0, Event::Create { config: cfg(1, P, &[S1, S2]) });
    assert_eq!(appended(&a), vec![(Ballot(1), Decree(1))], "the reign marker");
    assert!(sends(&a).is_empty(), "nothing is sent before the marker is durable");
    let a = h(&mut r, T0, Event::Appended { entries: vec![(Ballot(1), Decree(1))] });
    assert_eq!(sends(&a).len(), 2, "marker prepared to both secondaries");
    h(&mut r, T0, Event::Peer { from: S1, msg: ack(1, 1, 1) });
    let a = h(&mut r, T0, Event::Peer { from: S2, msg: ack(1, 1, 1) });
    assert_eq!(applied(&a), vec![Decree(1)]);
    h(&mut r, T0, Event::Lease { expires_at_ms: T0 + 5_000 });
    assert!(r.is_serving(T0));
    r
}

#[test]
fn a_write_commits_only_when_every_member_logged_it() {
    let mut r = active_primary();
    let a = h(&mut r, T0, Event::ClientWrite { req: 7, op: set("k") });
    assert_eq!(appended(&a), vec![(Ballot(1), Decree(2))]);
    let targets: Vec<NodeId> = sends(&a).into_iter().map(|(to, _)| to).collect();
    assert_eq!(targets, vec![S1, S2]);
    let a = h(&mut r, T0, Event::Appended { entries: vec![(Ballot(1), Decree(2))] });
    assert!(applied(&a).is_empty(), "own log alone is not enough");
    let a = h(&mut r, T0, Event::Peer { from: S1, msg: ack(1, 1, 2) });
    assert!(applied(&a).is_empty(), "a majority is not enough: PacificA commits on all members");
    let a = h(&mut r, T0, Event::Peer { from: S2, msg: ack(1, 1, 2) });
    match &a[..] {
        [Action::Apply { entries, replies }] => {
            assert_eq!(entries[0].decree, Decree(2));
            assert_eq!(replies, &vec![Reply { decree: Decree(2), op: 0, req: 7 }]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.committed(), Decree(2));
}

#[test]
fn writes_go_out_at_once_until_the_pipeline_is_full_then_together() {
    let mut r = active_primary_with(ReplicaOptions { batch_max_uncommitted: 2, ..opts() });
    let a = h(&mut r, T0, Event::ClientWrite { req: 1, op: set("a") });
    assert_eq!(appended(&a), vec![(Ballot(1), Decree(2))], "an idle primary sends at once");
    assert_eq!(sends(&a).len(), 2);
    // Decree 2 is not even durable here yet: the next write still leaves at once.
    let a = h(&mut r, T0, Event::ClientWrite { req: 2, op: set("b") });
    assert_eq!(appended(&a), vec![(Ballot(1), Decree(3))]);
    assert_eq!(sends(&a).len(), 2, "prepared to both secondaries before the local fsync");
    // Two entries uncommitted (batch_max_uncommitted = 2): these wait.
    for (req, k) in [(3, "c"), (4, "d")] {
        let a = h(&mut r, T0, Event::ClientWrite { req, op: set(k) });
        assert!(appended(&a).is_empty() && sends(&a).is_empty(), "{a:?}");
    }
    // The same hash key again: the batch so far leaves first (one record per key per batch).
    let a = h(&mut r, T0, Event::ClientWrite { req: 5, op: set("c") });
    assert_eq!(appended(&a), vec![(Ballot(1), Decree(4))]);
    for d in 2..=4 {
        h(&mut r, T0, Event::Appended { entries: vec![(Ballot(1), Decree(d))] });
    }
    let mut replies = Vec::new();
    for d in 2..=5 {
        h(&mut r, T0, Event::Peer { from: S1, msg: ack(1, 1, d) });
        let a = h(&mut r, T0, Event::Peer { from: S2, msg: ack(1, 1, d) });
        if d == 3 {
            // Decree 2's commit left 3 and 4 uncommitted: still full.
            assert_eq!(appended(&a), vec![(Ballot(1), Decree(5))], "the rest leaves once decree 3 commits");
            h(&mut r, T0, Event::Appended { entries: vec![(Ballot(1), Decree(5))] });
        }
        for x in a {
            if let Action::Apply { entries, replies: rs } = x {
                assert_eq!(entries.len(), 1);
                assert_eq!(entries[0].mutation.ops.len(), rs.len());
                replies.extend(rs);
            }
        }
    }
    let r = |decree: u64, op: usize, req: RequestId| Reply { decree: Decree(decree), op, req };
    assert_eq!(replies, vec![r(2, 0, 1), r(3, 0, 2), r(4, 0, 3), r(4, 1, 4), r(5, 0, 5)]);
}

#[test]
fn writes_that_arrive_together_go_out_as_one_entry_even_at_an_idle_primary() {
    let mut r = active_primary();
    let writes = vec![(1, set("a")), (2, set("b")), (3, set("a")), (4, set("c"))];
    let a = h(&mut r, T0, Event::ClientWrites { writes });
    let entries = |a: &[Action]| -> Vec<Vec<WriteOp>> {
        a.iter()
            .filter_map(|x| match x {
                Action::Append { entries } => Some(entries.iter().map(|e| e.mutation.ops.clone())),
                _ => None,
            })
            .flatten()
            .collect()
    };
    // "a" twice: the batch so far leaves at the second (one record per key per entry), the rest
    // as the next entry once the frame is taken apart.
    assert_eq!(entries(&a), vec![vec![set("a"), set("b")], vec![set("a"), set("c")]]);
    // Not the primary: every write is refused, none queued.
    let mut s = replica(S1);
    let a = h(&mut s, T0, Event::ClientWrites { writes: vec![(5, set("x")), (6, set("y"))] });
    let refused: Vec<RequestId> =
        a.iter().filter_map(|x| if let Action::Refuse { req, .. } = x { Some(*req) } else { None }).collect();
    assert_eq!(refused, vec![5, 6]);
}

#[test]
fn queued_writes_are_refused_as_not_applied_when_the_primary_steps_down() {
    // One entry in flight at a time: the second write is queued, not logged.
    let mut r = active_primary_with(ReplicaOptions { batch_max_uncommitted: 1, ..opts() });
    h(&mut r, T0, Event::ClientWrite { req: 1, op: set("a") });
    h(&mut r, T0, Event::ClientWrite { req: 2, op: set("b") });
    let a = h(&mut r, T0, Event::ConfigUpdate { config: cfg(2, S1, &[S2, P]) });
    let refused: Vec<(RequestId, bool)> = a
        .iter()
        .filter_map(|x| {
            if let Action::Refuse { req, not_applied, .. } = x { Some((*req, *not_applied)) } else { None }
        })
        .collect();
    assert_eq!(refused, vec![(1, false), (2, true)], "1 was logged and may still commit; 2 never was");
}

#[test]
fn a_member_refusing_a_message_from_before_the_current_configuration_is_not_suspected() {
    let mut r = active_primary();
    h(&mut r, T0, Event::ConfigUpdate { config: cfg(2, P, &[S1, S2]) });
    // S1 adopted ballot 2 before this primary did and refused a prepare sent at ballot 1.
    let refusal = PeerMessage::PrepareAck {
        ballot: Ballot(2),
        entry_ballot: Ballot(1),
        decree: Decree(1),
        durable_through: Decree(1),
        refusal: Some(Refusal::StaleBallot),
    };
    let a = h(&mut r, T0, Event::Peer { from: S1, msg: refusal });
    assert!(!a.iter().any(|x| matches!(x, Action::Propose { .. })), "{a:?}");
    assert_eq!(r.status(), ReplicaStatus::Primary);
}

/// A primary that stepped down when a member told it of a newer ballot may have reported itself
/// inactive at that ballot since, and the manager may be replacing it on that report while its
/// lease still runs: it must never reign at that ballot (simulator seed 3052: two primaries in
/// overlapping lease windows, a stale read).
#[test]
fn a_primary_that_stepped_down_at_a_ballot_never_reigns_at_it() {
    let mut r = active_primary();
    // The meta removed S2 at ballot 2 and keeps P as primary; S2 heard first and refuses.
    let refusal = PeerMessage::PrepareAck {
        ballot: Ballot(2),
        entry_ballot: Ballot(1),
        decree: Decree(2),
        durable_through: Decree(1),
        refusal: Some(Refusal::StaleBallot),
    };
    h(&mut r, T0, Event::Peer { from: S2, msg: refusal });
    assert_ne!(r.status(), ReplicaStatus::Primary, "it cannot tell yet whether it is still primary");
    assert_eq!(r.ballot(), Ballot(2));
    let a = h(&mut r, T0, Event::ConfigUpdate { config: cfg(2, P, &[S1]) });
    assert_eq!(r.status(), ReplicaStatus::Inactive, "{a:?}");
    assert!(appended(&a).is_empty(), "no reign starts at ballot 2: {a:?}");
    assert_eq!(r.config().ballot, Ballot(2), "the configuration is known, so it is not taken again");
    let a = h(
        &mut r,
        T0 + 10,
        Event::ClientRead {
            req: 9,
            read: tern_core::read::ReadOp::Get { hash_key: b"k".to_vec(), sort_key: vec![] },
        },
    );
    assert!(!a.iter().any(|x| matches!(x, Action::ServeRead { .. })), "it serves nothing at ballot 2: {a:?}");
    // The manager's next configuration makes it primary again, at a ballot of its own.
    let a = h(&mut r, T0, Event::ConfigUpdate { config: cfg(3, P, &[S1]) });
    assert_eq!(r.status(), ReplicaStatus::Primary, "{a:?}");
    assert_eq!(appended(&a), vec![(Ballot(3), Decree(2))], "a new reign at ballot 3 starts with its marker");
}

#[test]
fn an_ack_for_another_ballots_entry_does_not_count() {
    let mut r = primary_waiting_for_s2();
    let a = h(&mut r, T0, Event::Peer { from: S2, msg: ack(1, 0, 2) });
    assert!(applied(&a).is_empty());
}

#[test]
fn requests_are_refused_with_the_right_error() {
    let mut r = active_primary();
    let a =
        h(&mut r, T0 + 5_000, Event::ClientRead { req: 1, read: ReadOp::Count { hash_key: b"h".to_vec() } });
    assert!(
        matches!(&a[..], [Action::Refuse { req: 1, error: Error::Unavailable(m), not_applied: true }] if m.contains("lease")),
        "{a:?}"
    );
    let a =
        h(&mut r, T0 + 4_999, Event::ClientRead { req: 2, read: ReadOp::Count { hash_key: b"h".to_vec() } });
    assert!(matches!(&a[..], [Action::ServeRead { req: 2, ballot: Ballot(1), .. }]), "{a:?}");
    let big =
        WriteOp::Set { hash_key: b"h".to_vec(), sort_key: vec![], value: vec![0; 2 << 20], ttl_secs: 0 };
    let a = h(&mut r, T0, Event::ClientWrite { req: 3, op: big });
    assert!(
        matches!(&a[..], [Action::Refuse { req: 3, error: Error::LimitExceeded { .. }, not_applied: true }]),
        "{a:?}"
    );
    let mut s = secondary();
    let a = h(&mut s, T0, Event::ClientWrite { req: 4, op: set("k") });
    assert!(matches!(&a[..], [Action::Refuse { error: Error::NotPrimary { .. }, .. }]), "{a:?}");
}

fn prepare(ballot: u64, reign: Reign, committed: u64, entry: LogEntry) -> Event {
    Event::Peer {
        from: P,
        msg: PeerMessage::Prepare {
            config: cfg(ballot, P, &[S1, S2]),
            reign,
            committed: Decree(committed),
            entry,
        },
    }
}

fn entry(ballot: u64, d: u64, key: &str) -> LogEntry {
    LogEntry {
        ballot: Ballot(ballot),
        decree: Decree(d),
        timetag: Timetag::new(T0 + d, 0, ClusterId::new(1).unwrap(), false),
        mutation: Mutation::new(vec![set(key)]),
    }
}

#[test]
fn a_secondary_logs_acks_and_commits_what_the_primary_committed() {
    let mut s = secondary();
    let a = h(&mut s, T0, prepare(1, R1, 0, entry(1, 1, "a")));
    assert_eq!(appended(&a), vec![(Ballot(1), Decree(1))]);
    assert!(sends(&a).is_empty(), "no ack before it is durable");
    let a = h(&mut s, T0, Event::Appended { entries: vec![(Ballot(1), Decree(1))] });
    assert_eq!(sends(&a), vec![(P, &ack(1, 1, 1))]);
    let a = h(&mut s, T0, prepare(1, R1, 1, entry(1, 2, "b")));
    assert_eq!(applied(&a), vec![Decree(1)], "the commit point rides on the next prepare");
    let a = h(&mut s, T0, prepare(1, R1, 1, entry(1, 2, "b")));
    assert!(appended(&a).is_empty(), "a resent prepare is not logged twice");
}

#[test]
fn stale_ballots_are_refused_and_newer_ones_adopted() {
    let mut s = replica(S1);
    h(&mut s, T0, Event::Create { config: cfg(3, P, &[S1, S2]) });
    let reign = Reign { ballot: Ballot(2), base: Decree(0) };
    let a = h(&mut s, T0, prepare(2, reign, 0, entry(2, 1, "a")));
    match sends(&a)[..] {
        [(to, PeerMessage::PrepareAck { ballot, refusal: Some(Refusal::StaleBallot), .. })] => {
            assert_eq!((to, *ballot), (P, Ballot(3)));
        }
        ref other => panic!("{other:?}"),
    }
    let reign = Reign { ballot: Ballot(5), base: Decree(0) };
    h(&mut s, T0, prepare(5, reign, 0, entry(5, 1, "a")));
    assert_eq!(s.ballot(), Ballot(5));
    assert_eq!(s.status(), ReplicaStatus::Secondary);
}

#[test]
fn a_commit_point_of_a_new_reign_does_not_commit_an_older_reigns_entry() {
    // Reign 1 prepared decree 1 here, never committed.
    let mut s = secondary_holding_decree_1("old");
    // Reign 4 (another primary, base 0) committed its own decree 1 and 2; its prepare for 2
    // arrives first, carrying commit point 2.
    let mut r4cfg = cfg(4, S2, &[S1, P]);
    r4cfg.primary = Some(S2);
    let r4 = Reign { ballot: Ballot(4), base: Decree(0) };
    let from_new = |e: LogEntry, c: u64| Event::Peer {
        from: S2,
        msg: PeerMessage::Prepare { config: r4cfg.clone(), reign: r4, committed: Decree(c), entry: e },
    };
    let a = h(&mut s, T0, from_new(entry(4, 2, "new2"), 2));
    h(&mut s, T0, Event::Appended { entries: vec![(Ballot(4), Decree(2))] });
    assert!(applied(&a).is_empty(), "decree 1 here is reign 1's entry: it must not be applied");
    assert_eq!(s.committed(), Decree(0));
    h(&mut s, T0, from_new(entry(4, 1, "new1"), 2));
    let a = h(&mut s, T0, Event::Appended { entries: vec![(Ballot(4), Decree(1))] });
    assert_eq!(applied(&a), vec![Decree(1), Decree(2)]);
    match a.iter().find(|x| matches!(x, Action::Apply { .. })) {
        Some(Action::Apply { entries, .. }) => assert_eq!(entries[0].mutation.ops[0], set("new1")),
        _ => unreachable!(),
    }
}

#[test]
fn a_new_primary_reconciles_before_serving() {
    let mut s = secondary_holding_decree_1("x");
    h(&mut s, T0, Event::Lease { expires_at_ms: T0 + 5_000 });
    // P failed; the configuration manager promotes S1 with S2.
    let a = h(&mut s, T0, Event::ConfigUpdate { config: cfg(2, S1, &[S2]).with_primary(S1) });
    assert_eq!(appended(&a), vec![(Ballot(2), Decree(1)), (Ballot(2), Decree(2))], "re-proposed + marker");
    assert!(sends(&a).is_empty());
    assert!(!s.is_serving(T0), "not before reconciliation");
    let a = h(&mut s, T0, Event::ClientWrite { req: 9, op: set("y") });
    assert!(matches!(&a[..], [Action::Refuse { not_applied: true, .. }]));
    let a = h(&mut s, T0, Event::Appended { entries: vec![(Ballot(2), Decree(1)), (Ballot(2), Decree(2))] });
    let s2: Vec<_> = sends(&a).into_iter().filter(|(to, _)| *to == S2).collect();
    assert_eq!(s2.len(), 2, "both entries prepared to S2 at ballot 2");
    let a = h(&mut s, T0, Event::Peer { from: S2, msg: ack(2, 2, 1) });
    assert_eq!(applied(&a), vec![Decree(1)]);
    assert!(!s.is_serving(T0), "the reign marker is not committed yet");
    let a = h(&mut s, T0, Event::Peer { from: S2, msg: ack(2, 2, 2) });
    assert_eq!(applied(&a), vec![Decree(2)]);
    assert!(s.is_serving(T0));
}

#[test]
fn a_promoted_secondary_stamps_after_every_timetag_it_held() {
    let mut s = secondary();
    // The old primary's clock ran a minute ahead of ours.
    let mut ahead = entry(1, 1, "x");
    ahead.timetag = Timetag::new(T0 + 60_000, 0, ClusterId::new(1).unwrap(), false);
    h(&mut s, T0, prepare(1, R1, 0, ahead.clone()));
    h(&mut s, T0, Event::Appended { entries: vec![(Ballot(1), Decree(1))] });
    let a = h(&mut s, T0, prepare(1, R1, 1, entry(1, 2, "y")));
    assert_eq!(applied(&a), vec![Decree(1)], "decree 1 committed and left the window");
    h(&mut s, T0, Event::Appended { entries: vec![(Ballot(1), Decree(2))] });
    h(&mut s, T0, Event::Lease { expires_at_ms: T0 + 5_000 });
    let a = h(&mut s, T0, Event::ConfigUpdate { config: cfg(2, S1, &[S2]).with_primary(S1) });
    let marker = a
        .iter()
        .find_map(|x| match x {
            Action::Append { entries } => entries.iter().find(|e| e.decree == Decree(3)).cloned(),
            _ => None,
        })
        .expect("the new reign's marker");
    // Last-writer-wins needs it: a new write must never be older than one already stored.
    assert!(marker.timetag > ahead.timetag, "{} must follow {}", marker.timetag, ahead.timetag);
}

trait WithPrimary {
    fn with_primary(self, p: NodeId) -> Self;
}

impl WithPrimary for PartitionConfig {
    fn with_primary(mut self, p: NodeId) -> Self {
        self.primary = Some(p);
        self
    }
}

#[test]
fn a_restarted_replica_never_leads_again_at_a_ballot_it_may_have_used() {
    let mut r = replica(P);
    open(&mut r, 0, 0, vec![entry(3, 1, "a"), entry(3, 2, "b")]);
    assert_eq!(r.status(), ReplicaStatus::Inactive);
    let a = h(&mut r, T0, Event::ConfigUpdate { config: cfg(3, P, &[S1]) });
    assert!(a.is_empty() && r.status() == ReplicaStatus::Inactive, "ballot 3 may be its old reign");
    let a = h(&mut r, T0, Event::ConfigUpdate { config: cfg(4, P, &[S1]) });
    assert_eq!(r.status(), ReplicaStatus::Primary);
    assert_eq!(appended(&a), vec![(Ballot(4), Decree(1)), (Ballot(4), Decree(2)), (Ballot(4), Decree(3))]);
}

#[test]
fn a_silent_secondary_is_proposed_for_removal_until_removed() {
    let mut r = primary_waiting_for_s2();
    let a = h(&mut r, T0 + 2_500, Event::Tick);
    let resent: Vec<NodeId> = sends(&a)
        .into_iter()
        .filter(|(_, m)| matches!(m, PeerMessage::Prepare { .. }))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(resent, vec![S2], "only the member that did not ack");
    let proposals: Vec<_> = a.iter().filter(|x| matches!(x, Action::Propose { .. })).collect();
    assert_eq!(
        proposals,
        vec![&Action::Propose { gpid: G, ballot: Ballot(1), change: ConfigChange::RemoveSecondary(S2) }]
    );
    let a = h(&mut r, T0 + 2_800, Event::Tick);
    assert!(!a.iter().any(|x| matches!(x, Action::Propose { .. })), "not again within the retry interval");
    let a = h(&mut r, T0 + 3_600, Event::Tick);
    assert!(a.iter().any(|x| matches!(x, Action::Propose { .. })), "again, in case it was lost or refused");
    // The configuration manager removes S2: the write commits with S1 alone.
    let a = h(&mut r, T0 + 5_000, Event::ConfigUpdate { config: cfg(2, P, &[S1]) });
    assert_eq!(applied(&a), vec![Decree(2)]);
}

#[test]
fn a_learner_catches_up_then_the_primary_asks_to_add_it() {
    let mut p = active_primary();
    h(&mut p, T0, Event::ConfigUpdate { config: cfg(2, P, &[S1]) });
    let a = h(&mut p, T0, Event::AddLearner { config: cfg(2, P, &[S1]), learner: L });
    assert!(matches!(sends(&a)[..], [(L, PeerMessage::LearnInvite { .. })]));
    let invite = sends(&a)[0].1.clone();

    let mut l = replica(L);
    open(&mut l, 0, 0, vec![entry(1, 1, "garbage")]);
    let a = h(&mut l, T0, Event::Peer { from: P, msg: invite });
    assert_eq!(a[0], Action::ResetLog, "a learner empties its log first");
    assert!(matches!(sends(&a)[..], [(P, PeerMessage::LearnRequest { applied: Decree(0), .. })]));
    let a = h(
        &mut p,
        T0,
        Event::Peer { from: L, msg: PeerMessage::LearnRequest { ballot: Ballot(2), applied: Decree(0) } },
    );
    let Action::SendLearnResponse { through, committed, config, reign, .. } = &a[0] else { panic!("{a:?}") };
    assert_eq!((*through, *committed), (Decree(1), Decree(1)));
    // A write happens meanwhile: the learner gets its prepare but must not ack yet.
    let w = h(&mut p, T0, Event::ClientWrite { req: 1, op: set("k") });
    let to_l = sends(&w).into_iter().find(|(to, _)| *to == L).expect("prepares go to learners").1.clone();
    let a = h(&mut l, T0, Event::Peer { from: P, msg: to_l });
    h(&mut l, T0, Event::Appended { entries: appended(&a) });
    let marker = LogEntry {
        ballot: Ballot(1),
        decree: Decree(1),
        timetag: Timetag::ZERO,
        mutation: Mutation::default(),
    };
    let resp = PeerMessage::LearnResponse {
        config: config.clone(),
        reign: *reign,
        committed: Decree(1),
        through: Decree(1),
        checkpoint: None,
        entries: vec![marker],
    };
    let a = h(&mut l, T0, Event::Peer { from: P, msg: resp });
    assert_eq!(appended(&a), vec![(Ballot(1), Decree(1))]);
    assert!(sends(&a).is_empty(), "nothing acknowledged before learning is complete");
    let a = h(&mut l, T0, Event::Appended { entries: vec![(Ballot(1), Decree(1))] });
    assert_eq!(applied(&a), vec![Decree(1)]);
    let msgs = sends(&a);
    assert!(matches!(msgs[0], (P, PeerMessage::LearnAck { through: Decree(2), .. })), "{msgs:?}");
    assert!(matches!(msgs[1], (P, PeerMessage::PrepareAck { decree: Decree(2), .. })));
    let ack2 = msgs[1].1.clone();
    h(&mut p, T0, Event::Appended { entries: vec![(Ballot(1), Decree(2))] });
    h(&mut p, T0, Event::Peer { from: S1, msg: ack(2, 1, 2) });
    let a = h(&mut p, T0, Event::Peer { from: L, msg: ack2 });
    assert!(
        a.contains(&Action::Propose { gpid: G, ballot: Ballot(2), change: ConfigChange::AddSecondary(L) }),
        "{a:?}"
    );
    // The manager may now make L a secondary (and promote it) at any moment: however long L is
    // quiet, nothing commits without it until a new configuration says otherwise.
    let later = T0 + opts().learn_timeout_ms + 1_000;
    h(&mut p, later, Event::Lease { expires_at_ms: later + 5_000 });
    h(&mut p, later, Event::Tick);
    h(&mut p, later, Event::ClientWrite { req: 2, op: set("k2") });
    h(&mut p, later, Event::Appended { entries: vec![(Ballot(1), Decree(3))] });
    let a = h(&mut p, later, Event::Peer { from: S1, msg: ack(2, 1, 3) });
    assert!(applied(&a).is_empty(), "committed without the joining learner: {a:?}");
    let a = h(&mut p, later, Event::Peer { from: L, msg: ack(2, 1, 3) });
    assert_eq!(applied(&a), vec![Decree(3)]);
    h(&mut l, T0, Event::ConfigUpdate { config: cfg(3, P, &[S1, L]) });
    assert_eq!(l.status(), ReplicaStatus::Secondary);
}

#[test]
fn a_log_failure_stops_the_replica() {
    let mut r = active_primary();
    h(&mut r, T0, Event::ClientWrite { req: 5, op: set("k") });
    let a = h(&mut r, T0, Event::AppendFailed { error: Error::io("append", "disk full") });
    assert!(matches!(&a[..], [Action::Refuse { req: 5, not_applied: false, .. }]), "outcome unknown: {a:?}");
    assert_eq!(r.status(), ReplicaStatus::Error);
    assert_eq!(r.report().status, ReplicaStatus::Error);
}

/// Regression: the error that stopped a replica used to be dropped.
#[test]
fn a_failed_replica_keeps_the_error_that_stopped_it() {
    let mut r = active_primary();
    assert_eq!(r.failure(), None);
    let disk_full = Error::io("append decree 2", "disk full");
    h(&mut r, T0, Event::AppendFailed { error: disk_full.clone() });
    assert_eq!(r.failure(), Some(&disk_full));
    assert!(format!("{r:?}").contains("disk full"), "Debug shows why it stopped");
    // A later failure is a consequence of the first: the first is what is kept.
    h(&mut r, T0, Event::AppendFailed { error: Error::io("append decree 3", "read-only file system") });
    assert_eq!(r.failure(), Some(&disk_full));
    // Nothing but a reopen gets it out of the failed role, so the error stays readable.
    let a = h(&mut r, T0, Event::ConfigUpdate { config: cfg(2, P, &[S1, S2]) });
    assert!(a.is_empty(), "not primary again: {a:?}");
    let prepare = PeerMessage::Prepare {
        config: cfg(3, S1, &[P, S2]),
        reign: Reign { ballot: Ballot(3), base: Decree(1) },
        committed: Decree(1),
        entry: entry(3, 2, "k"),
    };
    let a = h(&mut r, T0, Event::Peer { from: S1, msg: prepare });
    assert!(
        matches!(&sends(&a)[..], [(S1, PeerMessage::PrepareAck { refusal: Some(Refusal::Inactive), .. })]),
        "not a secondary either: {a:?}"
    );
    assert_eq!((r.status(), r.failure()), (ReplicaStatus::Error, Some(&disk_full)));
    open(&mut r, 1, 1, vec![]);
    assert_eq!((r.status(), r.failure()), (ReplicaStatus::Inactive, None));
}

#[test]
fn a_restarted_replica_remembers_ballots_its_log_no_longer_holds() {
    // The reign marker was applied, flushed and garbage-collected from the log: only the store
    // still knows ballot 3 was used.
    let mut r = replica(P);
    open(&mut r, 40, 3, vec![]);
    assert_eq!(r.ballot(), Ballot(3));
    let a = h(&mut r, T0, Event::ConfigUpdate { config: cfg(3, P, &[S1]) });
    assert!(a.is_empty() && r.status() == ReplicaStatus::Inactive);
}

#[test]
fn a_learner_starts_over_when_its_primary_begins_a_new_reign() {
    let mut l = replica(L);
    open(&mut l, 0, 0, vec![]);
    let invite = |reign| Event::Peer {
        from: P,
        msg: PeerMessage::LearnInvite { config: cfg(2, P, &[S1, S2]), reign },
    };
    h(&mut l, T0, invite(R1));
    let resp = PeerMessage::LearnResponse {
        config: cfg(2, P, &[S1, S2]),
        reign: R1,
        committed: Decree(1),
        through: Decree(1),
        checkpoint: None,
        entries: vec![entry(1, 1, "a")],
    };
    h(&mut l, T0, Event::Peer { from: P, msg: resp });
    let a = h(&mut l, T0, Event::Appended { entries: vec![(Ballot(1), Decree(1))] });
    assert_eq!(applied(&a), vec![Decree(1)]);
    // Caught up, it logs a prepare of reign 1 that never commits: the primary restarts and
    // loses it.
    let a = h(&mut l, T0, prepare(2, R1, 1, entry(1, 2, "lost")));
    h(&mut l, T0, Event::Appended { entries: appended(&a) });

    // The restarted primary's new reign wrote another entry at decree 2 and committed through 5.
    let r2 = Reign { ballot: Ballot(2), base: Decree(5) };
    let a = h(&mut l, T0, prepare(2, r2, 5, entry(2, 6, "new")));
    assert!(applied(&a).is_empty(), "decree 2 of reign 1 is not decree 2 of reign 2: {a:?}");
    assert_eq!(l.status(), ReplicaStatus::Inactive);
    // Invited in the new reign, it starts over from an empty log.
    let a = h(&mut l, T0, invite(r2));
    assert_eq!(a[0], Action::ResetLog);
    assert!(matches!(sends(&a)[..], [(P, PeerMessage::LearnRequest { applied: Decree(1), .. })]), "{a:?}");
    assert_eq!(l.status(), ReplicaStatus::Learner);
}

/// A purge horizon from the meta server is logged once, by an active primary, in an entry of
/// its own (replicated like a write); a lower or known one changes nothing, and other roles
/// ignore it.
#[test]
fn an_active_primary_logs_a_newer_purge_horizon_once() {
    let mut r = active_primary();
    let below = Timetag::new(T0 - 60_000, 0, tern_core::ClusterId::new(1).unwrap(), false);
    let a = h(&mut r, T0, Event::PurgeHorizon { below });
    let logged: Vec<_> = a
        .iter()
        .filter_map(|x| match x {
            Action::Append { entries } => Some(entries[0].mutation.purge_below),
            _ => None,
        })
        .collect();
    assert_eq!(logged, vec![Some(below)], "{a:?}");
    assert!(h(&mut r, T0, Event::PurgeHorizon { below }).is_empty(), "already in the window");
    let older = Timetag::new(T0 - 120_000, 0, tern_core::ClusterId::new(1).unwrap(), false);
    assert!(h(&mut r, T0, Event::PurgeHorizon { below: older }).is_empty(), "not newer");
    let mut s = Replica::new(G, S1, opts(), T0);
    h(&mut s, T0, Event::Create { config: cfg(1, P, &[S1, S2]) });
    assert!(h(&mut s, T0, Event::PurgeHorizon { below }).is_empty(), "a secondary does not log it");
}
