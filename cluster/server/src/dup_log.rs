//! Keeping the log a duplication link needs when a replica (re)learns.
//!
//! Every replica keeps its log from the link's confirmed decree on, so that whichever one
//! becomes primary can ship from there. Learning would lose it: a learner empties its log
//! (`Action::ResetLog`) and may be brought up to date with a checkpoint, after which its log
//! starts past the checkpoint. So (found by the two-cluster simulator, which does the same):
//! - on `ResetLog` the committed entries the link still needs (from its floor through the
//!   store's applied decree) are written back right after the log is emptied;
//! - a checkpoint made for a learner carries the entries the link needs up to the checkpoint's
//!   decree (a file in the checkpoint directory), and the learner appends them to its log when
//!   it installs the checkpoint.
//!
//! These entries are at or below the store's applied decree, so a restart never replays them
//! (`Replica` takes only log entries after the applied decree).

use std::io::Write;
use std::path::Path;

use tern_core::{Decree, Error, Gpid, Result};
use tern_storage::LogEntry;
use tern_storage::log::{decode_record, encode_record};

use crate::node::Node;

/// The file in a checkpoint directory that carries log entries.
pub const CARRIED_LOG_FILE: &str = "tern-dup-log";

/// The committed entries of `gpid`'s log from the links' floor through `applied`, in decree
/// order (empty without a link).
pub fn needed_entries(node: &Node, gpid: Gpid, applied: Decree) -> Result<Vec<LogEntry>> {
    let Some(floor) = node.shipping.log_floor(gpid) else { return Ok(vec![]) };
    let from = floor.max(Decree(1));
    if from > applied {
        return Ok(vec![]);
    }
    let n = (applied.0 - from.0 + 1) as usize;
    let (_, entries) = node.logs.read(gpid, from, n)?;
    let mut out: Vec<LogEntry> = Vec::with_capacity(entries.len());
    for e in entries {
        if e.decree >= from && e.decree <= applied && out.last().is_none_or(|l| l.decree < e.decree) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Appends entries the log held before (no event: the replica already applied them).
pub fn append_kept(node: &Node, gpid: Gpid, entries: Vec<LogEntry>) {
    if entries.is_empty() {
        return;
    }
    let n = entries.len();
    node.logs.append(
        gpid,
        entries,
        Box::new(move |r| match r {
            Ok(_) => tracing::debug!(%gpid, "kept {n} log entries for duplication"),
            Err(e) => tracing::warn!(%gpid, "could not keep {n} log entries for duplication: {e}"),
        }),
    );
}

/// Writes `entries` into checkpoint directory `dir` (fsync'ed, with the checkpoint's files).
pub fn write_carried(dir: &Path, entries: &[LogEntry]) -> Result<()> {
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
pub fn take_carried(dir: &Path) -> Result<Vec<LogEntry>> {
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
    use tern_core::{Ballot, ClusterId, Mutation, Timetag, WriteOp};

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
        assert!(take_carried(dir.path()).unwrap().is_empty(), "nothing carried: nothing taken");
        let entries: Vec<LogEntry> = (5..9).map(entry).collect();
        write_carried(dir.path(), &entries).unwrap();
        assert_eq!(take_carried(dir.path()).unwrap(), entries);
        assert!(!dir.path().join(CARRIED_LOG_FILE).exists(), "removed before the store opens the directory");
        std::fs::write(dir.path().join(CARRIED_LOG_FILE), &encode_record(&entry(1)).unwrap()[..10]).unwrap();
        assert!(take_carried(dir.path()).is_err(), "a torn file is an error, not a shorter log");
    }
}
