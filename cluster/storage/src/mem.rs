//! The in-memory partition store, for tests and the simulator.
//!
//! Its "disk" is a [`MemDisk`]: durable images keyed by path, shared by every store opened on
//! it. Like the RocksDB store with its WAL off, writes are only in memory until a flush; a clean
//! close (drop) persists everything; [`MemPartitionStore::crash`] keeps only what was flushed.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tern_core::key::KeyRange;
use tern_core::{Ballot, Clock, Decree, Error, Result, Timetag};

use crate::store::{AppliedMark, PartitionStore, RawBatch, RawVisit};

#[derive(Clone, Debug, Default)]
struct Image {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    applied: AppliedMark,
}

/// A store image moved between simulated disks (a checkpoint sent to a learner).
#[derive(Clone, Debug)]
pub struct MemImage(Image);

impl MemImage {
    pub fn applied(&self) -> (Decree, Timetag) {
        (self.0.applied.decree, self.0.applied.timetag)
    }

    pub fn applied_ballot(&self) -> Ballot {
        self.0.applied.ballot
    }
}

/// A simulated disk: what survives a crash of the stores and logs opened on it.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    images: Arc<Mutex<HashMap<PathBuf, Image>>>,
    logs: Arc<Mutex<HashMap<PathBuf, Vec<crate::log::LogEntry>>>>,
}

impl MemDisk {
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Image>> {
        // A panic while holding the lock leaves consistent data (every update is one insert).
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn exists(&self, path: &Path) -> bool {
        self.lock().contains_key(path)
    }

    /// Paths of every store on this disk.
    pub fn store_paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// A copy of the store (or checkpoint) at `path`, to carry to another disk.
    pub fn export(&self, path: &Path) -> Option<MemImage> {
        self.lock().get(path).cloned().map(MemImage)
    }

    /// Writes a store image at `path`, replacing what is there (durable at once).
    pub fn import(&self, path: &Path, image: MemImage) {
        self.lock().insert(path.to_path_buf(), image.0);
    }

    /// Deletes the store and the log at `path` (as `rm -r` would).
    pub fn remove(&self, path: &Path) {
        self.lock().remove(path);
        self.logs_lock().remove(path);
    }

    pub(crate) fn logs_lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Vec<crate::log::LogEntry>>> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The durable records of the log at `path`.
    pub(crate) fn durable_log(&self, path: &Path) -> Vec<crate::log::LogEntry> {
        self.logs_lock().get(path).cloned().unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct MemPartitionStore {
    disk: MemDisk,
    path: PathBuf,
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    applied: AppliedMark,
    durable: AtomicU64,
    clock: Arc<dyn Clock>,
    crashed: bool,
}

impl MemPartitionStore {
    /// Opens the store at `path` on `disk`, empty if nothing was ever persisted there.
    pub fn open(disk: &MemDisk, path: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> MemPartitionStore {
        let path = path.into();
        let image = disk.lock().get(&path).cloned().unwrap_or_default();
        MemPartitionStore {
            disk: disk.clone(),
            path,
            durable: AtomicU64::new(image.applied.decree.0),
            data: image.data,
            applied: image.applied,
            clock,
            crashed: false,
        }
    }

    /// Opens a new store at `path` holding the contents of the checkpoint at `checkpoint`.
    pub fn open_from_checkpoint(
        disk: &MemDisk,
        checkpoint: &Path,
        path: impl Into<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<MemPartitionStore> {
        let path = path.into();
        {
            let mut images = disk.lock();
            let image = images.get(checkpoint).cloned().ok_or_else(|| {
                Error::InvalidArgument(format!("no checkpoint at {}", checkpoint.display()))
            })?;
            if images.contains_key(&path) {
                return Err(Error::InvalidArgument(format!(
                    "cannot restore a checkpoint into {}: a store already exists there",
                    path.display()
                )));
            }
            images.insert(path.clone(), image);
        }
        Ok(MemPartitionStore::open(disk, path, clock))
    }

    /// Drops the dead records compaction may drop ([`crate::purgeable`]), as RocksDB's
    /// compaction filter does; returns how many. The simulator calls it as time goes by.
    pub fn compact(&mut self) -> usize {
        let (applied, purge_below) = (self.applied.timetag, self.applied.purge_below);
        let before = self.data.len();
        self.data.retain(|_, v| match tern_core::value::decode(v) {
            Ok((header, _)) => !crate::store::purgeable(&header, applied, purge_below),
            Err(_) => true, // never drop what cannot be read
        });
        before - self.data.len()
    }

    /// Simulates a crash: everything not flushed is lost.
    pub fn crash(mut self) {
        self.crashed = true;
    }

    fn persist(&self) {
        let image = Image { data: self.data.clone(), applied: self.applied };
        self.disk.lock().insert(self.path.clone(), image);
        self.durable.store(self.applied.decree.0, Ordering::SeqCst);
    }
}

impl Drop for MemPartitionStore {
    /// A clean close persists everything, as RocksDB flushes its memtables on close.
    fn drop(&mut self) {
        if !self.crashed {
            self.persist();
        }
    }
}

impl PartitionStore for MemPartitionStore {
    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.data.get(key).cloned())
    }

    fn raw_scan(&self, range: &KeyRange, reverse: bool, visit: &mut RawVisit<'_>) -> Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = range.as_ref_bounds();
        let iter = self.data.range::<[u8], _>(bounds);
        let mut each = |(k, v): (&Vec<u8>, &Vec<u8>)| visit(k, v);
        if reverse {
            for kv in iter.rev() {
                if each(kv)?.is_break() {
                    break;
                }
            }
        } else {
            for kv in iter {
                if let ControlFlow::Break(()) = each(kv)? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn raw_write(&mut self, batch: RawBatch, mark: AppliedMark) -> Result<()> {
        for (k, v) in batch {
            match v {
                Some(v) => self.data.insert(k, v),
                None => self.data.remove(&k),
            };
        }
        self.applied = mark;
        Ok(())
    }

    fn last_applied(&self) -> AppliedMark {
        self.applied
    }

    fn durable_decree(&self) -> Result<Decree> {
        Ok(Decree(self.durable.load(Ordering::SeqCst)))
    }

    fn flush(&self) -> Result<Decree> {
        self.persist();
        Ok(self.applied.decree)
    }

    fn checkpoint(&self, dir: &Path) -> Result<Decree> {
        let mut images = self.disk.lock();
        if images.contains_key(dir) {
            return Err(Error::InvalidArgument(format!(
                "checkpoint directory {} already exists",
                dir.display()
            )));
        }
        images.insert(dir.to_path_buf(), Image { data: self.data.clone(), applied: self.applied });
        Ok(self.applied.decree)
    }

    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
}
