//! Taking a backup of a cluster's table: the coordinator (`tern backup now`).
//!
//! The coordinator runs where the command runs and talks to the cluster only through the
//! [`BackupCluster`] seam (implemented by `tern_client::AdminClient`): it resolves the table
//! and its primaries, writes the backup's intent, has each partition's primary checkpoint and
//! upload its partition (a few at once), re-resolves and re-runs a partition whose primary
//! moved or failed (a bounded number of times), and commits the manifest last. The objects it
//! writes itself (intent, manifest) go through [`Uploader`] on the store it was given; the
//! checkpoint files are uploaded by the replica servers, to the same target.
//!
//! A failure leaves the intent (with the partitions finished so far) and no manifest: no
//! backup. [`TakeOptions::resume`] continues it: finished partitions are kept, the others are
//! taken again (their files already stored are skipped by HEAD).
//!
//! The decisions ([`after_failure`], [`backoff`], [`partitions_to_run`], [`check_resumable`])
//! are pure functions, tested on their own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::model::{
    BackupId, MANIFEST_FORMAT_VERSION, Manifest, PartitionManifest, PartitionUpload, TableSchema, Uploader,
};
use crate::store::ObjectStore;
use crate::target::TargetSpec;

/// A table as the cluster describes it to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTable {
    /// The cluster's name (recorded in the manifest).
    pub cluster: String,
    pub schema: TableSchema,
    /// By partition index: the address of its primary now, if it has one.
    pub primaries: Vec<Option<String>>,
}

/// What a primary is asked to do: back up partition `index` of `table` into `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionJob {
    pub backup_id: BackupId,
    pub table: String,
    pub index: u32,
    pub target: TargetSpec,
    /// The primary's upload bandwidth for this partition (`None`: unlimited).
    pub limit_bytes_per_sec: Option<u64>,
}

/// A partition's progress as its primary reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
}

/// The cluster, as the coordinator needs it.
#[async_trait]
pub trait BackupCluster: Send + Sync {
    /// The table's schema and its partitions' primaries, freshly resolved.
    async fn table(&self, table: &str) -> Result<ClusterTable>;

    /// Has the primary at `primary` back up a partition, reporting progress as it goes.
    /// A primary that is not (or no longer) the partition's primary, or unreachable, fails
    /// with a retryable error ([`Error::Cluster`]).
    async fn backup_partition(
        &self,
        primary: &str,
        job: &PartitionJob,
        progress: &(dyn Fn(PartitionProgress) + Send + Sync),
    ) -> Result<PartitionUpload>;
}

/// How to take a backup.
#[derive(Debug, Clone)]
pub struct TakeOptions {
    /// Partitions backed up at once.
    pub concurrency: usize,
    /// Attempts per partition (the first included) before the backup fails.
    pub max_attempts: u32,
    /// Each primary's upload bandwidth (`None`: unlimited).
    pub limit_bytes_per_sec: Option<u64>,
    /// Continue this backup (its intent must be stored) rather than start a new one.
    pub resume: Option<BackupId>,
    /// Recorded in the manifest.
    pub tool_version: String,
}

impl Default for TakeOptions {
    fn default() -> Self {
        TakeOptions {
            concurrency: 4,
            max_attempts: 4,
            limit_bytes_per_sec: None,
            resume: None,
            tool_version: String::new(),
        }
    }
}

/// A backup's progress, over all its partitions. Totals grow as primaries report theirs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeProgress {
    pub partitions_total: u32,
    pub partitions_done: u32,
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
}

/// What taking a backup did.
#[derive(Debug, Clone)]
pub struct TakeSummary {
    pub manifest: Manifest,
    pub files_uploaded: u64,
    pub files_skipped: u64,
    pub bytes_uploaded: u64,
    pub bytes_skipped: u64,
    /// Partitions re-run on a (new) primary after a failed attempt.
    pub retries: u32,
    /// Partitions kept from the resumed intent.
    pub resumed_partitions: u32,
    pub elapsed: Duration,
}

/// What to do after a partition's attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Re-resolve its primary and run it again.
    Retry,
    /// Fail the backup.
    GiveUp,
}

/// `attempt` (1-based) failed with an error that is or is not `retryable`.
pub fn after_failure(attempt: u32, max_attempts: u32, retryable: bool) -> AfterFailure {
    if retryable && attempt < max_attempts { AfterFailure::Retry } else { AfterFailure::GiveUp }
}

/// The wait before attempt `attempt + 1`: 250 ms doubling, at most 4 s (a new primary is
/// usually elected within a few seconds).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.saturating_sub(1).min(4)))
        .min(Duration::from_secs(4))
}

