//! Reading a backup's partition: its files downloaded and checked against the manifest
//! (SHA-256 and size), then the checkpoint opened with Tern's RocksDB store and every stored
//! record read.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use tern_backup::model::{PartitionManifest, file_key, hash_file};
use tern_backup::{ObjectStore, Transfer};
use tern_core::WriteOp;
use tern_core::key::KeyRange;
use tern_rocks::{RocksBackend, RocksConfig};
use tern_storage::PartitionStore;

use crate::error::{RestoreError, Result};
use crate::plan::{RecordKind, record_to_put};

/// Downloads the files of partition `p` into `dir` (names as in the checkpoint) and checks each
/// against the manifest. A file already there with the right size and checksum (from an
/// interrupted run) is kept. Returns the bytes downloaded. A missing object fails naming it; a
/// damaged one fails naming it and is not kept.
pub async fn fetch_partition(
    store: &dyn ObjectStore,
    p: &PartitionManifest,
    dir: &Path,
    transfer: &Transfer,
) -> Result<u64> {
    let mut downloaded = 0;
    for f in &p.files {
        let key = file_key(&f.sha256);
        let path = dir.join(&f.name);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(RestoreError::io(format!("create {}", parent.display())))?;
        }
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.len() == f.size_bytes)
            && hash_file(&path).await.is_ok_and(|(sum, _)| sum == f.sha256)
        {
            transfer.report(f.size_bytes);
            continue;
        }
        store.get_to_file(&key, &path, transfer).await?;
        let (sum, size) = hash_file(&path).await?;
        if sum != f.sha256 || size != f.size_bytes {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(RestoreError::Damaged {
                object: store.location(&key),
                detail: format!(
                    "file {} of partition {}: read {size} bytes with SHA-256 {}; the manifest says {} bytes with {}",
                    f.name,
                    p.index,
                    sum.to_hex(),
                    f.size_bytes,
                    f.sha256.to_hex()
                ),
            });
        }
        downloaded += size;
    }
    Ok(downloaded)
}

/// Opens the checkpoint in `checkpoint` (a private copy in `store_dir`, made with hard links,
/// so the downloaded files stay as they were) and calls `visit` with every stored record as
/// the put that recreates it. Blocking: run it off the async runtime.
pub fn scan_checkpoint(
    checkpoint: &Path,
    store_dir: &Path,
    now_secs: u64,
    mut visit: impl FnMut(WriteOp, RecordKind) -> tern_core::Result<ControlFlow<()>>,
) -> Result<()> {
    if store_dir.exists() {
        std::fs::remove_dir_all(store_dir)
            .map_err(RestoreError::io(format!("remove {}", store_dir.display())))?;
    }
    // A small cache: the records are read once, in order.
    let config = RocksConfig {
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 4 << 20,
        memtable_huge_pages: false,
        max_background_jobs: 1,
    };
    let backend = RocksBackend::new(config, Arc::new(tern_storage::SystemClock));
    let store = backend
        .open_from_checkpoint(checkpoint, store_dir)
        .map_err(|e| e.context(format!("open the checkpoint in {}", checkpoint.display())))?;
    store
        .raw_scan(&KeyRange::all(), false, &mut |k, v| {
            let (put, kind) = record_to_put(k, v, now_secs)?;
            visit(put, kind)
        })
        .map_err(|e| e.context(format!("read the checkpoint in {}", checkpoint.display())))?;
    drop(store);
    std::fs::remove_dir_all(store_dir)
        .map_err(RestoreError::io(format!("remove {}", store_dir.display())))?;
    Ok(())
}
