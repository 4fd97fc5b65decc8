//! `RocksPartitionStore`: one partition replica's data in one RocksDB instance.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, FlushOptions, ReadOptions, ReadTier, WriteBatch, WriteOptions,
};
use tern_core::key::KeyRange;
use tern_core::{Ballot, Clock, Decree, Error, Result, Timetag};
use tern_storage::dir::sync_dir;
use tern_storage::{AppliedMark, PartitionStore, RawBatch, RawVisit};

use crate::backend::RocksBackend;
use crate::compaction::Horizon;

const CF_DATA: &str = "default";
const CF_META: &str = "meta";
const KEY_FORMAT: &[u8] = b"format_version";
const KEY_DECREE: &[u8] = b"last_applied_decree";
const KEY_TIMETAG: &[u8] = b"last_applied_timetag";
const KEY_BALLOT: &[u8] = b"last_applied_ballot";
/// The purge horizon (a timetag); absent in stores written before it existed: zero.
const KEY_PURGE_BELOW: &[u8] = b"purge_below";
/// Version of the on-disk layout described in the crate docs.
const FORMAT_V1: u64 = 1;

pub struct RocksPartitionStore {
    db: DB,
    path: PathBuf,
    applied: AppliedMark,
    horizon: Horizon,
    clock: Arc<dyn Clock>,
    write_opts: WriteOptions,
}

impl std::fmt::Debug for RocksPartitionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksPartitionStore")
            .field("path", &self.path)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

