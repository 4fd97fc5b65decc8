//! The purge horizon: compaction drops dead records below it, and a write meeting such a
//! record treats it as absent whether or not compaction got to it, so two replicas that
//! compacted at different times apply every later write identically.

use std::sync::Arc;

use proptest::prelude::*;
use tern_core::mutation::WriteOutcome;
use tern_core::{Clock, ManualClock};
use tern_storage::testing::{T0_MS, apply_next, apply_purge_horizon, del, put_from, raw_contents, set};
use tern_storage::{MemDisk, MemPartitionStore};

fn store(clock: &Arc<ManualClock>) -> MemPartitionStore {
    MemPartitionStore::open(&MemDisk::new(), "/s", clock.clone() as Arc<dyn Clock>)
}

#[test]
fn dead_records_stay_until_the_purge_horizon_passes_them() {
    let clock = Arc::new(ManualClock::new(T0_MS));
    let mut s = store(&clock);
    apply_next(&mut s, &clock, vec![set(b"h", b"a", b"x")]);
    apply_next(&mut s, &clock, vec![del(b"h", b"a")]);
    clock.advance_ms(5_000);
    apply_next(&mut s, &clock, vec![set(b"h", b"b", b"y")]);
    assert_eq!(s.compact(), 0, "no purge horizon: nothing dead goes");
    // A link that has not confirmed past the tombstone keeps it: an older duplicated write from
    // it still loses.
    let late = apply_next(&mut s, &clock, vec![put_from(b"h", b"a", Some(b"old"), T0_MS - 1_000, 0, 2)]);
    assert!(matches!(late[0], WriteOutcome::Superseded { .. }), "{late:?}");
    apply_purge_horizon(&mut s, &clock);
    assert_eq!(s.compact(), 1, "the tombstone is below the horizon now");
    assert_eq!(raw_contents(&s).len(), 1);
}

proptest! {
    /// Two replicas with the same history, one compacted and one not, apply a late write
    /// (of any age, live or a delete) the same way and end byte-identical.
    #[test]
    fn compacting_or_not_never_changes_what_a_write_does(
        dead in prop::collection::vec((0u8..4, any::<bool>()), 1..8),
        late_ms in 0u64..20_000,
        late_delete in any::<bool>(),
        late_key in 0u8..4,
    ) {
        let clock = Arc::new(ManualClock::new(T0_MS));
        let (mut a, mut b) = (store(&clock), store(&clock));
        for (k, also_delete) in &dead {
            for s in [&mut a, &mut b] {
                apply_next(s, &clock, vec![set(b"h", &[*k], b"v")]);
                if *also_delete {
                    apply_next(s, &clock, vec![del(b"h", &[*k])]);
                }
            }
            clock.advance_ms(1_000);
        }
        clock.advance_ms(10_000);
        for s in [&mut a, &mut b] {
            apply_purge_horizon(s, &clock);
        }
        a.compact();
        let value = (!late_delete).then_some(&b"late"[..]);
        let late = vec![put_from(b"h", &[late_key], value, T0_MS + late_ms, 0, 2)];
        let (ra, rb) = (apply_next(&mut a, &clock, late.clone()), apply_next(&mut b, &clock, late));
        prop_assert_eq!(ra, rb);
        b.compact();
        a.compact();
        prop_assert_eq!(raw_contents(&a), raw_contents(&b));
    }
}
