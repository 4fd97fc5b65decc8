//! The conformance suite of [`PartitionStore`] back ends. A back end runs it with
//! `tern_storage::partition_store_conformance!(harness_expression, model_cases = N);` in its
//! tests, which expands to one `#[test]` per case and the model test (`model`).

use std::ops::Bound;

use tern_core::mutation::{
    CamOp, Check, CheckAndMutate, CheckAndSet, CheckOutcome, CheckType, IncrTtl, WriteOutcome,
};
use tern_core::read::{KeyFilter, MultiGet, ReadLimits, SortKeyScan, TableScan, Ttl};
use tern_core::{Ballot, Clock, Decree, ErrorCode, ManualClock, Mutation, Timetag, WriteOp};

use super::{StoreHarness, apply_next, del, put_from, scan_table_pages, set, set_ttl, timetag_now};
use crate::store::{AppliedMark, ApplyEntry, PartitionStore};

/// Expands to one `#[test]` per conformance case for the harness built by `$harness`, and to
/// `store_matches_the_model`, which checks `model_cases` random sequences of actions against the
/// reference model.
#[macro_export]
macro_rules! partition_store_conformance {
    ($harness:expr, model_cases = $cases:expr) => {
        $crate::partition_store_conformance!(@model $harness; $cases);
        $crate::partition_store_conformance!(@cases $harness;
            set_get_del, decrees_apply_in_sequence, batch_reads_its_own_writes,
            refused_op_writes_nothing_and_others_proceed, multi_set_multi_del_multi_get,
            scan_ranges_filters_and_reverse, scan_pages_cover_everything_once, incr_semantics,
            check_types_truth_table, check_and_set_and_mutate, ttl_and_expiry,
            apply_uses_the_timetag_for_ttl, sort_key_count_counts_live_records,
            table_scan_pages, reopen_keeps_data_and_decree, flush_advances_durable_decree,
            crash_keeps_only_flushed_state, checkpoint_and_open, corrupt_values_are_typed_errors,
            oversized_hash_key_is_refused_at_apply, read_limits_are_validated,
            applied_timetag_is_the_largest_and_survives, a_late_old_timetag_never_moves_now_back,
            a_re_proposed_old_write_loses_to_a_newer_record, the_applied_timetag_bounds_every_record);
    };
    (@model $harness:expr; $cases:expr) => {
        $crate::testing::proptest::proptest! {
            #![proptest_config($crate::testing::proptest::prelude::ProptestConfig {
                cases: $cases,
                ..$crate::testing::proptest::prelude::ProptestConfig::default()
            })]
            /// The store behaves like the `BTreeMap` model under random sequences of every
            /// operation, with TTLs driven by an injected clock, reopens and checkpoint restores.
            #[test]
            fn store_matches_the_model(actions in $crate::testing::model::actions()) {
                let dir = $crate::testing::tempfile::tempdir().expect("create temp dir");
                $crate::testing::model::run(&$harness, dir.path(), &actions);
            }
        }
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::conformance::$case(&$harness);
            }
        )*
    };
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

fn keys(sks: &[&[u8]]) -> MultiGet {
    MultiGet::Keys {
        sort_keys: sks.iter().map(|s| s.to_vec()).collect(),
        no_value: false,
        limits: ReadLimits::default(),
    }
}

fn sks(records: &[tern_core::read::SortKeyValue]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.sort_key.clone()).collect()
}

fn v(s: &[&[u8]]) -> Vec<Vec<u8>> {
    s.iter().map(|x| x.to_vec()).collect()
}

/// Panics unless `out` is a refusal with `code` whose message contains `says`.
#[track_caller]
fn assert_refused(out: &WriteOutcome, code: ErrorCode, says: &str) {
    match out {
        WriteOutcome::Failed(e) => {
            assert_eq!(e.code(), code, "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
        other => panic!("expected a refusal with {code:?}, got {other:?}"),
    }
}

/// A timetag stamped now and one stamped after the clock moved `ms` on.
fn old_and_newer(clock: &ManualClock, ms: u64) -> (Timetag, Timetag) {
    let old = timetag_now(clock, 1);
    clock.advance_ms(ms);
    (old, timetag_now(clock, 2))
}

pub fn set_get_del<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    assert_eq!(s.get(b"h", b"s").unwrap(), None);
    assert_eq!(apply_next(&mut s, h.clock(), vec![set(b"h", b"s", b"v1")]), vec![WriteOutcome::Done]);
    assert_eq!(s.get(b"h", b"s").unwrap(), Some(b"v1".to_vec()));
    apply_next(&mut s, h.clock(), vec![set(b"h", b"s", b"v2"), set(b"h", b"", b"empty-sk")]);
    assert_eq!(s.get(b"h", b"s").unwrap(), Some(b"v2".to_vec()));
    assert_eq!(s.get(b"h", b"").unwrap(), Some(b"empty-sk".to_vec()));
    assert_eq!(s.get(b"", b"s").unwrap(), None, "empty hash key is a different key");
    apply_next(&mut s, h.clock(), vec![del(b"h", b"s"), del(b"h", b"never-there")]);
    assert_eq!(s.get(b"h", b"s").unwrap(), None);
    assert_eq!(s.last_applied_decree(), Decree(3));
}

pub fn decrees_apply_in_sequence<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    let m = Mutation::new(vec![set(b"h", b"s", b"v")]);
    let tt = timetag_now(h.clock(), 0);
    let err = s.apply(Decree(2), tt, &m).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvariantViolated, "{err}");
    assert_eq!(s.last_applied_decree(), Decree(0));
    assert_eq!(s.get(b"h", b"s").unwrap(), None, "a refused batch writes nothing");
    s.apply(Decree(1), tt, &Mutation::default()).unwrap();
    assert_eq!(s.last_applied_decree(), Decree(1), "an empty mutation still takes its decree");
    assert!(s.apply(Decree(1), tt, &m).is_err(), "a decree cannot be applied twice");
    s.apply(Decree(2), tt, &m).unwrap();
    assert_eq!(s.get(b"h", b"s").unwrap(), Some(b"v".to_vec()));
}

