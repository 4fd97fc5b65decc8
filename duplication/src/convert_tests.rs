use std::ops::ControlFlow;
use std::sync::Arc;

use proptest::prelude::*;
use tern_core::key::KeyRange;
use tern_core::mutation::CheckOutcome;
use tern_core::{Ballot, Decree, ManualClock, Mutation, RecordState, ResolvedOutcome};
use tern_storage::{ApplyEntry, MemDisk, MemPartitionStore, PartitionStore};

use super::*;

fn cid(id: u8) -> ClusterId {
    ClusterId::new(id).expect("valid cluster id")
}

const LOCAL: u8 = 1;
const PEER: u8 = 2;
/// 2026-11-23 00:00:00.250 UTC.
const T0_MS: u64 = 1_795_392_000_250;

fn tt(physical_ms: u64, cluster: u8) -> Timetag {
    Timetag::new(physical_ms, 0, cid(cluster), false)
}

fn entry(decree: u64, timetag: Timetag, ops: Vec<WriteOp>) -> LogEntry {
    LogEntry { ballot: Ballot(3), decree: Decree(decree), timetag, mutation: Mutation::new(ops) }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn set_op(hk: &str, sk: &str, value: &str, ttl_secs: u32) -> WriteOp {
    WriteOp::Set { hash_key: b(hk), sort_key: b(sk), value: b(value), ttl_secs }
}

fn put_op(hk: &str, sk: &str, value: Option<&str>, expire_ts: u32, timetag: Timetag) -> WriteOp {
    WriteOp::Put { hash_key: b(hk), sort_key: b(sk), value: value.map(b), expire_ts, timetag: Some(timetag) }
}

fn convert(e: &LogEntry) -> Vec<WriteOp> {
    entry_to_puts(e, cid(LOCAL)).expect("convertible entry")
}

#[test]
fn set_expires_relative_to_the_entry_timetag() {
    let t = tt(T0_MS, LOCAL);
    let e = entry(5, t, vec![set_op("h", "a", "v", 60), set_op("h", "b", "w", 0)]);
    let secs = (T0_MS / 1000) as u32;
    assert_eq!(
        convert(&e),
        vec![put_op("h", "a", Some("v"), secs + 60, t), put_op("h", "b", Some("w"), 0, t)]
    );
}

#[test]
fn del_becomes_a_tombstone_with_the_delete_bit() {
    let t = tt(T0_MS, LOCAL);
    let puts = convert(&entry(5, t, vec![WriteOp::Del { hash_key: b("h"), sort_key: b("a") }]));
    assert_eq!(puts, vec![put_op("h", "a", None, 0, t.with_delete(true))]);
}

#[test]
fn multi_ops_give_one_put_per_record_in_order() {
    let t = tt(T0_MS, LOCAL);
    let secs = (T0_MS / 1000) as u32;
    let e = entry(
        5,
        t,
        vec![
            WriteOp::MultiSet {
                hash_key: b("h"),
                entries: vec![(b("a"), b("1")), (b("b"), b("2"))],
                ttl_secs: 10,
            },
            WriteOp::MultiDel { hash_key: b("g"), sort_keys: vec![b("x"), b("y")] },
        ],
    );
    let del = t.with_delete(true);
    assert_eq!(
        convert(&e),
        vec![
            put_op("h", "a", Some("1"), secs + 10, t),
            put_op("h", "b", Some("2"), secs + 10, t),
            put_op("g", "x", None, 0, del),
            put_op("g", "y", None, 0, del),
        ]
    );
}

#[test]
fn resolved_records_ship_as_recorded_with_the_entry_timetag() {
    let t = tt(T0_MS, LOCAL);
    let e = entry(
        5,
        t,
        vec![WriteOp::Resolved {
            hash_key: b("h"),
            records: vec![
                RecordState { sort_key: b("n"), value: Some(b("42")), expire_ts: 77 },
                RecordState { sort_key: b("gone"), value: None, expire_ts: 0 },
            ],
            outcome: ResolvedOutcome::Checked(CheckOutcome { passed: true, check_value: None }),
        }],
    );
    assert_eq!(
        convert(&e),
        vec![put_op("h", "n", Some("42"), 77, t), put_op("h", "gone", None, 0, t.with_delete(true))]
    );
}

#[test]
fn put_without_timetag_takes_the_entry_timetag() {
    let t = tt(T0_MS, LOCAL);
    let op =
        WriteOp::Put { hash_key: b("h"), sort_key: b("a"), value: Some(b("v")), expire_ts: 9, timetag: None };
    assert_eq!(convert(&entry(5, t, vec![op])), vec![put_op("h", "a", Some("v"), 9, t)]);
}

#[test]
fn a_copied_record_keeps_its_own_timetag_and_other_clusters_records_are_skipped() {
    let stored = |t: Timetag, expire_ts: u32, user: &[u8]| {
        let header = tern_core::ValueHeader { expire_ts, timetag: t };
        (key::encode(b"h", b"s").unwrap(), value::encode(&header, user))
    };
    let t = tt(T0_MS, LOCAL);
    let (k, v) = stored(t, 0, b"v");
    let copied = record_to_put(&k, &v, cid(LOCAL), 100).unwrap();
    assert_eq!(copied, Some(put_op("h", "s", Some("v"), 0, t)));
    let (k, v) = stored(t.with_delete(true), 0, b"");
    let tomb = record_to_put(&k, &v, cid(LOCAL), 100).unwrap();
    assert!(matches!(tomb, Some(WriteOp::Put { value: None, .. })), "a tombstone is copied as one");
    let (k, v) = stored(tt(T0_MS, PEER), 0, b"v");
    assert_eq!(record_to_put(&k, &v, cid(LOCAL), 100).unwrap(), None, "another cluster's write");
    let (k, v) = stored(t, 50, b"v");
    assert_eq!(record_to_put(&k, &v, cid(LOCAL), 100).unwrap(), None, "expired at 100 s");
}

#[test]
fn put_with_a_local_timetag_ships_with_it() {
    let own = tt(T0_MS - 5000, LOCAL);
    let e =
        entry(5, tt(T0_MS, LOCAL), vec![put_op("h", "a", Some("v"), 9, own), put_op("h", "b", None, 0, own)]);
    assert_eq!(
        convert(&e),
        vec![put_op("h", "a", Some("v"), 9, own), put_op("h", "b", None, 0, own.with_delete(true))]
    );
}

/// Regression guard for two-way links: a write that arrived by duplication is never shipped
/// again, while the other ops of its entry still are.
#[test]
fn foreign_origin_puts_are_dropped() {
    let t = tt(T0_MS, LOCAL);
    let foreign = tt(T0_MS - 10, PEER);
    let e = entry(
        5,
        t,
        vec![
            put_op("h", "a", Some("from peer"), 0, foreign),
            WriteOp::Del { hash_key: b("h"), sort_key: b("b") },
            put_op("h", "c", None, 0, foreign.with_delete(true)),
        ],
    );
    assert_eq!(convert(&e), vec![put_op("h", "b", None, 0, t.with_delete(true))]);
    let only_foreign = entry(6, t, vec![put_op("h", "a", Some("x"), 0, foreign)]);
    assert!(convert(&only_foreign).is_empty());
}

#[test]
fn unresolved_atomic_ops_are_refused_naming_decree_and_op() {
    let ops = tern_core::testing::every_kind_of_write().into_iter().filter(WriteOp::is_atomic);
    assert_eq!(ops.clone().count(), 3, "incr, check_and_set, check_and_mutate");
    for op in ops {
        let name = op.name();
        let set = set_op("h", "a", "v", 0);
        let e = entry(7, tt(T0_MS, LOCAL), vec![set, op]);
        let err = entry_to_puts(&e, cid(LOCAL)).expect_err("unresolved atomic op");
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("decree 7 holds an unresolved {name}")), "{msg}");
    }
}