/// The partitions an intent still needs (its placeholders).
pub fn partitions_to_run(intent: &Manifest) -> Vec<u32> {
    intent.partitions.iter().filter(|p| p.is_placeholder()).map(|p| p.index).collect()
}

/// Whether a stored intent can be resumed against the table as the cluster describes it now.
pub fn check_resumable(intent: &Manifest, table: &ClusterTable) -> Result<()> {
    if intent.table.name != table.schema.name || intent.table.partition_count != table.schema.partition_count
    {
        return Err(Error::invalid(
            "backup to resume",
            format!(
                "backup {} is of table {} with {} partitions; the cluster has {} with {}",
                intent.backup_id,
                intent.table.name,
                intent.table.partition_count,
                table.schema.name,
                table.schema.partition_count
            ),
        ));
    }
    if intent.cluster != table.cluster {
        return Err(Error::invalid(
            "backup to resume",
            format!(
                "backup {} was taken from cluster {}, not {}",
                intent.backup_id, intent.cluster, table.cluster
            ),
        ));
    }
    Ok(())
}

/// The intent of a new backup: every partition a placeholder.
pub fn new_intent(id: BackupId, table: &ClusterTable, tool_version: &str) -> Manifest {
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        backup_id: id,
        cluster: table.cluster.clone(),
        table: table.schema.clone(),
        partitions: (0..table.schema.partition_count).map(PartitionManifest::placeholder).collect(),
        tool_version: tool_version.to_string(),
        created_at: Utc::now(),
    }
}

