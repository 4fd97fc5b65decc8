//! The node-level log writer: one thread owns every replica's private log and the node's shared
//! log (`tern_storage::log::SharedLog`), and group-commits.
//!
//! It blocks for the first request, then takes everything else already queued (under load, after
//! first waiting so that fsyncs are spaced, see [`GroupCommit`]), appends it all to the private
//! logs (buffered, not fsynced) and to the shared log, writes and fsyncs the shared log once (one
//! `pwrite`, one `fdatasync` per group), and only then reports the appends durable. While it
//! fsyncs or waits, new requests queue up and join the group: one fsync covers everything queued
//! meanwhile, however many partitions it touched. When the shared log's segment is full it moves
//! to a new one, a helper thread fsyncs every private log (seconds of unsynced appends: a few
//! hundred ms under load, which the writer used to stall for), and once that is done the old
//! shared segments are deleted (see [`Rotation`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tern_core::{Ballot, Decree, Error, Gpid, Result};
use tern_storage::LogEntry;
use tern_storage::log::{
    FileLogConfig, FileMutationLog, GroupCommit, MutationLog, Recovered, SharedLog, SyncJob, SyncPolicy,
    encode_record, remove_durably,
};

/// Called with the result of an append, once it is durable (or failed).
pub type AppendDone = Box<dyn FnOnce(Result<Vec<(Ballot, Decree)>>) + Send>;
/// Called with the result of a reset, once it is durable (or failed).
pub type ResetDone = Box<dyn FnOnce(Result<()>) + Send>;

enum Request {
    Open { gpid: Gpid, dir: PathBuf, reply: mpsc::Sender<Result<Vec<LogEntry>>>, after: Decree },
    Append { gpid: Gpid, entries: Vec<LogEntry>, done: AppendDone },
    Reset { gpid: Gpid, done: ResetDone },
    Read { gpid: Gpid, from: Decree, max: usize, reply: mpsc::Sender<Result<LogSlice>> },
    Gc { gpid: Gpid, below: Decree },
    Close { gpid: Gpid, done: Option<mpsc::Sender<()>> },
}

/// The decree range a log holds (`None` when empty) and some of its entries.
pub type LogSlice = (Option<(Decree, Decree)>, Vec<LogEntry>);

/// An append written but not yet fsynced: the `(ballot, decree)` of its entries, or why it failed.
type PendingAppend = (Result<Vec<(Ballot, Decree)>>, AppendDone);

/// A handle to the writer thread; cheap to clone. When the last handle drops, the thread ends
/// (its request channel closes) and the drop waits for it: nothing writes the logs after that,
/// so a new writer may open them (a restart within one process, as the tests do).
#[derive(Clone)]
pub struct LogWriter {
    // Declared before `_thread`: the channel closes before the join waits for the thread.
    tx: mpsc::Sender<Request>,
    _thread: Arc<WriterThread>,
}

/// Joins the writer thread when the last [`LogWriter`] is gone.
struct WriterThread(Option<std::thread::JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        // Never on the writer thread itself (joining oneself would not return).
        if let Some(handle) = self.0.take().filter(|h| h.thread().id() != std::thread::current().id()) {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogWriter")
    }
}

/// Group-commit policy. Under load the shared log's fsyncs start at most every few recent fsync
/// durations, never further apart than `max_spacing` ([`GroupCommit`]; zero: a group holds only
/// what queued during the previous fsync), unless `max_batch_bytes` are already queued.
#[derive(Clone, Copy, Debug)]
pub struct GroupPolicy {
    pub max_spacing: Duration,
    pub max_batch_bytes: u64,
    pub segment_bytes: u64,
    /// The shared log's segment size: each is zero-filled ahead of use, and all private logs
    /// are fsynced when one fills.
    pub shared_segment_bytes: u64,
}

