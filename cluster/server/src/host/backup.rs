//! Backups on the replica server (`ReplicaBackup.BackupPartition`, docs/backup.md): the
//! partition's primary takes a RocksDB checkpoint (in its replica task, so the decree is the
//! one inside), uploads its files content-addressed to the target the request names
//! (`tern_backup::Uploader::upload_partition`, skipping files already stored), streams
//! progress to the caller and answers with the partition's manifest entry. The coordinator
//! (`tern_backup::take`) writes the intent and the manifest; nothing here does.
//!
//! The local checkpoint (`<data>/backups/<gpid>-<id>-<n>`, hard links of the store's SSTs) is
//! deleted when the call ends, whether it succeeded, failed or the caller went away; one a
//! crash left behind is deleted when the server starts ([`clean_leftovers`]).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tern_backup::TargetSpec;
use tern_backup::model::{BackupId, LocalFile, PartitionCheckpoint, TimetagRange, UploadProgress, Uploader};
use tern_client::admin::backup::backed_up_to_pb;
use tern_core::key::KeyRange;
use tern_core::{Error, Gpid, Result};
use tern_proto::pb;
use tern_storage::PartitionStore;
use tokio::sync::{mpsc, oneshot};

use super::HostEnv;
use super::checkpoint;
use super::registry::ReplicaHandle;
use super::task::Input;

const DIR: &str = "backups";

/// What a call streams: progress, then the result (the last message, with `done`).
pub type Progress = mpsc::Receiver<Result<pb::BackupPartitionProgress>>;

/// Starts backing up `handle`'s partition; the receiver gets progress and the result. Dropping
/// the receiver (the caller went away) stops the upload and deletes the checkpoint.
pub fn start(
    env: Arc<HostEnv>,
    handle: ReplicaHandle,
    id: BackupId,
    target: TargetSpec,
    limit_bytes_per_sec: Option<u64>,
) -> Progress {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let gpid = handle.gpid;
        let result = tokio::select! {
            r = run(&env, &handle, &id, &target, limit_bytes_per_sec, &tx) => r,
            _ = tx.closed() => {
                tracing::info!(%gpid, backup = %id, "backup abandoned by its caller");
                return;
            }
        };
        match &result {
            Ok(_) => tracing::info!(%gpid, backup = %id, "partition backed up"),
            Err(e) => tracing::warn!(%gpid, backup = %id, "backing up the partition failed: {e}"),
        }
        let _ = tx.send(result).await;
    });
    rx
}

/// Removes the directory when dropped (the checkpoint is never needed after the call).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.0)
        {
            tracing::warn!("deleting backup checkpoint {}: {e}", self.0.display());
        }
    }
}

fn backup_error(doing: String) -> impl FnOnce(tern_backup::Error) -> Error {
    move |e| match e {
        tern_backup::Error::Corrupt { .. } => Error::corruption(format!("{doing}: {e}")),
        e if e.retryable() => Error::Unavailable(format!("{doing}: {e}")),
        e => Error::InvalidArgument(format!("{doing}: {e} [{}]", e.code())),
    }
}