/// Maps a RocksDB error, saying what was being done. `context` runs only on an error: the
/// read and write paths call this for every operation, and formatting the store's path each
/// time showed in profiles.
fn db_err<C: Into<String>>(context: impl FnOnce() -> C) -> impl FnOnce(rocksdb::Error) -> Error {
    move |e| {
        let context = context().into();
        match e.kind() {
            rocksdb::ErrorKind::Corruption => Error::corruption(format!("{context}: {e}")),
            _ => Error::io(context, e),
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |e| Error::io(context, e)
}

fn decode_u64(raw: &[u8], what: &str, path: &Path) -> Result<u64> {
    let arr: [u8; 8] = raw.try_into().map_err(|_| {
        Error::corruption(format!("{what} in {} is {} bytes, not 8", path.display(), raw.len()))
    })?;
    Ok(u64::from_be_bytes(arr))
}

impl RocksPartitionStore {
    /// Starts a flush of both column families and returns at once (RocksDB's flush threads do
    /// the work); what it persisted shows in `durable_decree` once it is done. The periodic
    /// flush uses this so that a partition keeps serving while its memtable is written out.
    pub fn request_flush(&self) -> Result<()> {
        let mut opts = FlushOptions::default();
        opts.set_wait(false);
        self.db
            .flush_cfs_opt(&[self.data_cf(), self.meta_cf()], &opts)
            .map_err(db_err(|| format!("flush {}", self.path.display())))
    }

    pub(crate) fn open(backend: &RocksBackend, dir: &Path) -> Result<RocksPartitionStore> {
        fs::create_dir_all(dir).map_err(io_err(format!("create store directory {}", dir.display())))?;
        let horizon: Horizon = Arc::default();
        let cfs = [
            ColumnFamilyDescriptor::new(CF_DATA, backend.data_options(horizon.clone())),
            ColumnFamilyDescriptor::new(CF_META, backend.meta_options()),
        ];
        let db = DB::open_cf_descriptors(&backend.db_options(), dir, cfs)
            .map_err(db_err(|| format!("open RocksDB store {}", dir.display())))?;
        let mut write_opts = WriteOptions::default();
        // The replication log is the write-ahead log; see the crate docs.
        write_opts.disable_wal(true);
        let mut store = RocksPartitionStore {
            db,
            path: dir.to_path_buf(),
            applied: AppliedMark::default(),
            horizon,
            clock: backend.clock(),
            write_opts,
        };
        store.load_meta()?;
        Ok(store)
    }

    /// Reads (or, for a new store, writes) the format version and the applied mark.
    fn load_meta(&mut self) -> Result<()> {
        let format = self.meta_get(KEY_FORMAT, ReadTier::All)?;
        match format {
            Some(FORMAT_V1) => {}
            Some(v) => {
                return Err(Error::corruption(format!(
                    "store {} has format version {v}; this build reads version {FORMAT_V1}",
                    self.path.display()
                )));
            }
            None => {
                let mut any_data = false;
                self.raw_scan(&KeyRange::all(), false, &mut |_, _| {
                    any_data = true;
                    Ok(std::ops::ControlFlow::Break(()))
                })?;
                if any_data {
                    return Err(Error::corruption(format!(
                        "store {} holds records but no format version",
                        self.path.display()
                    )));
                }
                let mut batch = WriteBatch::default();
                batch.put_cf(self.meta_cf(), KEY_FORMAT, FORMAT_V1.to_be_bytes());
                self.db
                    .write_opt(batch, &self.write_opts)
                    .map_err(db_err(|| "write store format version"))?;
            }
        }
        let decree = Decree(self.meta_get(KEY_DECREE, ReadTier::All)?.unwrap_or(0));
        let timetag = Timetag::from_u64(self.meta_get(KEY_TIMETAG, ReadTier::All)?.unwrap_or(0));
        let ballot = Ballot(self.meta_get(KEY_BALLOT, ReadTier::All)?.unwrap_or(0));
        let purge_below = Timetag::from_u64(self.meta_get(KEY_PURGE_BELOW, ReadTier::All)?.unwrap_or(0));
        self.applied = AppliedMark { decree, timetag, ballot, purge_below };
        self.horizon.applied.store(timetag.as_u64(), Ordering::Release);
        self.horizon.purge_below.store(purge_below.as_u64(), Ordering::Release);
        Ok(())
    }

    fn meta_get(&self, key: &[u8], tier: ReadTier) -> Result<Option<u64>> {
        let mut opts = ReadOptions::default();
        opts.set_read_tier(tier);
        let what = String::from_utf8_lossy(key).into_owned();
        let raw = self
            .db
            .get_pinned_cf_opt(self.meta_cf(), key, &opts)
            .map_err(db_err(|| format!("read {what} of {}", self.path.display())))?;
        raw.map(|r| decode_u64(&r, &what, &self.path)).transpose()
    }

    fn data_cf(&self) -> &ColumnFamily {
        self.db.cf_handle(CF_DATA).expect("the data column family is opened with the store")
    }

    fn meta_cf(&self) -> &ColumnFamily {
        self.db.cf_handle(CF_META).expect("the meta column family is opened with the store")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Compacts the whole store now (TTL'd records past the horizon are dropped).
    pub fn compact(&self) {
        self.db.compact_range_cf(self.data_cf(), None::<&[u8]>, None::<&[u8]>);
    }
}

impl PartitionStore for RocksPartitionStore {
    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let v = self
            .db
            .get_pinned_cf(self.data_cf(), key)
            .map_err(db_err(|| format!("read from {}", self.path.display())))?;
        Ok(v.map(|v| v.to_vec()))
    }

    fn raw_scan(&self, range: &KeyRange, reverse: bool, visit: &mut RawVisit<'_>) -> Result<()> {
        use std::ops::Bound;
        if range.is_empty() {
            return Ok(());
        }
        // RocksDB bounds are [lower, upper); the key right after `k` is `k ++ [0]`.
        let after = |k: &Vec<u8>| {
            let mut n = k.clone();
            n.push(0);
            n
        };
        let mut opts = ReadOptions::default();
        match &range.start {
            Bound::Included(s) => opts.set_iterate_lower_bound(s.clone()),
            Bound::Excluded(s) => opts.set_iterate_lower_bound(after(s)),
            Bound::Unbounded => {}
        }
        match &range.end {
            Bound::Included(e) => opts.set_iterate_upper_bound(after(e)),
            Bound::Excluded(e) => opts.set_iterate_upper_bound(e.clone()),
            Bound::Unbounded => {}
        }
        let mut it = self.db.raw_iterator_cf_opt(self.data_cf(), opts);
        if reverse {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if visit(k, v)?.is_break() {
                return Ok(());
            }
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        it.status().map_err(db_err(|| format!("scan {}", self.path.display())))
    }

    fn raw_write(&mut self, batch: RawBatch, mark: AppliedMark) -> Result<()> {
        let mut wb = WriteBatch::default();
        let data = self.data_cf();
        for (k, v) in batch {
            match v {
                Some(v) => wb.put_cf(data, k, v),
                None => wb.delete_cf(data, k),
            }
        }
        let meta = self.meta_cf();
        wb.put_cf(meta, KEY_DECREE, mark.decree.0.to_be_bytes());
        wb.put_cf(meta, KEY_TIMETAG, mark.timetag.as_u64().to_be_bytes());
        wb.put_cf(meta, KEY_BALLOT, mark.ballot.0.to_be_bytes());
        if mark.purge_below != self.applied.purge_below {
            wb.put_cf(meta, KEY_PURGE_BELOW, mark.purge_below.as_u64().to_be_bytes());
        }
        self.db
            .write_opt(wb, &self.write_opts)
            .map_err(db_err(|| format!("write decree {} to {}", mark.decree, self.path.display())))?;
        self.applied = mark;
        self.horizon.applied.fetch_max(mark.timetag.as_u64(), Ordering::AcqRel);
        self.horizon.purge_below.fetch_max(mark.purge_below.as_u64(), Ordering::AcqRel);
        Ok(())
    }

    fn last_applied(&self) -> AppliedMark {
        self.applied
    }

    /// Reads the decree from persisted files only (the memtables are not durable with the WAL
    /// off), so this is exactly what a crash now would leave.
    fn durable_decree(&self) -> Result<Decree> {
        Ok(Decree(self.meta_get(KEY_DECREE, ReadTier::Persisted)?.unwrap_or(0)))
    }

    /// Flushes both column families atomically. RocksDB syncs the new SST files and the
    /// MANIFEST before the flush returns: after it, the flushed decree is fsync'ed.
    fn flush(&self) -> Result<Decree> {
        let mut opts = FlushOptions::default();
        opts.set_wait(true);
        self.db
            .flush_cfs_opt(&[self.data_cf(), self.meta_cf()], &opts)
            .map_err(db_err(|| format!("flush {}", self.path.display())))?;
        self.durable_decree()
    }

    fn checkpoint(&self, dir: &Path) -> Result<Decree> {
        if dir.exists() {
            return Err(Error::InvalidArgument(format!(
                "checkpoint directory {} already exists",
                dir.display()
            )));
        }
        let cp = Checkpoint::new(&self.db).map_err(db_err(|| "prepare a checkpoint"))?;
        // With the WAL off, RocksDB flushes the memtables into the checkpoint first; writes
        // need `&mut self`, so none can slip in between and the decree below is the one inside.
        cp.create_checkpoint(dir)
            .map_err(db_err(|| format!("create checkpoint {} of {}", dir.display(), self.path.display())))?;
        Ok(self.applied.decree)
    }

    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
}

/// Copies a checkpoint into a new store directory: immutable table files are hard-linked when
/// possible, the rest copied and fsync'ed; the directory appears under its final name only when
/// complete, so an interrupted restore is simply redone.
pub(crate) fn restore_checkpoint(checkpoint: &Path, dir: &Path) -> Result<()> {
    if !checkpoint.join("CURRENT").is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a RocksDB checkpoint (no CURRENT file)",
            checkpoint.display()
        )));
    }
    if dir.exists() {
        return Err(Error::InvalidArgument(format!(
            "cannot restore a checkpoint into {}: it already exists",
            dir.display()
        )));
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = dir.with_file_name(format!(".{name}.restoring"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err(format!("remove stale {}", staging.display())))?;
    }
    fs::create_dir_all(&staging).map_err(io_err(format!("create {}", staging.display())))?;
    let entries = fs::read_dir(checkpoint).map_err(io_err(format!("list {}", checkpoint.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("list {}", checkpoint.display())))?;
        let from = entry.path();
        let to = staging.join(entry.file_name());
        let immutable = from.extension().is_some_and(|e| e == "sst" || e == "blob");
        if !(immutable && fs::hard_link(&from, &to).is_ok()) {
            fs::copy(&from, &to).map_err(io_err(format!("copy {}", from.display())))?;
            fs::File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(io_err(format!("fsync {}", to.display())))?;
        }
    }
    sync_dir(&staging)?;
    fs::rename(&staging, dir).map_err(io_err(format!("move {} into place", staging.display())))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}
