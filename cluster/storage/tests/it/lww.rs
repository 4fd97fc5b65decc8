//! Last-writer-wins merge: duplicated writes ordered by timetag, tombstones included.
//!
//! Whatever order (and however often) a set of timetagged writes and deletes arrives in, every
//! store ends in the same state: per record, the write with the largest timetag.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tern_core::{ManualClock, Timetag, WriteOp, value};
use tern_storage::testing::{T0_MS, apply_next, put_from, raw_contents};
use tern_storage::{MemDisk, MemPartitionStore};

/// One duplicated write: (sort key, physical ms offset, logical, cluster, value; None = delete).
type Write = (u8, u64, u32, u8, Option<u8>);

fn op(w: &Write) -> WriteOp {
    let (sk, ms, logical, cluster, value) = *w;
    put_from(b"h", &[sk], value.map(|v| [v]).as_ref().map(|v| &v[..]), T0_MS + ms, logical, cluster)
}

fn timetag(w: &Write) -> Timetag {
    match op(w) {
        WriteOp::Put { timetag: Some(t), .. } => t,
        other => panic!("not a duplicated put: {other:?}"),
    }
}

/// Writes with distinct timetags per record (two writes never share one; see `superseded`).
fn writes() -> impl Strategy<Value = Vec<Write>> {
    prop::collection::vec((0u8..3, 0u64..4, 0u32..3, 1u8..4, prop::option::of(0u8..4)), 1..24).prop_map(
        |ws| {
            let mut seen = std::collections::BTreeSet::new();
            ws.into_iter().filter(|w| seen.insert((w.0, timetag(w).with_delete(false)))).collect()
        },
    )
}

/// Applies `order` (indices into `ws`) in batches of `batch` ops per decree; returns the raw
/// contents (storage key → stored bytes).
fn apply(ws: &[Write], order: &[usize], batch: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let disk = MemDisk::new();
    let clock = std::sync::Arc::new(ManualClock::new(T0_MS + 10_000));
    let mut s = MemPartitionStore::open(&disk, "p", clock.clone());
    for chunk in order.chunks(batch) {
        apply_next(&mut s, &clock, chunk.iter().map(|&i| op(&ws[i])).collect());
    }
    raw_contents(&s)
}

proptest! {
    #[test]
    fn any_order_any_repetition_same_state(
        (ws, a, b) in writes().prop_flat_map(|ws| {
            let all: Vec<usize> = (0..ws.len()).collect();
            let n = ws.len();
            let with_repeats = (Just(all.clone()), prop::collection::vec(0..n, 0..8))
                .prop_map(|(mut all, extra)| { all.extend(extra); all })
                .prop_shuffle();
            (Just(ws), Just(all).prop_shuffle(), with_repeats)
        }),
        batch_a in 1usize..4,
        batch_b in 1usize..4,
    ) {
        let one = apply(&ws, &a, batch_a);
        let other = apply(&ws, &b, batch_b);
        prop_assert_eq!(&one, &other, "order and repetition must not matter");
        // And the state is, per record, the write with the largest timetag.
        let mut newest: BTreeMap<u8, &Write> = BTreeMap::new();
        for w in &ws {
            let e = newest.entry(w.0).or_insert(w);
            if timetag(w).with_delete(false) > timetag(e).with_delete(false) {
                *e = w;
            }
        }
        prop_assert_eq!(one.len(), newest.len());
        for (sk, w) in newest {
            let raw = &one[&tern_core::key::encode(b"h", &[sk]).unwrap()];
            let (header, user) = value::decode(raw).unwrap();
            prop_assert_eq!(header.timetag, timetag(w));
            prop_assert_eq!(header.is_tombstone(), w.4.is_none());
            prop_assert_eq!(user, w.4.map(|v| vec![v]).unwrap_or_default());
        }
    }
}

#[test]
fn a_delete_leaves_a_tombstone_that_a_late_older_write_cannot_pass() {
    let ws: Vec<Write> = vec![(1, 2, 0, 1, None), (1, 1, 0, 2, Some(7))];
    let state = apply(&ws, &[0, 1], 1);
    let (header, user) = value::decode(state.values().next().unwrap()).unwrap();
    assert!(header.is_tombstone() && user.is_empty(), "the delete (newer) stays: {header:?}");
}

#[test]
fn a_put_reports_the_record_it_replaced_even_when_newer_than_everything_stored() {
    use tern_core::mutation::WriteOutcome;
    use tern_storage::testing::{set, timetag_now};
    let disk = MemDisk::new();
    let clock = std::sync::Arc::new(ManualClock::new(T0_MS + 10_000));
    let mut s = MemPartitionStore::open(&disk, "p", clock.clone());
    // A local write, stamped by this store's cluster (1) at decree 1.
    assert_eq!(apply_next(&mut s, &clock, vec![set(b"h", b"a", b"local")]), vec![WriteOutcome::Done]);
    let local = timetag_now(&clock, 1);
    // Newer than every stored timetag (the read a local write skips is not skipped), from
    // cluster 2: it replaces the local record and says so.
    let newer = put_from(b"h", b"a", Some(b"remote"), T0_MS + 20_000, 0, 2);
    assert_eq!(
        apply_next(&mut s, &clock, vec![newer.clone()]),
        vec![WriteOutcome::Replaced { stored: local }]
    );
    // Older than what is stored now: it loses to the put above.
    let older = put_from(b"h", b"a", Some(b"old"), T0_MS + 5_000, 0, 3);
    let WriteOp::Put { timetag: Some(newer_tt), .. } = newer else { unreachable!() };
    assert_eq!(apply_next(&mut s, &clock, vec![older]), vec![WriteOutcome::Superseded { stored: newer_tt }]);
    // Nothing stored under the key: plain `Done`. A delete that wins replaces too, and a put
    // over its tombstone reports the tombstone's timetag (delete bit set).
    let first = put_from(b"h", b"b", Some(b"v"), T0_MS + 1_000, 0, 2);
    assert_eq!(apply_next(&mut s, &clock, vec![first]), vec![WriteOutcome::Done]);
    let delete = put_from(b"h", b"b", None, T0_MS + 2_000, 0, 2);
    let WriteOp::Put { timetag: Some(delete_tt), .. } = delete else { unreachable!() };
    assert!(matches!(apply_next(&mut s, &clock, vec![delete])[..], [WriteOutcome::Replaced { .. }]));
    let again = put_from(b"h", b"b", Some(b"back"), T0_MS + 3_000, 0, 2);
    let out = apply_next(&mut s, &clock, vec![again]);
    assert_eq!(out, vec![WriteOutcome::Replaced { stored: delete_tt }]);
    assert!(delete_tt.is_delete());
}