struct Shared {
    intent: tokio::sync::Mutex<Manifest>,
    progress: Mutex<Vec<PartitionProgress>>,
    done: Mutex<Vec<bool>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes (or resumes) a backup of `table` into `store`, which `target` names (the primaries
/// open `target` themselves). `progress` is called as partitions report.
pub async fn take_backup(
    cluster: &dyn BackupCluster,
    store: Arc<dyn ObjectStore>,
    target: &TargetSpec,
    table: &str,
    opts: &TakeOptions,
    progress: &(dyn Fn(&TakeProgress) + Send + Sync),
) -> Result<TakeSummary> {
    let started = Instant::now();
    let uploader = Uploader::new(store.clone());
    let described = cluster.table(table).await?;
    if described.primaries.len() != described.schema.partition_count as usize {
        return Err(Error::Cluster {
            doing: format!("resolve table {table}"),
            detail: format!(
                "{} partitions routed for a partition count of {}",
                described.primaries.len(),
                described.schema.partition_count
            ),
            retryable: true,
        });
    }
    let intent = match &opts.resume {
        Some(id) => {
            if id.table() != table {
                return Err(Error::invalid(
                    "--resume",
                    format!("backup {id} is of table {}, not {table}", id.table()),
                ));
            }
            let intent = uploader.load_intent(id).await?.ok_or_else(|| {
                Error::invalid(
                    "--resume",
                    format!(
                        "no running backup {id} at {} (complete already, or never started)",
                        store.location(&crate::model::pending_key(id))
                    ),
                )
            })?;
            check_resumable(&intent, &described)?;
            intent
        }
        None => {
            let id = BackupId::new(Utc::now(), table, rand::random())?;
            new_intent(id, &described, &opts.tool_version)
        }
    };
    uploader.begin(&intent).await?;
    let id = intent.backup_id.clone();
    let todo = partitions_to_run(&intent);
    let count = described.schema.partition_count as usize;
    let resumed = (count - todo.len()) as u32;
    tracing::info!(backup = %id, partitions = count, to_take = todo.len(), "taking a backup");

    let mut initial = vec![PartitionProgress::default(); count];
    let mut done = vec![false; count];
    for p in intent.partitions.iter().filter(|p| !p.is_placeholder()) {
        let bytes = p.files.iter().map(|f| f.size_bytes).sum();
        let files = p.files.len() as u64;
        initial[p.index as usize] = PartitionProgress {
            files_total: files,
            files_done: files,
            bytes_total: bytes,
            bytes_done: bytes,
        };
        done[p.index as usize] = true;
    }
    let shared = Shared {
        intent: tokio::sync::Mutex::new(intent),
        progress: Mutex::new(initial),
        done: Mutex::new(done),
    };
    let report = || {
        let parts = lock(&shared.progress);
        let done = lock(&shared.done);
        progress(&TakeProgress {
            partitions_total: count as u32,
            partitions_done: done.iter().filter(|d| **d).count() as u32,
            files_total: parts.iter().map(|p| p.files_total).sum(),
            files_done: parts.iter().map(|p| p.files_done).sum(),
            bytes_total: parts.iter().map(|p| p.bytes_total).sum(),
            bytes_done: parts.iter().map(|p| p.bytes_done).sum(),
        });
    };
    report();

    let route = Mutex::new(described.primaries.clone());
    let run_one = |index: u32| {
        let (shared, route, uploader, id, report) = (&shared, &route, &uploader, &id, &report);
        async move {
            let job = PartitionJob {
                backup_id: id.clone(),
                table: table.to_string(),
                index,
                target: target.clone(),
                limit_bytes_per_sec: opts.limit_bytes_per_sec,
            };
            let mut attempt = 0;
            let upload = loop {
                attempt += 1;
                let primary = lock(route)[index as usize].clone();
                let result = match &primary {
                    Some(addr) => {
                        let on_progress = |p: PartitionProgress| {
                            lock(&shared.progress)[index as usize] = p;
                            report();
                        };
                        cluster.backup_partition(addr, &job, &on_progress).await
                    }
                    None => Err(Error::Cluster {
                        doing: format!("back up partition {index} of {table}"),
                        detail: "the partition has no primary".to_string(),
                        retryable: true,
                    }),
                };
                let e = match result {
                    Ok(u) if u.partition.index == index && !u.partition.is_placeholder() => break u,
                    Ok(u) => Error::Cluster {
                        doing: format!("back up partition {index} of {table}"),
                        detail: format!(
                            "the primary answered for partition {} with {} files",
                            u.partition.index,
                            u.partition.files.len()
                        ),
                        retryable: false,
                    },
                    Err(e) => e,
                };
                let at = primary.as_deref().unwrap_or("no primary");
                match after_failure(attempt, opts.max_attempts, e.retryable()) {
                    AfterFailure::GiveUp => {
                        return Err(Error::Cluster {
                            doing: format!(
                                "back up partition {index} of {table} (attempt {attempt} of {}, on {at})",
                                opts.max_attempts
                            ),
                            detail: e.to_string(),
                            retryable: false,
                        });
                    }
                    AfterFailure::Retry => {
                        tracing::warn!(backup = %id, partition = index, attempt, primary = at,
                            "partition backup failed, re-resolving its primary: {e}");
                        lock(&shared.progress)[index as usize] = PartitionProgress::default();
                        tokio::time::sleep(backoff(attempt)).await;
                        // The route may have moved on: ask again (a failure to ask counts as
                        // this attempt's; the old route stays).
                        match cluster.table(table).await {
                            Ok(t) if t.primaries.len() == count => *lock(route) = t.primaries,
                            Ok(_) => {}
                            Err(e) => tracing::warn!(backup = %id, "re-resolving table {table}: {e}"),
                        }
                    }
                }
            };
            let retried = attempt > 1;
            {
                let mut intent = shared.intent.lock().await;
                intent.partitions[index as usize] = upload.partition.clone();
                // The intent records finished partitions, so a resumed backup keeps them.
                uploader.update_intent(&intent).await?;
            }
            lock(&shared.done)[index as usize] = true;
            report();
            Ok::<_, Error>((upload, retried))
        }
    };
    // The first partition that fails fails the backup: the others are dropped (their calls
    // cancelled; each primary deletes its checkpoint).
    let results: Vec<(PartitionUpload, bool)> = futures::stream::iter(todo)
        .map(run_one)
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect()
        .await
        .map_err(|e| Error::Cluster {
            doing: format!(
                "backup {id} left unfinished (no manifest; its intent is kept, resume it by this id)"
            ),
            retryable: e.retryable(),
            detail: e.to_string(),
        })?;

    let mut summary = TakeSummary {
        manifest: shared.intent.lock().await.clone(),
        files_uploaded: 0,
        files_skipped: 0,
        bytes_uploaded: 0,
        bytes_skipped: 0,
        retries: 0,
        resumed_partitions: resumed,
        elapsed: Duration::ZERO,
    };
    for (u, retried) in results {
        summary.files_uploaded += u.files_uploaded;
        summary.files_skipped += u.files_skipped;
        summary.bytes_uploaded += u.bytes_uploaded;
        summary.bytes_skipped += u.bytes_skipped;
        summary.retries += u32::from(retried);
    }
    if let Some(p) = summary.manifest.partitions.iter().find(|p| p.is_placeholder()) {
        return Err(Error::invalid(format!("backup {id}"), format!("partition {} was not taken", p.index)));
    }
    uploader.commit(&summary.manifest).await?;
    summary.elapsed = started.elapsed();
    tracing::info!(backup = %id, elapsed = ?summary.elapsed, "backup complete");
    Ok(summary)
}

#[cfg(test)]
#[path = "take_tests.rs"]
mod tests;
