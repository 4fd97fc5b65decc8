//! A reference model of the data model: a `BTreeMap` and the semantics of `docs/data-model.md`,
//! written independently of `apply.rs`/`read.rs` so that comparing the two finds bugs in
//! either. [`run`] drives a store and the model through the same [`Action`]s and compares every
//! answer; [`actions`] is a proptest strategy over every operation.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use proptest::prelude::*;
use tern_core::mutation::{
    CamOp, Check, CheckAndMutate, CheckAndSet, CheckOutcome, CheckType, IncrTtl, WriteOutcome,
};
use tern_core::read::{KeyFilter, MultiGet, ReadLimits, SortKeyScan, SortKeyValue, TableScan, Ttl};
use tern_core::{Clock, ErrorCode, WriteOp};

use super::{StoreHarness, scan_table_pages};
use crate::store::PartitionStore;

type Key = (Vec<u8>, Vec<u8>);

#[derive(Clone, Debug, Default)]
pub struct Model {
    /// (hash key, sort key) → (value, expire_ts).
    records: BTreeMap<Key, (Vec<u8>, u32)>,
}

/// An outcome with errors reduced to their codes (messages may differ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(WriteOutcome),
    Failed(ErrorCode),
}

impl From<WriteOutcome> for Outcome {
    fn from(o: WriteOutcome) -> Outcome {
        match o {
            WriteOutcome::Failed(e) => Outcome::Failed(e.code()),
            other => Outcome::Ok(other),
        }
    }
}

fn expiry(now: u64, ttl: u32) -> u32 {
    if ttl == 0 { 0 } else { (now + u64::from(ttl)).min(u64::from(u32::MAX)) as u32 }
}

fn int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A check_and_set is a check_and_mutate of one put.
fn as_check_and_mutate(c: &CheckAndSet) -> CheckAndMutate {
    let put =
        CamOp::Put { sort_key: c.set_sort_key.clone(), value: c.set_value.clone(), ttl_secs: c.set_ttl_secs };
    CheckAndMutate {
        hash_key: c.hash_key.clone(),
        check_sort_key: c.check_sort_key.clone(),
        check: c.check.clone(),
        mutations: vec![put],
        return_check_value: c.return_check_value,
    }
}

impl Model {
    fn live(&self, now: u64, hk: &[u8], sk: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.records.get(&(hk.to_vec(), sk.to_vec())).filter(|(_, e)| *e == 0 || u64::from(*e) > now).cloned()
    }

    /// The live records of `hk`, ascending by sort key.
    fn hash_key_records(&self, now: u64, hk: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.records
            .iter()
            .filter(|((h, _), (_, e))| h == hk && (*e == 0 || u64::from(*e) > now))
            .map(|((_, s), (v, _))| (s.clone(), v.clone()))
            .collect()
    }

    fn check(&self, now: u64, hk: &[u8], sk: &[u8], c: &Check) -> Result<bool, ErrorCode> {
        let cur = self.live(now, hk, sk).map(|(v, _)| v);
        let o = c.operand.as_slice();
        use CheckType::*;
        Ok(match (c.kind, cur) {
            (NoCheck, _) => true,
            (NotExist, cur) => cur.is_none(),
            (NotExistOrEmpty, cur) => cur.map(|v| v.is_empty()).unwrap_or(true),
            (Exist, cur) => cur.is_some(),
            (NotEmpty, cur) => cur.map(|v| !v.is_empty()).unwrap_or(false),
            (k, cur) if k.is_int_compare() => {
                let want = int(o).ok_or(ErrorCode::NotAnInteger)?;
                let Some(v) = cur else { return Ok(false) };
                let have = int(&v).ok_or(ErrorCode::NotAnInteger)?;
                match k {
                    IntLess => have < want,
                    IntLessOrEqual => have <= want,
                    IntEqual => have == want,
                    IntGreaterOrEqual => have >= want,
                    _ => have > want,
                }
            }
            (_, None) => false,
            (MatchAnywhere, Some(v)) => o.is_empty() || (0..v.len()).any(|i| v[i..].starts_with(o)),
            (MatchPrefix, Some(v)) => v.starts_with(o),
            (MatchPostfix, Some(v)) => v.ends_with(o),
            (BytesLess, Some(v)) => v.as_slice() < o,
            (BytesLessOrEqual, Some(v)) => v.as_slice() <= o,
            (BytesEqual, Some(v)) => v.as_slice() == o,
            (BytesGreaterOrEqual, Some(v)) => v.as_slice() >= o,
            (BytesGreater, Some(v)) => v.as_slice() > o,
            _ => unreachable!("every check type is handled above"),
        })
    }

