//! One task per replica: it owns the state machine and the store, takes one queue of inputs
//! (peer messages, configurations, client requests, log completions, timers) and carries out
//! the actions the state machine returns. No locks around replication state.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_core::mutation::WriteOutcome;
use tern_core::read::ReadResult;
use tern_core::{Decree, Error, Gpid, ReplicaReport, Result, WriteOp};
use tern_replica::{Action, CheckpointRef, Event, PeerMessage, ReadOp, Replica, Reply, RequestId};
use tern_rocks::RocksPartitionStore;
use tern_storage::log::contiguous_run;
use tern_storage::{ApplyEntry, LogEntry, PartitionStore};
use tokio::sync::{mpsc, oneshot};

use crate::node::{Node, ReplicaHandle};
use crate::reply::ReplyTo;

pub enum Input {
    Event(Box<Event>),
    Write {
        op: WriteOp,
        reply: ReplyTo<WriteOutcome>,
    },
    /// Writes that arrived together (one frame of a client's pipeline): one entry if possible.
    Writes(Vec<(WriteOp, ReplyTo<WriteOutcome>)>),
    Read {
        op: ReadOp,
        reply: ReplyTo<ReadResult>,
    },
    /// A checkpoint was downloaded into `dir`.
    CheckpointFetched {
        dir: PathBuf,
        checkpoint: CheckpointRef,
    },
    CheckpointFetchFailed(Error),
    /// Up to `limit` raw records (storage key, stored bytes) after `after` (from the start if
    /// `None`), and the store's applied decree before reading them: a full sync's copy.
    ScanRaw {
        after: Option<Vec<u8>>,
        limit: usize,
        reply: oneshot::Sender<Result<RawChunk>>,
    },
    /// Garbage collection (`gc.rs`): stop for good. The log is reset (its entries are never
    /// replayed into a later replica of the partition on this server) and closed, the store
    /// closed, then `done` is sent.
    Stop(oneshot::Sender<()>),
}

/// A chunk of a store's raw records and the applied decree when it was read.
pub struct RawChunk {
    pub applied: Decree,
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
    /// No record after the last one.
    pub done: bool,
}

const TICK: Duration = Duration::from_millis(50);

struct Task {
    node: Arc<Node>,
    gpid: Gpid,
    sm: Replica,
    store: Option<RocksPartitionStore>,
    tx: mpsc::UnboundedSender<Input>,
    writes: HashMap<RequestId, ReplyTo<WriteOutcome>>,
    reads: HashMap<RequestId, ReplyTo<ReadResult>>,
    next_request: RequestId,
    report: Arc<Mutex<ReplicaReport>>,
}

