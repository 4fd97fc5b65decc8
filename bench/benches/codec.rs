//! Encoding hot paths: every write encodes a key, a value header and a mutation; every read
//! decodes a key and a header.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tern_core::value::{self, ValueHeader};
use tern_core::{ClusterId, Mutation, Timetag, WriteOp, key};

fn codec(c: &mut Criterion) {
    let hk = b"user:000123456".to_vec();
    let sk = b"profile.name".to_vec();
    let mut g = c.benchmark_group("key");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| b.iter(|| key::encode(black_box(&hk), black_box(&sk)).unwrap()));
    let k = key::encode(&hk, &sk).unwrap();
    g.bench_function("decode", |b| b.iter(|| key::decode(black_box(&k)).unwrap()));
    g.finish();

    let header = ValueHeader {
        expire_ts: 0,
        timetag: Timetag::new(1_767_225_600_000, 3, ClusterId::new(1).unwrap(), false),
    };
    let v100 = vec![b'v'; 100];
    let mut g = c.benchmark_group("value_header");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_100B", |b| b.iter(|| value::encode(black_box(&header), black_box(&v100))));
    let raw = value::encode(&header, &v100);
    g.bench_function("decode_100B", |b| b.iter(|| value::decode(black_box(&raw)).unwrap()));
    g.finish();

    let m = Mutation::new(
        (0..10)
            .map(|i| WriteOp::Set {
                hash_key: hk.clone(),
                sort_key: format!("f{i}").into_bytes(),
                value: v100.clone(),
                ttl_secs: 0,
            })
            .collect(),
    );
    let bytes = m.encode();
    let mut g = c.benchmark_group("mutation");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode_10_sets", |b| b.iter(|| black_box(&m).encode()));
    g.bench_function("decode_10_sets", |b| b.iter(|| Mutation::decode(black_box(&bytes)).unwrap()));
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