async fn run(
    env: &HostEnv,
    handle: &ReplicaHandle,
    id: &BackupId,
    target: &TargetSpec,
    limit_bytes_per_sec: Option<u64>,
    tx: &mpsc::Sender<Result<pb::BackupPartitionProgress>>,
) -> Result<pb::BackupPartitionProgress> {
    let gpid = handle.gpid;
    let parent = env.opts.data_dir.join(DIR);
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
    let n = env.next_checkpoint.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!("{gpid}-{id}-{n}"));
    let _remove = RemoveOnDrop(dir.clone());

    // Held before the checkpoint (then from its decree + 1 on) until this call ends in any way:
    // the log after the backup stays for a duplication peer seeded from it (`holds.rs`).
    let hold = env.holds.hold(gpid, tern_core::Decree::ZERO);
    let decree = checkpoint_on_primary(handle, dir.clone()).await?;
    hold.move_to(decree.next());
    let files = checkpoint::files(&dir)?;
    tracing::info!(%gpid, backup = %id, decree = decree.0, files = files.len(), "backup checkpoint taken");

    let store = tern_backup::open_target(target)
        .await
        .map_err(backup_error(format!("open backup target {} on {}", target.url, env.id)))?;
    let progress = tx.clone();
    let mut uploader = Uploader::new(store).with_progress(Arc::new(move |p: &UploadProgress| {
        // Progress is best effort: a full channel drops a report, never the result.
        let _ = progress.try_send(Ok(progress_pb(p)));
    }));
    if let Some(rate) = limit_bytes_per_sec.filter(|r| *r > 0) {
        uploader = uploader.with_limit(env.backup_limit.get(rate));
    }
    // The checkpoint's timetag range is read while its files upload (one sequential read of a
    // private copy, off the replica task).
    let scan = {
        let (dir, scratch) = (dir.clone(), parent.join(format!("{gpid}-{id}-{n}.scan")));
        tokio::task::spawn_blocking(move || {
            let _remove = RemoveOnDrop(scratch.clone());
            timetag_range(&dir, &scratch)
        })
    };
    let files: Vec<LocalFile> =
        files.into_iter().map(|(name, _)| LocalFile { path: dir.join(&name), name }).collect();
    let mut entry = PartitionCheckpoint { index: gpid.partition.0, decree: decree.0, timetags: None, files };
    let timetags = scan
        .await
        .map_err(|e| Error::invariant(format!("timetag scan task of partition {gpid}: {e}")))?
        .map_err(|e| e.context(format!("read the timetags of backup checkpoint {}", dir.display())))?;
    entry.timetags = timetags;
    let upload = uploader
        .upload_partition(&entry)
        .await
        .map_err(backup_error(format!("upload partition {gpid} of backup {id} from {}", env.id)))?;
    let files = upload.files_uploaded + upload.files_skipped;
    let bytes = upload.bytes_uploaded + upload.bytes_skipped;
    Ok(pb::BackupPartitionProgress {
        files_total: files,
        files_done: files,
        bytes_total: bytes,
        bytes_done: bytes,
        done: Some(backed_up_to_pb(&upload)),
    })
}

/// The smallest and largest record timetag of the checkpoint in `dir` (tombstones and expired
/// records included; `None` if it holds no record), read through a private copy in `scratch`.
/// Blocking.
fn timetag_range(dir: &Path, scratch: &Path) -> Result<Option<TimetagRange>> {
    let config = tern_rocks::RocksConfig {
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 4 << 20,
        memtable_huge_pages: false,
        max_background_jobs: 1,
    };
    let backend = tern_rocks::RocksBackend::new(config, Arc::new(tern_storage::SystemClock));
    let store = backend.open_from_checkpoint(dir, scratch)?;
    let mut range: Option<TimetagRange> = None;
    store.raw_scan(&KeyRange::all(), false, &mut |_, v| {
        let (header, _) = tern_core::value::decode(v)?;
        let t = header.timetag.with_delete(false).as_u64();
        range = Some(match range {
            None => TimetagRange { min: t, max: t },
            Some(r) => TimetagRange { min: r.min.min(t), max: r.max.max(t) },
        });
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(range)
}

/// Has the replica task take the checkpoint (refused unless it is the primary).
async fn checkpoint_on_primary(handle: &ReplicaHandle, dir: PathBuf) -> Result<tern_core::Decree> {
    let gpid: Gpid = handle.gpid;
    let (reply, answer) = oneshot::channel();
    handle.submit(Input::BackupCheckpoint { dir, reply })?;
    answer.await.map_err(|_| Error::Unavailable(format!("replica {gpid} closed while checkpointing")))?
}

fn progress_pb(p: &UploadProgress) -> pb::BackupPartitionProgress {
    pb::BackupPartitionProgress {
        files_total: p.files_total,
        files_done: p.files_done,
        bytes_total: p.bytes_total,
        bytes_done: p.bytes_done,
        done: None,
    }
}

/// Deletes backup checkpoints a crash left behind (called when the server starts, before it
/// serves).
pub fn clean_leftovers(data_dir: &Path) {
    let dir = data_dir.join(DIR);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        tracing::warn!("deleting leftover backup checkpoints in {}: {e}", dir.display());
    }
}