pub fn batch_reads_its_own_writes<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    let tt = timetag_now(h.clock(), 0);
    let m1 = Mutation::new(vec![set(b"h", b"n", b"10")]);
    let incr =
        |delta| WriteOp::Incr { hash_key: b"h".to_vec(), sort_key: b"n".to_vec(), delta, ttl: IncrTtl::Keep };
    let m2 = Mutation::new(vec![incr(5), incr(1)]);
    let m3 = Mutation::new(vec![incr(100)]);
    let out = s
        .apply_batch(&[
            ApplyEntry { decree: Decree(1), ballot: Ballot(1), timetag: tt, mutation: &m1 },
            ApplyEntry { decree: Decree(2), ballot: Ballot(3), timetag: tt, mutation: &m2 },
            ApplyEntry { decree: Decree(3), ballot: Ballot(2), timetag: tt, mutation: &m3 },
        ])
        .unwrap();
    assert_eq!(
        out,
        vec![
            vec![WriteOutcome::Done],
            vec![WriteOutcome::Incr { new_value: 15 }, WriteOutcome::Incr { new_value: 16 }],
            vec![WriteOutcome::Incr { new_value: 116 }],
        ]
    );
    assert_eq!(s.get(b"h", b"n").unwrap(), Some(b"116".to_vec()));
    assert_eq!(s.last_applied_decree(), Decree(3));
    assert_eq!(s.last_applied_ballot(), Ballot(3), "the largest ballot applied, not the last");
    drop(s);
    assert_eq!(h.open(d.path()).last_applied_ballot(), Ballot(3), "persisted with the data");
}

pub fn refused_op_writes_nothing_and_others_proceed<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    apply_next(&mut s, h.clock(), vec![set(b"h", b"text", b"not a number")]);
    let out = apply_next(
        &mut s,
        h.clock(),
        vec![
            set(b"h", b"a", b"1"),
            WriteOp::Incr {
                hash_key: b"h".to_vec(),
                sort_key: b"text".to_vec(),
                delta: 1,
                ttl: IncrTtl::Clear,
            },
            set(b"h", b"b", b"2"),
        ],
    );
    assert_eq!(out[0], WriteOutcome::Done);
    assert_refused(&out[1], ErrorCode::NotAnInteger, "not a number");
    assert_eq!(out[2], WriteOutcome::Done);
    assert_eq!(s.get(b"h", b"text").unwrap(), Some(b"not a number".to_vec()));
    assert_eq!(s.get(b"h", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(b"h", b"b").unwrap(), Some(b"2".to_vec()));
}

pub fn multi_set_multi_del_multi_get<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    let entries = [(b"c", b"3"), (b"a", b"1"), (b"b", b"2"), (b"d", b"4")]
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    apply_next(&mut s, h.clock(), vec![WriteOp::MultiSet { hash_key: b"h".to_vec(), entries, ttl_secs: 0 }]);
    apply_next(&mut s, h.clock(), vec![set(b"other", b"a", b"x")]);

    let r = s.multi_get(b"h", &keys(&[b"d", b"a", b"zz", b"a"])).unwrap();
    assert_eq!(sks(&r.records), v(&[b"a", b"d"]), "sorted, deduplicated, absent left out");
    assert_eq!(r.records[1].value, b"4".to_vec());
    assert!(r.complete);

    let all = s.multi_get(b"h", &keys(&[])).unwrap();
    assert_eq!(sks(&all.records), v(&[b"a", b"b", b"c", b"d"]), "empty list = whole hash key");

    let limited = MultiGet::Keys {
        sort_keys: v(&[b"a", b"b", b"c"]),
        no_value: true,
        limits: ReadLimits { max_count: Some(2), max_bytes: None },
    };
    let r = s.multi_get(b"h", &limited).unwrap();
    assert_eq!(sks(&r.records), v(&[b"a", b"b"]));
    assert!(r.records.iter().all(|r| r.value.is_empty()), "no_value returns keys only");
    assert!(!r.complete);

    let range = MultiGet::Range(SortKeyScan {
        start: Bound::Included(b"b".to_vec()),
        end: Bound::Excluded(b"d".to_vec()),
        ..SortKeyScan::default()
    });
    let r = s.multi_get(b"h", &range).unwrap();
    assert_eq!(sks(&r.records), v(&[b"b", b"c"]));
    assert!(r.complete);

    apply_next(
        &mut s,
        h.clock(),
        vec![WriteOp::MultiDel { hash_key: b"h".to_vec(), sort_keys: v(&[b"a", b"c", b"nope"]) }],
    );
    let all = s.multi_get(b"h", &keys(&[])).unwrap();
    assert_eq!(sks(&all.records), v(&[b"b", b"d"]));
    assert_eq!(s.get(b"other", b"a").unwrap(), Some(b"x".to_vec()), "other hash keys untouched");
}

