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
//!
//! A backup of a cluster's table splits these steps between processes (`crate::take`): the
//! coordinator writes the intent ([`Uploader::begin`]), each partition's primary uploads its
//! checkpoint ([`Uploader::upload_partition`], steps 1, 3 and 4 for its files), and the
//! coordinator commits ([`Uploader::commit`], steps 4 to 6 for the whole backup).

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

/// What uploading one partition did: its manifest entry and counts.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionUpload {
    pub partition: PartitionManifest,
    pub files_uploaded: u64,
    pub files_skipped: u64,
    pub bytes_uploaded: u64,
    pub bytes_skipped: u64,
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

    /// Runs (or resumes) a backup of files all on this machine. See the module docs for the
    /// order of writes; [`Uploader::begin`], [`Uploader::upload_partition`] and
    /// [`Uploader::commit`] are the same steps for a backup whose partitions are uploaded by
    /// different processes (the replica servers holding their primaries).
    pub async fn run(&self, request: &BackupRequest) -> Result<UploadSummary> {
        let (manifest, sources) = Self::manifest_of(request).await?;
        if let Some(done) = self.finished(&manifest).await? {
            return Ok(done);
        }
        self.put_intent(&manifest).await?;

        let sizes: BTreeMap<Checksum, u64> = manifest.files().map(|f| (f.sha256, f.size_bytes)).collect();
        let files: Vec<(Checksum, u64, PathBuf)> = sizes
            .iter()
            .map(|(c, &size)| {
                let path = sources
                    .get(c)
                    .ok_or_else(|| Error::invalid("backup request", format!("no local file for {c}")))?;
                Ok((*c, size, path.clone()))
            })
            .collect::<Result<_>>()?;
        let counts = self.upload_files(&files).await?;
        self.commit(&manifest).await?;
        Ok(UploadSummary {
            manifest,
            files_uploaded: counts.files_uploaded,
            files_skipped: counts.files_skipped,
            bytes_uploaded: counts.bytes_uploaded,
            bytes_skipped: counts.bytes_skipped,
        })
    }

    /// If the backup's manifest is already stored: `Some` (only the intent's deletion may have
    /// been missing, which this finishes) when it is this manifest, an error when it is another.
    async fn finished(&self, manifest: &Manifest) -> Result<Option<UploadSummary>> {
        let store = &*self.store;
        let id = &manifest.backup_id;
        let manifest_at = manifest_key(id);
        let manifest_bytes = manifest.encode()?;
        match retry(&self.retry, "get manifest", || store.get(&manifest_at, None)).await {
            Ok(existing) if existing.as_ref() == manifest_bytes.as_slice() => {
                let pending = pending_key(id);
                retry(&self.retry, "delete intent", || store.delete(&pending)).await?;
                let total = manifest.files().map(|f| (f.sha256, f.size_bytes)).collect::<BTreeMap<_, _>>();
                Ok(Some(UploadSummary {
                    files_uploaded: 0,
                    files_skipped: total.len() as u64,
                    bytes_uploaded: 0,
                    bytes_skipped: total.values().sum(),
                    manifest: manifest.clone(),
                }))
            }
            Ok(_) => Err(Error::invalid(
                "backup id",
                format!("a different backup {id} already exists at {}", store.location(&manifest_at)),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_intent(&self, intent: &Manifest) -> Result<()> {
        let bytes = intent.encode()?;
        let store = &*self.store;
        let pending = pending_key(&intent.backup_id);
        let no_transfer = Transfer::none();
        retry(&self.retry, "put intent", || {
            store.put(&pending, PutBody::Bytes(bytes.clone().into()), &no_transfer)
        })
        .await?;
        Ok(())
    }

    /// Starts (or updates) a backup taken partition by partition: refuses an id whose manifest
    /// exists, then writes `intent` as `backups/<id>/pending.json`. The intent is a manifest
    /// whose partitions not yet uploaded are placeholders ([`PartitionManifest::placeholder`]:
    /// no files); the coordinator rewrites it as partitions finish, so a resumed backup keeps
    /// them and retention protects their files.
    pub async fn begin(&self, intent: &Manifest) -> Result<()> {
        if self.finished(intent).await?.is_some() {
            return Err(Error::invalid(
                "backup id",
                format!("backup {} is already complete", intent.backup_id),
            ));
        }
        self.put_intent(intent).await
    }

    /// Rewrites the intent of a running backup (no check of the manifest: see [`Self::begin`]).
    pub async fn update_intent(&self, intent: &Manifest) -> Result<()> {
        self.put_intent(intent).await
    }

    /// Reads a backup's intent, if one is stored (to resume it).
    pub async fn load_intent(&self, id: &BackupId) -> Result<Option<Manifest>> {
        let store = &*self.store;
        let key = pending_key(id);
        match retry(&self.retry, "get intent", || store.get(&key, None)).await {
            Ok(bytes) => {
                let m = Manifest::decode(&bytes, &store.location(&key))?;
                if &m.backup_id != id {
                    return Err(Error::Corrupt {
                        object: store.location(&key),
                        detail: format!("holds backup {} instead", m.backup_id),
                    });
                }
                Ok(Some(m))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Uploads one partition's checkpoint (files already stored with the right size are
    /// skipped) and checks its files are all stored; returns its manifest entry. Writes no
    /// intent and no manifest: on a replica server this is the whole job, and the coordinator
    /// commits. Progress counts this partition's files only.
    pub async fn upload_partition(&self, checkpoint: &PartitionCheckpoint) -> Result<PartitionUpload> {
        let mut files = Vec::with_capacity(checkpoint.files.len());
        let mut entries = Vec::with_capacity(checkpoint.files.len());
        let mut seen = BTreeMap::new();
        for f in &checkpoint.files {
            let (sha256, size_bytes) = hash_file(&f.path).await?;
            if seen.insert(sha256, size_bytes).is_none() {
                files.push((sha256, size_bytes, f.path.clone()));
            }
            entries.push(FileEntry { name: f.name.clone(), size_bytes, sha256 });
        }
        let counts = self.upload_files(&files).await?;
        self.check_stored(&seen).await?;
        Ok(PartitionUpload {
            partition: PartitionManifest {
                index: checkpoint.index,
                decree: checkpoint.decree,
                timetags: checkpoint.timetags,
                files: entries,
            },
            files_uploaded: counts.files_uploaded,
            files_skipped: counts.files_skipped,
            bytes_uploaded: counts.bytes_uploaded,
            bytes_skipped: counts.bytes_skipped,
        })
    }

    /// Makes a backup exist: checks every file the manifest references is stored with its
    /// size, writes `backups/<id>/manifest.json` (from here on the backup exists; S3 and the
    /// local store acknowledge a put once it is durable, the local one by fsync'ing the file
    /// and its directory), then deletes the intent. Idempotent: a manifest already stored with
    /// these bytes only has the intent deleted; another one is refused.
    pub async fn commit(&self, manifest: &Manifest) -> Result<()> {
        if self.finished(manifest).await?.is_some() {
            return Ok(());
        }
        let sizes: BTreeMap<Checksum, u64> = manifest.files().map(|f| (f.sha256, f.size_bytes)).collect();
        // Every file the manifest names must be there before the manifest is.
        self.check_stored(&sizes).await?;
        let bytes = manifest.encode()?;
        let store = &*self.store;
        let id = &manifest.backup_id;
        let manifest_at = manifest_key(id);
        let no_transfer = Transfer::none();
        retry(&self.retry, "put manifest", || {
            store.put(&manifest_at, PutBody::Bytes(bytes.clone().into()), &no_transfer)
        })
        .await?;
        let pending = pending_key(id);
        retry(&self.retry, "delete intent", || store.delete(&pending)).await?;
        Ok(())
    }

    async fn check_stored(&self, sizes: &BTreeMap<Checksum, u64>) -> Result<()> {
        let store = &*self.store;
        for (checksum, &size) in sizes {
            let key = file_key(checksum);
            let meta = retry(&self.retry, "check file", || store.head(&key)).await?;
            if meta.size_bytes != size {
                return Err(Error::Corrupt {
                    object: store.location(&key),
                    detail: format!("{} bytes stored, {size} expected", meta.size_bytes),
                });
            }
        }
        Ok(())
    }

    /// Uploads each distinct file not already stored with its size, reporting progress.
    async fn upload_files(&self, files: &[(Checksum, u64, PathBuf)]) -> Result<Counts> {
        let store = &*self.store;
        let started = Instant::now();
        let counters = Arc::new(Counters::default());
        let totals = (files.len() as u64, files.iter().map(|f| f.1).sum::<u64>());
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
        report();
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

        let mut counts = Counts::default();
        for (checksum, size, path) in files {
            let size = *size;
            let key = file_key(checksum);
            let stored = match retry(&self.retry, "head file", || store.head(&key)).await {
                Ok(meta) => meta.size_bytes == size,
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e),
            };
            if stored {
                counters.files_skipped.fetch_add(1, Ordering::Relaxed);
                counters.bytes_done.fetch_add(size, Ordering::Relaxed);
                counts.files_skipped += 1;
                counts.bytes_skipped += size;
            } else {
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
                counts.files_uploaded += 1;
                counts.bytes_uploaded += size;
            }
            counters.files_done.fetch_add(1, Ordering::Relaxed);
            report();
        }
        Ok(counts)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    files_uploaded: u64,
    files_skipped: u64,
    bytes_uploaded: u64,
    bytes_skipped: u64,
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