impl Default for GroupPolicy {
    fn default() -> Self {
        GroupPolicy {
            max_spacing: DEFAULT_MAX_SPACING,
            max_batch_bytes: 4 << 20,
            segment_bytes: 64 << 20,
            shared_segment_bytes: 16 << 20,
        }
    }
}

/// The default cap on the spacing of fsyncs under load. Spacing them (five recent fsyncs, ~1 ms
/// on this VM) cut the machine's CPU per write by ~24 % and raised writes/s by 10–16 % with three
/// servers on two cores (docs/benchmarks.md, tenth pass); once a write cost less CPU (twelfth
/// pass) the machine idled a third of the time at 64 writers, and a 0.7 ms cap traded a little
/// of the saving (+3–8 % CPU per write) for latency: +2–3 % writes/s in A/B pairs. 0.5 ms gave
/// no more and 0.3 ms less.
pub const DEFAULT_MAX_SPACING: Duration = Duration::from_micros(700);

fn gone() -> Error {
    Error::Unavailable("the log writer has stopped".into())
}

impl LogWriter {
    /// Opens the node's shared log in `shared_dir` (reading back what it holds for each
    /// partition: replayed into a private log when its replica opens) and starts the thread.
    pub fn start(policy: GroupPolicy, shared_dir: &std::path::Path) -> Result<LogWriter> {
        let (shared, recovered, cut) = SharedLog::open(shared_dir, policy.shared_segment_bytes)?;
        if let Some(why) = cut {
            tracing::info!("shared log recovery: {why}");
        }
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("tern-log-writer".into())
            .spawn(move || run(rx, policy, shared, recovered))
            .map_err(|e| Error::io("start the log writer thread", e))?;
        Ok(LogWriter { tx, _thread: Arc::new(WriterThread(Some(handle))) })
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

    /// Empties the log of `gpid`, durably; ordered with appends (it happens before later ones).
    /// `done` learns whether it worked: a log that could not be reset must not be written on.
    pub fn reset(&self, gpid: Gpid, done: ResetDone) {
        if let Err(mpsc::SendError(Request::Reset { done, .. })) = self.tx.send(Request::Reset { gpid, done })
        {
            done(Err(gone()));
        }
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
        let _ = self.tx.send(Request::Close { gpid, done: None });
    }

    /// Closes the log of `gpid` and returns once the writer has (everything sent before is
    /// done too: the writer takes requests in order). Blocks.
    pub fn close_and_wait(&self, gpid: Gpid) {
        let (done, rx) = mpsc::channel();
        if self.tx.send(Request::Close { gpid, done: Some(done) }).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// What the writer did, for `/metrics` and a debug line every 10 s (`RUST_LOG=tern_server::log::writer=debug`).
struct Stats {
    groups: metrics::Counter,
    entries: metrics::Counter,
    ops: metrics::Counter,
    sync_micros: metrics::Counter,
    /// Since `since`, for the debug line: groups (one fsync each), entries, ops, fsync time.
    window: (u64, u64, u64, Duration),
    /// Since `since`: the longest fsync, and the longest turn of the writer (a group from its
    /// first request to its callbacks, plus the rotation step after it).
    longest: (Duration, Duration),
    since: Instant,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            groups: metrics::counter!("tern_log_groups_total"),
            entries: metrics::counter!("tern_log_entries_total"),
            ops: metrics::counter!("tern_log_ops_total"),
            sync_micros: metrics::counter!("tern_log_fsync_microseconds_total"),
            window: (0, 0, 0, Duration::ZERO),
            longest: (Duration::ZERO, Duration::ZERO),
            since: Instant::now(),
        }
    }

    /// A group of `entries` entries carrying `ops` ops, made durable by one fsync of `sync_time`.
    fn group(&mut self, entries: u64, ops: u64, sync_time: Duration) {
        self.groups.increment(1);
        self.entries.increment(entries);
        self.ops.increment(ops);
        self.sync_micros.increment(sync_time.as_micros() as u64);
        let w = &mut self.window;
        *w = (w.0 + 1, w.1 + entries, w.2 + ops, w.3 + sync_time);
        self.longest.0 = self.longest.0.max(sync_time);
    }

    /// One turn of the writer took `took`; every 10 s the window goes to the debug log.
    fn turn(&mut self, took: Duration) {
        self.longest.1 = self.longest.1.max(took);
        if self.since.elapsed() >= Duration::from_secs(10) {
            let (groups, entries, ops, sync_time) = self.window;
            let (fsync, turn) = self.longest;
            tracing::debug!(
                "last {:?}: {groups} groups, {entries} entries, {ops} ops, one fsync per group, \
                 {sync_time:?} in fsync; longest fsync {fsync:?}, longest turn {turn:?}",
                self.since.elapsed(),
            );
            self.window = (0, 0, 0, Duration::ZERO);
            self.longest = (Duration::ZERO, Duration::ZERO);
            self.since = Instant::now();
        }
    }
}

fn run(rx: mpsc::Receiver<Request>, policy: GroupPolicy, mut shared: SharedLog, mut recovered: Recovered) {
    let mut stats = Stats::new();
    let mut logs: BTreeMap<Gpid, FileMutationLog> = BTreeMap::new();
    // Private logs are fsynced rarely (durability comes from the shared log): a full segment is
    // fsynced before the next starts, so that a crash can cut only the last one. Their appends
    // are written out 64 KiB at a time: until a sync job (trickle or rotation) has made them
    // durable in the private log, the shared log's segment holding them is kept and replayed.
    let config = FileLogConfig {
        segment_bytes: policy.segment_bytes,
        sync: SyncPolicy::Explicit,
        sync_on_rollover: true,
        write_buffer_bytes: PRIVATE_WRITE_BUFFER,
    };
    let mut rotation = Rotation::new();
    let mut trickle = Trickle::default();
    let mut commit = GroupCommit::new(policy.max_spacing.as_micros() as u64);
    let epoch = Instant::now();
    let micros = move |t: Instant| t.duration_since(epoch).as_micros() as u64;
    while let Ok(first) = rx.recv() {
        let turn_started = Instant::now();
        let (mut group, mut bytes) = (Vec::new(), 0u64);
        take(first, &mut group, &mut bytes);
        gather(&rx, &mut group, &mut bytes);
        // Under load, hold the group back so that one fsync covers more. One sleep: requests
        // arriving meanwhile only queue (a receiver blocked in `recv_timeout` would be woken by
        // each of them, which cost more than the fsyncs saved).
        // (Only a group holding an append, `bytes > 0`, has an fsync to wait for.)
        if bytes > 0 && bytes < policy.max_batch_bytes {
            let wait = commit.wait_us(micros(Instant::now()));
            if wait > 0 {
                std::thread::sleep(Duration::from_micros(wait));
                gather(&rx, &mut group, &mut bytes);
            }
        }
        let mut pending: Vec<PendingAppend> = Vec::new();
        let (mut entry_count, mut op_count) = (0u64, 0u64);
        for r in group {
            match r {
                Request::Open { gpid, dir, reply, after } => {
                    let _ = reply.send(open(&mut logs, &mut recovered, &config, gpid, &dir, after));
                }
                Request::Append { gpid, entries, done } => {
                    entry_count += entries.len() as u64;
                    op_count += entries.iter().map(|e| e.mutation.ops.len() as u64).sum::<u64>();
                    let result = append(&mut logs, &mut shared, gpid, &entries)
                        .map(|_| entries.iter().map(|e| (e.ballot, e.decree)).collect());
                    pending.push((result, done));
                }
                Request::Reset { gpid, done } => {
                    let reset = match logs.get_mut(&gpid) {
                        // Private log durable first, then the shared log's reset marker, then
                        // the reset: a crash anywhere in between loses nothing acknowledged and
                        // never replays entries from before a reset into the emptied log.
                        Some(log) => log
                            .sync()
                            .and_then(|_| shared.append_reset(gpid))
                            .and_then(|_| shared.sync())
                            .and_then(|_| log.reset()),
                        None => Err(Error::invariant(format!("reset the log of {gpid}, which is not open"))),
                    };
                    if let Err(e) = &reset {
                        tracing::error!(%gpid, "log reset failed: {e}");
                    }
                    done(reset);
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
                Request::Close { gpid, done } => {
                    if let Some(mut log) = logs.remove(&gpid) {
                        let _ = log.sync();
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
            }
        }
        // One fsync of the shared log makes every append of the group durable, whichever
        // partitions it touched. The private logs are fsynced only when the shared log rotates.
        let sync_started = Instant::now();
        let synced = if pending.iter().any(|(r, _)| r.is_ok()) {
            let r = shared.sync();
            let took = sync_started.elapsed();
            stats.group(entry_count, op_count, took);
            commit.synced(pending.len(), micros(sync_started), took.as_micros() as u64);
            r
        } else {
            Ok(())
        };
        if let Err(e) = &synced {
            tracing::error!("shared log sync failed: {e}");
        }
        for (result, done) in pending {
            match (result, &synced) {
                (Ok(_), Err(e)) => done(Err(e.clone())),
                (r, _) => done(r),
            }
        }
        rotation.step(&mut logs, &mut shared, &recovered, synced.is_ok(), policy.shared_segment_bytes);
        trickle.step(&mut logs);
        stats.turn(turn_started.elapsed());
    }
    // Stopping: let a rotation in flight finish, so that its old segments are not replayed.
    rotation.finish(&mut logs);
}

/// Moves every request already queued into `group`, adding appends' sizes to `bytes`.
fn gather(rx: &mpsc::Receiver<Request>, group: &mut Vec<Request>, bytes: &mut u64) {
    while let Ok(r) = rx.try_recv() {
        take(r, group, bytes);
    }
}

fn take(r: Request, group: &mut Vec<Request>, bytes: &mut u64) {
    if let Request::Append { entries, .. } = &r {
        *bytes += entries.iter().map(|e| e.mutation.payload_bytes() + 32).sum::<u64>();
    }
    group.push(r);
}

/// Opens the private log of `gpid` and puts back what only the shared log held of it.
fn open(
    logs: &mut BTreeMap<Gpid, FileMutationLog>,
    recovered: &mut Recovered,
    config: &FileLogConfig,
    gpid: Gpid,
    dir: &std::path::Path,
    after: Decree,
) -> Result<Vec<LogEntry>> {
    let fresh = !dir.exists();
    let (mut log, rec) = FileMutationLog::open(dir, config.clone())?;
    if let Some(why) = rec.truncation_reason {
        tracing::info!(%gpid, "private log recovery: {why}");
    }
    if let Some(mut entries) = recovered.remove(&gpid) {
        if fresh {
            // The partition's directory was removed: its entries in the shared log belong to
            // a replica that no longer exists, not to the one starting here.
            tracing::warn!(%gpid, "dropping {} shared-log entries of a removed replica", entries.len());
            entries.clear();
        }
        // Below the private log's first decree, entries were collected already (GC): not needed.
        if let Some((first, _)) = log.decree_range() {
            entries.retain(|e| e.decree >= first);
        }
        if !entries.is_empty() {
            tracing::info!(%gpid, "replaying {} entries from the shared log into the private log", entries.len());
            log.append(&entries)?;
        }
        log.sync()?;
    }
    let entries = log.read(after.next(), usize::MAX)?;
    logs.insert(gpid, log);
    Ok(entries)
}

/// Writes `entries` to the private log of `gpid` (not synced) and to the shared log.
fn append(
    logs: &mut BTreeMap<Gpid, FileMutationLog>,
    shared: &mut SharedLog,
    gpid: Gpid,
    entries: &[LogEntry],
) -> Result<()> {
    let log = logs
        .get_mut(&gpid)
        .ok_or_else(|| Error::invariant(format!("append to the log of {gpid}, which is not open")))?;
    let records = entries.iter().map(|e| Ok((e.decree, encode_record(e)?))).collect::<Result<Vec<_>>>()?;
    shared.append(gpid, records.iter().map(|(_, r)| r.as_slice()))?;
    log.append_encoded(&records)
}

/// Records jobs that ran successfully in their logs (those still open).
fn mark_synced(logs: &mut BTreeMap<Gpid, FileMutationLog>, jobs: &[(Gpid, SyncJob)]) {
    for (gpid, job) in jobs {
        if let Some(log) = logs.get_mut(gpid) {
            log.mark_synced(job);
        }
    }
}

/// Runs `jobs` on a helper thread, then (if they all succeeded) `and_then`; the result comes
/// back on the returned channel.
fn run_elsewhere(
    jobs: Vec<(Gpid, SyncJob)>,
    and_then: impl FnOnce() -> Result<()> + Send + 'static,
) -> Result<mpsc::Receiver<SyncDone>> {
    let (tx, done) = mpsc::channel();
    std::thread::Builder::new()
        .name("tern-log-sync".into())
        .spawn(move || {
            let result = jobs.iter().try_for_each(|(_, job)| job.run()).and_then(|()| and_then());
            let _ = tx.send((jobs, result));
        })
        .map_err(|e| Error::io("start a private-log sync thread", e))?;
    Ok(done)
}

/// Writes private logs back in small steps, off the writer thread: a log with
/// [`TRICKLE_BYTES`] unsynced is fsynced by a helper thread. Without it a rotation fsynced
/// ~20 s of every private log at once, and the shared log's group fsyncs queued behind that
/// writeback (p99.9 and the open-loop tail); with it a rotation finds little left to write.
#[derive(Default)]
struct Trickle {
    inflight: Option<mpsc::Receiver<SyncDone>>,
}

const TRICKLE_BYTES: u64 = 256 << 10;

/// A private log's appends are written to its file in pieces of this size (one `pwrite` per
/// piece instead of one per group).
const PRIVATE_WRITE_BUFFER: usize = 64 << 10;

impl Trickle {
    fn step(&mut self, logs: &mut BTreeMap<Gpid, FileMutationLog>) {
        if let Some(done) = &self.inflight {
            match done.try_recv() {
                Ok((jobs, Ok(()))) => mark_synced(logs, &jobs),
                // Not fatal: the rotation's sync decides what may be deleted, and reports.
                Ok((_, Err(e))) => tracing::warn!("background fsync of private logs failed: {e}"),
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {}
            }
            self.inflight = None;
        }
        let mut jobs = Vec::new();
        for (gpid, log) in logs.iter_mut().filter(|(_, l)| l.unsynced_bytes() >= TRICKLE_BYTES) {
            match log.sync_job() {
                Ok(Some(job)) => jobs.push((*gpid, job)),
                Ok(None) => {}
                Err(e) => tracing::warn!(%gpid, "background fsync of a private log: {e}"),
            }
        }
        if !jobs.is_empty() {
            match run_elsewhere(jobs, || Ok(())) {
                Ok(done) => self.inflight = Some(done),
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
}

/// Rotations of the shared log: a new segment, then the private logs fsynced on a helper thread
/// (up to a few hundred ms of writeback under load: the writer must not stop for it), then the
/// old segments deleted and closed there too. One at a time; while one is in flight the active
/// segment grows past its size.
struct Rotation {
    state: RotationState,
    /// Segments rotated out whose removal is not confirmed yet, oldest first (kept across
    /// failures: a later successful sync of the private logs covers them too).
    old: Vec<PathBuf>,
}

enum RotationState {
    Idle,
    /// Private logs being fsynced, then the first `removing` of the old segments removed; the
    /// result comes back with the jobs.
    Syncing {
        started: Instant,
        done: mpsc::Receiver<SyncDone>,
        removing: usize,
    },
    /// The last attempt failed and is retried after `retry`; `rotated` if the new segment (with
    /// the carried entries) is in place and durable, so that only the rest needs doing again.
    Failed {
        retry: Instant,
        rotated: bool,
    },
}

type SyncDone = (Vec<(Gpid, SyncJob)>, Result<()>);

impl Rotation {
    fn new() -> Rotation {
        Rotation { state: RotationState::Idle, old: Vec::new() }
    }

    /// Called after every group: finishes a rotation whose helper is done, or starts one when
    /// the active segment is full (and the last group's fsync worked: `healthy`).
    fn step(
        &mut self,
        logs: &mut BTreeMap<Gpid, FileMutationLog>,
        shared: &mut SharedLog,
        recovered: &Recovered,
        healthy: bool,
        segment_bytes: u64,
    ) {
        match &self.state {
            RotationState::Syncing { done, .. } => match done.try_recv() {
                Ok(result) => self.complete(logs, result),
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.state = failed(&Error::invariant("the private-log sync thread died"), true);
                }
            },
            RotationState::Failed { retry, rotated } if healthy && Instant::now() >= *retry => {
                let rotated = *rotated;
                self.start(logs, shared, recovered, rotated);
            }
            RotationState::Idle if healthy && shared.active_bytes() >= segment_bytes => {
                self.start(logs, shared, recovered, false);
            }
            _ => {}
        }
    }

    /// Moves the shared log to a new segment (unless an earlier attempt did: `rotated`) and
    /// hands every private log's fsync, then the old segments' removal, to a helper thread.
    /// Entries recovered for partitions not opened since move along into the new segment.
    fn start(
        &mut self,
        logs: &mut BTreeMap<Gpid, FileMutationLog>,
        shared: &mut SharedLog,
        recovered: &Recovered,
        mut rotated: bool,
    ) {
        let started = Instant::now();
        let mut prepare = || {
            if !rotated {
                shared.rotate()?;
                for (gpid, entries) in recovered {
                    let records = entries.iter().map(encode_record).collect::<Result<Vec<_>>>()?;
                    shared.append(*gpid, records.iter().map(Vec::as_slice))?;
                }
                shared.sync()?;
                rotated = true;
            }
            // Made after the last append to the old segments: the jobs cover all of them.
            let mut jobs = Vec::new();
            for (gpid, log) in logs.iter_mut() {
                if let Some(job) = log.sync_job()? {
                    jobs.push((*gpid, job));
                }
            }
            Ok::<_, Error>(jobs)
        };
        let jobs = match prepare() {
            Ok(jobs) => jobs,
            Err(e) => {
                self.state = failed(&e, rotated);
                return;
            }
        };
        let detached = shared.detach_old_segments();
        self.old.extend(detached.iter().map(|(p, _)| p.clone()));
        let (dir, paths, removing) = (shared.dir().to_path_buf(), self.old.clone(), self.old.len());
        // The files close on the helper, after their removal: closing frees the blocks.
        let removal = move || {
            let r = remove_durably(&dir, &paths);
            drop(detached);
            r
        };
        self.state = match run_elsewhere(jobs, removal) {
            Ok(done) => RotationState::Syncing { started, done, removing },
            Err(e) => failed(&e, true),
        };
    }

    /// The helper is done: on success the private logs hold every entry of the old segments
    /// durably and those are gone.
    fn complete(&mut self, logs: &mut BTreeMap<Gpid, FileMutationLog>, (jobs, result): SyncDone) {
        let RotationState::Syncing { started, removing, .. } =
            std::mem::replace(&mut self.state, RotationState::Idle)
        else {
            return;
        };
        match result {
            Ok(()) => {
                mark_synced(logs, &jobs);
                self.old.drain(..removing);
                tracing::debug!(
                    "shared log rotated in {:?} ({} private logs fsynced off the writer thread)",
                    started.elapsed(),
                    jobs.len()
                );
            }
            Err(e) => self.state = failed(&e, true),
        }
    }

    /// Waits for a rotation in flight and completes it.
    fn finish(&mut self, logs: &mut BTreeMap<Gpid, FileMutationLog>) {
        if let RotationState::Syncing { done, .. } = &self.state
            && let Ok(result) = done.recv()
        {
            self.complete(logs, result);
        }
    }
}

fn failed(e: &Error, rotated: bool) -> RotationState {
    tracing::error!("shared log rotation failed (retried in 1 s): {e}");
    RotationState::Failed { retry: Instant::now() + Duration::from_secs(1), rotated }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::{ClusterId, Mutation, Timetag, WriteOp};

    fn entry(ballot: u64, decree: u64, key: &str) -> LogEntry {
        LogEntry {
            ballot: Ballot(ballot),
            decree: Decree(decree),
            timetag: Timetag::new(1, 0, ClusterId::new(1).unwrap(), false),
            mutation: Mutation::new(vec![WriteOp::Set {
                hash_key: key.as_bytes().to_vec(),
                sort_key: vec![],
                value: b"v".to_vec(),
                ttl_secs: 0,
            }]),
        }
    }

    fn append(w: &LogWriter, gpid: Gpid, entries: Vec<LogEntry>) {
        let (tx, rx) = mpsc::channel();
        w.append(gpid, entries, Box::new(move |r| tx.send(r).unwrap()));
        rx.recv().unwrap().unwrap();
    }

    /// The partition of the tests that need only one.
    const A: Gpid = Gpid::new(1, 0);

    /// A temporary directory, the shared log's directory in it and partition A's.
    fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let (shared, da) = (tmp.path().join("shared"), tmp.path().join("a"));
        (tmp, shared, da)
    }

    /// A writer (`policy`, shared log in `shared`) with A's log in `da` open, and what that log
    /// held.
    fn open_a(
        policy: GroupPolicy,
        shared: &std::path::Path,
        da: &std::path::Path,
    ) -> (LogWriter, Vec<LogEntry>) {
        let w = LogWriter::start(policy, shared).unwrap();
        let held = w.open(A, da.to_path_buf(), Decree::ZERO).unwrap();
        (w, held)
    }

    /// Cuts every private segment back to its header: what a power loss does to private logs
    /// that were never fsynced after they were created.
    fn lose_private_tails(dir: &std::path::Path) {
        for f in std::fs::read_dir(dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|x| x == "tlog") {
                std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(16).unwrap();
            }
        }
    }

    #[test]
    fn acknowledged_appends_survive_losing_the_unsynced_private_logs() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        let (a, b) = (Gpid::new(1, 0), Gpid::new(1, 1));
        let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
        {
            let w = LogWriter::start(GroupPolicy::default(), &shared).unwrap();
            assert!(w.open(a, da.clone(), Decree::ZERO).unwrap().is_empty());
            assert!(w.open(b, db.clone(), Decree::ZERO).unwrap().is_empty());
            append(&w, a, vec![entry(1, 1, "a1"), entry(1, 2, "a2")]);
            append(&w, b, vec![entry(1, 1, "b1")]);
            // A newer primary re-proposes decree 2 of `a`: the later record counts.
            append(&w, a, vec![entry(2, 2, "a2'")]);
            // `b` is reset (a learner starting over) and gets a new entry.
            w.reset(b, Box::new(|r| r.expect("reset")));
            append(&w, b, vec![entry(3, 7, "b7")]);
        } // the writer thread is joined here: nothing writes `da` after this
        lose_private_tails(&da);
        let w = LogWriter::start(GroupPolicy::default(), &shared).unwrap();
        let got = w.open(a, da, Decree::ZERO).unwrap();
        assert_eq!(got, vec![entry(1, 1, "a1"), entry(2, 2, "a2'")]);
        let got = w.open(b, db, Decree::ZERO).unwrap();
        assert_eq!(got, vec![entry(3, 7, "b7")], "nothing from before the reset comes back");
    }

    #[test]
    fn rotation_makes_private_logs_durable_before_old_shared_segments_go() {
        let (_tmp, shared, da) = dirs();
        let policy =
            GroupPolicy { segment_bytes: 4096, shared_segment_bytes: 4096, ..GroupPolicy::default() };
        let want: Vec<LogEntry> = (1..=200).map(|d| entry(1, d, &format!("k{d}"))).collect();
        {
            let (w, _) = open_a(policy, &shared, &da);
            for e in &want {
                append(&w, A, vec![e.clone()]);
            }
        }
        let segments = std::fs::read_dir(&shared)
            .unwrap()
            .filter(|f| f.as_ref().unwrap().path().extension().is_some_and(|x| x == "plog"))
            .count();
        assert!(segments <= 2, "old shared segments are deleted after rotation: {segments} left");
        // Whatever the private log did not sync since the last rotation, the shared log has.
        assert_eq!(open_a(policy, &shared, &da).1, want);
    }

    #[test]
    fn a_failing_private_log_fsync_keeps_the_shared_segments_that_hold_its_entries() {
        use tern_storage::log::sync_faults;
        let (_tmp, shared, da) = dirs();
        let first_segment = shared.join("0000000001.plog");
        // Small shared segments (rotations), one large private segment: only the rotation's
        // background sync job would make the private log durable.
        let policy =
            GroupPolicy { segment_bytes: 1 << 20, shared_segment_bytes: 4096, ..GroupPolicy::default() };
        let want: Vec<LogEntry> = (1..=300).map(|d| entry(1, d, &format!("k{d}"))).collect();
        sync_faults::fail_under(&da);
        {
            let (w, _) = open_a(policy, &shared, &da);
            for e in &want {
                append(&w, A, vec![e.clone()]);
            }
            assert!(first_segment.exists(), "a shared segment went while the private log was not durable");
        } // the writer thread is joined here: nothing writes `da` after this
        // A power loss takes the private log's unsynced records; the shared log gives them back.
        lose_private_tails(&da);
        sync_faults::clear(&da);
        let (w, held) = open_a(policy, &shared, &da);
        assert_eq!(held, want);
        // With the fault gone, the next rotation syncs the private log and removes old segments.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut d = 300;
        while first_segment.exists() {
            assert!(
                Instant::now() < deadline,
                "old shared segments were never removed after the fault cleared"
            );
            d += 1;
            append(&w, A, vec![entry(1, d, &format!("k{d}"))]);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_new_shared_log_starts_on_a_zero_filled_segment() {
        let (_tmp, shared, da) = dirs();
        let policy = GroupPolicy { shared_segment_bytes: 1 << 20, ..GroupPolicy::default() };
        {
            let (w, _) = open_a(policy, &shared, &da);
            // Group fsyncs overwrite allocated blocks: no file growth, no inode write per group.
            assert_eq!(std::fs::metadata(shared.join("0000000001.plog")).unwrap().len(), 1 << 20);
            append(&w, A, vec![entry(1, 1, "a1")]);
        }
        lose_private_tails(&da);
        assert_eq!(open_a(policy, &shared, &da).1, vec![entry(1, 1, "a1")]);
    }

    #[test]
    fn entries_of_a_replica_whose_directory_was_removed_are_not_replayed() {
        let (_tmp, shared, da) = dirs();
        {
            let (w, _) = open_a(GroupPolicy::default(), &shared, &da);
            append(&w, A, vec![entry(1, 1, "old")]);
        }
        std::fs::remove_dir_all(&da).unwrap();
        assert!(open_a(GroupPolicy::default(), &shared, &da).1.is_empty());
    }
}