pub fn scan_ranges_filters_and_reverse<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    let names: [&[u8]; 6] = [b"", b"a", b"ab", b"abc", b"b", b"bc"];
    apply_next(&mut s, h.clock(), names.iter().map(|k| set(b"h", k, k)).collect());
    apply_next(&mut s, h.clock(), vec![set(b"h\0", b"a", b"x"), set(b"g", b"a", b"x")]);
    let scan = |spec: SortKeyScan| {
        let p = s.scan(b"h", &spec).unwrap();
        assert_eq!(p.resume, None);
        sks(&p.records)
    };
    assert_eq!(scan(SortKeyScan::default()), v(&names));
    assert_eq!(
        scan(SortKeyScan {
            start: Bound::Excluded(b"a".to_vec()),
            end: Bound::Included(b"b".to_vec()),
            ..Default::default()
        }),
        v(&[b"ab", b"abc", b"b"])
    );
    assert_eq!(
        scan(SortKeyScan { reverse: true, end: Bound::Excluded(b"b".to_vec()), ..Default::default() }),
        v(&[b"abc", b"ab", b"a", b""])
    );
    assert_eq!(
        scan(SortKeyScan { filter: Some(KeyFilter::Prefix(b"ab".to_vec())), ..Default::default() }),
        v(&[b"ab", b"abc"])
    );
    assert_eq!(
        scan(SortKeyScan { filter: Some(KeyFilter::Postfix(b"c".to_vec())), ..Default::default() }),
        v(&[b"abc", b"bc"])
    );
    assert_eq!(
        scan(SortKeyScan { filter: Some(KeyFilter::Anywhere(b"b".to_vec())), ..Default::default() }),
        v(&[b"ab", b"abc", b"b", b"bc"])
    );
    assert_eq!(
        scan(SortKeyScan {
            start: Bound::Included(b"z".to_vec()),
            end: Bound::Included(b"a".to_vec()),
            ..Default::default()
        }),
        Vec::<Vec<u8>>::new(),
        "an inverted range is empty"
    );
    let p = s.scan(b"h", &SortKeyScan { no_value: true, ..Default::default() }).unwrap();
    assert!(p.records.iter().all(|r| r.value.is_empty()));
    let p = s.scan(b"h", &SortKeyScan::default()).unwrap();
    assert!(p.records.iter().all(|r| r.value == r.sort_key), "values come back");
}

pub fn scan_pages_cover_everything_once<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    let all: Vec<Vec<u8>> = (0..50u32).map(|i| format!("k{i:03}").into_bytes()).collect();
    apply_next(&mut s, h.clock(), all.iter().map(|k| set(b"h", k, b"0123456789")).collect());
    for reverse in [false, true] {
        for limits in [
            ReadLimits { max_count: Some(7), max_bytes: None },
            ReadLimits { max_count: None, max_bytes: Some(30) },
            ReadLimits { max_count: Some(50), max_bytes: None },
        ] {
            let mut spec = SortKeyScan { reverse, limits, ..SortKeyScan::default() };
            let mut seen = Vec::new();
            let mut pages = 0;
            loop {
                let p = s.scan(b"h", &spec).unwrap();
                pages += 1;
                assert!(!p.records.is_empty(), "no empty pages");
                if let Some(m) = limits.max_count {
                    assert!(p.records.len() <= m as usize);
                }
                seen.extend(sks(&p.records));
                match p.resume {
                    Some(r) => spec = spec.resume_after(&r),
                    None => break,
                }
                assert!(pages < 100);
            }
            let mut want = all.clone();
            if reverse {
                want.reverse();
            }
            assert_eq!(seen, want, "reverse={reverse} limits={limits:?}");
        }
    }
}

