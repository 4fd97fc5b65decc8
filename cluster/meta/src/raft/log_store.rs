//! The durable Raft log and vote: openraft's [`RaftLogStorage`].
//!
//! # Files (in the group's directory)
//!
//! - [`LOG_FILE`]: an append-only file of CRC-checked records (see [`super::file`]), each the JSON
//!   of one of: an entry (which also drops any entries at or after its index), a truncation
//!   ("drop entries at and after index i"), or a purge ("drop entries up to and including log id
//!   l; l is the last purged"). Replaying the records in order rebuilds the log, so truncations and
//!   purges are durable as soon as their one record is. When dead records outnumber the live
//!   ones, the file is rewritten (to a temporary file, fsynced, renamed over the log, directory
//!   fsynced) as a purge record plus the live entries.
//! - `vote` and `committed`: one record each, replaced atomically.
//!
//! # Durability
//!
//! Every write (append, truncate, purge, vote, committed) is fsynced before the call returns; in
//! particular `append` calls openraft's [`LogFlushed`] callback only after the fsync. On open, a
//! torn last record (a crash in the middle of an append) is cut off; damage anywhere else is a
//! corruption error. The whole log is kept in memory too (meta logs are small: openraft purges
//! them after each snapshot).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader, Vote};
use serde::{Deserialize, Serialize};
use tern_core::{Error, Result};

use super::Replicated;
use super::file::{self, blocking};
use super::types::{Entry, LogId, StorageErr, Types, storage_err};

/// The name of the log file inside a group's directory.
pub const LOG_FILE: &str = "raft-log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";
/// Rewrite the log file when it holds more than `2 * live + COMPACT_SLACK` records.
const COMPACT_SLACK: u64 = 32;

/// One record of the log file (the reading side).
#[derive(Deserialize)]
#[serde(bound = "")]
enum Record<S: Replicated> {
    Entry(Entry<S>),
    Truncate(u64),
    Purge(LogId),
}

/// One record of the log file (the writing side: same encoding, borrowing the entry).
#[derive(Serialize)]
#[serde(bound = "")]
enum RecordRef<'a, S: Replicated> {
    Entry(&'a Entry<S>),
    Truncate(u64),
    Purge(LogId),
}

/// The log in memory: what replaying the log file gives.
struct Log<S: Replicated> {
    entries: BTreeMap<u64, Entry<S>>,
    purged: Option<LogId>,
}

impl<S: Replicated> Log<S> {
    fn append(&mut self, entry: Entry<S>) {
        let index = entry.log_id.index;
        self.entries.split_off(&index);
        self.entries.insert(index, entry);
    }

    fn truncate(&mut self, index: u64) {
        self.entries.split_off(&index);
    }

    fn purge(&mut self, upto: LogId) {
        self.entries = match upto.index.checked_add(1) {
            Some(next) => self.entries.split_off(&next),
            None => BTreeMap::new(),
        };
        if self.purged.is_none_or(|p| p < upto) {
            self.purged = Some(upto);
        }
    }

    fn replay(&mut self, record: Record<S>) {
        match record {
            Record::Entry(e) => self.append(e),
            Record::Truncate(i) => self.truncate(i),
            Record::Purge(l) => self.purge(l),
        }
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.entries.values().next_back().map(|e| e.log_id).or(self.purged)
    }
}

fn encode<S: Replicated>(record: &RecordRef<'_, S>, out: &mut Vec<u8>) -> Result<()> {
    let json = serde_json::to_vec(record).map_err(|e| Error::invariant(format!("encode log record: {e}")))?;
    file::frame(&json, out)
}

fn read_lock<S: Replicated>(log: &RwLock<Log<S>>) -> std::sync::RwLockReadGuard<'_, Log<S>> {
    log.read().unwrap_or_else(PoisonError::into_inner)
}

fn write_lock<S: Replicated>(log: &RwLock<Log<S>>) -> std::sync::RwLockWriteGuard<'_, Log<S>> {
    log.write().unwrap_or_else(PoisonError::into_inner)
}

/// The open log file.
struct LogFile {
    dir: PathBuf,
    file: File,
    /// How many records the file holds.
    records: u64,
}