    fn check_and_mutate(&mut self, now: u64, c: &CheckAndMutate) -> Outcome {
        let (hk, sk) = (&c.hash_key, &c.check_sort_key);
        let passed = match self.check(now, hk, sk, &c.check) {
            Ok(p) => p,
            Err(code) => return Outcome::Failed(code),
        };
        let check_value = c.return_check_value.then(|| self.live(now, hk, sk).map(|(v, _)| v));
        if passed {
            for m in &c.mutations {
                match m {
                    CamOp::Put { sort_key, value, ttl_secs } => {
                        self.records
                            .insert((hk.clone(), sort_key.clone()), (value.clone(), expiry(now, *ttl_secs)));
                    }
                    CamOp::Delete { sort_key } => {
                        self.records.remove(&(hk.clone(), sort_key.clone()));
                    }
                }
            }
        }
        Outcome::Ok(WriteOutcome::Checked(CheckOutcome { passed, check_value }))
    }

    /// Applies one op at `now` (the write's timetag seconds).
    pub fn apply(&mut self, now: u64, op: &WriteOp) -> Outcome {
        let k = |hk: &[u8], sk: &[u8]| (hk.to_vec(), sk.to_vec());
        match op {
            WriteOp::Set { hash_key, sort_key, value, ttl_secs } => {
                self.records.insert(k(hash_key, sort_key), (value.clone(), expiry(now, *ttl_secs)));
            }
            WriteOp::Del { hash_key, sort_key } => {
                self.records.remove(&k(hash_key, sort_key));
            }
            // The model holds the local write order only: a put is its resolved record. (Ordering
            // duplicated writes by timetag has its own property tests, `lww` in tern-storage.)
            WriteOp::Put { hash_key, sort_key, value, expire_ts, .. } => match value {
                Some(v) => {
                    self.records.insert(k(hash_key, sort_key), (v.clone(), *expire_ts));
                }
                None => {
                    self.records.remove(&k(hash_key, sort_key));
                }
            },
            WriteOp::MultiSet { hash_key, entries, ttl_secs } => {
                for (s, v) in entries {
                    self.records.insert(k(hash_key, s), (v.clone(), expiry(now, *ttl_secs)));
                }
            }
            WriteOp::MultiDel { hash_key, sort_keys } => {
                for s in sort_keys {
                    self.records.remove(&k(hash_key, s));
                }
            }
            WriteOp::Incr { hash_key, sort_key, delta, ttl } => {
                let cur = self.live(now, hash_key, sort_key);
                let base = match &cur {
                    None => 0,
                    Some((v, _)) if v.is_empty() => 0,
                    Some((v, _)) => match int(v) {
                        Some(n) => n,
                        None => return Outcome::Failed(ErrorCode::NotAnInteger),
                    },
                };
                let Some(new) = base.checked_add(*delta) else {
                    return Outcome::Failed(ErrorCode::IntegerOverflow);
                };
                let exp = match ttl {
                    IncrTtl::Keep => cur.map(|(_, e)| e).unwrap_or(0),
                    IncrTtl::Clear => 0,
                    IncrTtl::Set(n) => expiry(now, *n),
                };
                self.records.insert(k(hash_key, sort_key), (new.to_string().into_bytes(), exp));
                return Outcome::Ok(WriteOutcome::Incr { new_value: new });
            }
            WriteOp::CheckAndSet(c) => return self.check_and_mutate(now, &as_check_and_mutate(c)),
            WriteOp::CheckAndMutate(c) => return self.check_and_mutate(now, c),
            WriteOp::Resolved { hash_key, records, outcome } => {
                for r in records {
                    match &r.value {
                        Some(v) => self.records.insert(k(hash_key, &r.sort_key), (v.clone(), r.expire_ts)),
                        None => self.records.remove(&k(hash_key, &r.sort_key)),
                    };
                }
                return Outcome::Ok(outcome.to_write_outcome());
            }
        }
        Outcome::Ok(WriteOutcome::Done)
    }
}

