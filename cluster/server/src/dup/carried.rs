//! The log entries a checkpoint carries for duplication links: a file in the checkpoint's
//! directory, written by the primary that made the checkpoint for a learner and taken (read and
//! removed) by the learner before it opens the checkpoint as its store. What goes in it, and
//! whether a learner's log can take it, is decided by `DupRules` (duplication/src/retention.rs)
//! through the shared executor (`tern_host`).

use std::io::Write;
use std::path::Path;

use tern_core::{Error, Result};
use tern_storage::LogEntry;
use tern_storage::log::{decode_record, encode_record};

/// The file in a checkpoint directory that carries log entries.
pub const CARRIED_LOG_FILE: &str = "tern-dup-log";

/// Writes `entries` into checkpoint directory `dir` (fsync'ed, with the checkpoint's files).
pub fn write(dir: &Path, entries: &[LogEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let path = dir.join(CARRIED_LOG_FILE);
    let mut buf = Vec::new();
    for e in entries {
        buf.extend(encode_record(e)?);
    }
    let mut f =
        std::fs::File::create(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    f.write_all(&buf)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// Reads and removes the carried entries of a fetched checkpoint directory (none if absent).
pub fn take(dir: &Path) -> Result<Vec<LogEntry>> {
    let path = dir.join(CARRIED_LOG_FILE);
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    let mut entries = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        match decode_record(&buf[at..])? {
            tern_storage::log::Decoded::Record(e, size) => {
                entries.push(e);
                at += size;
            }
            _ => return Err(Error::corruption(format!("{} ends inside a record", path.display()))),
        }
    }
    std::fs::remove_file(&path).map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use tern_core::{Ballot, ClusterId, Decree, Mutation, Timetag, WriteOp};

    use super::*;

    fn entry(d: u64) -> LogEntry {
        let op =
            WriteOp::Set { hash_key: vec![d as u8], sort_key: vec![], value: b"v".to_vec(), ttl_secs: 0 };
        LogEntry {
            ballot: Ballot(2),
            decree: Decree(d),
            timetag: Timetag::new(1_000 + d, 0, ClusterId::new(1).unwrap(), false),
            mutation: Mutation::new(vec![op]),
        }
    }

    #[test]
    fn a_checkpoint_carries_its_log_entries_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(take(dir.path()).unwrap().is_empty(), "nothing carried: nothing taken");
        let entries: Vec<LogEntry> = (5..9).map(entry).collect();
        write(dir.path(), &entries).unwrap();
        assert_eq!(take(dir.path()).unwrap(), entries);
        assert!(!dir.path().join(CARRIED_LOG_FILE).exists(), "removed before the store opens the directory");
        std::fs::write(dir.path().join(CARRIED_LOG_FILE), &encode_record(&entry(1)).unwrap()[..10]).unwrap();
        assert!(take(dir.path()).is_err(), "a torn file is an error, not a shorter log");
    }
}
