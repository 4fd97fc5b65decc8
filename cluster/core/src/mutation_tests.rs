use super::*;
use proptest::prelude::*;

/// Pins encoding version 1: these bytes are in every log on disk.
#[test]
fn golden_bytes_v1() {
    let m = Mutation::new(vec![
        WriteOp::Set {
            hash_key: b"h".to_vec(),
            sort_key: b"s".to_vec(),
            value: b"v".to_vec(),
            ttl_secs: 300,
        },
        WriteOp::Del { hash_key: b"h".to_vec(), sort_key: vec![] },
        WriteOp::Incr { hash_key: b"h".to_vec(), sort_key: b"n".to_vec(), delta: -2, ttl: IncrTtl::Set(5) },
    ]);
    let bytes = m.encode();
    assert_eq!(
        bytes,
        vec![
            1, 3, // version, op count
            1, 1, b'h', 1, b's', 1, b'v', 0xac, 0x02, // set, ttl 300
            2, 1, b'h', 0, // del
            5, 1, b'h', 1, b'n', 3, 2, 5, // incr delta -2 (zigzag 3), ttl mode set, 5
        ]
    );
    assert_eq!(Mutation::decode(&bytes).unwrap(), m);
}

/// Pins encoding version 1 of every kind of write (the set above pins the bytes alone).
#[test]
fn golden_bytes_v1_every_kind_of_write() {
    let m = Mutation::new(crate::testing::every_kind_of_write());
    let bytes = m.encode();
    #[rustfmt::skip]
    let want = vec![
        1, 10, // version, op count
        1, 1, b'h', 1, b's', 1, b'v', 9, // set, ttl 9
        2, 1, b'h', 0, // del
        3, 1, b'h', 0, 1, 1, b'a', 1, b'1', // multi_set: ttl 0, 1 entry
        4, 1, b'h', 1, 1, b'a', // multi_del: 1 sort key
        5, 1, b'h', 1, b'n', 7, 2, 3, // incr delta -4 (zigzag 7), ttl mode set, 3
        // check_and_set: int-less "5", set s=v with ttl 300, return the checked value
        6, 1, b'h', 1, b'c', 13, 1, b'5', 1, b's', 1, b'v', 0xac, 0x02, 1,
        // check_and_mutate: not-exist, 2 ops (put p=1 ttl 2, delete d), no checked value
        7, 1, b'h', 1, b'c', 1, 0, 2, 1, 1, b'p', 1, b'1', 2, 2, 1, b'd', 0,
        8, 1, b'h', 1, b'p', 3, 9, 1, b'v', 0, 0, 0, 0, 0, 0, 0, 77, // put: value and timetag, expire 9
        8, 1, b'h', 1, b't', 0, 0, // put: tombstone, no timetag
        // resolved: 2 records (n=42 expiring at 7, tombstone gone), checked: passed, absent
        9, 1, b'h', 2, 1, b'n', 1, 7, 2, b'4', b'2', 4, b'g', b'o', b'n', b'e', 0, 0, 2, 1, 1,
    ];
    assert_eq!(bytes, want);
    assert_eq!(Mutation::decode(&bytes).unwrap(), m);
}

/// Pins encoding version 2: version 1 and the purge horizon.
#[test]
fn golden_bytes_v2() {
    let m = Mutation::purge_horizon(Timetag::from_u64(300));
    let bytes = m.encode();
    assert_eq!(bytes, vec![2, 0, 0xac, 0x02]);
    assert_eq!(Mutation::decode(&bytes).unwrap(), m);
    let mut with_op = Mutation::new(vec![WriteOp::Del { hash_key: b"h".to_vec(), sort_key: vec![] }]);
    assert_eq!(with_op.encode()[0], 1, "without a horizon a mutation stays version 1");
    with_op.purge_below = Some(Timetag::from_u64(1));
    assert_eq!(with_op.encode(), vec![2, 1, 2, 1, b'h', 0, 1]);
    assert_eq!(Mutation::decode(&with_op.encode()).unwrap(), with_op);
}