impl LogFile {
    fn append(&mut self, bytes: &[u8], records: u64) -> Result<()> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io(format!("append to {}", self.dir.join(LOG_FILE).display()), e))?;
        self.records += records;
        Ok(())
    }

    /// Replaces the file with `bytes` (holding `records` records), atomically.
    fn rewrite(&mut self, bytes: &[u8], records: u64) -> Result<()> {
        file::write_atomic(&self.dir, LOG_FILE, bytes)?;
        self.file = open_append(&self.dir)?;
        self.records = records;
        Ok(())
    }
}

fn open_append(dir: &Path) -> Result<File> {
    let path = dir.join(LOG_FILE);
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// The durable Raft log and vote of one member (openraft's `RaftLogStorage`).
pub struct LogStore<S: Replicated> {
    dir: PathBuf,
    log: Arc<RwLock<Log<S>>>,
    file: Arc<Mutex<LogFile>>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId>,
}

impl<S: Replicated> fmt::Debug for LogStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = read_lock(&self.log);
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .field("purged", &log.purged)
            .field("last", &log.last_log_id())
            .field("vote", &self.vote)
            .field("committed", &self.committed)
            .finish()
    }
}

impl<S: Replicated> LogStore<S> {
    /// Opens (or creates) the log in `dir`, which must exist. Blocking. A torn last record is cut
    /// off the file.
    pub fn open(dir: &Path) -> Result<LogStore<S>> {
        let path = dir.join(LOG_FILE);
        let existed = path.exists();
        let mut f = open_append(dir)?;
        if !existed {
            tern_storage::dir::sync_dir(dir)?;
        }
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let what = path.display().to_string();
        let parsed = file::parse(&buf, &what)?;
        let mut log = Log { entries: BTreeMap::new(), purged: None };
        for payload in &parsed.records {
            let record: Record<S> = serde_json::from_slice(payload)
                .map_err(|e| Error::corruption(format!("{what}: undecodable record: {e}")))?;
            log.replay(record);
        }
        if parsed.valid_len < buf.len() {
            tracing::warn!(file = %what, at = parsed.valid_len, dropped = buf.len() - parsed.valid_len, "cutting off a torn log record");
            f.set_len(parsed.valid_len as u64)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io(format!("truncate {what}"), e))?;
        }
        check_consecutive(&log, &what)?;
        let vote = read_json(dir, VOTE_FILE)?;
        let committed = read_json(dir, COMMITTED_FILE)?;
        let file = LogFile { dir: dir.to_path_buf(), file: f, records: parsed.records.len() as u64 };
        Ok(LogStore {
            dir: dir.to_path_buf(),
            log: Arc::new(RwLock::new(log)),
            file: Arc::new(Mutex::new(file)),
            vote,
            committed,
        })
    }

    /// Writes `bytes` (`records` records) at the end of the log file and fsyncs it; then rewrites
    /// the file if it is mostly dead records.
    async fn write(&self, bytes: Vec<u8>, records: u64) -> Result<()> {
        let file = self.file.clone();
        let live = read_lock(&self.log).entries.len() as u64 + 1;
        let compact = blocking(move || {
            let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
            f.append(&bytes, records)?;
            Ok(f.records > 2 * live + COMPACT_SLACK)
        })
        .await?;
        if compact { self.compact().await } else { Ok(()) }
    }

    /// Rewrites the log file as a purge record and the live entries.
    async fn compact(&self) -> Result<()> {
        let (bytes, records) = {
            let log = read_lock(&self.log);
            let mut bytes = Vec::new();
            let mut records = log.entries.len() as u64;
            if let Some(p) = log.purged {
                encode::<S>(&RecordRef::Purge(p), &mut bytes)?;
                records += 1;
            }
            for e in log.entries.values() {
                encode::<S>(&RecordRef::Entry(e), &mut bytes)?;
            }
            (bytes, records)
        };
        let file = self.file.clone();
        blocking(move || file.lock().unwrap_or_else(PoisonError::into_inner).rewrite(&bytes, records)).await
    }

    async fn save_json<T: Serialize>(&self, name: &'static str, value: &T) -> Result<()> {
        let json = serde_json::to_vec(value).map_err(|e| Error::invariant(format!("encode {name}: {e}")))?;
        let dir = self.dir.clone();
        blocking(move || file::write_records(&dir, name, &[&json])).await
    }
}

