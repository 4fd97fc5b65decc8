//! The conformance suite of [`MutationLog`]s. A log runs it with
//! `tern_storage::mutation_log_conformance!(harness_expression);`.

use std::path::Path;

use tern_core::{Ballot, ClusterId, Decree, Mutation, Timetag, WriteOp};

use crate::log::{LogEntry, MutationLog, Recovery};

/// How the suite opens and crashes logs of one implementation.
pub trait LogHarness {
    type Log: MutationLog;

    /// Opens the log in `dir` (created if missing), recovering whatever is there.
    fn open(&self, dir: &Path) -> (Self::Log, Recovery);

    /// A power loss: appends that were not synced are lost, except that up to `torn_bytes` of
    /// the unsynced tail may survive, torn (logs without a byte-level format ignore it).
    fn power_loss(&self, log: Self::Log, torn_bytes: u64);
}

#[macro_export]
macro_rules! mutation_log_conformance {
    ($harness:expr) => {
        $crate::mutation_log_conformance!(@cases $harness;
            append_read_sync_reopen, unsynced_appends_are_lost_synced_survive,
            torn_appends_recover_a_prefix, higher_ballot_replaces_a_decree,
            decrees_may_arrive_out_of_order, read_honours_from_and_max, gc_keeps_everything_at_or_above,
            gc_leaves_no_hole, reset_is_durable);
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::log_conformance::$case(&$harness);
            }
        )*
    };
}

/// A log entry whose mutation identifies it: `set h{decree} s = v{ballot}.{decree}`.
pub fn entry(ballot: u64, decree: u64) -> LogEntry {
    LogEntry {
        ballot: Ballot(ballot),
        decree: Decree(decree),
        timetag: Timetag::new(1_767_225_600_000 + decree, 0, ClusterId::new(1).unwrap(), false),
        mutation: Mutation::new(vec![WriteOp::Set {
            hash_key: format!("h{decree}").into_bytes(),
            sort_key: b"s".to_vec(),
            value: format!("v{ballot}.{decree}").into_bytes(),
            ttl_secs: 0,
        }]),
    }
}

fn entries(ballot: u64, decrees: std::ops::RangeInclusive<u64>) -> Vec<LogEntry> {
    decrees.map(|d| entry(ballot, d)).collect()
}

fn all<L: MutationLog>(log: &L) -> Vec<LogEntry> {
    log.read(Decree(0), usize::MAX).unwrap()
}