#[test]
fn unknown_version_and_tags_are_corruption() {
    assert!(Mutation::decode(&[3, 0]).unwrap_err().to_string().contains("version 3"));
    assert!(Mutation::decode(&[1, 1, 99]).unwrap_err().to_string().contains("op tag 99"));
    assert!(Mutation::decode(&[]).unwrap_err().is_fatal());
    // A claimed op count larger than the input must not allocate or panic.
    assert!(Mutation::decode(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
}

#[test]
fn check_type_names_round_trip() {
    for &c in CheckType::ALL {
        assert_eq!(CheckType::from_name(c.name()), Some(c));
        assert_eq!(CheckType::from_u8(c as u8), Some(c));
    }
    assert!(CheckType::IntEqual.is_int_compare());
    assert!(!CheckType::BytesEqual.is_int_compare());
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..8)
}

fn check_strategy() -> impl Strategy<Value = Check> {
    (0..CheckType::ALL.len(), bytes()).prop_map(|(i, operand)| Check { kind: CheckType::ALL[i], operand })
}

pub(crate) fn write_op() -> impl Strategy<Value = WriteOp> {
    prop_oneof![
        (bytes(), bytes(), bytes(), any::<u32>()).prop_map(|(hash_key, sort_key, value, ttl_secs)| {
            WriteOp::Set { hash_key, sort_key, value, ttl_secs }
        }),
        (bytes(), bytes()).prop_map(|(hash_key, sort_key)| WriteOp::Del { hash_key, sort_key }),
        (bytes(), proptest::collection::vec((bytes(), bytes()), 0..4), any::<u32>())
            .prop_map(|(hash_key, entries, ttl_secs)| WriteOp::MultiSet { hash_key, entries, ttl_secs }),
        (bytes(), proptest::collection::vec(bytes(), 0..4))
            .prop_map(|(hash_key, sort_keys)| WriteOp::MultiDel { hash_key, sort_keys }),
        (
            bytes(),
            bytes(),
            any::<i64>(),
            prop_oneof![Just(IncrTtl::Keep), Just(IncrTtl::Clear), any::<u32>().prop_map(IncrTtl::Set)]
        )
            .prop_map(|(hash_key, sort_key, delta, ttl)| WriteOp::Incr {
                hash_key,
                sort_key,
                delta,
                ttl
            }),
        (bytes(), bytes(), check_strategy(), bytes(), bytes(), any::<u32>(), any::<bool>()).prop_map(
            |(hash_key, check_sort_key, check, set_sort_key, set_value, set_ttl_secs, return_check_value)| {
                WriteOp::CheckAndSet(CheckAndSet {
                    hash_key,
                    check_sort_key,
                    check,
                    set_sort_key,
                    set_value,
                    set_ttl_secs,
                    return_check_value,
                })
            }
        ),
        (
            bytes(),
            bytes(),
            check_strategy(),
            proptest::collection::vec(
                prop_oneof![
                    (bytes(), bytes(), any::<u32>()).prop_map(|(sort_key, value, ttl_secs)| CamOp::Put {
                        sort_key,
                        value,
                        ttl_secs
                    }),
                    bytes().prop_map(|sort_key| CamOp::Delete { sort_key }),
                ],
                0..4
            ),
            any::<bool>()
        )
            .prop_map(|(hash_key, check_sort_key, check, mutations, return_check_value)| {
                WriteOp::CheckAndMutate(CheckAndMutate {
                    hash_key,
                    check_sort_key,
                    check,
                    mutations,
                    return_check_value,
                })
            }),
        (bytes(), bytes(), proptest::option::of(bytes()), any::<u32>(), proptest::option::of(any::<u64>()))
            .prop_map(|(hash_key, sort_key, value, expire_ts, timetag)| WriteOp::Put {
                hash_key,
                sort_key,
                value,
                expire_ts,
                timetag: timetag.map(crate::Timetag::from_u64),
            }),
        (
            bytes(),
            proptest::collection::vec(
                (bytes(), proptest::option::of(bytes()), any::<u32>())
                    .prop_map(|(sort_key, value, expire_ts)| RecordState { sort_key, value, expire_ts }),
                0..4
            ),
            prop_oneof![
                any::<i64>().prop_map(|new_value| ResolvedOutcome::Incr { new_value }),
                (any::<bool>(), proptest::option::of(proptest::option::of(bytes()))).prop_map(
                    |(passed, check_value)| ResolvedOutcome::Checked(CheckOutcome { passed, check_value })
                ),
            ]
        )
            .prop_map(|(hash_key, records, outcome)| WriteOp::Resolved {
                hash_key,
                records,
                outcome
            }),
    ]
}

proptest! {
    #[test]
    fn round_trip(ops in proptest::collection::vec(write_op(), 0..6)) {
        let m = Mutation::new(ops);
        prop_assert_eq!(Mutation::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn truncation_is_always_detected(ops in proptest::collection::vec(write_op(), 1..4), cut in 0usize..1000) {
        let bytes = Mutation::new(ops).encode();
        let cut = cut % bytes.len();
        prop_assert!(Mutation::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Mutation::decode(&data);
    }
}
