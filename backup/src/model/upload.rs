//! Uploading a backup: files content-addressed (skipping those already stored), the manifest
//! last.
//!
//! Order, and why:
//! 1. hash every local file (the manifest is known before anything is sent);
//! 2. write `backups/<id>/pending.json`, the intent: retention protects its files while the
//!    backup runs (docs/backup.md, "Retention");
//! 3. for each distinct file, `HEAD files/<sha256>`: present with the right size → skip
//!    (incremental by construction, and how a re-run resumes); else upload it;
//! 4. check every referenced file is present (catches a deletion racing the upload);
//! 5. write `backups/<id>/manifest.json` — from here on the backup exists;
//! 6. delete the intent.
//!
//! An interrupted run leaves files and an intent but no manifest: no backup. Running it again
//! with the same request uploads only what is missing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::checksum::{Checksum, hash_file};
use super::layout::{BackupId, file_key, manifest_key, pending_key};
use super::manifest::{
    FileEntry, MANIFEST_FORMAT_VERSION, Manifest, PartitionManifest, TableSchema, TimetagRange,
};
use crate::error::{Error, Result};
use crate::ratelimit::RateLimiter;
use crate::retry::{RetryPolicy, retry};
use crate::store::{ObjectStore, PutBody, Transfer};

/// A local file to back up.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Its path inside the checkpoint (recorded in the manifest, used by restore).
    pub name: String,
    pub path: PathBuf,
}

/// One partition's checkpoint on local disk.
#[derive(Debug, Clone)]
pub struct PartitionCheckpoint {
    pub index: u32,
    pub decree: u64,
    pub timetags: Option<TimetagRange>,
    pub files: Vec<LocalFile>,
}

/// Everything a backup is made of.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub id: BackupId,
    pub cluster: String,
    pub table: TableSchema,
    pub partitions: Vec<PartitionCheckpoint>,
    pub tool_version: String,
    pub created_at: DateTime<Utc>,
}

/// A snapshot of an upload's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UploadProgress {
    pub files_total: u64,
    /// Files handled: uploaded or found already stored.
    pub files_done: u64,
    pub files_skipped: u64,
    pub bytes_total: u64,
    /// Bytes handled, skipped files included.
    pub bytes_done: u64,
    /// Bytes actually sent.
    pub bytes_uploaded: u64,
    pub elapsed: Duration,
    /// Bytes sent per second so far.
    pub rate_bytes_per_sec: f64,
}

/// Receives progress (after each chunk sent and each file handled).
pub trait ProgressSink: Send + Sync {
    fn on_progress(&self, progress: &UploadProgress);
}

impl<F: Fn(&UploadProgress) + Send + Sync> ProgressSink for F {
    fn on_progress(&self, progress: &UploadProgress) {
        self(progress)
    }
}

/// What an upload did.
#[derive(Debug, Clone)]
pub struct UploadSummary {
    pub manifest: Manifest,
    pub files_uploaded: u64,
    pub files_skipped: u64,
    pub bytes_uploaded: u64,
    pub bytes_skipped: u64,
}

/// Uploads backups to a store.
#[derive(Clone)]
pub struct Uploader {
    store: Arc<dyn ObjectStore>,
    limiter: Option<Arc<RateLimiter>>,
    retry: RetryPolicy,
    progress: Option<Arc<dyn ProgressSink>>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("store", &self.store)
            .field("limiter", &self.limiter)
            .field("retry", &self.retry)
            .finish()
    }
}

#[derive(Default)]
struct Counters {
    files_done: AtomicU64,
    files_skipped: AtomicU64,
    bytes_done: AtomicU64,
    bytes_uploaded: AtomicU64,
}

