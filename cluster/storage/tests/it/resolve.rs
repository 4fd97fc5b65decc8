//! Atomic operations resolved by the primary: logging `resolve(op)` instead of `op` changes
//! nothing a client or a replica can observe. Same outcomes, byte-identical stores.

use std::sync::Arc;

use proptest::prelude::*;
use tern_core::mutation::{CamOp, Check, CheckAndMutate, CheckAndSet, CheckType, IncrTtl, WriteOutcome};
use tern_core::{Clock, ManualClock, WriteOp};
use tern_storage::testing::{T0_MS, apply_next, raw_contents};
use tern_storage::{MemDisk, MemPartitionStore, PartitionStore};

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(b"".to_vec()), Just(b"7".to_vec()), Just(b"-3".to_vec()), Just(b"x".to_vec())]
}

fn check() -> impl Strategy<Value = Check> {
    (prop::sample::select(CheckType::ALL.to_vec()), value())
        .prop_map(|(kind, operand)| Check { kind, operand })
}

fn sk() -> impl Strategy<Value = Vec<u8>> {
    (0u8..3).prop_map(|k| vec![k])
}

fn op() -> impl Strategy<Value = WriteOp> {
    let h = || b"h".to_vec();
    prop_oneof![
        (sk(), value(), 0u32..3).prop_map(move |(sort_key, value, ttl_secs)| WriteOp::Set {
            hash_key: h(),
            sort_key,
            value,
            ttl_secs
        }),
        sk().prop_map(move |sort_key| WriteOp::Del { hash_key: h(), sort_key }),
        (
            sk(),
            prop_oneof![Just(1i64), Just(-2), Just(i64::MAX)],
            prop_oneof![Just(IncrTtl::Keep), Just(IncrTtl::Clear), Just(IncrTtl::Set(2))]
        )
            .prop_map(move |(sort_key, delta, ttl)| WriteOp::Incr {
                hash_key: h(),
                sort_key,
                delta,
                ttl
            }),
        (sk(), check(), sk(), value(), 0u32..3, any::<bool>()).prop_map(move |(c, check, s, v, t, r)| {
            WriteOp::CheckAndSet(CheckAndSet {
                hash_key: h(),
                check_sort_key: c,
                check,
                set_sort_key: s,
                set_value: v,
                set_ttl_secs: t,
                return_check_value: r,
            })
        }),
        (
            sk(),
            check(),
            prop::collection::vec(
                prop_oneof![
                    (sk(), value(), 0u32..3).prop_map(|(sort_key, value, ttl_secs)| CamOp::Put {
                        sort_key,
                        value,
                        ttl_secs
                    }),
                    sk().prop_map(|sort_key| CamOp::Delete { sort_key }),
                ],
                1..4
            ),
            any::<bool>()
        )
            .prop_map(move |(c, check, mutations, r)| WriteOp::CheckAndMutate(CheckAndMutate {
                hash_key: h(),
                check_sort_key: c,
                check,
                mutations,
                return_check_value: r,
            })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn resolving_at_the_primary_changes_nothing_observable(
        steps in prop::collection::vec((op(), 0u64..1500), 1..30)
    ) {
        let (disk_a, disk_b) = (MemDisk::new(), MemDisk::new());
        let clock = Arc::new(ManualClock::new(T0_MS));
        let mut direct = MemPartitionStore::open(&disk_a, "a", clock.clone());
        let mut resolved = MemPartitionStore::open(&disk_b, "b", clock.clone());
        for (op, advance_ms) in steps {
            clock.advance_ms(advance_ms);
            let want = apply_next(&mut direct, &clock, vec![op.clone()]).remove(0);
            // The primary resolves at its clock, then logs the result (stamped at that clock).
            let got = if op.is_atomic() {
                match resolved.resolve(&op, clock.now_ms() / 1000) {
                    Ok(r) => {
                        let is_resolved = matches!(r, WriteOp::Resolved { .. });
                        prop_assert!(is_resolved, "resolve gave {:?}", r);
                        apply_next(&mut resolved, &clock, vec![r]).remove(0)
                    }
                    Err(e) => {
                        // Refused without logging: the decree sequences differ from here on
                        // in number only; keep them aligned with an empty decree.
                        apply_next(&mut resolved, &clock, vec![]);
                        WriteOutcome::Failed(e)
                    }
                }
            } else {
                apply_next(&mut resolved, &clock, vec![op.clone()]).remove(0)
            };
            prop_assert_eq!(&got, &want, "outcome of {:?}", op);
            prop_assert_eq!(raw_contents(&resolved), raw_contents(&direct), "state after {:?}", op);
        }
    }
}

#[test]
fn a_resolved_check_and_mutate_keeps_the_last_write_of_a_record() {
    let disk = MemDisk::new();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let s = MemPartitionStore::open(&disk, "p", clock);
    let op = WriteOp::CheckAndMutate(CheckAndMutate {
        hash_key: b"h".to_vec(),
        check_sort_key: b"c".to_vec(),
        check: Check { kind: CheckType::NotExist, operand: vec![] },
        mutations: vec![
            CamOp::Put { sort_key: b"a".to_vec(), value: b"1".to_vec(), ttl_secs: 0 },
            CamOp::Delete { sort_key: b"a".to_vec() },
        ],
        return_check_value: false,
    });
    let WriteOp::Resolved { records, .. } = s.resolve(&op, T0_MS / 1000).unwrap() else { panic!() };
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value, None, "the delete came last");
}