/// Takes items while the limits allow: the item that reaches a limit is the last one taken.
/// Returns the items taken and whether that was all of them.
fn limited<T>(items: Vec<T>, limits: &ReadLimits, size: impl Fn(&T) -> u64) -> (Vec<T>, bool) {
    let total = items.len();
    let (mut n, mut bytes) = (0u32, 0u64);
    let mut out = Vec::new();
    for it in items {
        if limits.max_count.is_some_and(|m| n >= m) || limits.max_bytes.is_some_and(|m| bytes >= m) {
            break;
        }
        n += 1;
        bytes += size(&it);
        out.push(it);
    }
    let complete = out.len() == total;
    (out, complete)
}

fn in_bounds(sk: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let lo = match start {
        Bound::Included(s) => sk >= s.as_slice(),
        Bound::Excluded(s) => sk > s.as_slice(),
        Bound::Unbounded => true,
    };
    let hi = match end {
        Bound::Included(e) => sk <= e.as_slice(),
        Bound::Excluded(e) => sk < e.as_slice(),
        Bound::Unbounded => true,
    };
    lo && hi
}

fn pass(f: &Option<KeyFilter>, k: &[u8]) -> bool {
    match f {
        None => true,
        Some(KeyFilter::Prefix(p)) => k.starts_with(p),
        Some(KeyFilter::Postfix(p)) => k.ends_with(p),
        Some(KeyFilter::Anywhere(p)) => p.is_empty() || (0..k.len()).any(|i| k[i..].starts_with(p)),
    }
}

fn model_scan(m: &Model, now: u64, hk: &[u8], spec: &SortKeyScan) -> Vec<SortKeyValue> {
    let mut v: Vec<SortKeyValue> = m
        .hash_key_records(now, hk)
        .into_iter()
        .filter(|(s, _)| in_bounds(s, &spec.start, &spec.end) && pass(&spec.filter, s))
        .map(|(sort_key, value)| SortKeyValue { sort_key, value: if spec.no_value { vec![] } else { value } })
        .collect();
    if spec.reverse {
        v.reverse();
    }
    v
}

fn kv_size(r: &SortKeyValue) -> u64 {
    (r.sort_key.len() + r.value.len()) as u64
}

/// One step of a model-based test.
#[derive(Clone, Debug)]
pub enum Action {
    Write(Vec<WriteOp>),
    AdvanceSecs(u64),
    Get(Vec<u8>, Vec<u8>),
    MultiGet(Vec<u8>, MultiGet),
    /// Scan to the end, page by page.
    Scan(Vec<u8>, SortKeyScan),
    Count(Vec<u8>),
    Ttl(Vec<u8>, Vec<u8>),
    /// Full-table scan to the end, page by page.
    TableScan(TableScan),
    Flush,
    Reopen,
    /// Checkpoint, open a store from it in a new directory, and continue on that one.
    CheckpointAndSwitch,
}