pub fn incr_semantics<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    let incr =
        |sk: &[u8], delta, ttl| WriteOp::Incr { hash_key: b"h".to_vec(), sort_key: sk.to_vec(), delta, ttl };
    let one = |s: &mut H::Store, op| apply_next(s, h.clock(), vec![op]).remove(0);
    assert_eq!(
        one(&mut s, incr(b"n", 5, IncrTtl::Keep)),
        WriteOutcome::Incr { new_value: 5 },
        "absent counts as 0"
    );
    assert_eq!(one(&mut s, incr(b"n", -7, IncrTtl::Keep)), WriteOutcome::Incr { new_value: -2 });
    assert_eq!(s.get(b"h", b"n").unwrap(), Some(b"-2".to_vec()), "stored as decimal text");
    apply_next(&mut s, h.clock(), vec![set(b"h", b"e", b"")]);
    assert_eq!(
        one(&mut s, incr(b"e", 3, IncrTtl::Keep)),
        WriteOutcome::Incr { new_value: 3 },
        "empty counts as 0"
    );
    apply_next(&mut s, h.clock(), vec![set(b"h", b"max", i64::MAX.to_string().as_bytes())]);
    assert_refused(&one(&mut s, incr(b"max", 1, IncrTtl::Keep)), ErrorCode::IntegerOverflow, "");
    assert_eq!(s.get(b"h", b"max").unwrap(), Some(i64::MAX.to_string().into_bytes()), "unchanged");
    for bad in [&b" 1"[..], b"1.5", b"0x10", b"99999999999999999999", b"\xff"] {
        apply_next(&mut s, h.clock(), vec![set(b"h", b"bad", bad)]);
        match one(&mut s, incr(b"bad", 1, IncrTtl::Keep)) {
            WriteOutcome::Failed(e) => assert_eq!(e.code(), ErrorCode::NotAnInteger, "{bad:?}"),
            o => panic!("{bad:?}: {o:?}"),
        }
    }
    // TTL: keep, set, clear.
    apply_next(&mut s, h.clock(), vec![set_ttl(b"h", b"t", b"1", 100)]);
    one(&mut s, incr(b"t", 1, IncrTtl::Keep));
    assert_eq!(s.ttl(b"h", b"t").unwrap(), Some(Ttl::Remaining(100)));
    one(&mut s, incr(b"t", 1, IncrTtl::Set(50)));
    assert_eq!(s.ttl(b"h", b"t").unwrap(), Some(Ttl::Remaining(50)));
    one(&mut s, incr(b"t", 1, IncrTtl::Clear));
    assert_eq!(s.ttl(b"h", b"t").unwrap(), Some(Ttl::Persistent));
    assert_eq!(s.get(b"h", b"t").unwrap(), Some(b"4".to_vec()));
}

pub fn check_types_truth_table<H: StoreHarness>(h: &H) {
    use CheckType::*;
    let d = tmp();
    let mut s = h.open(d.path());
    apply_next(
        &mut s,
        h.clock(),
        vec![set(b"h", b"empty", b""), set(b"h", b"abc", b"abc"), set(b"h", b"ten", b"10")],
    );
    // (check, operand, checked sort key, expected: Ok(passed) or Err(code))
    type Case = (CheckType, &'static [u8], &'static [u8], Result<bool, ErrorCode>);
    let cases: Vec<Case> = vec![
        (NoCheck, b"", b"absent", Ok(true)),
        (NotExist, b"", b"absent", Ok(true)),
        (NotExist, b"", b"abc", Ok(false)),
        (NotExistOrEmpty, b"", b"empty", Ok(true)),
        (NotExistOrEmpty, b"", b"absent", Ok(true)),
        (NotExistOrEmpty, b"", b"abc", Ok(false)),
        (Exist, b"", b"empty", Ok(true)),
        (Exist, b"", b"absent", Ok(false)),
        (NotEmpty, b"", b"empty", Ok(false)),
        (NotEmpty, b"", b"abc", Ok(true)),
        (MatchAnywhere, b"b", b"abc", Ok(true)),
        (MatchAnywhere, b"", b"empty", Ok(true)),
        (MatchAnywhere, b"x", b"abc", Ok(false)),
        (MatchAnywhere, b"", b"absent", Ok(false)),
        (MatchPrefix, b"ab", b"abc", Ok(true)),
        (MatchPrefix, b"bc", b"abc", Ok(false)),
        (MatchPostfix, b"bc", b"abc", Ok(true)),
        (MatchPostfix, b"ab", b"abc", Ok(false)),
        (BytesLess, b"abd", b"abc", Ok(true)),
        (BytesLess, b"abc", b"abc", Ok(false)),
        (BytesLessOrEqual, b"abc", b"abc", Ok(true)),
        (BytesEqual, b"abc", b"abc", Ok(true)),
        (BytesEqual, b"abc", b"absent", Ok(false)),
        (BytesGreaterOrEqual, b"abc", b"abc", Ok(true)),
        (BytesGreater, b"abb", b"abc", Ok(true)),
        (BytesGreater, b"abc", b"abc", Ok(false)),
        (IntLess, b"11", b"ten", Ok(true)),
        (IntLess, b"10", b"ten", Ok(false)),
        (IntLessOrEqual, b"10", b"ten", Ok(true)),
        (IntEqual, b"10", b"ten", Ok(true)),
        (IntEqual, b"+10", b"ten", Ok(true)),
        (IntGreaterOrEqual, b"10", b"ten", Ok(true)),
        (IntGreater, b"9", b"ten", Ok(true)),
        (IntGreater, b"-1", b"absent", Ok(false)),
        (IntGreater, b"9", b"abc", Err(ErrorCode::NotAnInteger)),
        (IntGreater, b"9", b"empty", Err(ErrorCode::NotAnInteger)),
        (IntGreater, b"nine", b"ten", Err(ErrorCode::NotAnInteger)),
    ];
    for (kind, operand, check_sk, want) in cases {
        let op = WriteOp::CheckAndSet(CheckAndSet {
            hash_key: b"h".to_vec(),
            check_sort_key: check_sk.to_vec(),
            check: Check { kind, operand: operand.to_vec() },
            set_sort_key: b"target".to_vec(),
            set_value: b"written".to_vec(),
            set_ttl_secs: 0,
            return_check_value: false,
        });
        apply_next(&mut s, h.clock(), vec![del(b"h", b"target")]);
        let out = apply_next(&mut s, h.clock(), vec![op]).remove(0);
        let got = match out {
            WriteOutcome::Checked(c) => Ok(c.passed),
            WriteOutcome::Failed(e) => Err(e.code()),
            o => panic!("{o:?}"),
        };
        assert_eq!(got, want, "{} {:?} on {:?}", kind.name(), operand, check_sk);
        let written = s.get(b"h", b"target").unwrap().is_some();
        assert_eq!(written, want == Ok(true), "{} wrote iff it passed", kind.name());
    }
}