#[test]
fn an_empty_mutation_gives_no_puts() {
    assert!(convert(&entry(1, tt(T0_MS, LOCAL), vec![])).is_empty());
}

/// Two ops of one batched entry on one record share the entry's timetag: only the later one
/// may be shipped, or pipelined batches arriving out of order could resurrect the earlier.
#[test]
fn writes_of_one_record_under_one_timetag_collapse_to_the_last() {
    let t = tt(T0_MS, LOCAL);
    let e = entry(
        5,
        t,
        vec![
            set_op("h", "a", "v1", 0),
            set_op("h", "b", "kept", 0),
            WriteOp::Del { hash_key: b("h"), sort_key: b("a") },
            WriteOp::MultiSet {
                hash_key: b("g"),
                entries: vec![(b("x"), b("1")), (b("x"), b("2"))],
                ttl_secs: 0,
            },
        ],
    );
    assert_eq!(
        convert(&e),
        vec![
            put_op("h", "b", Some("kept"), 0, t),
            put_op("h", "a", None, 0, t.with_delete(true)),
            put_op("g", "x", Some("2"), 0, t)
        ]
    );
    // Different timetags on one record are not collapsed: last-writer-wins orders them.
    let own = tt(T0_MS - 1, LOCAL);
    let e = entry(
        6,
        t,
        vec![put_op("h", "a", Some("old"), 0, own), WriteOp::Del { hash_key: b("h"), sort_key: b("a") }],
    );
    assert_eq!(convert(&e).len(), 2);
}

