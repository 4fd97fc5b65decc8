//! Test support for the crates that encode, convert or classify writes (behind the `testing`
//! feature): one shared set of sample writes, so that a new kind of write is added to every
//! test that must cover it in one place.

use crate::mutation::{CamOp, Check, CheckAndMutate, CheckAndSet, CheckOutcome, CheckType, IncrTtl, WriteOp};
use crate::resolved::{RecordState, ResolvedOutcome};
use crate::timetag::Timetag;

/// One write of every kind a [`WriteOp`] can be (a put both with and without value and
/// timetag), all under hash key `h`.
pub fn every_kind_of_write() -> Vec<WriteOp> {
    let b = |s: &str| s.as_bytes().to_vec();
    vec![
        WriteOp::Set { hash_key: b("h"), sort_key: b("s"), value: b("v"), ttl_secs: 9 },
        WriteOp::Del { hash_key: b("h"), sort_key: vec![] },
        WriteOp::MultiSet { hash_key: b("h"), entries: vec![(b("a"), b("1"))], ttl_secs: 0 },
        WriteOp::MultiDel { hash_key: b("h"), sort_keys: vec![b("a")] },
        WriteOp::Incr { hash_key: b("h"), sort_key: b("n"), delta: -4, ttl: IncrTtl::Set(3) },
        WriteOp::CheckAndSet(CheckAndSet {
            hash_key: b("h"),
            check_sort_key: b("c"),
            check: Check { kind: CheckType::IntLess, operand: b("5") },
            set_sort_key: b("s"),
            set_value: b("v"),
            set_ttl_secs: 300,
            return_check_value: true,
        }),
        WriteOp::CheckAndMutate(CheckAndMutate {
            hash_key: b("h"),
            check_sort_key: b("c"),
            check: Check { kind: CheckType::NotExist, operand: vec![] },
            mutations: vec![
                CamOp::Put { sort_key: b("p"), value: b("1"), ttl_secs: 2 },
                CamOp::Delete { sort_key: b("d") },
            ],
            return_check_value: false,
        }),
        WriteOp::Put {
            hash_key: b("h"),
            sort_key: b("p"),
            value: Some(b("v")),
            expire_ts: 9,
            timetag: Some(Timetag::from_u64(77)),
        },
        WriteOp::Put { hash_key: b("h"), sort_key: b("t"), value: None, expire_ts: 0, timetag: None },
        WriteOp::Resolved {
            hash_key: b("h"),
            records: vec![
                RecordState { sort_key: b("n"), value: Some(b("42")), expire_ts: 7 },
                RecordState { sort_key: b("gone"), value: None, expire_ts: 0 },
            ],
            outcome: ResolvedOutcome::Checked(CheckOutcome { passed: true, check_value: Some(None) }),
        },
    ]
}