/// Appends decrees `1..=10 * tens` at ballot 1, ten at a time, syncing after each ten.
fn append_synced_tens<L: MutationLog>(log: &mut L, tens: u64) {
    for ten in 0..tens {
        log.append(&entries(1, ten * 10 + 1..=ten * 10 + 10)).unwrap();
        log.sync().unwrap();
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn append_read_sync_reopen<H: LogHarness>(h: &H) {
    let d = tmp();
    let (mut log, rec) = h.open(d.path());
    assert_eq!(rec.records, 0);
    assert_eq!(log.decree_range(), None);
    log.append(&entries(1, 1..=100)).unwrap();
    assert_eq!(all(&log), entries(1, 1..=100), "readable before sync");
    log.sync().unwrap();
    drop(log);
    let (log, rec) = h.open(d.path());
    assert_eq!(rec.records, 100);
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(all(&log), entries(1, 1..=100));
    assert_eq!(log.decree_range(), Some((Decree(1), Decree(100))));
}

pub fn unsynced_appends_are_lost_synced_survive<H: LogHarness>(h: &H) {
    let d = tmp();
    let (mut log, _) = h.open(d.path());
    log.append(&entries(1, 1..=10)).unwrap();
    log.sync().unwrap();
    log.append(&entries(1, 11..=20)).unwrap();
    h.power_loss(log, 0);
    let (mut log, _) = h.open(d.path());
    assert_eq!(all(&log), entries(1, 1..=10));
    // The log goes on after recovery.
    log.append(&entries(1, 11..=12)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = h.open(d.path());
    assert_eq!(all(&log), entries(1, 1..=12));
}

pub fn torn_appends_recover_a_prefix<H: LogHarness>(h: &H) {
    // A crash in the middle of an append: whatever survives of the unsynced tail, recovery
    // yields every synced entry plus some whole unsynced ones, in order, and nothing damaged.
    let one = crate::log::encode_record(&entry(1, 1)).unwrap().len() as u64;
    for torn in [1, 7, 8, 9, one - 1, one, one + 3, 2 * one + 5, 10 * one] {
        let d = tmp();
        let (mut log, _) = h.open(d.path());
        log.append(&entries(1, 1..=5)).unwrap();
        log.sync().unwrap();
        log.append(&entries(1, 6..=9)).unwrap();
        h.power_loss(log, torn);
        let (mut log, rec) = h.open(d.path());
        let got = all(&log);
        assert!(got.len() >= 5 && got.len() <= 9, "torn={torn}: {} entries", got.len());
        assert_eq!(got, entries(1, 1..=got.len() as u64), "torn={torn}");
        assert_eq!(rec.records, got.len() as u64);
        if rec.truncated_bytes > 0 {
            assert!(rec.truncation_reason.is_some(), "a truncation is reported with its reason");
        }
        // Appending after a torn tail works and survives.
        let next = got.len() as u64 + 1;
        log.append(&[entry(2, next)]).unwrap();
        log.sync().unwrap();
        drop(log);
        let (log, rec) = h.open(d.path());
        assert_eq!(rec.truncated_bytes, 0, "torn={torn}: the second recovery is clean");
        assert_eq!(all(&log).last(), Some(&entry(2, next)));
    }
}

pub fn higher_ballot_replaces_a_decree<H: LogHarness>(h: &H) {
    let d = tmp();
    let (mut log, _) = h.open(d.path());
    log.append(&entries(1, 1..=6)).unwrap();
    log.append(&[entry(2, 5), entry(2, 6), entry(2, 7)]).unwrap();
    log.sync().unwrap();
    let want = [entries(1, 1..=4), entries(2, 5..=7)].concat();
    assert_eq!(all(&log), want);
    drop(log);
    let (log, _) = h.open(d.path());
    assert_eq!(all(&log), want, "replacement survives recovery");
}

pub fn decrees_may_arrive_out_of_order<H: LogHarness>(h: &H) {
    let d = tmp();
    let (mut log, _) = h.open(d.path());
    log.append(&[entry(1, 3), entry(1, 1), entry(1, 2), entry(1, 5)]).unwrap();
    log.sync().unwrap();
    let want = vec![entry(1, 1), entry(1, 2), entry(1, 3), entry(1, 5)];
    assert_eq!(all(&log), want, "ascending, with the gap at 4");
    drop(log);
    let (log, _) = h.open(d.path());
    assert_eq!(all(&log), want);
}

pub fn read_honours_from_and_max<H: LogHarness>(h: &H) {
    let d = tmp();
    let (mut log, _) = h.open(d.path());
    log.append(&entries(1, 1..=50)).unwrap();
    assert_eq!(log.read(Decree(45), 100).unwrap(), entries(1, 45..=50));
    assert_eq!(log.read(Decree(10), 3).unwrap(), entries(1, 10..=12));
    assert_eq!(log.read(Decree(51), 10).unwrap(), vec![]);
}

pub fn gc_keeps_everything_at_or_above<H: LogHarness>(h: &H) {
    let d = tmp();
    let (mut log, _) = h.open(d.path());
    append_synced_tens(&mut log, 20);
    log.gc_below(Decree(95)).unwrap();
    let left = all(&log);
    assert_eq!(left.last().unwrap().decree, Decree(200));
    assert!(left.first().unwrap().decree <= Decree(95), "nothing at or above 95 is dropped");
    assert_eq!(log.read(Decree(95), usize::MAX).unwrap(), entries(1, 95..=200));
    drop(log);
    let (log, _) = h.open(d.path());
    assert_eq!(log.read(Decree(95), usize::MAX).unwrap(), entries(1, 95..=200));
}

/// Decrees re-appended later (a new primary re-proposes its window) survive the GC of the
/// segments holding their neighbours: they must not stay readable on their own, or the log would
/// seem to reach back to them with a hole above (found by the simulator).
pub fn gc_leaves_no_hole<H: LogHarness>(h: &H) {
    let d = tmp();
    let (mut log, _) = h.open(d.path());
    append_synced_tens(&mut log, 10);
    log.append(&entries(2, 20..=25)).unwrap();
    log.append(&entries(2, 101..=110)).unwrap();
    log.sync().unwrap();
    log.gc_below(Decree(60)).unwrap();
    let left: Vec<u64> = all(&log).iter().map(|e| e.decree.0).collect();
    let first = left[0];
    assert!(first <= 60, "nothing at or above 60 is dropped: {left:?}");
    assert_eq!(left, (first..=110).collect::<Vec<_>>(), "no hole");
    assert_eq!(log.decree_range(), Some((Decree(first), Decree(110))));
}

pub fn reset_is_durable<H: LogHarness>(h: &H) {
    let d = tmp();
    let (mut log, _) = h.open(d.path());
    log.append(&entries(1, 1..=30)).unwrap();
    log.sync().unwrap();
    log.reset().unwrap();
    assert_eq!(log.decree_range(), None);
    h.power_loss(log, 0);
    let (mut log, _) = h.open(d.path());
    assert_eq!(all(&log), vec![], "a reset survives a power loss");
    log.append(&entries(3, 500..=502)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = h.open(d.path());
    assert_eq!(all(&log), entries(3, 500..=502));
}
