//! A mixed workload for duplication tests: sets, deletes, increments and check-and-sets over a
//! small key space, so that writers in two clusters collide on the same records; and a full
//! dump of a table to compare clusters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tern_client::{TableScanCursor, TernClient};
use tern_core::mutation::{Check, CheckAndSet, CheckType, IncrTtl};
use tern_core::read::{ReadLimits, TableScan};
use tern_core::{Result, WriteOp};
use tokio::task::JoinHandle;

/// Writers issuing random ops until stopped.
#[derive(Debug)]
pub struct Mixed {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

/// A small deterministic generator (no dependency, reproducible per seed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// One random op: records `k0..k{keys}` get sets, deletes and check-and-sets; counters
/// `c0..c19` get increments and deletes (so an incr never meets a non-integer).
fn op(rng: &mut Lcg, keys: u64, tag: &str, seq: u64) -> WriteOp {
    let k = |p: &str, n: u64| format!("{p}{n}").into_bytes();
    match rng.next(100) {
        0..50 => WriteOp::Set {
            hash_key: k("k", rng.next(keys)),
            sort_key: b"s".to_vec(),
            value: format!("{tag}-{seq}").into_bytes(),
            ttl_secs: 0,
        },
        50..65 => WriteOp::Del { hash_key: k("k", rng.next(keys)), sort_key: b"s".to_vec() },
        65..85 => WriteOp::Incr {
            hash_key: k("c", rng.next(20)),
            sort_key: b"n".to_vec(),
            delta: 1 + rng.next(5) as i64,
            ttl: IncrTtl::Keep,
        },
        85..90 => WriteOp::Del { hash_key: k("c", rng.next(20)), sort_key: b"n".to_vec() },
        _ => WriteOp::CheckAndSet(CheckAndSet {
            hash_key: k("k", rng.next(keys)),
            check_sort_key: b"s".to_vec(),
            check: Check { kind: CheckType::NotExist, operand: vec![] },
            set_sort_key: b"s".to_vec(),
            set_value: format!("{tag}-cas-{seq}").into_bytes(),
            set_ttl_secs: 0,
            return_check_value: false,
        }),
    }
}

impl Mixed {
    /// `n` writers on `table` over `keys` record keys; values carry `tag`.
    pub fn start(client: Arc<TernClient>, table: &str, n: usize, keys: u64, tag: &str, seed: u64) -> Mixed {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let tasks = (0..n)
            .map(|w| {
                let (client, table, tag) = (client.clone(), table.to_string(), format!("{tag}{w}"));
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                let mut rng = Lcg(seed.wrapping_mul(1000).wrapping_add(w as u64));
                tokio::spawn(async move {
                    let mut seq = 0;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        match client.write(&table, op(&mut rng, keys, &tag, seq)).await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Mixed { stop, ok, failed, tasks }
    }

    pub async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

/// Every live record of `table`: (hash key, sort key) → value.
pub async fn dump(client: &TernClient, table: &str) -> Result<BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut cursor = Some(TableScanCursor::default());
    let scan = TableScan {
        resume_token: None,
        hash_key_filter: None,
        sort_key_filter: None,
        no_value: false,
        limits: ReadLimits { max_count: Some(1000), max_bytes: None },
    };
    while let Some(c) = cursor {
        let (page, next) = client.scan_table(table, &c, &scan).await?;
        for r in page.records {
            out.insert((r.hash_key, r.sort_key), r.value);
        }
        cursor = next;
    }
    Ok(out)
}

/// Waits until `a` and `b` hold the same records; on timeout, panics with the differences.
pub async fn wait_identical(
    a: &TernClient,
    b: &TernClient,
    table_a: &str,
    table_b: &str,
    timeout: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (da, db) = (dump(a, table_a).await, dump(b, table_b).await);
        if let (Ok(da), Ok(db)) = (&da, &db) {
            if da == db {
                return da.len();
            }
            if tokio::time::Instant::now() >= deadline {
                let only_a: Vec<_> = da.iter().filter(|(k, v)| db.get(*k) != Some(*v)).take(10).collect();
                let only_b: Vec<_> = db.iter().filter(|(k, v)| da.get(*k) != Some(*v)).take(10).collect();
                panic!(
                    "the clusters did not converge within {timeout:?}: {} vs {} records; differing in a: {only_a:?}; in b: {only_b:?}",
                    da.len(),
                    db.len()
                );
            }
        } else if tokio::time::Instant::now() >= deadline {
            panic!("could not dump both tables: {:?} / {:?}", da.err(), db.err());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
