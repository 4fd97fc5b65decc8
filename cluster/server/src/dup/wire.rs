//! What a `Duplicate` request weighs on the wire: its protobuf-encoded size, which the link's
//! throttle counts (`tern_duplication::WireSize`). Computed from the puts without building the
//! message (the shipper sizes every put it reads); a test pins it to prost's own `encoded_len`.

use tern_core::WriteOp;
use tern_duplication::WireSize;
use tern_proto::pb;
use tern_proto::prost::Message;
use tern_proto::prost::encoding::{encoded_len_varint, key_len};

/// `puts` is field 4 of `DuplicateRequest`.
const PUTS_FIELD: u32 = 4;

/// The encoded size of a `DuplicateRequest`, its ids counted at their largest.
#[derive(Clone, Copy, Debug, Default)]
pub struct DuplicateRequestSize;

impl WireSize for DuplicateRequestSize {
    fn put_bytes(&self, put: &WriteOp) -> u64 {
        let n = put_len(put);
        (key_len(PUTS_FIELD) + encoded_len_varint(n as u64) + n) as u64
    }

    fn request_bytes(&self) -> u64 {
        let largest = pb::DuplicateRequest {
            gpid: Some(pb::Gpid { table: u32::MAX, partition: u32::MAX }),
            from_cluster: u32::MAX,
            partition_count: u32::MAX,
            puts: Vec::new(),
            full_sync: true,
            source_table: u32::MAX,
            source_partition: u32::MAX,
            source_partitions: u32::MAX,
            replicated_up_to: u64::MAX,
        };
        largest.encoded_len() as u64
    }
}

/// `put_to_pb(put).encoded_len()`, without copying keys and values. Proto3 leaves fields at
/// their default out.
fn put_len(put: &WriteOp) -> usize {
    let WriteOp::Put { hash_key, sort_key, value, expire_ts, timetag } = put else {
        // Only puts are shipped; anything else is refused before it is sent.
        return 0;
    };
    let bytes = |tag: u32, b: &[u8]| {
        if b.is_empty() { 0 } else { key_len(tag) + encoded_len_varint(b.len() as u64) + b.len() }
    };
    let varint = |tag: u32, v: u64| if v == 0 { 0 } else { key_len(tag) + encoded_len_varint(v) };
    let flag = |tag: u32, on: bool| if on { key_len(tag) + 1 } else { 0 };
    bytes(1, hash_key)
        + bytes(2, sort_key)
        + flag(3, value.is_none())
        + bytes(4, value.as_deref().unwrap_or_default())
        + varint(5, u64::from(*expire_ts))
        + flag(6, timetag.is_some())
        + varint(7, timetag.map_or(0, |t| t.as_u64()))
}

#[cfg(test)]
mod tests {
    use tern_core::{ClusterId, Timetag};
    use tern_proto::convert::put_to_pb;

    use super::*;

    fn put(hk: usize, sk: usize, value: Option<usize>, expire_ts: u32, timetag: Option<u64>) -> WriteOp {
        WriteOp::Put {
            hash_key: vec![b'h'; hk],
            sort_key: vec![b's'; sk],
            value: value.map(|n| vec![b'v'; n]),
            expire_ts,
            timetag: timetag.map(Timetag::from_u64),
        }
    }

    #[test]
    fn the_size_is_the_encoded_requests() {
        let tt = Timetag::new(1_795_392_000_123, 77, ClusterId::new(3).unwrap(), false).as_u64();
        let puts = vec![
            put(0, 0, None, 0, None),
            put(1, 0, Some(0), 0, Some(tt)),
            put(5, 9, Some(100), 1_234_567, Some(tt)),
            put(200, 300, Some(70_000), u32::MAX, Some(u64::MAX)),
            put(3, 3, None, 0, Some(tt | 1)),
        ];
        let size = DuplicateRequestSize;
        for p in &puts {
            assert_eq!(put_len(p), put_to_pb(p).unwrap().encoded_len(), "{p:?}");
        }
        let request = pb::DuplicateRequest {
            gpid: Some(pb::Gpid { table: 12, partition: 7 }),
            from_cluster: 3,
            partition_count: 32,
            puts: puts.iter().map(|p| put_to_pb(p).unwrap()).collect(),
            full_sync: false,
            source_table: 4,
            source_partition: 7,
            source_partitions: 8,
            replicated_up_to: tt,
        };
        let empty = pb::DuplicateRequest { puts: Vec::new(), ..request.clone() }.encoded_len() as u64;
        let puts_counted: u64 = puts.iter().map(|p| size.put_bytes(p)).sum();
        assert_eq!(puts_counted, request.encoded_len() as u64 - empty, "the puts exactly");
        assert!(size.request_bytes() >= empty && size.request_bytes() <= 72, "the rest at its largest");
    }
}