/// Runs `actions` against a store of `h` and the model, asserting they agree at every step.
pub fn run<H: StoreHarness>(h: &H, root: &Path, actions: &[Action]) {
    let mut generation = 0;
    let mut dir = root.join("g0");
    let mut store = Some(h.open(&dir));
    let mut model = Model::default();
    for (i, a) in actions.iter().enumerate() {
        let s = store.as_mut().expect("store is open");
        let now = h.clock().now_secs();
        match a {
            Action::Write(ops) => {
                let got: Vec<Outcome> =
                    super::apply_next(s, h.clock(), ops.clone()).into_iter().map(Outcome::from).collect();
                let want: Vec<Outcome> = ops.iter().map(|op| model.apply(now, op)).collect();
                assert_eq!(got, want, "step {i}: {a:?}");
            }
            Action::AdvanceSecs(n) => h.clock().advance_ms(n * 1000),
            Action::Get(hk, sk) => {
                assert_eq!(
                    s.get(hk, sk).unwrap(),
                    model.live(now, hk, sk).map(|(v, _)| v),
                    "step {i}: {a:?}"
                );
            }
            Action::Ttl(hk, sk) => {
                let want = model
                    .live(now, hk, sk)
                    .map(|(_, e)| if e == 0 { Ttl::Persistent } else { Ttl::Remaining(u64::from(e) - now) });
                assert_eq!(s.ttl(hk, sk).unwrap(), want, "step {i}: {a:?}");
            }
            Action::Count(hk) => {
                assert_eq!(
                    s.sort_key_count(hk).unwrap(),
                    model.hash_key_records(now, hk).len() as u64,
                    "step {i}"
                );
            }
            Action::MultiGet(hk, req) => {
                let got = s.multi_get(hk, req).unwrap();
                let (want, complete) = match req {
                    MultiGet::Keys { sort_keys, no_value, limits } => {
                        let all = if sort_keys.is_empty() {
                            model_scan(
                                &model,
                                now,
                                hk,
                                &SortKeyScan { no_value: *no_value, ..SortKeyScan::default() },
                            )
                        } else {
                            let mut ks = sort_keys.clone();
                            ks.sort();
                            ks.dedup();
                            ks.into_iter()
                                .filter_map(|sk| {
                                    model.live(now, hk, &sk).map(|(v, _)| SortKeyValue {
                                        sort_key: sk,
                                        value: if *no_value { vec![] } else { v },
                                    })
                                })
                                .collect()
                        };
                        limited(all, limits, kv_size)
                    }
                    MultiGet::Range(spec) => {
                        limited(model_scan(&model, now, hk, spec), &spec.limits, kv_size)
                    }
                };
                assert_eq!(got.records, want, "step {i}: {a:?}");
                assert_eq!(got.complete, complete, "step {i}: {a:?}");
            }
            Action::Scan(hk, spec) => {
                let want = model_scan(&model, now, hk, spec);
                let mut got = Vec::new();
                let mut cur = spec.clone();
                for page_no in 0.. {
                    let p = s.scan(hk, &cur).unwrap();
                    let (fits, _) = limited(p.records.clone(), &spec.limits, kv_size);
                    assert_eq!(fits.len(), p.records.len(), "step {i}: page over its limits");
                    assert!(
                        !(p.records.is_empty() && (page_no > 0 || p.resume.is_some())),
                        "step {i}: empty page"
                    );
                    got.extend(p.records);
                    match p.resume {
                        Some(r) => cur = cur.resume_after(&r),
                        None => break,
                    }
                }
                assert_eq!(got, want, "step {i}: {a:?}");
            }
            Action::TableScan(spec) => {
                let mut want: Vec<Key> = model
                    .records
                    .iter()
                    .filter(|((h, s), (_, e))| {
                        (*e == 0 || u64::from(*e) > now)
                            && pass(&spec.hash_key_filter, h)
                            && pass(&spec.sort_key_filter, s)
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                let mut got = Vec::new();
                for r in scan_table_pages(s, spec).into_iter().flat_map(|p| p.records) {
                    let want_value = model
                        .live(now, &r.hash_key, &r.sort_key)
                        .map(|(v, _)| if spec.no_value { vec![] } else { v });
                    assert_eq!(Some(r.value), want_value, "step {i}");
                    got.push((r.hash_key, r.sort_key));
                }
                got.sort();
                want.sort();
                assert_eq!(got, want, "step {i}: {a:?}");
            }
            Action::Flush => {
                let d = s.flush().unwrap();
                assert_eq!(d, s.last_applied_decree());
                assert_eq!(s.durable_decree().unwrap(), d);
            }
            Action::Reopen => {
                let applied = s.last_applied_decree();
                drop(store.take());
                let reopened = h.open(&dir);
                assert_eq!(reopened.last_applied_decree(), applied, "step {i}: reopen keeps the decree");
                store = Some(reopened);
            }
            Action::CheckpointAndSwitch => {
                generation += 1;
                let cp = root.join(format!("cp{generation}"));
                let d = s.checkpoint(&cp).unwrap();
                assert_eq!(d, s.last_applied_decree());
                drop(store.take());
                dir = root.join(format!("g{generation}"));
                let restored = h.open_from_checkpoint(&cp, &dir);
                assert_eq!(restored.last_applied_decree(), d);
                store = Some(restored);
            }
        }
    }
}

// ---- Strategies: a small key space, so operations collide often. ----

fn hash_key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![b"".to_vec(), b"a".to_vec(), b"b".to_vec()])
}

fn sort_key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![b"".to_vec(), b"x".to_vec(), b"xy".to_vec(), b"y".to_vec(), b"z".to_vec()])
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        b"".to_vec(),
        b"1".to_vec(),
        b"-5".to_vec(),
        b"v".to_vec(),
        b"xyz".to_vec(),
        i64::MAX.to_string().into_bytes(),
    ])
}

fn ttl() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(0u32), 2 => 1u32..5]
}

fn check() -> impl Strategy<Value = Check> {
    (prop::sample::select(CheckType::ALL.to_vec()), value())
        .prop_map(|(kind, operand)| Check { kind, operand })
}

