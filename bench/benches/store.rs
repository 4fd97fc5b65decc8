//! Store throughput: applying decrees and point reads, on RocksDB and in memory.
//! `cargo bench -p tern-bench --bench store` (see docs/benchmarks.md).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tern_core::{Clock, ClusterId, Decree, Hlc, ManualClock, Mutation, WriteOp};
use tern_rocks::{RocksBackend, RocksConfig};
use tern_storage::{ApplyEntry, MemDisk, MemPartitionStore, PartitionStore};

const T0_MS: u64 = 1_767_225_600_000;
const KEYS: u64 = 100_000;

fn set(i: u64) -> WriteOp {
    WriteOp::Set {
        hash_key: format!("user{i:08}").into_bytes(),
        sort_key: b"f".to_vec(),
        value: vec![b'v'; 100],
        ttl_secs: 0,
    }
}

/// Applies one decree of `ops_per_decree` sets, `decrees_per_write` decrees per store write.
fn apply_n<S: PartitionStore>(
    s: &mut S,
    hlc: &mut Hlc,
    next: &mut u64,
    ops_per_decree: u64,
    decrees_per_write: u64,
) {
    let muts: Vec<Mutation> = (0..decrees_per_write)
        .map(|_| {
            let ops = (0..ops_per_decree).map(|_| {
                *next += 1;
                set(*next % KEYS)
            });
            Mutation::new(ops.collect())
        })
        .collect();
    let first = s.last_applied_decree().next();
    let entries: Vec<ApplyEntry<'_>> = muts
        .iter()
        .enumerate()
        .map(|(i, m)| ApplyEntry {
            decree: Decree(first.0 + i as u64),
            ballot: tern_core::Ballot(1),
            timetag: hlc.now(T0_MS),
            mutation: m,
        })
        .collect();
    s.apply_batch(&entries).unwrap();
}

fn bench_store<S: PartitionStore>(c: &mut Criterion, name: &str, mut s: S) {
    let mut hlc = Hlc::new(ClusterId::new(1).unwrap(), T0_MS, 500);
    let mut next = 0u64;
    // Preload every key so reads hit.
    for _ in 0..(KEYS / 1000) {
        apply_n(&mut s, &mut hlc, &mut next, 1000, 1);
    }
    let mut g = c.benchmark_group(format!("store_{name}"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply_1_set_per_write", |b| b.iter(|| apply_n(&mut s, &mut hlc, &mut next, 1, 1)));
    g.throughput(Throughput::Elements(100));
    g.bench_function("apply_100_decrees_per_write", |b| {
        b.iter(|| apply_n(&mut s, &mut hlc, &mut next, 1, 100))
    });
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("get_hit", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % KEYS;
                format!("user{i:08}").into_bytes()
            },
            |hk| black_box(s.get(&hk, b"f").unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn stores(c: &mut Criterion) {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0_MS));
    let dir = tempfile::tempdir().unwrap();
    let backend = RocksBackend::new(RocksConfig::default(), clock.clone());
    bench_store(c, "rocks", backend.open(&dir.path().join("p0")).unwrap());
    bench_store(c, "mem", MemPartitionStore::open(&MemDisk::new(), "p0", clock));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = stores
}
criterion_main!(benches);