pub fn check_and_set_and_mutate<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    apply_next(&mut s, h.clock(), vec![set(b"h", b"ver", b"1"), set(b"h", b"old", b"x")]);
    let cas = |expect: &[u8], ret| {
        WriteOp::CheckAndSet(CheckAndSet {
            hash_key: b"h".to_vec(),
            check_sort_key: b"ver".to_vec(),
            check: Check { kind: CheckType::BytesEqual, operand: expect.to_vec() },
            set_sort_key: b"ver".to_vec(),
            set_value: b"2".to_vec(),
            set_ttl_secs: 30,
            return_check_value: ret,
        })
    };
    let out = apply_next(&mut s, h.clock(), vec![cas(b"0", true)]).remove(0);
    assert_eq!(
        out,
        WriteOutcome::Checked(CheckOutcome { passed: false, check_value: Some(Some(b"1".to_vec())) })
    );
    let out = apply_next(&mut s, h.clock(), vec![cas(b"1", false)]).remove(0);
    assert_eq!(out, WriteOutcome::Checked(CheckOutcome { passed: true, check_value: None }));
    assert_eq!(s.get(b"h", b"ver").unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.ttl(b"h", b"ver").unwrap(), Some(Ttl::Remaining(30)));

    let cam = |kind, ret| {
        WriteOp::CheckAndMutate(CheckAndMutate {
            hash_key: b"h".to_vec(),
            check_sort_key: b"absent".to_vec(),
            check: Check { kind, operand: vec![] },
            mutations: vec![
                CamOp::Put { sort_key: b"new".to_vec(), value: b"n".to_vec(), ttl_secs: 0 },
                CamOp::Delete { sort_key: b"old".to_vec() },
                CamOp::Put { sort_key: b"new2".to_vec(), value: b"m".to_vec(), ttl_secs: 0 },
            ],
            return_check_value: ret,
        })
    };
    let out = apply_next(&mut s, h.clock(), vec![cam(CheckType::Exist, true)]).remove(0);
    assert_eq!(out, WriteOutcome::Checked(CheckOutcome { passed: false, check_value: Some(None) }));
    assert_eq!(s.get(b"h", b"new").unwrap(), None, "a failed check writes nothing");
    assert_eq!(s.get(b"h", b"old").unwrap(), Some(b"x".to_vec()));
    let out = apply_next(&mut s, h.clock(), vec![cam(CheckType::NotExist, false)]).remove(0);
    assert_eq!(out, WriteOutcome::Checked(CheckOutcome { passed: true, check_value: None }));
    assert_eq!(s.get(b"h", b"new").unwrap(), Some(b"n".to_vec()));
    assert_eq!(s.get(b"h", b"new2").unwrap(), Some(b"m".to_vec()));
    assert_eq!(s.get(b"h", b"old").unwrap(), None);
}