impl Uploader {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Uploader { store, limiter: None, retry: RetryPolicy::default(), progress: None }
    }

    /// Limits the bandwidth of file uploads (shared with whoever else holds the limiter).
    pub fn with_limit(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Retries of each object operation (on top of what the store itself does).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_progress(mut self, sink: Arc<dyn ProgressSink>) -> Self {
        self.progress = Some(sink);
        self
    }

    /// Builds the manifest of a request by hashing its files.
    pub async fn manifest_of(request: &BackupRequest) -> Result<(Manifest, BTreeMap<Checksum, PathBuf>)> {
        let mut sources = BTreeMap::new();
        let mut partitions = Vec::with_capacity(request.partitions.len());
        for p in &request.partitions {
            let mut files = Vec::with_capacity(p.files.len());
            for f in &p.files {
                let (sha256, size_bytes) = hash_file(&f.path).await?;
                sources.entry(sha256).or_insert_with(|| f.path.clone());
                files.push(FileEntry { name: f.name.clone(), size_bytes, sha256 });
            }
            partitions.push(PartitionManifest {
                index: p.index,
                decree: p.decree,
                timetags: p.timetags,
                files,
            });
        }
        let manifest = Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            backup_id: request.id.clone(),
            cluster: request.cluster.clone(),
            table: request.table.clone(),
            partitions,
            tool_version: request.tool_version.clone(),
            created_at: request.created_at,
        };
        manifest.validate()?;
        Ok((manifest, sources))
    }

    /// Runs (or resumes) a backup. See the module docs for the order of writes.
    pub async fn run(&self, request: &BackupRequest) -> Result<UploadSummary> {
        let (manifest, sources) = Self::manifest_of(request).await?;
        let manifest_bytes = manifest.encode()?;
        let store = &*self.store;
        let id = &manifest.backup_id;

        let pending = pending_key(id);
        let manifest_at = manifest_key(id);
        let no_transfer = Transfer::none();
        match retry(&self.retry, "get manifest", || store.get(&manifest_at, None)).await {
            // Done before (only the intent's deletion may be missing): finish idempotently.
            Ok(existing) if existing.as_ref() == manifest_bytes.as_slice() => {
                retry(&self.retry, "delete intent", || store.delete(&pending)).await?;
                let total = manifest.files().map(|f| (f.sha256, f.size_bytes)).collect::<BTreeMap<_, _>>();
                return Ok(UploadSummary {
                    files_uploaded: 0,
                    files_skipped: total.len() as u64,
                    bytes_uploaded: 0,
                    bytes_skipped: total.values().sum(),
                    manifest,
                });
            }
            Ok(_) => {
                return Err(Error::invalid(
                    "backup id",
                    format!("a different backup {id} already exists at {}", store.location(&manifest_at)),
                ));
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        retry(&self.retry, "put intent", || {
            store.put(&pending, PutBody::Bytes(manifest_bytes.clone().into()), &no_transfer)
        })
        .await?;

        let sizes: BTreeMap<Checksum, u64> = manifest.files().map(|f| (f.sha256, f.size_bytes)).collect();
        let started = Instant::now();
        let counters = Arc::new(Counters::default());
        let totals = (sizes.len() as u64, sizes.values().sum::<u64>());
        let report = {
            let counters = counters.clone();
            let sink = self.progress.clone();
            move || {
                if let Some(sink) = &sink {
                    sink.on_progress(&snapshot(&counters, totals, started));
                }
            }
        };
        let report = Arc::new(report);
        let transfer = Transfer {
            limiter: self.limiter.clone(),
            progress: Some({
                let counters = counters.clone();
                let report = report.clone();
                Arc::new(move |n| {
                    counters.bytes_uploaded.fetch_add(n, Ordering::Relaxed);
                    counters.bytes_done.fetch_add(n, Ordering::Relaxed);
                    report();
                })
            }),
        };

        let mut summary = UploadSummary {
            manifest: manifest.clone(),
            files_uploaded: 0,
            files_skipped: 0,
            bytes_uploaded: 0,
            bytes_skipped: 0,
        };
        for (checksum, &size) in &sizes {
            let key = file_key(checksum);
            let stored = match retry(&self.retry, "head file", || store.head(&key)).await {
                Ok(meta) => meta.size_bytes == size,
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e),
            };
            if stored {
                counters.files_skipped.fetch_add(1, Ordering::Relaxed);
                counters.bytes_done.fetch_add(size, Ordering::Relaxed);
                summary.files_skipped += 1;
                summary.bytes_skipped += size;
            } else {
                let path = sources.get(checksum).ok_or_else(|| {
                    Error::invalid("backup request", format!("no local file for {checksum}"))
                })?;
                let before = counters.bytes_done.load(Ordering::Relaxed);
                let receipt = retry(&self.retry, "upload file", || {
                    store.put(&key, PutBody::File(path.clone()), &transfer)
                })
                .await?;
                if receipt.size_bytes != size {
                    return Err(Error::Corrupt {
                        object: path.display().to_string(),
                        detail: format!(
                            "changed while backed up: hashed {size} bytes, uploaded {}",
                            receipt.size_bytes
                        ),
                    });
                }
                // A retried put reports its bytes again; count the file once.
                counters.bytes_done.store(before + size, Ordering::Relaxed);
                summary.files_uploaded += 1;
                summary.bytes_uploaded += size;
            }
            counters.files_done.fetch_add(1, Ordering::Relaxed);
            report();
        }

        // Every file the manifest names must be there before the manifest is.
        for (checksum, &size) in &sizes {
            let key = file_key(checksum);
            let meta = retry(&self.retry, "check file", || store.head(&key)).await?;
            if meta.size_bytes != size {
                return Err(Error::Corrupt {
                    object: store.location(&key),
                    detail: format!("{} bytes stored, {size} expected", meta.size_bytes),
                });
            }
        }
        retry(&self.retry, "put manifest", || {
            store.put(&manifest_at, PutBody::Bytes(manifest_bytes.clone().into()), &no_transfer)
        })
        .await?;
        retry(&self.retry, "delete intent", || store.delete(&pending)).await?;
        Ok(summary)
    }
}

fn snapshot(c: &Counters, (files_total, bytes_total): (u64, u64), started: Instant) -> UploadProgress {
    let elapsed = started.elapsed();
    let bytes_uploaded = c.bytes_uploaded.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    UploadProgress {
        files_total,
        files_done: c.files_done.load(Ordering::Relaxed),
        files_skipped: c.files_skipped.load(Ordering::Relaxed),
        bytes_total,
        bytes_done: c.bytes_done.load(Ordering::Relaxed).min(bytes_total),
        bytes_uploaded,
        elapsed,
        rate_bytes_per_sec: if secs > 0.0 { bytes_uploaded as f64 / secs } else { 0.0 },
    }
}