pub fn spawn(node: Arc<Node>, gpid: Gpid, store: RocksPartitionStore, log: Vec<LogEntry>) -> ReplicaHandle {
    let now = node.now();
    let mut sm = Replica::new(gpid, node.id, node.replica_options(), now.wall_ms);
    let mut out = Vec::new();
    sm.handle(
        now,
        Event::Open {
            applied: store.last_applied_decree(),
            applied_timetag: store.last_applied_timetag(),
            applied_ballot: store.last_applied_ballot(),
            log,
        },
        &mut out,
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let report = Arc::new(Mutex::new(sm.report()));
    let task = Task {
        node,
        gpid,
        sm,
        store: Some(store),
        tx: tx.clone(),
        writes: HashMap::new(),
        reads: HashMap::new(),
        next_request: 1,
        report: report.clone(),
    };
    tokio::spawn(task.run(rx));
    ReplicaHandle { tx, report }
}

/// When in each flush period this replica flushes: spread over the period by partition, so that
/// a server's replicas (opened together) do not all write their memtables out at the same
/// moment. Together they made a burst of SST writes and fsyncs every period that slowed every
/// log fsync of the machine (the p99.9 of writes).
fn flush_phase(gpid: Gpid, period: Duration) -> Duration {
    // Fibonacci hashing: consecutive partitions land far apart in the period.
    let mixed =
        (u64::from(gpid.table.0) << 32 | u64::from(gpid.partition.0)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    period.mul_f64((mixed >> 11) as f64 / (1u64 << 53) as f64)
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let period = self.node.opts.flush_interval;
        let first = tokio::time::Instant::now() + flush_phase(self.gpid, period);
        let mut flush = tokio::time::interval_at(first, period);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopped = None;
        loop {
            tokio::select! {
                input = rx.recv() => match input {
                    Some(Input::Stop(done)) => {
                        stopped = Some(done);
                        break;
                    }
                    Some(i) => self.on_input(i),
                    None => break,
                },
                _ = tick.tick() => self.feed(Event::Tick),
                _ = flush.tick() => self.flush(),
            }
            *self.report.lock().unwrap_or_else(|e| e.into_inner()) = self.sm.report();
        }
        let Some(done) = stopped else {
            self.node.logs.close(self.gpid);
            return;
        };
        self.node.logs.reset(self.gpid);
        let (logs, gpid, store) = (self.node.logs.clone(), self.gpid, self.store.take());
        tokio::task::block_in_place(|| {
            logs.close_and_wait(gpid);
            drop(store);
        });
        let _ = done.send(());
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Event(e) => self.feed(*e),
            Input::Write { op, reply } => {
                let req = self.request_id();
                self.writes.insert(req, reply);
                self.feed(Event::ClientWrite { req, op });
            }
            Input::Writes(writes) => {
                let writes = writes
                    .into_iter()
                    .map(|(op, reply)| {
                        let req = self.request_id();
                        self.writes.insert(req, reply);
                        (req, op)
                    })
                    .collect();
                self.feed(Event::ClientWrites { writes });
            }
            Input::Read { op, reply } => {
                let req = self.request_id();
                self.reads.insert(req, reply);
                self.feed(Event::ClientRead { req, read: op });
            }
            Input::CheckpointFetched { dir, checkpoint } => self.install_checkpoint(dir, checkpoint),
            Input::CheckpointFetchFailed(error) => self.feed(Event::CheckpointFailed { error }),
            Input::ScanRaw { after, limit, reply } => {
                let _ = reply.send(self.scan_raw(after, limit));
            }
            Input::Stop(_) => {} // taken by `run`
        }
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        self.next_request
    }

    fn feed(&mut self, event: Event) {
        let mut out = Vec::new();
        let before = (self.sm.status(), self.sm.ballot());
        self.sm.handle(self.node.now(), event, &mut out);
        let after = (self.sm.status(), self.sm.ballot());
        if before != after {
            let why = self.sm.failure().map(|e| format!(": {e}")).unwrap_or_default();
            tracing::info!(gpid = %self.gpid, "{} b{} -> {} b{}{why}", before.0.name(), before.1, after.0.name(), after.1);
        }
        for a in out {
            self.execute(a);
        }
    }

    fn store(&self) -> Result<&RocksPartitionStore> {
        self.store
            .as_ref()
            .ok_or_else(|| Error::Unavailable(format!("replica {} is installing a checkpoint", self.gpid)))
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Append { entries } => {
                let tx = self.tx.clone();
                self.node.logs.append(
                    self.gpid,
                    entries,
                    Box::new(move |r| {
                        let event = match r {
                            Ok(entries) => Event::Appended { entries },
                            Err(error) => Event::AppendFailed { error },
                        };
                        let _ = tx.send(Input::Event(Box::new(event)));
                    }),
                );
            }
            Action::ResetLog => {
                // The log no longer holds what the store applied: make the store durable first.
                let flushed = self.store().and_then(|s| tokio::task::block_in_place(|| s.flush()));
                match flushed {
                    Ok(applied) => {
                        // A duplication link may still need committed entries: keep them.
                        let kept = tokio::task::block_in_place(|| {
                            crate::dup_log::needed_entries(&self.node, self.gpid, applied)
                        })
                        .unwrap_or_else(|e| {
                            tracing::warn!(gpid = %self.gpid, "cannot keep the log a duplication link needs: {e}");
                            vec![]
                        });
                        self.node.logs.reset(self.gpid);
                        crate::dup_log::append_kept(&self.node, self.gpid, kept);
                    }
                    Err(error) => {
                        tracing::error!(gpid = %self.gpid, "store flush before a log reset failed: {error}");
                        self.feed(Event::AppendFailed { error });
                    }
                }
            }
            Action::Apply { entries, replies } => self.apply(entries, replies),
            Action::Send { to, msg } => self.node.peers.send(&self.node, to, self.gpid, &msg),
            Action::SendLearnResponse { to, learner_applied, through, config, reign, committed } => {
                match self.learn_response(learner_applied, through) {
                    Ok((checkpoint, entries)) => {
                        let msg = PeerMessage::LearnResponse {
                            config,
                            reign,
                            committed,
                            through,
                            checkpoint,
                            entries,
                        };
                        self.node.peers.send(&self.node, to, self.gpid, &msg);
                    }
                    Err(e) => tracing::warn!(gpid = %self.gpid, "cannot answer learner {to}: {e}"),
                }
            }
            Action::InstallCheckpoint { from, checkpoint } => {
                crate::checkpoint::spawn_fetch(
                    self.node.clone(),
                    self.gpid,
                    from,
                    checkpoint,
                    self.tx.clone(),
                );
            }
            Action::Propose { gpid, ballot, change } => {
                let node = self.node.clone();
                tokio::spawn(async move { crate::beacon::propose(&node, gpid, ballot, change).await });
            }
            Action::ServeRead { req, read, .. } => {
                let result = self.store().and_then(|s| s.read(&read));
                if let Some(r) = self.reads.remove(&req) {
                    r.send(result);
                }
            }
            Action::Resolve { req, op, now_secs } => {
                let result = self.store().and_then(|s| s.resolve(&op, now_secs));
                self.feed(Event::Resolved { req, result });
            }
            Action::Refuse { req, error, not_applied } => {
                if let Some(r) = self.writes.remove(&req) {
                    // Refused after it was logged: a later primary may still apply it.
                    let error = if not_applied {
                        error
                    } else {
                        Error::OutcomeUnknown(format!("{error}; the write may still be applied"))
                    };
                    r.send(Err(error));
                } else if let Some(r) = self.reads.remove(&req) {
                    r.send(Err(error));
                }
            }
        }
    }

    fn apply(&mut self, entries: Vec<LogEntry>, replies: Vec<Reply>) {
        let batch: Vec<ApplyEntry<'_>> = entries.iter().map(ApplyEntry::from).collect();
        let result = match self.store.as_mut() {
            Some(s) => s.apply_batch(&batch),
            None => Err(Error::invariant("apply while the store is being replaced")),
        };
        let outcomes = match result {
            Ok(o) => o,
            Err(e) => {
                // The store cannot take committed mutations: stop serving rather than diverge.
                tracing::error!(gpid = %self.gpid, "applying decrees failed: {e}");
                self.feed(Event::AppendFailed { error: e });
                return;
            }
        };
        for reply in replies {
            let answer = match reply.outcome(&entries, &outcomes) {
                Ok(WriteOutcome::Failed(e)) => Err(e),
                Ok(o) => Ok(o),
                Err(e) => {
                    // Committed, but the store gave no outcome for it: never acknowledge it.
                    tracing::error!(gpid = %self.gpid, "answering a write: {e}");
                    Err(Error::OutcomeUnknown(format!("{e}; the write is committed")))
                }
            };
            if let Some(r) = self.writes.remove(&reply.req) {
                r.send(answer);
            }
        }
    }

    /// Entries after `learner_applied` through `through` from the log, preceded by a checkpoint
    /// when the log no longer reaches back that far.
    fn learn_response(
        &mut self,
        learner_applied: Decree,
        through: Decree,
    ) -> Result<(Option<CheckpointRef>, Vec<LogEntry>)> {
        // From the log if it holds every decree needed, else a checkpoint plus the log after it.
        let need = learner_applied.next();
        if let Some(entries) = self.log_run(need, through)? {
            return Ok((None, entries));
        }
        let cp =
            tokio::task::block_in_place(|| crate::checkpoint::create(&self.node, self.gpid, self.store()?))?;
        // The learner's log will start after the checkpoint: carry what a link still needs.
        let carried = tokio::task::block_in_place(|| {
            let carried = crate::dup_log::needed_entries(&self.node, self.gpid, cp.decree)?;
            crate::dup_log::write_carried(&crate::checkpoint::path_of(&self.node, self.gpid, cp.id), &carried)
        });
        if let Err(e) = carried {
            tracing::warn!(gpid = %self.gpid, "checkpoint {} carries no log for duplication: {e}", cp.id);
        }
        let from = cp.decree.next();
        let entries = self.log_run(from, through)?.ok_or_else(|| {
            Error::invariant(format!("the log of {} lacks decrees {from}..={through}", self.gpid))
        })?;
        Ok((Some(cp), entries))
    }

    /// The log's entries of `from..=through`, if it holds every one of them.
    fn log_run(&self, from: Decree, through: Decree) -> Result<Option<Vec<LogEntry>>> {
        if from > through {
            return Ok(Some(vec![]));
        }
        let n = (through.0 - from.0 + 1) as usize;
        let (_, entries) = tokio::task::block_in_place(|| self.node.logs.read(self.gpid, from, n))?;
        Ok(contiguous_run(entries, from, through))
    }

    fn install_checkpoint(&mut self, dir: PathBuf, checkpoint: CheckpointRef) {
        let store_dir = self.node.replica_dir(self.gpid).join("store");
        self.store = None; // closes the old store
        let carried = crate::dup_log::take_carried(&dir).unwrap_or_else(|e| {
            tracing::warn!(gpid = %self.gpid, "checkpoint {}: no log for duplication: {e}", checkpoint.id);
            vec![]
        });
        let result = tokio::task::block_in_place(|| {
            if store_dir.exists() {
                std::fs::remove_dir_all(&store_dir)
                    .map_err(|e| Error::io(format!("remove {}", store_dir.display()), e))?;
            }
            self.node.backend.open_from_checkpoint(&dir, &store_dir)
        });
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok(store) => {
                let (decree, timetag) = (store.last_applied_decree(), store.last_applied_timetag());
                self.store = Some(store);
                tracing::info!(gpid = %self.gpid, "installed checkpoint {} at decree {decree}", checkpoint.id);
                self.keep_carried(carried, decree);
                self.feed(Event::CheckpointInstalled { decree, timetag });
            }
            Err(e) => {
                tracing::error!(gpid = %self.gpid, "installing checkpoint {} failed: {e}", checkpoint.id);
                // Reopen whatever is there so the replica can try again.
                self.store = self.node.backend.open(&store_dir).ok();
                self.feed(Event::CheckpointFailed { error: e });
            }
        }
    }

    /// Appends the log entries a checkpoint carried (see `dup_log`), if the log is empty or
    /// ends before them: entries after the checkpoint follow.
    fn keep_carried(&self, carried: Vec<LogEntry>, decree: Decree) {
        let carried: Vec<LogEntry> = carried.into_iter().filter(|e| e.decree <= decree).collect();
        let Some(first) = carried.first().map(|e| e.decree) else { return };
        match tokio::task::block_in_place(|| self.node.logs.read(self.gpid, Decree(1), 1)) {
            Ok((None, _)) => crate::dup_log::append_kept(&self.node, self.gpid, carried),
            Ok((Some((_, last)), _)) if last < first => {
                crate::dup_log::append_kept(&self.node, self.gpid, carried)
            }
            Ok(_) => {
                tracing::warn!(gpid = %self.gpid, "log not empty at a checkpoint: carried entries dropped")
            }
            Err(e) => tracing::warn!(gpid = %self.gpid, "cannot read the log: {e}"),
        }
    }

    fn scan_raw(&self, after: Option<Vec<u8>>, limit: usize) -> Result<RawChunk> {
        let store = self.store()?;
        let applied = store.last_applied_decree();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let range = tern_core::key::KeyRange { start, end: std::ops::Bound::Unbounded };
        let mut records = Vec::with_capacity(limit.min(4096));
        let mut done = true;
        store.raw_scan(&range, false, &mut |k, v| {
            if records.len() >= limit {
                done = false;
                return Ok(std::ops::ControlFlow::Break(()));
            }
            records.push((k.to_vec(), v.to_vec()));
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        Ok(RawChunk { applied, records, done })
    }

    fn flush(&mut self) {
        let Some(store) = self.store.as_ref() else { return };
        // The flush runs in RocksDB's threads; the log is collected below what earlier flushes
        // made durable (one interval behind), so the partition never waits for a flush here.
        let started = tokio::task::block_in_place(|| store.request_flush());
        match started.and_then(|_| store.durable_decree()) {
            // The log is needed only above what the store holds durably.
            Ok(durable) => {
                // Duplication may still need entries the store holds durably.
                let floor = self.node.shipping.log_floor(self.gpid).unwrap_or(Decree(u64::MAX));
                self.node.logs.gc(self.gpid, durable.next().min(floor));
            }
            Err(e) => tracing::warn!(gpid = %self.gpid, "store flush failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_phases_spread_a_tables_partitions_over_the_period() {
        let period = Duration::from_secs(10);
        for table in [1, 2, 77] {
            let mut phases: Vec<Duration> =
                (0..8).map(|p| flush_phase(Gpid::new(table, p), period)).collect();
            phases.sort();
            assert!(phases.iter().all(|p| *p < period), "{phases:?}");
            let closest = phases.windows(2).map(|w| w[1] - w[0]).min().unwrap();
            assert!(closest >= period / 16, "partitions {closest:?} apart: {phases:?}");
        }
    }
}
