use super::*;
use crate::state::Command;

fn state_with_table(partitions: u32) -> MetaState {
    let mut s = MetaState::default();
    s.apply(&Command::CreateTable { name: "t".into(), partitions, replicas: 3 });
    s
}

/// [`state_with_table`] with link 1, from `t` to table `t` of cluster `b`.
fn state_with_link(partitions: u32) -> MetaState {
    let mut s = state_with_table(partitions);
    added(add(&mut s, new_link("b", "t")));
    s
}

fn new_link(remote_cluster: &str, remote_table: &str) -> NewLink {
    NewLink {
        table: 1,
        table_name: "t".into(),
        remote_cluster: remote_cluster.into(),
        remote_cluster_id: 2,
        remote_metas: vec!["10.0.0.1:34601".into()],
        remote_table: remote_table.into(),
        mode: LinkMode::OneWay,
        status: LinkStatus::Shipping,
        max_bytes_per_sec: 0,
        created_at_ms: 7,
    }
}

fn add(s: &mut MetaState, link: NewLink) -> Response {
    s.apply(&Command::AddLink { link })
}

fn added(r: Response) -> LinkRecord {
    match r {
        Response::Link(l) => *l,
        other => panic!("expected a link, got {other:?}"),
    }
}

fn refused(r: Response) -> String {
    match r {
        Response::Refused(why) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn change(s: &mut MetaState, id: u64, change: LinkChange) -> Response {
    s.apply(&Command::ChangeLink { id, change })
}

fn update(link: u64, partition: u32, node: u64, confirmed: u64, conflicts: u64) -> ProgressUpdate {
    ProgressUpdate {
        link,
        partition,
        node,
        confirmed,
        conflicts,
        overwritten: 0,
        conflicts_dropped: 0,
        new_conflicts: vec![],
        replicated_up_to: 0,
    }
}

fn conflict(n: u64) -> ConflictRecord {
    ConflictRecord {
        hash_key: format!("h{n}").into_bytes(),
        sort_key: b"s".to_vec(),
        incoming: n,
        stored: n + 1,
        kind: ConflictKind::ShippedLost,
    }
}

fn record(s: &mut MetaState, updates: Vec<ProgressUpdate>, journal: u32) {
    assert_eq!(s.apply(&Command::RecordDupProgress { updates, journal }), Response::Done);
}

#[test]
fn a_link_gets_an_id_and_one_unstarted_slot_per_partition() {
    let mut s = state_with_table(4);
    let l = added(add(&mut s, new_link("b", "t")));
    assert_eq!(l.id, 1);
    assert_eq!(l.confirmed, vec![0; 4]);
    assert_eq!(l.started, vec![false; 4]);
    assert_eq!(l.partition_conflicts.len(), 4);
    assert_eq!(s.links[&1], l);
    assert_eq!(added(add(&mut s, new_link("c", "t"))).id, 2, "a table may have links to several clusters");
    assert_eq!(added(add(&mut s, new_link("b", "t2"))).id, 3, "or to several tables of one cluster");
}

#[test]
fn a_second_link_to_the_same_remote_table_is_refused_until_the_first_is_removed() {
    let mut s = state_with_link(2);
    let why = refused(add(&mut s, new_link("b", "t")));
    assert!(why.contains("already has link 1"), "{why}");
    added(change(&mut s, 1, LinkChange::Remove));
    assert_eq!(added(add(&mut s, new_link("b", "t"))).id, 2);
}

#[test]
fn a_link_needs_a_serving_table() {
    let mut s = state_with_table(2);
    s.apply(&Command::DropTable { name: "t".into(), at_ms: 1 });
    assert!(refused(add(&mut s, new_link("b", "t"))).contains("no serving table"));
    let mut other = new_link("b", "t");
    other.table = 9;
    let mut s = state_with_table(2);
    assert!(refused(add(&mut s, other)).contains("no serving table"));
}

#[test]
fn status_machine_allows_only_its_transitions() {
    use LinkStatus::*;
    let all = [Init, SyncingCheckpoint, Shipping, Paused, Removed];
    let allowed = [
        (Init, SyncingCheckpoint),
        (Init, Shipping),
        (SyncingCheckpoint, Shipping),
        (Shipping, Paused),
        (Paused, Shipping),
        (Init, Removed),
        (SyncingCheckpoint, Removed),
        (Shipping, Removed),
        (Paused, Removed),
    ];
    for from in all {
        for to in all {
            let expected = from == to || allowed.contains(&(from, to));
            assert_eq!(from.can_become(to), expected, "{from} → {to}");
        }
    }
}

#[test]
fn pause_resume_remove_and_throttle() {
    let mut s = state_with_link(2);
    assert_eq!(added(change(&mut s, 1, LinkChange::Pause)).status, LinkStatus::Paused);
    assert_eq!(added(change(&mut s, 1, LinkChange::Pause)).status, LinkStatus::Paused, "a retry is a no-op");
    let l = added(change(&mut s, 1, LinkChange::SetThrottle { max_bytes_per_sec: 1 << 20 }));
    assert_eq!((l.status, l.max_bytes_per_sec), (LinkStatus::Paused, 1 << 20));
    assert_eq!(added(change(&mut s, 1, LinkChange::Resume)).status, LinkStatus::Shipping);
    assert_eq!(added(change(&mut s, 1, LinkChange::Remove)).status, LinkStatus::Removed);
    assert_eq!(added(change(&mut s, 1, LinkChange::Remove)).status, LinkStatus::Removed);
    for c in [LinkChange::Resume, LinkChange::Pause, LinkChange::SetThrottle { max_bytes_per_sec: 1 }] {
        let why = refused(change(&mut s, 1, c));
        assert!(why.contains("removed, which is final"), "{why}");
    }
    assert!(refused(change(&mut s, 42, LinkChange::Pause)).contains("no duplication link 42"));
}

#[test]
fn a_link_that_is_not_shipping_cannot_be_paused() {
    let mut s = state_with_table(1);
    let mut init = new_link("b", "t");
    init.status = LinkStatus::Init;
    added(add(&mut s, init));
    let why = refused(change(&mut s, 1, LinkChange::Pause));
    assert!(why.contains("link 1 is init: it cannot become paused"), "{why}");
    // Resuming an init link would skip its checkpoint: refused too.
    assert!(refused(change(&mut s, 1, LinkChange::Resume)).contains("cannot become shipping"));
}

#[test]
fn confirmed_decrees_only_move_forward_and_mark_the_partition_started() {
    let mut s = state_with_link(3);
    record(&mut s, vec![update(1, 0, 5, 10, 0), update(1, 2, 6, 0, 0)], 100);
    assert_eq!(s.links[&1].confirmed, vec![10, 0, 0]);
    assert_eq!(s.links[&1].started, vec![true, false, true]);
    // An older report (a retry, a lagging primary) does not move it back.
    record(&mut s, vec![update(1, 0, 5, 4, 0)], 100);
    assert_eq!(s.links[&1].confirmed[0], 10);
    record(&mut s, vec![update(1, 0, 5, 12, 0)], 100);
    assert_eq!(s.links[&1].confirmed[0], 12);
}

#[test]
fn progress_on_unknown_partitions_or_links_and_on_removed_links_changes_nothing() {
    let mut s = state_with_link(2);
    added(add(&mut s, new_link("c", "t")));
    added(change(&mut s, 2, LinkChange::Remove));
    let before = s.clone();
    let updates = vec![update(1, 2, 5, 10, 0), update(9, 0, 5, 10, 0), update(2, 0, 5, 10, 3)];
    for u in &updates {
        assert!(!s.links.get(&u.link).is_some_and(|l| l.progress_changes(u)));
    }
    record(&mut s, updates, 100);
    assert_eq!(s, before);
}

#[test]
fn a_paused_link_still_records_what_was_confirmed() {
    let mut s = state_with_link(1);
    added(change(&mut s, 1, LinkChange::Pause));
    record(&mut s, vec![update(1, 0, 5, 3, 0)], 100);
    assert_eq!(s.links[&1].confirmed[0], 3);
}

#[test]
fn only_changes_are_worth_writing() {
    let mut s = state_with_link(1);
    let u = update(1, 0, 5, 3, 0);
    assert!(s.links[&1].progress_changes(&u), "not started yet");
    record(&mut s, vec![u.clone()], 100);
    assert!(!s.links[&1].progress_changes(&u), "the same report again");
    assert!(!s.links[&1].progress_changes(&update(1, 0, 5, 2, 0)), "an older confirmed decree");
    assert!(s.links[&1].progress_changes(&update(1, 0, 5, 4, 0)));
    assert!(s.links[&1].progress_changes(&update(1, 0, 5, 3, 1)), "a conflict");
    assert!(s.links[&1].progress_changes(&update(1, 0, 6, 3, 0)), "another primary");
    let mut with_journal = u;
    with_journal.new_conflicts.push(conflict(1));
    assert!(s.links[&1].progress_changes(&with_journal));
}

#[test]
fn conflicts_count_the_growth_of_each_primarys_counter() {
    let mut s = state_with_link(2);
    record(&mut s, vec![update(1, 0, 5, 1, 2), update(1, 1, 6, 1, 1)], 100);
    assert_eq!(s.links[&1].conflicts_total, 3);
    // The same primary reports its count again, then a larger one: only the growth counts.
    record(&mut s, vec![update(1, 0, 5, 1, 2)], 100);
    record(&mut s, vec![update(1, 0, 5, 1, 5)], 100);
    assert_eq!(s.links[&1].conflicts_total, 6);
    // A new primary counts from zero.
    record(&mut s, vec![update(1, 0, 7, 1, 1)], 100);
    assert_eq!(s.links[&1].conflicts_total, 7);
    // The same node after a restart (its count went down) counts from zero too.
    record(&mut s, vec![update(1, 0, 7, 1, 0), update(1, 0, 7, 1, 0)], 100);
    record(&mut s, vec![update(1, 1, 6, 1, 0), update(1, 1, 6, 1, 2)], 100);
    assert_eq!(s.links[&1].conflicts_total, 9);
    let per_partition: Vec<u64> = s.links[&1].partition_conflicts.iter().map(|c| c.total).collect();
    assert_eq!(per_partition, vec![6, 3]);
}

#[test]
fn the_conflict_journal_keeps_the_last_n() {
    let mut s = state_with_link(1);
    for round in 0..4u64 {
        let mut u = update(1, 0, 5, 1, (round + 1) * 3);
        u.new_conflicts = (round * 3..round * 3 + 3).map(conflict).collect();
        record(&mut s, vec![u], 5);
    }
    let l = &s.links[&1];
    assert_eq!(l.conflicts_total, 12);
    let kept: Vec<u64> = l.recent_conflicts.iter().map(|c| c.incoming).collect();
    assert_eq!(kept, vec![7, 8, 9, 10, 11], "oldest first, the newest kept");
    // A smaller bound (the option lowered) trims at the next record.
    let mut u = update(1, 0, 5, 1, 13);
    u.new_conflicts = vec![conflict(12)];
    record(&mut s, vec![u], 2);
    let kept: Vec<u64> = s.links[&1].recent_conflicts.iter().map(|c| c.incoming).collect();
    assert_eq!(kept, vec![11, 12]);
}

#[test]
fn dropping_a_table_keeps_its_links() {
    let mut s = state_with_link(1);
    assert_eq!(s.link_table_status(&s.links[&1]), "serving");
    s.apply(&Command::DropTable { name: "t".into(), at_ms: 1 });
    assert_eq!(s.link_table_status(&s.links[&1]), "dropped");
    assert_eq!(s.links[&1].status, LinkStatus::Shipping);
    s.apply(&Command::PurgeTable { id: 1 });
    assert_eq!(s.link_table_status(&s.links[&1]), "purged");
    assert_eq!(added(change(&mut s, 1, LinkChange::Remove)).status, LinkStatus::Removed);
}

#[test]
fn state_persisted_before_links_existed_still_loads() {
    let s = state_with_table(2);
    let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
    let obj = json.as_object_mut().unwrap();
    obj.remove("links");
    obj.remove("next_link_id");
    let back: MetaState = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn links_survive_a_snapshot_round_trip() {
    let mut s = state_with_link(2);
    let mut u = update(1, 1, 5, 9, 1);
    u.new_conflicts = vec![conflict(3)];
    record(&mut s, vec![u], 10);
    let json = serde_json::to_vec(&s).unwrap();
    assert_eq!(serde_json::from_slice::<MetaState>(&json).unwrap(), s);
}

#[test]
fn a_full_sync_link_ships_once_every_partition_has_copied_its_records() {
    let mut s = state_with_table(2);
    let l = added(add(&mut s, NewLink { status: LinkStatus::SyncingCheckpoint, ..new_link("b", "t") }));
    assert!(refused(change(&mut s, l.id, LinkChange::Pause)).contains("syncing-checkpoint"));
    record(&mut s, vec![update(l.id, 0, 9, 40, 0)], 10);
    assert_eq!(s.links[&l.id].status, LinkStatus::SyncingCheckpoint, "partition 1 is still copying");
    record(&mut s, vec![update(l.id, 1, 9, 12, 0)], 10);
    let l = &s.links[&l.id];
    assert_eq!(l.status, LinkStatus::Shipping);
    assert_eq!((l.confirmed.clone(), l.started.clone()), (vec![40, 12], vec![true, true]));
}

#[test]
fn both_kinds_of_conflict_and_journal_drops_are_counted_from_each_primarys_running_counts() {
    let mut s = state_with_table(2);
    added(add(&mut s, new_link("b", "t")));
    let mut u = update(1, 0, 5, 3, 4);
    u.overwritten = 1;
    u.conflicts_dropped = 2;
    u.new_conflicts =
        vec![conflict(1), ConflictRecord { kind: ConflictKind::RemoteOverwritten, ..conflict(2) }];
    assert!(s.links[&1].progress_changes(&u));
    record(&mut s, vec![u.clone()], 10);
    let l = &s.links[&1];
    assert_eq!((l.conflicts_total, l.overwritten_total, l.conflicts_dropped), (4, 1, 2));
    let kinds: Vec<ConflictKind> = l.recent_conflicts.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ConflictKind::ShippedLost, ConflictKind::RemoteOverwritten]);
    // Only a count that moved is worth writing; the same node's growth adds, another's count
    // starts from zero.
    let same = ProgressUpdate { new_conflicts: vec![], ..u.clone() };
    assert!(!s.links[&1].progress_changes(&same));
    let grew = ProgressUpdate { overwritten: 3, conflicts: 6, conflicts_dropped: 5, ..same.clone() };
    assert!(s.links[&1].progress_changes(&grew));
    record(&mut s, vec![grew], 10);
    let other = ProgressUpdate { node: 6, overwritten: 1, conflicts: 1, conflicts_dropped: 1, ..same };
    record(&mut s, vec![other], 10);
    let l = &s.links[&1];
    assert_eq!((l.conflicts_total, l.overwritten_total, l.conflicts_dropped), (7, 4, 6));
    let c = l.partition_conflicts[0];
    assert_eq!((c.total, c.overwritten_total, c.dropped_total), (7, 4, 6));
}

/// The serde form of what the second kind of conflict added (alongside `golden_tests.rs`, which
/// pins that state without it serializes as it always has).
#[test]
fn the_second_conflict_kind_and_the_new_counts_serialize_as_pinned() {
    let c = ConflictRecord { kind: ConflictKind::RemoteOverwritten, ..conflict(1) };
    let json = r#"{"hash_key":[104,49],"sort_key":[115],"incoming":1,"stored":2,"kind":"RemoteOverwritten"}"#;
    assert_eq!(serde_json::to_string(&c).unwrap(), json);
    assert_eq!(serde_json::from_str::<ConflictRecord>(json).unwrap(), c);
    let older = r#"{"hash_key":[104,49],"sort_key":[115],"incoming":1,"stored":2}"#;
    assert_eq!(serde_json::from_str::<ConflictRecord>(older).unwrap().kind, ConflictKind::ShippedLost);
    let counter = ConflictCounter {
        node: 1,
        reported: 2,
        total: 3,
        overwritten_reported: 4,
        overwritten_total: 5,
        dropped_reported: 6,
        dropped_total: 7,
    };
    let json = r#"{"node":1,"reported":2,"total":3,"overwritten_reported":4,"overwritten_total":5,"dropped_reported":6,"dropped_total":7}"#;
    assert_eq!(serde_json::to_string(&counter).unwrap(), json);
    assert_eq!(serde_json::from_str::<ConflictCounter>(json).unwrap(), counter);
}
