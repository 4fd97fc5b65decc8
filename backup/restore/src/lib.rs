//! `tern backup restore`: a backup into a new table (DESIGN §7, issue 25; guide: the "Restore"
//! section of `docs/backup.md`).
//!
//! Owns the restore's orchestration: the manifest read and every object checked present before
//! anything is created; the table created *restoring* (it serves nobody until the end) or found
//! restoring from the same backup (a resumed run); per backup partition, its files downloaded
//! under the bandwidth limit and checked against their SHA-256, the RocksDB checkpoint opened
//! and every record (tombstones and expired records too) sent, routed by its hash key in the new
//! table's partition count, through the cluster's normal replication path (`Kv.Restore`: the
//! primary logs it, secondaries apply it, last-writer-wins on the records' own timetags); then
//! the table switched to serving. The pure decisions live in [`plan`].
//!
//! Links RocksDB (through `tern-rocks`) to read checkpoints, which `tern-backup` must not; uses
//! the cluster only through `tern-client` (the typed admin client and the routing client).

pub mod error;
pub mod plan;
pub mod read;
pub mod seed;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tern_backup::model::{BackupId, Manifest, file_key, load_manifest};
use tern_backup::{ObjectStore, RateLimiter, Transfer};
use tern_client::TernClient;
use tern_client::admin::AdminClient;
use tern_core::WriteOp;
use tokio::sync::mpsc;

pub use crate::error::{RestoreError, Result};
use crate::plan::{Batcher, RecordKind, target_partitions};

/// What to restore, and how.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    pub backup: BackupId,
    /// The new table's name.
    pub table: String,
    /// The new table's partition count; `None`: the backup's.
    pub partitions: Option<u32>,
    pub replicas: u32,
    /// Download bandwidth limit; `None`: unlimited.
    pub limit_bytes_per_sec: Option<u64>,
    /// `Restore` requests in flight at once.
    pub concurrency: usize,
    /// Where partitions are downloaded (one at a time; removed when done).
    pub work_dir: PathBuf,
}

/// A snapshot of a restore's progress.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestoreProgress {
    pub partitions_total: u32,
    /// Backup partitions whose records are all applied.
    pub partitions_done: u32,
    /// Bytes of the backup's files (each partition's files counted once per partition).
    pub bytes_total: u64,
    /// Bytes of files downloaded or found already downloaded.
    pub bytes_done: u64,
    /// Records read from checkpoints and sent.
    pub records_sent: u64,
    pub elapsed: Duration,
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreSummary {
    pub backup: String,
    pub table: String,
    /// The backup's partition count and the new table's.
    pub source_partitions: u32,
    pub partitions: u32,
    /// The table existed, restoring from the same backup: this run resumed that restore.
    pub resumed: bool,
    pub files: u64,
    pub bytes_downloaded: u64,
    /// Every record read from the backup: live, expired at restore time, tombstones.
    pub records: u64,
    pub live: u64,
    pub expired: u64,
    pub tombstones: u64,
    /// Puts applied, and puts that lost to a record already stored (a resumed run).
    pub applied: u64,
    pub superseded: u64,
    pub elapsed: Duration,
}

type ProgressFn = Arc<dyn Fn(&RestoreProgress) + Send + Sync>;

#[derive(Default)]
struct Counters {
    partitions_done: AtomicU64,
    bytes_done: AtomicU64,
    records_sent: AtomicU64,
}

struct Reporter {
    counters: Counters,
    partitions_total: u32,
    bytes_total: u64,
    start: Instant,
    sink: ProgressFn,
}

impl Reporter {
    fn report(&self) {
        self.sink.as_ref()(&RestoreProgress {
            partitions_total: self.partitions_total,
            partitions_done: self.counters.partitions_done.load(Ordering::Relaxed) as u32,
            bytes_total: self.bytes_total,
            bytes_done: self.counters.bytes_done.load(Ordering::Relaxed),
            records_sent: self.counters.records_sent.load(Ordering::Relaxed),
            elapsed: self.start.elapsed(),
        });
    }
}

/// Checks that every object the backup references is stored with its size (HEAD), before
/// anything is created: a missing object fails the restore naming it.
pub async fn check_objects(store: &dyn ObjectStore, manifest: &Manifest) -> Result<u64> {
    let mut seen = std::collections::BTreeMap::new();
    for f in manifest.files() {
        seen.insert(f.sha256, f.size_bytes);
    }
    for (sum, size) in &seen {
        let key = file_key(sum);
        let meta = store.head(&key).await?;
        if meta.size_bytes != *size {
            return Err(RestoreError::Damaged {
                object: store.location(&key),
                detail: format!("{} bytes stored; the manifest says {size}", meta.size_bytes),
            });
        }
    }
    Ok(seen.len() as u64)
}

