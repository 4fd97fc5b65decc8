//! Reading what a store holds: listing and describing backups, verifying them, and carrying
//! out a retention plan.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::checksum::{Checksum, Hasher};
use super::layout::{
    BACKUPS_PREFIX, BackupId, BackupObject, FILES_PREFIX, file_key, manifest_key, parse_backup_key,
    parse_file_key, pending_key,
};
use super::manifest::Manifest;
use super::retention::RetentionPlan;
use crate::error::{Error, Result};
use crate::ratelimit::RateLimiter;
use crate::store::{ByteRange, ObjectStore, Transfer};

/// Every complete backup (one with a manifest), oldest first.
pub async fn list_backups(store: &dyn ObjectStore) -> Result<Vec<BackupId>> {
    Ok(list_backup_objects(store).await?.0)
}

/// Complete backups and intents of running (or dead) ones, each oldest first.
async fn list_backup_objects(store: &dyn ObjectStore) -> Result<(Vec<BackupId>, Vec<BackupId>)> {
    let mut complete = Vec::new();
    let mut pending = Vec::new();
    for meta in store.list(BACKUPS_PREFIX).await? {
        match parse_backup_key(&meta.key) {
            Some(BackupObject::Manifest(id)) => complete.push(id),
            Some(BackupObject::Pending(id)) => pending.push(id),
            None => tracing::warn!(key = %meta.key, "ignoring an unknown object under backups/"),
        }
    }
    complete.sort();
    pending.sort();
    Ok((complete, pending))
}

/// Reads and checks a backup's manifest ([`Error::NotFound`] if the backup does not exist).
pub async fn load_manifest(store: &dyn ObjectStore, id: &BackupId) -> Result<Manifest> {
    read_manifest(store, &manifest_key(id), id).await
}

async fn read_manifest(store: &dyn ObjectStore, key: &str, id: &BackupId) -> Result<Manifest> {
    let bytes = store.get(key, None).await?;
    let manifest = Manifest::decode(&bytes, &store.location(key))?;
    if &manifest.backup_id != id {
        return Err(Error::Corrupt {
            object: store.location(key),
            detail: format!("holds backup {} instead", manifest.backup_id),
        });
    }
    Ok(manifest)
}

/// A backup's manifest with totals, for `tern backup describe`.
#[derive(Debug, Clone)]
pub struct BackupDescription {
    pub manifest: Manifest,
    pub file_count: u64,
    pub distinct_files: u64,
    pub total_bytes: u64,
}

pub async fn describe(store: &dyn ObjectStore, id: &BackupId) -> Result<BackupDescription> {
    let manifest = load_manifest(store, id).await?;
    Ok(BackupDescription {
        file_count: manifest.files().count() as u64,
        distinct_files: manifest.checksums().len() as u64,
        total_bytes: manifest.total_bytes(),
        manifest,
    })
}

/// How thoroughly to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Every object present with the right size (one HEAD each).
    Sizes,
    /// Also download every object and check its SHA-256.
    Deep,
}

/// What is wrong with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing,
    WrongSize { expected: u64, actual: u64 },
    WrongChecksum { actual: Checksum },
}

/// A damaged object and the manifest entries that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where the object is (`s3://bucket/prefix/files/<sha256>`).
    pub object: String,
    /// `partition 3: 000012.sst`, for each use.
    pub used_by: Vec<String>,
    pub problem: Problem,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.problem {
            Problem::Missing => "missing".to_string(),
            Problem::WrongSize { expected, actual } => {
                format!("{actual} bytes instead of {expected}")
            }
            Problem::WrongChecksum { actual } => format!("content hashes to {actual}"),
        };
        write!(f, "{}: {what} (used by {})", self.object, self.used_by.join(", "))
    }
}