pub fn ttl_and_expiry<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    apply_next(
        &mut s,
        h.clock(),
        vec![
            set_ttl(b"h", b"short", b"s", 10),
            set_ttl(b"h", b"long", b"l", 1000),
            set(b"h", b"forever", b"f"),
        ],
    );
    assert_eq!(s.ttl(b"h", b"short").unwrap(), Some(Ttl::Remaining(10)));
    assert_eq!(s.ttl(b"h", b"forever").unwrap(), Some(Ttl::Persistent));
    assert_eq!(s.ttl(b"h", b"absent").unwrap(), None);
    h.clock().advance_ms(9_000);
    assert_eq!(s.ttl(b"h", b"short").unwrap(), Some(Ttl::Remaining(1)));
    assert_eq!(s.get(b"h", b"short").unwrap(), Some(b"s".to_vec()));
    h.clock().advance_ms(1_000);
    assert_eq!(s.get(b"h", b"short").unwrap(), None, "expired exactly at its expiry second");
    assert_eq!(s.ttl(b"h", b"short").unwrap(), None);
    assert_eq!(s.sort_key_count(b"h").unwrap(), 2);
    let p = s.scan(b"h", &SortKeyScan::default()).unwrap();
    assert_eq!(sks(&p.records), v(&[b"forever", b"long"]));
    let r = s.multi_get(b"h", &keys(&[b"short", b"long"])).unwrap();
    assert_eq!(sks(&r.records), v(&[b"long"]));
    // Overwriting an expired record starts fresh; a set without TTL clears it.
    apply_next(&mut s, h.clock(), vec![set(b"h", b"short", b"again"), set(b"h", b"long", b"l2")]);
    assert_eq!(s.ttl(b"h", b"short").unwrap(), Some(Ttl::Persistent));
    assert_eq!(s.ttl(b"h", b"long").unwrap(), Some(Ttl::Persistent));
    // An expired record counts as absent for writes too.
    apply_next(&mut s, h.clock(), vec![set_ttl(b"h", b"n", b"41", 1)]);
    h.clock().advance_ms(2_000);
    let out = apply_next(
        &mut s,
        h.clock(),
        vec![WriteOp::Incr {
            hash_key: b"h".to_vec(),
            sort_key: b"n".to_vec(),
            delta: 1,
            ttl: IncrTtl::Keep,
        }],
    );
    assert_eq!(out, vec![WriteOutcome::Incr { new_value: 1 }]);
    assert_eq!(s.ttl(b"h", b"n").unwrap(), Some(Ttl::Persistent), "keep of an expired record keeps nothing");
}

pub fn apply_uses_the_timetag_for_ttl<H: StoreHarness>(h: &H) {
    // A replica applying late (its clock far ahead) must compute the same expiry as the primary.
    let d = tmp();
    let mut s = h.open(d.path());
    let stamped = timetag_now(h.clock(), 0);
    h.clock().advance_ms(3_600_000);
    s.apply(Decree(1), stamped, &Mutation::new(vec![set_ttl(b"h", b"k", b"v", 7200)])).unwrap();
    assert_eq!(s.ttl(b"h", b"k").unwrap(), Some(Ttl::Remaining(3600)));
}

pub fn sort_key_count_counts_live_records<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    assert_eq!(s.sort_key_count(b"h").unwrap(), 0);
    apply_next(&mut s, h.clock(), (0..20u8).map(|i| set(b"h", &[i], b"v")).collect());
    apply_next(
        &mut s,
        h.clock(),
        vec![set(b"h2", b"a", b"v"), set_ttl(b"h", b"zz", b"v", 1), del(b"h", &[3])],
    );
    assert_eq!(s.sort_key_count(b"h").unwrap(), 20);
    h.clock().advance_ms(1_000);
    assert_eq!(s.sort_key_count(b"h").unwrap(), 19);
    assert_eq!(s.sort_key_count(b"h2").unwrap(), 1);
}

pub fn table_scan_pages<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    let mut want = Vec::new();
    for hk in 0..10u32 {
        let hk = format!("user{hk}").into_bytes();
        let ops = (0..5u32).map(|sk| set(&hk, format!("f{sk}").as_bytes(), b"v")).collect();
        apply_next(&mut s, h.clock(), ops);
        for sk in 0..5u32 {
            want.push((hk.clone(), format!("f{sk}").into_bytes()));
        }
    }
    apply_next(&mut s, h.clock(), vec![set_ttl(b"gone", b"x", b"v", 1)]);
    h.clock().advance_ms(1_000);
    let spec =
        TableScan { limits: ReadLimits { max_count: Some(7), max_bytes: None }, ..TableScan::default() };
    let pages = scan_table_pages(&s, &spec);
    assert!(pages.iter().all(|p| p.records.len() <= 7));
    let mut seen: Vec<_> =
        pages.into_iter().flat_map(|p| p.records).map(|r| (r.hash_key, r.sort_key)).collect();
    seen.sort();
    want.sort();
    assert_eq!(seen, want, "every live record exactly once");

    let filtered = TableScan {
        hash_key_filter: Some(KeyFilter::Postfix(b"3".to_vec())),
        sort_key_filter: Some(KeyFilter::Prefix(b"f1".to_vec())),
        no_value: true,
        ..TableScan::default()
    };
    let p = s.scan_table(&filtered).unwrap();
    assert_eq!(p.resume_token, None);
    assert_eq!(p.records.len(), 1);
    assert_eq!(
        (p.records[0].hash_key.as_slice(), p.records[0].sort_key.as_slice()),
        (&b"user3"[..], &b"f1"[..])
    );
    assert!(p.records[0].value.is_empty());
}

