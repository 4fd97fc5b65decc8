use tern_core::{ClusterId, Gpid, Timetag, WriteOp, partition_of};

use super::*;

fn cluster(n: u8) -> ClusterId {
    ClusterId::new(n).unwrap()
}

fn receiver() -> Receiver {
    Receiver { own_cluster: cluster(2), own_partitions: None, max_clock_offset_ms: 500 }
}

/// A hash key of partition `p` of `n`.
fn key_of(p: u32, n: u32) -> Vec<u8> {
    (0u32..).map(|i| format!("k{i}").into_bytes()).find(|k| partition_of(k, n).0 == p).unwrap()
}

fn put(hash_key: Vec<u8>, physical_ms: u64, from: u8) -> WriteOp {
    WriteOp::Put {
        hash_key,
        sort_key: vec![],
        value: Some(b"v".to_vec()),
        expire_ts: 0,
        timetag: Some(Timetag::new(physical_ms, 7, cluster(from), false)),
    }
}

fn batch(puts: Vec<WriteOp>) -> IncomingBatch {
    IncomingBatch { gpid: Gpid::new(1, 3), from_cluster: 1, partition_count: 4, puts }
}

const NOW: u64 = 100 * 24 * 3600 * 1000;

#[test]
fn a_well_formed_batch_is_admitted_unchanged() {
    let puts = vec![put(key_of(3, 4), NOW - 5, 1), put(key_of(3, 4), NOW, 1)];
    let a = DupRules::default().admit(&receiver(), batch(puts.clone()), NOW).unwrap();
    assert_eq!(a, Admitted { puts });
}

#[test]
fn every_malformed_batch_is_refused_whole_with_a_reason() {
    let rules = DupRules::default();
    let good = put(key_of(3, 4), NOW, 1);
    let cases: Vec<(&str, IncomingBatch)> = vec![
        ("own id", IncomingBatch { from_cluster: 2, ..batch(vec![put(key_of(3, 4), NOW, 2)]) }),
        ("partition count of 0", IncomingBatch { partition_count: 0, ..batch(vec![good.clone()]) }),
        ("partition count of 3", IncomingBatch { partition_count: 3, ..batch(vec![good.clone()]) }),
        ("only puts", batch(vec![good.clone(), WriteOp::Del { hash_key: key_of(3, 4), sort_key: vec![] }])),
        (
            "without its origin timetag",
            batch(vec![WriteOp::Put {
                hash_key: key_of(3, 4),
                sort_key: vec![],
                value: None,
                expire_ts: 0,
                timetag: None,
            }]),
        ),
        ("never shipped again", batch(vec![good.clone(), put(key_of(3, 4), NOW, 3)])),
        ("belongs to partition", batch(vec![good.clone(), put(key_of(1, 4), NOW, 1)])),
    ];
    for (why, b) in cases {
        let e = rules.admit(&receiver(), b, NOW).expect_err(why);
        assert!(e.to_string().contains(why), "{why}: {e}");
        assert_eq!(e.code(), tern_core::ErrorCode::InvalidArgument, "{why}");
    }
}

#[test]
fn the_receivers_own_partition_count_wins_over_the_senders() {
    let r = Receiver { own_partitions: Some(8), ..receiver() };
    let e = DupRules::default().admit(&r, batch(vec![put(key_of(3, 4), NOW, 1)]), NOW).unwrap_err();
    assert!(e.to_string().contains("the table has 8"), "{e}");
}

#[test]
fn a_batch_from_a_clock_too_far_ahead_is_refused_naming_the_offset() {
    let within = vec![put(key_of(3, 4), NOW + 500, 1)];
    assert!(DupRules::default().admit(&receiver(), batch(within), NOW).is_ok(), "at the bound");
    let puts = vec![put(key_of(3, 4), NOW + 400, 1), put(key_of(3, 4), NOW + 3_600_000, 1)];
    let e = DupRules::default().admit(&receiver(), batch(puts), NOW).unwrap_err();
    assert_eq!(e.code(), tern_core::ErrorCode::ClockAhead);
    let text = e.to_string();
    assert!(
        text.contains("1.3") && text.contains("cluster 1") && text.contains("3600000 ms ahead"),
        "{text}"
    );
}

/// No timetag is ever rewritten, however old (full sync records included): an old record
/// competes by last-writer-wins with its own timetag.
#[test]
fn old_timetags_are_admitted_unchanged() {
    let old = put(key_of(3, 4), 1_000, 1);
    let a = DupRules::default().admit(&receiver(), batch(vec![old.clone()]), NOW).unwrap();
    assert_eq!(a.puts, vec![old]);
}