/// The result of verifying a backup.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub backup_id: BackupId,
    pub mode: VerifyMode,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub damaged: Vec<Damage>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Checks that every object of backup `id` is present with the right size (and, `Deep`, the
/// right SHA-256). Damage is reported, not an error; errors are failures to check (missing
/// or corrupt manifest, unreachable store). `limiter` bounds the download bandwidth.
pub async fn verify(
    store: &dyn ObjectStore,
    id: &BackupId,
    mode: VerifyMode,
    limiter: Option<Arc<RateLimiter>>,
) -> Result<VerifyReport> {
    let manifest = load_manifest(store, id).await?;
    let mut uses: BTreeMap<Checksum, (u64, Vec<String>)> = BTreeMap::new();
    for p in &manifest.partitions {
        for f in &p.files {
            let entry = uses.entry(f.sha256).or_insert((f.size_bytes, Vec::new()));
            entry.1.push(format!("partition {}: {}", p.index, f.name));
        }
    }
    let transfer = Transfer { limiter, progress: None };
    let mut report = VerifyReport {
        backup_id: id.clone(),
        mode,
        objects_checked: 0,
        bytes_checked: 0,
        damaged: Vec::new(),
    };
    for (checksum, (size, used_by)) in uses {
        let key = file_key(&checksum);
        report.objects_checked += 1;
        let problem = match store.head(&key).await {
            Err(e) if e.is_not_found() => Some(Problem::Missing),
            Err(e) => return Err(e),
            Ok(meta) if meta.size_bytes != size => {
                Some(Problem::WrongSize { expected: size, actual: meta.size_bytes })
            }
            Ok(_) if mode == VerifyMode::Deep => {
                let actual = hash_object(store, &key, size, &transfer).await?;
                report.bytes_checked += size;
                (actual != checksum).then_some(Problem::WrongChecksum { actual })
            }
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            report.damaged.push(Damage { object: store.location(&key), used_by, problem });
        }
    }
    Ok(report)
}

/// Streams an object through SHA-256 in ranged chunks.
async fn hash_object(store: &dyn ObjectStore, key: &str, size: u64, transfer: &Transfer) -> Result<Checksum> {
    let chunk = store.read_chunk_bytes().max(1);
    let mut hasher = Hasher::new();
    let mut offset = 0;
    while offset < size {
        let len = chunk.min(size - offset);
        transfer.throttle(len).await;
        let data = store.get(key, Some(ByteRange::new(offset, len))).await?;
        hasher.update(&data);
        offset += len;
        if (data.len() as u64) < len {
            break; // Short read: the checksum will not match.
        }
    }
    Ok(hasher.finish())
}

/// What retention looks at, read from the store. Files are listed first: a file uploaded
/// after the listing is not a deletion candidate.
#[derive(Debug, Clone, Default)]
pub struct StoreContents {
    pub stored_files: BTreeSet<Checksum>,
    pub manifests: Vec<Manifest>,
    pub pending: Vec<Manifest>,
}

pub async fn read_contents(store: &dyn ObjectStore) -> Result<StoreContents> {
    let stored_files =
        store.list(FILES_PREFIX).await?.into_iter().filter_map(|m| parse_file_key(&m.key)).collect();
    let (complete, pending_ids) = list_backup_objects(store).await?;
    let mut manifests = Vec::with_capacity(complete.len());
    for id in &complete {
        manifests.push(load_manifest(store, id).await?);
    }
    let mut pending = Vec::with_capacity(pending_ids.len());
    for id in &pending_ids {
        match read_manifest(store, &pending_key(id), id).await {
            Ok(m) => pending.push(m),
            // Finished between the listing and now.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(StoreContents { stored_files, manifests, pending })
}

/// Deletes what a plan says: manifests, then intents, then files.
pub async fn apply_retention(store: &dyn ObjectStore, plan: &RetentionPlan) -> Result<()> {
    for id in &plan.delete_manifests {
        store.delete(&manifest_key(id)).await?;
    }
    for id in &plan.delete_pending {
        store.delete(&pending_key(id)).await?;
    }
    for c in &plan.delete_files {
        store.delete(&file_key(c)).await?;
    }
    Ok(())
}