fn write_op() -> impl Strategy<Value = WriteOp> {
    prop_oneof![
        4 => (hash_key(), sort_key(), value(), ttl()).prop_map(|(hash_key, sort_key, value, ttl_secs)| WriteOp::Set { hash_key, sort_key, value, ttl_secs }),
        2 => (hash_key(), sort_key()).prop_map(|(hash_key, sort_key)| WriteOp::Del { hash_key, sort_key }),
        1 => (hash_key(), prop::collection::vec((sort_key(), value()), 1..4), ttl()).prop_map(|(hash_key, entries, ttl_secs)| WriteOp::MultiSet { hash_key, entries, ttl_secs }),
        1 => (hash_key(), prop::collection::vec(sort_key(), 1..3)).prop_map(|(hash_key, sort_keys)| WriteOp::MultiDel { hash_key, sort_keys }),
        2 => (hash_key(), sort_key(), prop_oneof![-3i64..4, Just(i64::MAX)], prop_oneof![Just(IncrTtl::Keep), Just(IncrTtl::Clear), (1u32..5).prop_map(IncrTtl::Set)])
            .prop_map(|(hash_key, sort_key, delta, ttl)| WriteOp::Incr { hash_key, sort_key, delta, ttl }),
        2 => (hash_key(), sort_key(), check(), sort_key(), value(), ttl(), any::<bool>()).prop_map(
            |(hash_key, check_sort_key, check, set_sort_key, set_value, set_ttl_secs, return_check_value)| WriteOp::CheckAndSet(CheckAndSet {
                hash_key, check_sort_key, check, set_sort_key, set_value, set_ttl_secs, return_check_value,
            })),
        1 => (hash_key(), sort_key(), check(), prop::collection::vec(prop_oneof![
                (sort_key(), value(), ttl()).prop_map(|(sort_key, value, ttl_secs)| CamOp::Put { sort_key, value, ttl_secs }),
                sort_key().prop_map(|sort_key| CamOp::Delete { sort_key }),
            ], 1..3), any::<bool>())
            .prop_map(|(hash_key, check_sort_key, check, mutations, return_check_value)| WriteOp::CheckAndMutate(CheckAndMutate {
                hash_key, check_sort_key, check, mutations, return_check_value,
            })),
    ]
}

fn limits() -> impl Strategy<Value = ReadLimits> {
    (prop::option::of(1u32..4), prop::option::of(1u64..8))
        .prop_map(|(max_count, max_bytes)| ReadLimits { max_count, max_bytes })
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        sort_key().prop_map(Bound::Included),
        sort_key().prop_map(Bound::Excluded),
    ]
}

fn filter() -> impl Strategy<Value = Option<KeyFilter>> {
    prop::option::of(prop_oneof![
        sort_key().prop_map(KeyFilter::Prefix),
        sort_key().prop_map(KeyFilter::Postfix),
        sort_key().prop_map(KeyFilter::Anywhere),
    ])
}

fn sort_key_scan() -> impl Strategy<Value = SortKeyScan> {
    (bound(), bound(), filter(), any::<bool>(), any::<bool>(), limits()).prop_map(
        |(start, end, filter, reverse, no_value, limits)| SortKeyScan {
            start,
            end,
            filter,
            reverse,
            no_value,
            limits,
        },
    )
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => prop::collection::vec(write_op(), 1..4).prop_map(Action::Write),
        2 => (0u64..4).prop_map(Action::AdvanceSecs),
        3 => (hash_key(), sort_key()).prop_map(|(h, s)| Action::Get(h, s)),
        2 => (hash_key(), prop_oneof![
                (prop::collection::vec(sort_key(), 0..4), any::<bool>(), limits()).prop_map(|(sort_keys, no_value, limits)| MultiGet::Keys { sort_keys, no_value, limits }),
                sort_key_scan().prop_map(MultiGet::Range),
            ]).prop_map(|(h, m)| Action::MultiGet(h, m)),
        2 => (hash_key(), sort_key_scan()).prop_map(|(h, s)| Action::Scan(h, s)),
        1 => hash_key().prop_map(Action::Count),
        1 => (hash_key(), sort_key()).prop_map(|(h, s)| Action::Ttl(h, s)),
        1 => (filter(), filter(), any::<bool>(), limits()).prop_map(|(hash_key_filter, sort_key_filter, no_value, limits)| {
                Action::TableScan(TableScan { resume_token: None, hash_key_filter, sort_key_filter, no_value, limits })
            }),
        1 => Just(Action::Flush),
        1 => Just(Action::Reopen),
        1 => Just(Action::CheckpointAndSwitch),
    ]
}

/// Random sequences of every operation.
pub fn actions() -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(action(), 1..60)
}
