use tern_core::{Ballot, ClusterId, Decree, Mutation, Timetag, WriteOp};
use tern_storage::LogEntry;

use super::*;

fn entry(d: u64) -> LogEntry {
    let op = WriteOp::Set { hash_key: vec![d as u8], sort_key: vec![], value: b"v".to_vec(), ttl_secs: 0 };
    LogEntry {
        ballot: Ballot(2),
        decree: Decree(d),
        timetag: Timetag::new(1_000 + d, 0, ClusterId::new(1).unwrap(), false),
        mutation: Mutation::new(vec![op]),
    }
}

fn started(confirmed: u64) -> LinkProgress {
    LinkProgress { started: true, confirmed: Decree(confirmed) }
}

#[test]
fn the_floor_is_the_first_decree_the_slowest_link_has_not_confirmed() {
    let r = DupRules::default();
    assert_eq!(r.log_floor(true, []), None, "no link: nothing held back");
    assert_eq!(r.log_floor(true, [started(7)]), Some(Decree(8)));
    assert_eq!(r.log_floor(true, [started(7), started(3)]), Some(Decree(4)));
    assert_eq!(r.log_floor(true, [started(7), LinkProgress::default()]), Some(Decree::ZERO), "not started");
    assert_eq!(r.log_floor(false, []), Some(Decree::ZERO), "links not heard yet: keep everything");
}

#[test]
fn gc_cuts_below_both_the_durable_decree_and_the_floor() {
    let r = DupRules::default();
    assert_eq!(r.gc_below(Decree(10), None), Decree(11));
    assert_eq!(r.gc_below(Decree(10), Some(Decree(4))), Decree(4));
    assert_eq!(r.gc_below(Decree(10), Some(Decree(40))), Decree(11));
}

#[test]
fn a_reset_or_checkpoint_keeps_the_floor_through_its_decree() {
    let r = DupRules::default();
    assert_eq!(r.needed_range(None, Decree(9)), None);
    assert_eq!(r.needed_range(Some(Decree(4)), Decree(9)), Some((Decree(4), Decree(9))));
    assert_eq!(r.needed_range(Some(Decree::ZERO), Decree(9)), Some((Decree(1), Decree(9))));
    assert_eq!(r.needed_range(Some(Decree(10)), Decree(9)), None, "all shipped");
    let read = vec![entry(3), entry(4), entry(4), entry(5), entry(9), entry(10)];
    let kept: Vec<u64> = r.select(read, (Decree(4), Decree(9))).iter().map(|e| e.decree.0).collect();
    assert_eq!(kept, vec![4, 5, 9], "in range, once each, in order");
}

#[test]
fn carried_entries_through_the_checkpoint_join_the_learners_log() {
    let r = DupRules::default();
    let kept: Vec<u64> = r
        .carried_to_append(vec![entry(5), entry(6), entry(7)], Decree(6))
        .iter()
        .map(|e| e.decree.0)
        .collect();
    assert_eq!(kept, vec![5, 6]);
}

#[test]
fn progress_counts_only_from_the_current_primary_and_only_grows() {
    use tern_core::{Gpid, NodeId, PartitionConfig};
    let config = PartitionConfig {
        gpid: Gpid::new(1, 0),
        ballot: Ballot(4),
        primary: Some(NodeId(2)),
        secondaries: vec![],
    };
    assert!(report_counts(&config, NodeId(2), Ballot(4)));
    assert!(!report_counts(&config, NodeId(3), Ballot(4)), "not the primary");
    assert!(!report_counts(&config, NodeId(2), Ballot(3)), "an older reign");
    let p = LinkProgress::default().after_report(Decree(9));
    assert_eq!(p, started(9));
    assert_eq!(p.after_report(Decree(5)), started(9), "a late report of an older decree");
    assert_eq!(p.after_report(Decree(12)), started(12));
}