fn check_consecutive<S: Replicated>(log: &Log<S>, what: &str) -> Result<()> {
    let mut expect = log.entries.keys().next().copied();
    if let (Some(first), Some(p)) = (expect, log.purged)
        && first <= p.index
    {
        return Err(Error::corruption(format!("{what}: entry {first} is at or below the purged {p}")));
    }
    for (i, e) in &log.entries {
        if Some(*i) != expect || e.log_id.index != *i {
            return Err(Error::corruption(format!("{what}: hole in the log before index {i}")));
        }
        expect = i.checked_add(1);
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    let Some(records) = file::read_records(dir, name)? else { return Ok(None) };
    let [record] = records.as_slice() else {
        return Err(Error::corruption(format!("{name}: {} records, want 1", records.len())));
    };
    serde_json::from_slice(record).map(Some).map_err(|e| Error::corruption(format!("{name}: {e}")))
}

fn logs_err(verb: ErrorVerb, e: &Error) -> StorageErr {
    storage_err(ErrorSubject::Logs, verb, e)
}

fn entries_in<S: Replicated, RB: RangeBounds<u64>>(log: &RwLock<Log<S>>, range: RB) -> Vec<Entry<S>> {
    read_lock(log).entries.range(range).map(|(_, e)| e.clone()).collect()
}

/// A reader of the log, for openraft's replication tasks.
pub struct LogReader<S: Replicated> {
    log: Arc<RwLock<Log<S>>>,
}

impl<S: Replicated> fmt::Debug for LogReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogReader")
    }
}

impl<S: Replicated> RaftLogReader<Types<S>> for LogReader<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<S>>, StorageErr> {
        Ok(entries_in(&self.log, range))
    }
}

impl<S: Replicated> RaftLogReader<Types<S>> for LogStore<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<S>>, StorageErr> {
        Ok(entries_in(&self.log, range))
    }
}

impl<S: Replicated> RaftLogStorage<Types<S>> for LogStore<S> {
    type LogReader = LogReader<S>;

    async fn get_log_state(&mut self) -> Result<LogState<Types<S>>, StorageErr> {
        let log = read_lock(&self.log);
        Ok(LogState { last_purged_log_id: log.purged, last_log_id: log.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> LogReader<S> {
        LogReader { log: self.log.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageErr> {
        self.save_json(VOTE_FILE, vote)
            .await
            .map_err(|e| storage_err(ErrorSubject::Vote, ErrorVerb::Write, &e))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageErr> {
        Ok(self.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageErr> {
        if committed == self.committed {
            return Ok(());
        }
        self.save_json(COMMITTED_FILE, &committed).await.map_err(|e| logs_err(ErrorVerb::Write, &e))?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageErr> {
        Ok(self.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<Types<S>>) -> Result<(), StorageErr>
    where
        I: IntoIterator<Item = Entry<S>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut bytes = Vec::new();
        let mut records = 0;
        {
            let mut log = write_lock(&self.log);
            for entry in entries {
                encode::<S>(&RecordRef::Entry(&entry), &mut bytes)
                    .map_err(|e| logs_err(ErrorVerb::Write, &e))?;
                records += 1;
                log.append(entry);
            }
        }
        match self.write(bytes, records).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(logs_err(ErrorVerb::Write, &e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageErr> {
        write_lock(&self.log).truncate(log_id.index);
        let mut bytes = Vec::new();
        encode::<S>(&RecordRef::Truncate(log_id.index), &mut bytes)
            .map_err(|e| logs_err(ErrorVerb::Delete, &e))?;
        self.write(bytes, 1).await.map_err(|e| logs_err(ErrorVerb::Delete, &e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageErr> {
        write_lock(&self.log).purge(log_id);
        let mut bytes = Vec::new();
        encode::<S>(&RecordRef::Purge(log_id), &mut bytes).map_err(|e| logs_err(ErrorVerb::Delete, &e))?;
        self.write(bytes, 1).await.map_err(|e| logs_err(ErrorVerb::Delete, &e))
    }
}