pub fn reopen_keeps_data_and_decree<H: StoreHarness>(h: &H) {
    let d = tmp();
    {
        let mut s = h.open(d.path());
        apply_next(&mut s, h.clock(), vec![set(b"h", b"a", b"1")]);
        apply_next(&mut s, h.clock(), vec![set_ttl(b"h", b"b", b"2", 60), del(b"h", b"a")]);
    }
    let mut s = h.open(d.path());
    assert_eq!(s.last_applied_decree(), Decree(2));
    assert_eq!(s.durable_decree().unwrap(), Decree(2), "a clean close makes everything durable");
    assert_eq!(s.get(b"h", b"a").unwrap(), None);
    assert_eq!(s.get(b"h", b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.ttl(b"h", b"b").unwrap(), Some(Ttl::Remaining(60)));
    apply_next(&mut s, h.clock(), vec![set(b"h", b"c", b"3")]);
    assert_eq!(s.last_applied_decree(), Decree(3));
}

pub fn flush_advances_durable_decree<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    assert_eq!(s.durable_decree().unwrap(), Decree(0));
    apply_next(&mut s, h.clock(), vec![set(b"h", b"a", b"1")]);
    apply_next(&mut s, h.clock(), vec![set(b"h", b"b", b"2")]);
    assert_eq!(s.last_applied_decree(), Decree(2));
    assert!(s.durable_decree().unwrap() <= Decree(2));
    assert_eq!(s.flush().unwrap(), Decree(2));
    assert_eq!(s.durable_decree().unwrap(), Decree(2));
}

pub fn crash_keeps_only_flushed_state<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    apply_next(&mut s, h.clock(), vec![set(b"h", b"a", b"1")]);
    s.flush().unwrap();
    apply_next(&mut s, h.clock(), vec![set(b"h", b"b", b"2"), del(b"h", b"a")]);
    if !h.crash(s) {
        return; // the back end tests crashes in a child process instead
    }
    let s = h.open(d.path());
    assert_eq!(s.last_applied_decree(), Decree(1));
    assert_eq!(s.get(b"h", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(b"h", b"b").unwrap(), None);
}

pub fn checkpoint_and_open<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(&d.path().join("live"));
    apply_next(&mut s, h.clock(), vec![set(b"h", b"a", b"1"), set_ttl(b"h", b"t", b"t", 500)]);
    apply_next(&mut s, h.clock(), vec![set(b"h", b"b", b"2")]);
    let cp = d.path().join("checkpoint");
    assert_eq!(s.checkpoint(&cp).unwrap(), Decree(2));
    assert!(s.checkpoint(&cp).is_err(), "an existing checkpoint directory is not overwritten");
    apply_next(&mut s, h.clock(), vec![set(b"h", b"c", b"3"), del(b"h", b"a")]);

    let mut restored = h.open_from_checkpoint(&cp, &d.path().join("restored"));
    assert_eq!(restored.last_applied_decree(), Decree(2));
    assert_eq!(restored.get(b"h", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(restored.get(b"h", b"c").unwrap(), None);
    assert_eq!(restored.ttl(b"h", b"t").unwrap(), Some(Ttl::Remaining(500)));
    // The restored store continues from the checkpoint's decree, independently of the original.
    let out = apply_next(&mut restored, h.clock(), vec![set(b"h", b"d", b"4")]);
    assert_eq!(out, vec![WriteOutcome::Done]);
    assert_eq!(restored.last_applied_decree(), Decree(3));
    assert_eq!(s.get(b"h", b"d").unwrap(), None);
    assert_eq!(s.get(b"h", b"c").unwrap(), Some(b"3".to_vec()));
}

pub fn corrupt_values_are_typed_errors<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    apply_next(&mut s, h.clock(), vec![set(b"h", b"good", b"1")]);
    let bad_key = tern_core::key::encode(b"h", b"bad").unwrap();
    let mark = AppliedMark {
        decree: Decree(2),
        timetag: s.last_applied_timetag(),
        ballot: s.last_applied_ballot(),
        purge_below: s.purge_horizon(),
    };
    s.raw_write(vec![(bad_key, Some(vec![0x7f, 1, 2]))], mark).unwrap();
    let err = s.get(b"h", b"bad").unwrap_err();
    assert_eq!(err.code(), ErrorCode::Corruption);
    assert!(err.to_string().contains("bad"), "names the key: {err}");
    assert_eq!(s.scan(b"h", &SortKeyScan::default()).unwrap_err().code(), ErrorCode::Corruption);
    assert_eq!(s.sort_key_count(b"h").unwrap_err().code(), ErrorCode::Corruption);
    assert_eq!(s.get(b"h", b"good").unwrap(), Some(b"1".to_vec()), "other records still readable");
    // A write that must read the corrupt value fails the whole batch and changes nothing.
    let m = Mutation::new(vec![
        set(b"h", b"good", b"2"),
        WriteOp::Incr { hash_key: b"h".to_vec(), sort_key: b"bad".to_vec(), delta: 1, ttl: IncrTtl::Keep },
    ]);
    let err = s.apply(Decree(3), timetag_now(h.clock(), 3), &m).unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert_eq!(s.last_applied_decree(), Decree(2));
    assert_eq!(s.get(b"h", b"good").unwrap(), Some(b"1".to_vec()));
}

pub fn oversized_hash_key_is_refused_at_apply<H: StoreHarness>(h: &H) {
    let d = tmp();
    let mut s = h.open(d.path());
    let huge = vec![b'k'; 70_000];
    let out = apply_next(&mut s, h.clock(), vec![set(&huge, b"s", b"v"), set(b"h", b"s", b"v")]);
    assert_refused(&out[0], ErrorCode::LimitExceeded, "70000");
    assert_eq!(out[1], WriteOutcome::Done);
    let all = s.scan_table(&TableScan::default()).unwrap();
    assert_eq!(all.records.len(), 1, "nothing of the refused op was written");
}

