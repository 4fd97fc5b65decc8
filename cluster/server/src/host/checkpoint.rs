//! Checkpoints for learners: made on the primary (RocksDB checkpoints, kept in
//! `checkpoints/<gpid>/<id>`), streamed in chunks, written and fsync'ed on the learner in a
//! staging directory, then installed by the replica task. Progress is logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tern_core::{Error, Gpid, NodeId, Result};
use tern_proto::convert::gpid_to_pb;
use tern_proto::pb;
use tern_proto::pb::peer_client::PeerClient;
use tern_proto::status::from_status;
use tern_replica::CheckpointRef;
use tern_rocks::RocksPartitionStore;
use tern_storage::PartitionStore;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::HostEnv;
use super::task::Input;

/// Checkpoints kept per partition (older ones are deleted when a new one is made).
const KEEP: usize = 2;
pub const CHUNK: usize = 1 << 20;

fn dir_of(env: &HostEnv, gpid: Gpid) -> PathBuf {
    env.opts.data_dir.join("checkpoints").join(gpid.to_string())
}

pub fn path_of(env: &HostEnv, gpid: Gpid, id: u64) -> PathBuf {
    dir_of(env, gpid).join(id.to_string())
}

/// Makes a checkpoint of `store` to send to a learner.
pub fn create(env: &HostEnv, gpid: Gpid, store: &RocksPartitionStore) -> Result<CheckpointRef> {
    let dir = dir_of(env, gpid);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let id = env.next_checkpoint.fetch_add(1, Ordering::Relaxed) + env.clock.now().wall_ms * 1000;
    let path = path_of(env, gpid, id);
    let decree = store.checkpoint(&path)?;
    // Keep only the newest few.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut ids: Vec<u64> =
            entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
        ids.sort_unstable();
        for old in ids.iter().take(ids.len().saturating_sub(KEEP)) {
            let _ = std::fs::remove_dir_all(path_of(env, gpid, *old));
        }
    }
    Ok(CheckpointRef { id, decree, timetag: store.last_applied_timetag() })
}

/// Downloads checkpoint `cp` of `gpid` from `from` and tells the replica task when it is there.
pub fn spawn_fetch(
    env: Arc<HostEnv>,
    gpid: Gpid,
    from: NodeId,
    cp: CheckpointRef,
    tx: mpsc::UnboundedSender<Input>,
) {
    tokio::spawn(async move {
        let msg = match fetch(&env, gpid, from, cp).await {
            Ok(dir) => Input::CheckpointFetched { dir, checkpoint: cp },
            Err(e) => {
                tracing::warn!(%gpid, "fetching checkpoint {} from {from} failed: {e}", cp.id);
                Input::CheckpointFetchFailed(e)
            }
        };
        let _ = tx.send(msg);
    });
}

async fn fetch(env: &HostEnv, gpid: Gpid, from: NodeId, cp: CheckpointRef) -> Result<PathBuf> {
    let addr = env
        .peers
        .addresses()
        .of(from)
        .ok_or_else(|| Error::Unavailable(format!("address of {from} unknown")))?;
    let dir = env.opts.data_dir.join("staging").join(format!("{gpid}-{}", cp.id));
    if dir.exists() {
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(|e| Error::io(format!("remove {}", dir.display()), e))?;
    }
    tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let mut client = PeerClient::new(env.pool.channel(&addr)?);
    let mut stream = client
        .fetch_checkpoint(pb::FetchCheckpointRequest { gpid: Some(gpid_to_pb(gpid)), id: cp.id })
        .await
        .map_err(|s| from_status(&s))?
        .into_inner();
    let mut file: Option<(String, tokio::fs::File)> = None;
    let (mut got, mut reported) = (0u64, 0u64);
    while let Some(chunk) = stream.message().await.map_err(|s| from_status(&s))? {
        if chunk.file.contains('/') || chunk.file.contains("..") {
            return Err(Error::corruption(format!("checkpoint file name {:?}", chunk.file)));
        }
        if file.as_ref().is_none_or(|(name, _)| *name != chunk.file) {
            if let Some((_, f)) = file.take() {
                f.sync_all().await.map_err(|e| Error::io("fsync a checkpoint file", e))?;
            }
            let f = tokio::fs::File::create(dir.join(&chunk.file))
                .await
                .map_err(|e| Error::io(format!("create {}", chunk.file), e))?;
            file = Some((chunk.file.clone(), f));
        }
        if let Some((_, f)) = file.as_mut() {
            f.write_all(&chunk.data).await.map_err(|e| Error::io(format!("write {}", chunk.file), e))?;
        }
        got += chunk.data.len() as u64;
        if chunk.total_bytes > 0 && got * 10 / chunk.total_bytes > reported {
            reported = got * 10 / chunk.total_bytes;
            tracing::info!(%gpid, "checkpoint {}: {}% ({got} of {} bytes)", cp.id, reported * 10, chunk.total_bytes);
        }
    }
    if let Some((_, f)) = file.take() {
        f.sync_all().await.map_err(|e| Error::io("fsync a checkpoint file", e))?;
    }
    Ok(dir)
}

/// The files of a checkpoint, for serving: (name, size).
pub fn files(path: &Path) -> Result<Vec<(String, u64)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(path).map_err(|e| Error::io(format!("list {}", path.display()), e))? {
        let e = e.map_err(|e| Error::io(format!("list {}", path.display()), e))?;
        let meta = e.metadata().map_err(|e| Error::io("stat a checkpoint file", e))?;
        if meta.is_file() {
            v.push((e.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
    v.sort();
    Ok(v)
}
