//! The node-level log writer: one thread owns every replica's private log and group-commits.
//!
//! It blocks for the first request, then takes everything else already queued (and, if the
//! policy asks, waits up to `max_delay` for more), appends it all, fsyncs each touched log once,
//! and only then reports the appends durable. While it fsyncs, new requests queue up and form the
//! next group: one fsync covers everything queued meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tern_core::{Ballot, Decree, Error, Gpid, Result};
use tern_storage::LogEntry;
use tern_storage::log::{FileLogConfig, FileMutationLog, MutationLog, SyncPolicy};

/// Called with the result of an append, once it is durable (or failed).
pub type AppendDone = Box<dyn FnOnce(Result<Vec<(Ballot, Decree)>>) + Send>;

enum Request {
    Open { gpid: Gpid, dir: PathBuf, reply: mpsc::Sender<Result<Vec<LogEntry>>>, after: Decree },
    Append { gpid: Gpid, entries: Vec<LogEntry>, done: AppendDone },
    Reset { gpid: Gpid },
    Read { gpid: Gpid, from: Decree, max: usize, reply: mpsc::Sender<Result<LogSlice>> },
    Gc { gpid: Gpid, below: Decree },
    Close { gpid: Gpid },
}

/// The decree range a log holds (`None` when empty) and some of its entries.
pub type LogSlice = (Option<(Decree, Decree)>, Vec<LogEntry>);

/// An append written but not yet fsynced: the `(ballot, decree)` of its entries, or why it failed.
type PendingAppend = (Gpid, Result<Vec<(Ballot, Decree)>>, AppendDone);

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogWriter")
    }
}

/// Group-commit policy: wait at most `max_delay` after the first request of a group for more,
/// unless `max_batch_bytes` are already queued. Zero delay: group only what is already queued.
#[derive(Clone, Copy, Debug)]
pub struct GroupPolicy {
    pub max_delay: Duration,
    pub max_batch_bytes: u64,
    pub segment_bytes: u64,
}

impl Default for GroupPolicy {
    fn default() -> Self {
        GroupPolicy { max_delay: Duration::ZERO, max_batch_bytes: 4 << 20, segment_bytes: 64 << 20 }
    }
}

fn gone() -> Error {
    Error::Unavailable("the log writer has stopped".into())
}

impl LogWriter {
    pub fn start(policy: GroupPolicy) -> LogWriter {
        let (tx, rx) = mpsc::channel();
        let spawned =
            std::thread::Builder::new().name("tern-log-writer".into()).spawn(move || run(rx, policy));
        if let Err(e) = spawned {
            tracing::error!("could not start the log writer thread: {e}");
        }
        LogWriter { tx }
    }

    /// Opens (creating if needed) the log of `gpid` in `dir`; returns its entries after `after`.
    pub fn open(&self, gpid: Gpid, dir: PathBuf, after: Decree) -> Result<Vec<LogEntry>> {
        let (reply, rx) = mpsc::channel();
        self.tx.send(Request::Open { gpid, dir, reply, after }).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    pub fn append(&self, gpid: Gpid, entries: Vec<LogEntry>, done: AppendDone) {
        if let Err(mpsc::SendError(Request::Append { done, .. })) =
            self.tx.send(Request::Append { gpid, entries, done })
        {
            done(Err(gone()));
        }
    }

    /// Empties the log of `gpid`; ordered with appends (it happens before later ones).
    pub fn reset(&self, gpid: Gpid) {
        let _ = self.tx.send(Request::Reset { gpid });
    }

    /// Up to `max` entries from `from`, and the decree range the log holds.
    pub fn read(&self, gpid: Gpid, from: Decree, max: usize) -> Result<LogSlice> {
        let (reply, rx) = mpsc::channel();
        self.tx.send(Request::Read { gpid, from, max, reply }).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    pub fn gc(&self, gpid: Gpid, below: Decree) {
        let _ = self.tx.send(Request::Gc { gpid, below });
    }

    pub fn close(&self, gpid: Gpid) {
        let _ = self.tx.send(Request::Close { gpid });
    }
}

fn run(rx: mpsc::Receiver<Request>, policy: GroupPolicy) {
    let mut logs: BTreeMap<Gpid, FileMutationLog> = BTreeMap::new();
    let config = FileLogConfig { segment_bytes: policy.segment_bytes, sync: SyncPolicy::Explicit };
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let deadline = Instant::now() + policy.max_delay;
        let mut bytes = 0u64;
        loop {
            let next = if policy.max_delay.is_zero() || bytes >= policy.max_batch_bytes {
                rx.try_recv().ok()
            } else {
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
            };
            let Some(r) = next else { break };
            if let Request::Append { entries, .. } = &r {
                bytes += entries.iter().map(|e| e.mutation.payload_bytes() + 32).sum::<u64>();
            }
            group.push(r);
        }
        let mut touched = BTreeSet::new();
        let mut pending: Vec<PendingAppend> = Vec::new();
        for r in group {
            match r {
                Request::Open { gpid, dir, reply, after } => {
                    let opened = FileMutationLog::open(&dir, config.clone()).and_then(|(log, rec)| {
                        if let Some(why) = rec.truncation_reason {
                            tracing::warn!(%gpid, "log recovery: {why}");
                        }
                        let entries = log.read(after.next(), usize::MAX)?;
                        logs.insert(gpid, log);
                        Ok(entries)
                    });
                    let _ = reply.send(opened);
                }
                Request::Append { gpid, entries, done } => {
                    let result = match logs.get_mut(&gpid) {
                        Some(log) => log
                            .append(&entries)
                            .map(|_| entries.iter().map(|e| (e.ballot, e.decree)).collect()),
                        None => {
                            Err(Error::invariant(format!("append to the log of {gpid}, which is not open")))
                        }
                    };
                    if result.is_ok() {
                        touched.insert(gpid);
                    }
                    pending.push((gpid, result, done));
                }
                Request::Reset { gpid } => {
                    if let Some(log) = logs.get_mut(&gpid)
                        && let Err(e) = log.reset()
                    {
                        tracing::error!(%gpid, "log reset failed: {e}");
                    }
                }
                Request::Read { gpid, from, max, reply } => {
                    let r = match logs.get(&gpid) {
                        Some(log) => log.read(from, max).map(|e| (log.decree_range(), e)),
                        None => {
                            Err(Error::invariant(format!("read from the log of {gpid}, which is not open")))
                        }
                    };
                    let _ = reply.send(r);
                }
                Request::Gc { gpid, below } => {
                    if let Some(log) = logs.get_mut(&gpid)
                        && let Err(e) = log.gc_below(below)
                    {
                        tracing::warn!(%gpid, "log gc failed: {e}");
                    }
                }
                Request::Close { gpid } => {
                    if let Some(mut log) = logs.remove(&gpid) {
                        let _ = log.sync();
                    }
                }
            }
        }
        // One fsync per touched log covers every append of the group.
        let mut failed: BTreeMap<Gpid, Error> = BTreeMap::new();
        for gpid in touched {
            if let Some(log) = logs.get_mut(&gpid)
                && let Err(e) = log.sync()
            {
                tracing::error!(%gpid, "log sync failed: {e}");
                failed.insert(gpid, e);
            }
        }
        for (gpid, result, done) in pending {
            match (result, failed.get(&gpid)) {
                (Ok(_), Some(e)) => done(Err(e.clone())),
                (r, _) => done(r),
            }
        }
    }
}