// ---- Shipping reproduces the source, whatever the order of arrival ----

fn store(disk: &MemDisk, name: &str) -> MemPartitionStore {
    MemPartitionStore::open(disk, name, Arc::new(ManualClock::new(T0_MS)))
}

fn contents(s: &MemPartitionStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    s.raw_scan(&KeyRange::all(), false, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(ControlFlow::Continue(()))
    })
    .expect("scan");
    out
}

fn arb_key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![b("a"), b("b"), b("c")])
}

fn arb_op() -> impl Strategy<Value = WriteOp> {
    let value = prop::collection::vec(any::<u8>(), 0..4);
    prop_oneof![
        (arb_key(), arb_key(), value.clone(), prop::sample::select(vec![0u32, 5, 3600])).prop_map(
            |(hash_key, sort_key, value, ttl_secs)| WriteOp::Set { hash_key, sort_key, value, ttl_secs }
        ),
        (arb_key(), arb_key()).prop_map(|(hash_key, sort_key)| WriteOp::Del { hash_key, sort_key }),
        (arb_key(), prop::collection::vec((arb_key(), value.clone()), 1..3))
            .prop_map(|(hash_key, entries)| WriteOp::MultiSet { hash_key, entries, ttl_secs: 0 }),
        (arb_key(), prop::collection::vec(arb_key(), 1..3))
            .prop_map(|(hash_key, sort_keys)| WriteOp::MultiDel { hash_key, sort_keys }),
        // Puts a primary resolved (no timetag) or that carry an older local timetag (never equal
        // to another write's: HLC timetags are unique).
        (arb_key(), arb_key(), prop::option::of(value), prop::option::of(1u64..20_000)).prop_map(
            |(hash_key, sort_key, value, age_ms)| WriteOp::Put {
                hash_key,
                sort_key,
                value,
                expire_ts: 0,
                timetag: age_ms.map(|age| tt(T0_MS - age, LOCAL)),
            }
        ),
    ]
}

proptest! {
    /// The peer applies every shipped put in any order, any grouping into its own entries, and
    /// ends with exactly the source's stored bytes (values, expiries, timetags, tombstones).
    #[test]
    fn shipped_puts_in_any_order_rebuild_the_source(
        mutations in prop::collection::vec(prop::collection::vec(arb_op(), 0..4), 1..12),
        order_seed in any::<u64>(),
        group in 1usize..5,
    ) {
        let disk = MemDisk::new();
        let mut source = store(&disk, "source");
        let mut shipped = Vec::new();
        for (i, ops) in mutations.into_iter().enumerate() {
            let e = entry(i as u64 + 1, tt(T0_MS + 1000 * i as u64, LOCAL), ops);
            source.apply_batch(&[ApplyEntry::from(&e)]).expect("source apply");
            shipped.extend(convert(&e));
        }
        // A deterministic shuffle from the seed (Fisher-Yates on a xorshift).
        let mut x = order_seed | 1;
        for i in (1..shipped.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shipped.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut peer = store(&disk, "peer");
        for (i, chunk) in shipped.chunks(group).enumerate() {
            let e = entry(i as u64 + 1, tt(T0_MS + 100_000 + i as u64, PEER), chunk.to_vec());
            peer.apply_batch(&[ApplyEntry::from(&e)]).expect("peer apply");
        }
        prop_assert_eq!(contents(&peer), contents(&source));
    }
}
