//! Carries out `tern dr verify`: scans both copies once for bucket digests, then the differing
//! buckets again for their keys, then re-reads the differing keys a few times while duplication
//! may still be carrying them (a difference that goes away was in flight, not a divergence).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tern_client::{ClientOptions, TableScanCursor, TernClient};
use tern_core::read::{ReadLimits, ReadOp, ReadResult, Record, TableScan};
use tern_core::{Error, Result};

use crate::observe::ClusterAddr;
use crate::verify::{BucketRecords, Difference, Digests, collect, diff, record_digest};

/// How a verify runs.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions {
    /// At most this many differing keys are listed (all are counted).
    pub max_keys: usize,
    /// Re-read differing keys this many times, `retry_wait` apart, before calling them different.
    pub retries: u32,
    pub retry_wait: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { max_keys: 100, retries: 3, retry_wait: Duration::from_secs(2) }
    }
}

/// What a verify found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub table: String,
    pub left: String,
    pub right: String,
    pub left_records: u64,
    pub right_records: u64,
    /// Buckets whose digests differed in the first pass (of `crate::verify::BUCKETS`).
    pub differing_buckets: usize,
    /// Keys still different after the re-reads.
    pub differing_keys: usize,
    /// The first `max_keys` of them.
    pub differences: Vec<Difference>,
    /// Keys that differed at first and matched on a re-read (in flight).
    pub settled_keys: usize,
    pub took_ms: u64,
    pub keys_per_sec: u64,
}

fn client(c: &ClusterAddr) -> Result<Arc<TernClient>> {
    Ok(Arc::new(TernClient::new(ClientOptions::new(c.metas.clone()))?))
}

/// Reads every record of `table` in `client`'s cluster, handing each to `f`.
async fn scan_all(client: &TernClient, table: &str, mut f: impl FnMut(&Record)) -> Result<()> {
    let scan = TableScan {
        limits: ReadLimits { max_count: Some(1000), max_bytes: Some(4 << 20) },
        ..TableScan::default()
    };
    let mut cursor = Some(TableScanCursor { partition: 0, token: None });
    while let Some(c) = cursor {
        let (page, next) = client.scan_table(table, &c, &scan).await?;
        page.records.iter().for_each(&mut f);
        cursor = next;
    }
    Ok(())
}

async fn get(client: &TernClient, table: &str, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<u64>> {
    let op = ReadOp::Get { hash_key: hash_key.to_vec(), sort_key: sort_key.to_vec() };
    match client.read(table, op).await? {
        ReadResult::Get(v) => Ok(v.map(|v| record_digest(hash_key, sort_key, &v))),
        _ => Err(Error::invariant("a get returned another result")),
    }
}

/// Compares `table` in `left` and `right`. `say` hears progress.
pub async fn run_verify(
    left: &ClusterAddr,
    right: &ClusterAddr,
    table: &str,
    opts: VerifyOptions,
    mut say: impl FnMut(&str),
) -> Result<VerifyReport> {
    let started = Instant::now();
    let (lc, rc) = (client(left)?, client(right)?);
    let (mut ld, mut rd) = (Digests::default(), Digests::default());
    say(&format!("scanning {table} in {} and {}…", left.name, right.name));
    let (l, r) = tokio::join!(scan_all(&lc, table, |x| ld.add(x)), scan_all(&rc, table, |x| rd.add(x)));
    l.map_err(|e| e.context(format!("scan {table} in {}", left.name)))?;
    r.map_err(|e| e.context(format!("scan {table} in {}", right.name)))?;
    let buckets = ld.differing(&rd);
    say(&format!(
        "{} and {} records; {} of {} hash-key buckets differ",
        ld.records,
        rd.records,
        buckets.len(),
        crate::verify::BUCKETS
    ));
    let mut differences = Vec::new();
    if !buckets.is_empty() {
        let (mut lr, mut rr) = (BucketRecords::new(), BucketRecords::new());
        let (l, r) = tokio::join!(
            scan_all(&lc, table, |x| collect(&mut lr, &buckets, x)),
            scan_all(&rc, table, |x| collect(&mut rr, &buckets, x))
        );
        l?;
        r?;
        differences = diff(&lr, &rr);
    }
    let first = differences.len();
    for round in 0..opts.retries {
        if differences.is_empty() {
            break;
        }
        say(&format!(
            "{} keys differ; reading them again in {:?} (round {})",
            differences.len(),
            opts.retry_wait,
            round + 1
        ));
        tokio::time::sleep(opts.retry_wait).await;
        let mut still = Vec::new();
        for d in differences {
            let (h, s) = (d.key.0.as_slice(), d.key.1.as_slice());
            let (a, b) = tokio::join!(get(&lc, table, h, s), get(&rc, table, h, s));
            let (a, b) = (a?, b?);
            if a != b {
                let shown = |x: Option<u64>| x.map(|d| format!("{d:016x}"));
                still.push(Difference { left: shown(a), right: shown(b), ..d });
            }
        }
        differences = still;
    }
    let took = started.elapsed();
    let keys = ld.records.max(rd.records);
    Ok(VerifyReport {
        table: table.to_string(),
        left: left.name.clone(),
        right: right.name.clone(),
        left_records: ld.records,
        right_records: rd.records,
        differing_buckets: buckets.len(),
        differing_keys: differences.len(),
        settled_keys: first - differences.len(),
        differences: differences.into_iter().take(opts.max_keys).collect(),
        took_ms: took.as_millis() as u64,
        keys_per_sec: (keys as f64 / took.as_secs_f64().max(0.001)) as u64,
    })
}
