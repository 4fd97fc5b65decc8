//! The in-memory mutation log, for tests and the simulator. It lives on a [`MemDisk`]: synced
//! records are kept there; appended but unsynced records vanish when the log is dropped, as on
//! a power loss (a runtime always syncs before it acknowledges).

use std::collections::BTreeMap;
use std::path::PathBuf;

use tern_core::{Decree, Error, Result};

use super::{LogEntry, MutationLog, Recovery};
use crate::mem::MemDisk;

#[derive(Debug)]
pub struct MemMutationLog {
    disk: MemDisk,
    path: PathBuf,
    /// Every record in append order; the first `synced` are durable.
    records: Vec<LogEntry>,
    synced: usize,
    /// decree → position of its latest record.
    index: BTreeMap<u64, usize>,
    /// Records dropped by GC from the front of `records`, to keep positions stable.
    dropped: usize,
}

impl MemMutationLog {
    /// Opens the log at `path`, with whatever was synced there before.
    pub fn open(disk: &MemDisk, path: impl Into<PathBuf>) -> (MemMutationLog, Recovery) {
        let path = path.into();
        let records = disk.durable_log(&path);
        let mut log = MemMutationLog {
            disk: disk.clone(),
            path,
            synced: records.len(),
            records: Vec::new(),
            index: BTreeMap::new(),
            dropped: 0,
        };
        for r in records {
            log.push(r);
        }
        let recovery = Recovery { records: log.records.len() as u64, ..Recovery::default() };
        (log, recovery)
    }

    fn push(&mut self, e: LogEntry) {
        self.index.insert(e.decree.0, self.dropped + self.records.len());
        self.records.push(e);
    }

    fn persist(&self) {
        self.disk.logs_lock().insert(self.path.clone(), self.records[..self.synced].to_vec());
    }
}

impl MutationLog for MemMutationLog {
    fn append(&mut self, entries: &[LogEntry]) -> Result<()> {
        for e in entries {
            if e.decree == Decree::ZERO {
                return Err(Error::invariant("log entries start at decree 1"));
            }
            self.push(e.clone());
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.synced != self.records.len() {
            self.synced = self.records.len();
            self.persist();
        }
        Ok(())
    }

    fn read(&self, from: Decree, max: usize) -> Result<Vec<LogEntry>> {
        Ok(self
            .index
            .range(from.0..)
            .take(max)
            .map(|(_, &pos)| self.records[pos - self.dropped].clone())
            .collect())
    }

    fn decree_range(&self) -> Option<(Decree, Decree)> {
        let first = self.index.keys().next()?;
        let last = self.index.keys().next_back()?;
        Some((Decree(*first), Decree(*last)))
    }

    fn gc_below(&mut self, decree: Decree) -> Result<()> {
        // Drop a prefix of records whose decrees are all below `decree`, durable ones only.
        let mut n = 0;
        while n < self.synced && self.records[n].decree < decree {
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        self.records.drain(..n);
        self.synced -= n;
        // As in the file log: no decree below `decree` stays readable once anything went, or
        // copies re-appended later could leave holes below it.
        self.index.retain(|d, _| *d >= decree.0);
        self.dropped += n;
        self.persist();
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        self.dropped += self.records.len();
        self.records.clear();
        self.index.clear();
        self.synced = 0;
        self.persist();
        Ok(())
    }
}
