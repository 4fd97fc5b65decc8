//! One task per replica: it owns the state machine and the store, takes its inputs (peer
//! messages, configurations, client requests, log completions, timers) and has the shared
//! executor (`tern_host::drive`) carry out the actions. No locks around replication state.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_core::mutation::WriteOutcome;
use tern_core::read::ReadResult;
use tern_core::{Decree, Error, Gpid, ReplicaReport, Result, WriteOp};
use tern_replica::{CheckpointRef, Event, ReadOp, Replica};
use tern_rocks::RocksPartitionStore;
use tern_storage::{LogEntry, PartitionStore};
use tokio::sync::{mpsc, oneshot};

use super::HostEnv;
use super::registry::{QUEUE, ReplicaHandle};
use super::reply::ReplyTo;
use super::server_host::ServerHost;

pub enum Input {
    Event(Box<Event>),
    Write {
        op: WriteOp,
        reply: ReplyTo<WriteOutcome>,
    },
    /// Writes that arrived together (one frame of a client's pipeline, a duplicated batch):
    /// one entry if possible.
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
    /// A backup (`backup.rs`): if this replica is the partition's primary, a RocksDB checkpoint
    /// of its store into `dir` (which must not exist), answered with the decree inside it;
    /// else `NOT_PRIMARY`, naming the primary if this replica knows it.
    BackupCheckpoint {
        dir: PathBuf,
        reply: oneshot::Sender<Result<Decree>>,
    },
    /// Garbage collection (`gc.rs`): stop for good. The log is reset (its entries are never
    /// replayed into a later replica of the partition on this server) and closed, the store
    /// closed, then `done` is sent.
    Stop(oneshot::Sender<()>),
}

impl Input {
    /// Answers every request this input carries with `e` (it never reached the replica).
    pub fn refuse(self, e: Error) {
        match self {
            Input::Write { reply, .. } => reply.send(Err(e)),
            Input::Writes(batch) => batch.into_iter().for_each(|(_, reply)| reply.send(Err(e.clone()))),
            Input::Read { reply, .. } => reply.send(Err(e)),
            Input::ScanRaw { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Input::BackupCheckpoint { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Input::Event(_)
            | Input::CheckpointFetched { .. }
            | Input::CheckpointFetchFailed(_)
            | Input::Stop(_) => {}
        }
    }
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
    sm: Replica,
    io: ServerHost,
    report: Arc<Mutex<ReplicaReport>>,
    applied_timetag: Arc<AtomicU64>,
}

pub fn spawn(
    env: Arc<HostEnv>,
    gpid: Gpid,
    dir: PathBuf,
    store: RocksPartitionStore,
    log: Vec<LogEntry>,
) -> ReplicaHandle {
    let now = env.clock.now();
    let mut sm = Replica::new(gpid, env.id, env.replica_options(), now.wall_ms);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (requests_tx, requests_rx) = mpsc::channel(QUEUE);
    let open = Event::Open {
        applied: store.last_applied_decree(),
        applied_timetag: store.last_applied_timetag(),
        applied_ballot: store.last_applied_ballot(),
        purge_below: store.purge_horizon(),
        log,
    };
    let mut io = ServerHost::new(env, gpid, dir, store, control_tx.clone());
    tern_host::drive(&mut io, &mut sm, now, open);
    let report = Arc::new(Mutex::new(sm.report()));
    let applied_timetag = Arc::new(AtomicU64::new(io.applied_timetag().as_u64()));
    let task = Task { sm, io, report: report.clone(), applied_timetag: applied_timetag.clone() };
    tokio::spawn(task.run(control_rx, requests_rx));
    ReplicaHandle::new(gpid, requests_tx, control_tx, report, applied_timetag)
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
    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Input>, mut requests: mpsc::Receiver<Input>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let period = self.io.env.opts.flush_interval;
        let first = tokio::time::Instant::now() + flush_phase(self.io.gpid, period);
        let mut flush = tokio::time::interval_at(first, period);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopped = None;
        loop {
            // What the server owes the replica (log completions above all) goes first: under
            // load the bounded request queue waits, never the other way round.
            let input = tokio::select! {
                biased;
                input = control.recv() => input,
                input = requests.recv() => input,
                _ = tick.tick() => Some(Input::Event(Box::new(Event::Tick))),
                _ = flush.tick() => {
                    tern_host::flush(&mut self.io);
                    continue;
                }
            };
            match input {
                Some(Input::Stop(done)) => {
                    stopped = Some(done);
                    break;
                }
                Some(i) => self.on_input(i),
                None => break,
            }
            *self.report.lock().unwrap_or_else(|e| e.into_inner()) = self.sm.report();
            self.applied_timetag.store(self.io.applied_timetag().as_u64(), Ordering::Relaxed);
        }
        requests.close();
        while let Ok(input) = requests.try_recv() {
            input.refuse(Error::Unavailable(format!("replica {} is closing", self.io.gpid)));
        }
        let (logs, gpid) = (self.io.env.logs.clone(), self.io.gpid);
        let Some(done) = stopped else {
            logs.close(gpid);
            return;
        };
        logs.reset(
            gpid,
            Box::new(move |r| {
                if let Err(e) = r {
                    tracing::warn!(%gpid, "resetting the log of a collected replica failed: {e}");
                }
            }),
        );
        let store = self.io.take_store();
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
                let req = self.io.expect_write(reply);
                self.feed(Event::ClientWrite { req, op });
            }
            Input::Writes(writes) => {
                let writes =
                    writes.into_iter().map(|(op, reply)| (self.io.expect_write(reply), op)).collect();
                self.feed(Event::ClientWrites { writes });
            }
            Input::Read { op, reply } => {
                let req = self.io.expect_read(reply);
                self.feed(Event::ClientRead { req, read: op });
            }
            Input::CheckpointFetched { dir, checkpoint } => {
                let event = self.io.install_checkpoint(dir, checkpoint);
                self.feed(event);
            }
            Input::CheckpointFetchFailed(error) => self.feed(Event::CheckpointFailed { error }),
            Input::ScanRaw { after, limit, reply } => {
                let _ = reply.send(self.io.scan_raw(after, limit));
            }
            Input::BackupCheckpoint { dir, reply } => {
                let _ = reply.send(self.backup_checkpoint(&dir));
            }
            Input::Stop(_) => {} // taken by `run`
        }
    }

    /// See [`Input::BackupCheckpoint`]. Taken in the task, between two events: no write is
    /// applied while RocksDB makes it, so the decree is the one inside.
    fn backup_checkpoint(&mut self, dir: &std::path::Path) -> Result<Decree> {
        let gpid = self.io.gpid;
        if self.sm.status() != tern_core::ReplicaStatus::Primary {
            let me = self.io.env.id;
            let primary = match self.sm.config().primary {
                Some(p) if p != me => match self.io.env.peers.addresses().of(p) {
                    Some(addr) => format!("its primary is {p} at {addr}"),
                    None => format!("its primary is {p}"),
                },
                _ => "no primary known here".to_string(),
            };
            return Err(Error::Remote {
                code: tern_core::ErrorCode::NotPrimary,
                message: format!(
                    "cannot back up partition {gpid} on {me}: this replica is {:?}, not its primary ({primary})",
                    self.sm.status()
                ),
            });
        }
        self.io.backup_checkpoint(dir)
    }

    fn feed(&mut self, event: Event) {
        let now = self.io.env.clock.now();
        tern_host::drive(&mut self.io, &mut self.sm, now, event);
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