pub fn read_limits_are_validated<H: StoreHarness>(h: &H) {
    let d = tmp();
    let s = h.open(d.path());
    let zero = ReadLimits { max_count: Some(0), max_bytes: None };
    let err = s.scan(b"h", &SortKeyScan { limits: zero, ..SortKeyScan::default() }).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let _ = h.clock().now_ms();
}

pub fn applied_timetag_is_the_largest_and_survives<H: StoreHarness>(h: &H) {
    let d = tmp();
    let late = timetag_now(h.clock(), 5);
    let early = timetag_now(h.clock(), 1);
    {
        let mut s = h.open(&d.path().join("s"));
        assert_eq!(s.last_applied_timetag(), tern_core::Timetag::ZERO);
        s.apply(Decree(1), late, &Mutation::default()).unwrap();
        s.apply(Decree(2), early, &Mutation::default()).unwrap();
        assert_eq!(s.last_applied_timetag(), late, "the largest, not the last");
        s.checkpoint(&d.path().join("cp")).unwrap();
    }
    assert_eq!(h.open(&d.path().join("s")).last_applied_timetag(), late, "survives reopen");
    let restored = h.open_from_checkpoint(&d.path().join("cp"), &d.path().join("r"));
    assert_eq!(restored.last_applied_timetag(), late, "travels with checkpoints");
}

pub fn a_late_old_timetag_never_moves_now_back<H: StoreHarness>(h: &H) {
    // A new primary may re-propose an old uncommitted entry after newer ones were applied: its
    // writes must use "now" = the largest timetag applied, so TTLs and expiry never go back.
    let d = tmp();
    let mut s = h.open(d.path());
    let (old, newer) = old_and_newer(h.clock(), 100_000);
    s.apply(Decree(1), newer, &Mutation::new(vec![set_ttl(b"h", b"short", b"x", 50)])).unwrap();
    let out = s
        .apply(
            Decree(2),
            old,
            &Mutation::new(vec![
                WriteOp::Incr {
                    hash_key: b"h".to_vec(),
                    sort_key: b"short".to_vec(),
                    delta: 1,
                    ttl: IncrTtl::Keep,
                },
                set_ttl(b"h", b"late", b"y", 10),
            ]),
        )
        .unwrap();
    // x is not a number, and it is live.
    assert_refused(&out[0], ErrorCode::NotAnInteger, "");
    assert_eq!(s.ttl(b"h", b"late").unwrap(), Some(Ttl::Remaining(10)), "TTL counted from the newer timetag");
    assert_eq!(s.last_applied_timetag(), newer);
}

pub fn a_re_proposed_old_write_loses_to_a_newer_record<H: StoreHarness>(h: &H) {
    // An entry stamped before what the store holds (a re-proposal after a newer write was
    // applied) must still lose last-writer-wins: the store reads before it writes.
    let d = tmp();
    let mut s = h.open(d.path());
    let (old, newer) = old_and_newer(h.clock(), 1_000);
    s.apply(Decree(1), newer, &Mutation::new(vec![set(b"h", b"a", b"new"), set(b"h", b"b", b"new")]))
        .unwrap();
    s.apply(Decree(2), old, &Mutation::new(vec![set(b"h", b"a", b"old"), del(b"h", b"b")])).unwrap();
    assert_eq!(s.get(b"h", b"a").unwrap(), Some(b"new".to_vec()));
    assert_eq!(s.get(b"h", b"b").unwrap(), Some(b"new".to_vec()), "an older delete loses too");
    // A write stamped after everything stored wins (and skips the read: same outcome).
    h.clock().advance_ms(1_000);
    s.apply(Decree(3), timetag_now(h.clock(), 3), &Mutation::new(vec![del(b"h", b"a")])).unwrap();
    assert_eq!(s.get(b"h", b"a").unwrap(), None);
}

pub fn the_applied_timetag_bounds_every_record<H: StoreHarness>(h: &H) {
    // A duplicated put carries its origin's timetag. Should one ever be newer than the entry
    // that logs it, the applied timetag still covers it, so a later local write stamped in
    // between reads the record and loses, also after a reopen.
    let d = tmp();
    let now = timetag_now(h.clock(), 1);
    let ahead = now.physical_ms() + 5_000;
    {
        let mut s = h.open(d.path());
        let out = s
            .apply(Decree(1), now, &Mutation::new(vec![put_from(b"h", b"k", Some(b"remote"), ahead, 0, 2)]))
            .unwrap();
        assert_eq!(out, vec![WriteOutcome::Done]);
        assert!(s.last_applied_timetag().physical_ms() >= ahead, "{:?}", s.last_applied_timetag());
        s.flush().unwrap();
    }
    let mut s = h.open(d.path());
    h.clock().advance_ms(1_000);
    s.apply(Decree(2), timetag_now(h.clock(), 2), &Mutation::new(vec![set(b"h", b"k", b"local")])).unwrap();
    assert_eq!(s.get(b"h", b"k").unwrap(), Some(b"remote".to_vec()));
}