/// Restores `req.backup` from `store` into a new table of the cluster `admin` and `client`
/// lead to (`client` made by `TernClient::for_restore`). `progress` is called as work is done.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    admin: &AdminClient,
    client: Arc<TernClient>,
    req: &RestoreRequest,
    progress: ProgressFn,
) -> Result<RestoreSummary> {
    let start = Instant::now();
    let manifest = load_manifest(store.as_ref(), &req.backup).await?;
    manifest.validate()?;
    let source_partitions = manifest.table.partition_count;
    let partitions = target_partitions(source_partitions, req.partitions)?;
    let files = check_objects(store.as_ref(), &manifest).await?;
    let backup = req.backup.as_str().to_string();
    let begun = admin.begin_restore(&req.table, partitions, req.replicas, &backup).await?;
    tracing::info!(
        "{} table {} ({partitions} partitions) from backup {backup} ({source_partitions} partitions)",
        if begun.resumed { "resuming the restore of" } else { "restoring" },
        req.table
    );
    let reporter = Arc::new(Reporter {
        counters: Counters::default(),
        partitions_total: source_partitions,
        bytes_total: manifest.total_bytes(),
        start,
        sink: progress,
    });
    let limiter = req.limit_bytes_per_sec.map(|rate| {
        // A tenth of a second of burst: with a burst of one read chunk (8 MiB) a small restore
        // was not limited at all.
        Arc::new(RateLimiter::new(rate, tern_backup::ratelimit::burst_for(rate)))
    });
    let r = reporter.clone();
    let transfer = Transfer {
        limiter,
        progress: Some(Arc::new(move |n| {
            r.counters.bytes_done.fetch_add(n, Ordering::Relaxed);
            r.report();
        })),
    };
    let mut summary = RestoreSummary {
        backup: backup.clone(),
        table: req.table.clone(),
        source_partitions,
        partitions,
        resumed: begun.resumed,
        files,
        bytes_downloaded: 0,
        records: 0,
        live: 0,
        expired: 0,
        tombstones: 0,
        applied: 0,
        superseded: 0,
        elapsed: Duration::ZERO,
    };
    let root = req.work_dir.join(&backup);
    for p in &manifest.partitions {
        let dir = root.join(format!("p{}", p.index));
        let checkpoint = dir.join("checkpoint");
        summary.bytes_downloaded += read::fetch_partition(store.as_ref(), p, &checkpoint, &transfer).await?;
        ingest_partition(&client, req, &backup, partitions, &dir, &reporter, &mut summary).await?;
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(RestoreError::io(format!("remove {}", dir.display())))?;
        reporter.counters.partitions_done.fetch_add(1, Ordering::Relaxed);
        reporter.report();
    }
    admin.finish_restore(&req.table, &backup).await?;
    wait_serving(admin, &req.table, partitions).await?;
    let _ = tokio::fs::remove_dir_all(&root).await;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Waits until every partition of `table` serves clients: replica servers learn that the
/// restore is complete from their next beacon answer, so the restore reports done only once a
/// read of each partition, as any client sends it, is no longer refused as `RESTORING`.
async fn wait_serving(admin: &AdminClient, table: &str, partitions: u32) -> Result<()> {
    let client = TernClient::new(tern_client::ClientOptions::new(admin.metas().to_vec()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in 0..partitions {
        let hash_key = plan::hash_key_of(p, partitions);
        loop {
            let read = tern_core::read::ReadOp::Get { hash_key: hash_key.clone(), sort_key: vec![] };
            match client.read(table, read).await {
                Ok(_) => break,
                Err(e) if e.code() == tern_core::ErrorCode::Restoring && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(RestoreError::Cluster(
                        e.context(format!("wait for partition {p} of table {table} to serve")),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Reads one downloaded checkpoint (on a blocking thread) and sends its records in batches,
/// at most `req.concurrency` requests in flight.
async fn ingest_partition(
    client: &Arc<TernClient>,
    req: &RestoreRequest,
    backup: &str,
    partitions: u32,
    dir: &std::path::Path,
    reporter: &Arc<Reporter>,
    summary: &mut RestoreSummary,
) -> Result<()> {
    let (tx, mut rx) = mpsc::channel::<(u32, Vec<WriteOp>)>(req.concurrency.max(1) * 2);
    let checkpoint = dir.join("checkpoint");
    let store_dir = dir.join("store");
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let reader = tokio::task::spawn_blocking(move || {
        let mut kinds = [0u64; 3];
        let mut batcher = Batcher::new(partitions);
        let stopped = || tern_core::Error::Unavailable("the restore stopped sending".into());
        read::scan_checkpoint(&checkpoint, &store_dir, now_secs, |put, kind| {
            kinds[kind as usize] += 1;
            if let Some(batch) = batcher.push(put) {
                tx.blocking_send(batch).map_err(|_| stopped())?;
            }
            Ok(ControlFlow::Continue(()))
        })?;
        for batch in batcher.drain() {
            tx.blocking_send(batch).map_err(|_| stopped())?;
        }
        Ok::<_, RestoreError>(kinds)
    });
    let mut in_flight = FuturesUnordered::new();
    let mut failed = None;
    loop {
        tokio::select! {
            batch = rx.recv(), if in_flight.len() < req.concurrency.max(1) && failed.is_none() => {
                let Some((p, puts)) = batch else { break };
                let client = client.clone();
                let (table, backup) = (req.table.clone(), backup.to_string());
                in_flight.push(async move {
                    let n = puts.len() as u64;
                    client.restore(&table, p, &backup, &puts).await.map(|r| (n, r))
                });
            }
            Some(done) = in_flight.next() => match done {
                Ok((n, r)) => {
                    summary.applied += u64::from(r.applied);
                    summary.superseded += u64::from(r.superseded);
                    reporter.counters.records_sent.fetch_add(n, Ordering::Relaxed);
                    reporter.report();
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            },
            else => break,
        }
    }
    // The reader ends when its channel closes (on failure, at its next batch).
    drop(rx);
    while let Some(done) = in_flight.next().await {
        match done {
            Ok((_, r)) => {
                summary.applied += u64::from(r.applied);
                summary.superseded += u64::from(r.superseded);
            }
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    let read =
        reader.await.map_err(|e| RestoreError::Invalid(format!("the checkpoint reader failed: {e}")))?;
    if let Some(e) = failed {
        return Err(RestoreError::Cluster(e.context(format!("restore records into table {}", req.table))));
    }
    let kinds = read?;
    summary.live += kinds[RecordKind::Live as usize];
    summary.expired += kinds[RecordKind::Expired as usize];
    summary.tombstones += kinds[RecordKind::Tombstone as usize];
    summary.records += kinds.iter().sum::<u64>();
    Ok(())
}
