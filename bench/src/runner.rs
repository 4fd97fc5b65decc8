//! The engine: `concurrency` workers issue operations against a [`Target`], closed loop (each
//! worker back to back) or open loop (paced by a schedule, latency measured from each
//! operation's scheduled start so that a slow server cannot hide its slowness by slowing the
//! load down: no coordinated omission). Each worker records into its own histograms; they are
//! merged at the end.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::error::{BenchError, OpError};
use crate::report::{Report, RunStats};
use crate::workload::{Distribution, KeyChooser, OpGenerator, OpKind, Workload, hash_key};

/// What a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Found,
    /// The key has no value (it was never written): a success, counted as a miss.
    Missing,
}

/// A store the benchmark can load: Tern, the echo baseline, etcd. Keys and values are the
/// generator's bytes; each target maps them to its own data model.
pub trait Target: Send + Sync + 'static {
    /// `tern`, `echo` or `etcd`.
    fn name(&self) -> &'static str;

    /// Makes sure the target can serve the run (reachable, table exists), before any worker
    /// starts.
    fn check(&self) -> impl Future<Output = Result<(), BenchError>> + Send;

    /// Stores `value` under `key`.
    fn write(&self, key: Vec<u8>, value: Vec<u8>) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Reads `key`.
    fn read(&self, key: Vec<u8>) -> impl Future<Output = Result<ReadOutcome, OpError>> + Send;
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub workload: Workload,
    /// Keys `0..keys` (`load` inserts them all; the others draw from them).
    pub keys: u64,
    pub value_size: usize,
    /// Workers, each with one operation in flight.
    pub concurrency: u32,
    /// How long to measure, after the warm-up. `None`: until `ops` are done, or for `load`
    /// until every key is inserted.
    pub duration: Option<Duration>,
    /// How many operations to measure at most.
    pub ops: Option<u64>,
    /// Open loop at this many operations per second in total; `None`: closed loop.
    pub rate: Option<f64>,
    /// Operations during the warm-up are issued but not measured. `load` has none (every key
    /// is inserted once, and every insert counts).
    pub warmup: Duration,
    pub distribution: Distribution,
    pub seed: u64,
}

impl RunConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Config(m.to_string()));
        if self.keys == 0 {
            return bad("--keys must be at least 1");
        }
        if self.concurrency == 0 {
            return bad("--concurrency must be at least 1");
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            return bad("--rate must be a positive number of operations per second");
        }
        if self.ops == Some(0) {
            return bad("--ops must be at least 1");
        }
        if self.duration.is_none() && self.ops.is_none() && self.workload != Workload::Load {
            return bad("give --duration or --ops: this workload would never end");
        }
        Ok(())
    }

    fn effective_warmup(&self) -> Duration {
        if self.workload == Workload::Load { Duration::ZERO } else { self.warmup }
    }
}

/// A progress sample, once a second.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Since the run started (warm-up included).
    pub elapsed: Duration,
    pub warming_up: bool,
    /// Completed operations so far (warm-up included), errors included.
    pub ops: u64,
    pub errors: u64,
    /// Completed operations per second over the last sample.
    pub ops_per_sec: f64,
}

/// When slot `slot` should start, from the run's start, in an open loop at `rate` operations
/// per second: slots are spaced `1/rate` apart, and each goes to whichever worker is free first
/// (see `pace`).
pub fn intended_offset(slot: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(slot as f64 / rate)
}

type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// Runs a [`RunConfig`] against a target.
pub struct Runner {
    cfg: RunConfig,
    progress: Option<ProgressFn>,
    stop: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// State every worker sees.
struct Shared {
    cfg: RunConfig,
    start: Instant,
    measure_from: Instant,
    deadline: Option<Instant>,
    /// Measured operations issued so far (for `--ops`).
    issued: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
}

impl Runner {
    pub fn new(cfg: RunConfig) -> Runner {
        Runner { cfg, progress: None, stop: None }
    }

    /// Calls `f` once a second with the progress so far.
    pub fn with_progress(mut self, f: impl FnMut(&Progress) + Send + 'static) -> Runner {
        self.progress = Some(Box::new(f));
        self
    }

    /// Ends the run early (and still reports) once `stop` turns true, e.g. on Ctrl-C.
    pub fn with_stop(mut self, stop: watch::Receiver<bool>) -> Runner {
        self.stop = Some(stop);
        self
    }

    pub async fn run<T: Target>(self, target: Arc<T>) -> Result<Report, BenchError> {
        let Runner { cfg, progress, stop } = self;
        cfg.validate()?;
        target.check().await?;
        let stop = stop.unwrap_or_else(|| watch::channel(false).1);
        let chooser = KeyChooser::new(cfg.keys, cfg.distribution);
        let start = Instant::now();
        let measure_from = start + cfg.effective_warmup();
        let shared = Arc::new(Shared {
            deadline: cfg.duration.map(|d| measure_from + d),
            cfg: cfg.clone(),
            start,
            measure_from,
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        // Open loop: one thread paces the schedule, and the workers share it (see `pace`).
        let mut slots: Option<Slots> = None;
        if let Some(rate) = cfg.rate {
            let (tx, rx) = mpsc::channel(SLOT_QUEUE);
            slots = Some(Arc::new(tokio::sync::Mutex::new(rx)));
            let (deadline, stop) = (shared.deadline, stop.clone());
            std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(move || pace(start, rate, deadline, tx, &stop))
                .map_err(|e| BenchError::Config(format!("start the pacing thread: {e}")))?;
        }
        let workers: Vec<_> = (0..cfg.concurrency)
            .map(|w| {
                let slots = slots.clone();
                let generator = OpGenerator::new(
                    cfg.workload,
                    cfg.keys,
                    chooser.clone(),
                    cfg.value_size,
                    w,
                    cfg.concurrency,
                    cfg.seed,
                );
                tokio::spawn(worker(target.clone(), shared.clone(), generator, slots, stop.clone()))
            })
            .collect();
        drop(slots);
        let reporter = progress.map(|f| tokio::spawn(report_progress(shared.clone(), f)));
        let mut stats = RunStats::new(cfg.rate.is_some());
        let mut panicked = None;
        for w in workers {
            match w.await {
                Ok(s) => stats.merge(&s),
                Err(e) => panicked = Some(e),
            }
        }
        if let Some(r) = reporter {
            r.abort();
        }
        if let Some(e) = panicked {
            std::panic::resume_unwind(e.into_panic());
        }
        // The measured window ends at the deadline even though operations started before it
        // finish after it: one slow straggler (up to the operation timeout) must not stretch
        // the window and deflate the throughput.
        let end = shared.deadline.map_or_else(Instant::now, |d| d.min(Instant::now()));
        let elapsed = end.saturating_duration_since(measure_from);
        let stopped_early = *stop.borrow();
        Ok(Report::new(target.name(), &cfg, elapsed, stopped_early, &stats))
    }
}

async fn worker<T: Target>(
    target: Arc<T>,
    shared: Arc<Shared>,
    mut generator: OpGenerator,
    slots: Option<Slots>,
    mut stop: watch::Receiver<bool>,
) -> RunStats {
    let cfg = &shared.cfg;
    let mut stats = RunStats::new(cfg.rate.is_some());
    loop {
        if *stop.borrow() {
            break;
        }
        let intended = match &slots {
            None => Instant::now(),
            // The next slot of the schedule, taken by the first free worker (the others queue on
            // the lock). A slot that is already due (every worker was busy) is taken at once:
            // its latency counts from when it should have started.
            Some(slots) => tokio::select! {
                slot = async { slots.lock().await.recv().await } => match slot {
                    Some(t) => t,
                    None => break,
                },
                () = stopped(&mut stop) => break,
            },
        };
        if shared.deadline.is_some_and(|d| intended >= d) {
            break;
        }
        let measured = intended >= shared.measure_from;
        if measured
            && let Some(budget) = cfg.ops
            && shared.issued.fetch_add(1, Ordering::Relaxed) >= budget
        {
            break;
        }
        let Some(op) = generator.next_op() else { break };
        let key = hash_key(op.key);
        let sent = Instant::now();
        let result = match op.kind {
            OpKind::Read => target.read(key).await,
            OpKind::Update | OpKind::Insert => {
                let value = generator.value();
                target.write(key, value).await.map(|()| ReadOutcome::Found)
            }
        };
        let done = Instant::now();
        shared.completed.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        if measured {
            stats.record(op.kind, result, done - intended, done - sent);
        }
    }
    stats
}

/// Slots that may wait for a free worker before the pacer waits (only when every worker is
/// busy for this many slots; the slots keep their scheduled times, so latency stays counted
/// from them).
const SLOT_QUEUE: usize = 1 << 16;

/// The open loop's schedule, shared by the workers: each slot goes to the first free worker, so
/// a slow operation delays later slots only when all `concurrency` workers are busy (dealt
/// round-robin, every slot of a slow operation's worker waited behind it while the others
/// idled: an open-loop p99 that measured the client's head-of-line blocking).
type Slots = Arc<tokio::sync::Mutex<mpsc::Receiver<Instant>>>;

/// The open loop's pacer: sends each slot's scheduled start time, on time.
///
/// A thread rather than tokio timers because tokio's timer has a resolution of 1 ms and fires
/// late by up to that much, which latency from the scheduled start would count (an echo takes
/// 0.2 ms); a thread sleeping until each slot wakes within tens of microseconds. Ends at the
/// deadline, on stop, or once every worker is gone (budget reached, load done).
fn pace(
    start: Instant,
    rate: f64,
    deadline: Option<Instant>,
    slots: mpsc::Sender<Instant>,
    stop: &watch::Receiver<bool>,
) {
    let mut slot = 0u64;
    while !*stop.borrow() {
        let t = start + intended_offset(slot, rate);
        slot += 1;
        if deadline.is_some_and(|d| t >= d) {
            break;
        }
        let now = Instant::now();
        if t > now {
            std::thread::sleep(t - now);
        }
        if slots.blocking_send(t).is_err() {
            break;
        }
    }
}

/// Completes once `stop` turns true; never if its sender is gone without having said so.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn report_progress(shared: Arc<Shared>, mut f: ProgressFn) {
    let mut tick = tokio::time::interval_at(shared.start + Duration::from_secs(1), Duration::from_secs(1));
    let (mut last_ops, mut last_at) = (0, shared.start);
    loop {
        let now = tick.tick().await;
        let ops = shared.completed.load(Ordering::Relaxed);
        let secs = now.saturating_duration_since(last_at).as_secs_f64();
        f(&Progress {
            elapsed: now.saturating_duration_since(shared.start),
            warming_up: now < shared.measure_from,
            ops,
            errors: shared.errors.load(Ordering::Relaxed),
            ops_per_sec: if secs > 0.0 { (ops - last_ops) as f64 / secs } else { 0.0 },
        });
        (last_ops, last_at) = (ops, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn open_loop_slots_are_spaced_by_the_total_rate() {
        assert_eq!(intended_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(intended_offset(42, 1000.0), Duration::from_millis(42));
        // One hour at 50k ops/s: slot 180M starts at 3600 s to the microsecond.
        let d = intended_offset(180_000_000, 50_000.0);
        assert!((d.as_secs_f64() - 3600.0).abs() < 1e-6, "{d:?}");
    }

    fn cfg(workload: Workload) -> RunConfig {
        RunConfig {
            workload,
            keys: 100,
            value_size: 10,
            concurrency: 4,
            duration: None,
            ops: None,
            rate: None,
            warmup: Duration::ZERO,
            distribution: Distribution::Uniform,
            seed: 1,
        }
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        assert!(cfg(Workload::Load).validate().is_ok());
        assert!(cfg(Workload::A).validate().is_err(), "no end");
        assert!(RunConfig { ops: Some(10), ..cfg(Workload::A) }.validate().is_ok());
        assert!(RunConfig { keys: 0, ..cfg(Workload::Load) }.validate().is_err());
        assert!(RunConfig { concurrency: 0, ..cfg(Workload::Load) }.validate().is_err());
        assert!(RunConfig { rate: Some(0.0), ..cfg(Workload::Load) }.validate().is_err());
        assert!(RunConfig { rate: Some(f64::NAN), ..cfg(Workload::Load) }.validate().is_err());
    }

    /// An in-memory target that records what it was asked.
    #[derive(Default)]
    struct MemTarget {
        data: Mutex<std::collections::HashMap<Vec<u8>, Vec<u8>>>,
        fail_every: u64,
        calls: AtomicU64,
    }

    impl Target for MemTarget {
        fn name(&self) -> &'static str {
            "mem"
        }
        async fn check(&self) -> Result<(), BenchError> {
            Ok(())
        }
        async fn write(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), OpError> {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
                return Err(OpError::new("BUSY"));
            }
            self.data.lock().unwrap_or_else(|e| e.into_inner()).insert(key, value);
            Ok(())
        }
        async fn read(&self, key: Vec<u8>) -> Result<ReadOutcome, OpError> {
            let found = self.data.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&key);
            Ok(if found { ReadOutcome::Found } else { ReadOutcome::Missing })
        }
    }

    #[tokio::test]
    async fn load_inserts_every_key_once_then_reads_find_them() {
        let target = Arc::new(MemTarget::default());
        let report =
            Runner::new(cfg(Workload::Load)).run(target.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.total.ops, 100);
        assert_eq!(report.ops["insert"].ops, 100);
        assert_eq!(target.data.lock().unwrap_or_else(|e| e.into_inner()).len(), 100);
        assert!(target.data.lock().unwrap_or_else(|e| e.into_inner()).values().all(|v| v.len() == 10));

        let report = Runner::new(RunConfig { ops: Some(500), ..cfg(Workload::C) })
            .run(target)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.total.ops, 500);
        assert_eq!(report.ops["read"].misses, 0);
    }

    #[tokio::test]
    async fn errors_are_counted_by_code_and_not_as_operations() {
        let target = Arc::new(MemTarget { fail_every: 4, ..MemTarget::default() });
        let report = Runner::new(RunConfig { ops: Some(400), ..cfg(Workload::Write) })
            .run(target)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.total.ops + report.total.errors, 400);
        assert_eq!(report.total.errors, 100);
        assert_eq!(report.ops["update"].errors_by_code.get("BUSY"), Some(&100));
    }

    /// Its first write waits until `release_after` other writes have started.
    struct OneSlowWrite {
        release_after: u64,
        started: AtomicU64,
        release: tokio::sync::Notify,
    }

    impl Target for OneSlowWrite {
        fn name(&self) -> &'static str {
            "one-slow"
        }
        async fn check(&self) -> Result<(), BenchError> {
            Ok(())
        }
        async fn write(&self, _key: Vec<u8>, _value: Vec<u8>) -> Result<(), OpError> {
            let n = self.started.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                let released = self.release.notified();
                if self.started.load(Ordering::SeqCst) <= self.release_after {
                    released.await;
                }
            } else if n == self.release_after {
                self.release.notify_one();
            }
            Ok(())
        }
        async fn read(&self, _key: Vec<u8>) -> Result<ReadOutcome, OpError> {
            Ok(ReadOutcome::Found)
        }
    }

    #[tokio::test]
    async fn open_loop_slots_go_to_free_workers_not_behind_a_slow_one() {
        // 200 slots for 4 workers, one of which is stuck in the first write until 190 others
        // have started: the 3 free workers must take every later slot (dealt round-robin, a
        // quarter of them waited for the stuck worker and this never finished).
        let target = Arc::new(OneSlowWrite {
            release_after: 190,
            started: AtomicU64::new(0),
            release: Default::default(),
        });
        let run = Runner::new(RunConfig {
            rate: Some(1000.0),
            duration: Some(Duration::from_millis(200)),
            ..cfg(Workload::Write)
        })
        .run(target);
        let report = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("later slots waited behind the slow write")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.total.ops, 200);
    }

    #[tokio::test]
    async fn open_loop_issues_the_scheduled_operations() {
        // The deadline cuts the schedule by scheduled time, not by when operations ran: 0.2 s
        // at 5000 ops/s is 1000 slots, however late the machine runs them.
        let target = Arc::new(MemTarget::default());
        let report = Runner::new(RunConfig {
            rate: Some(5000.0),
            duration: Some(Duration::from_millis(200)),
            ..cfg(Workload::B)
        })
        .run(target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.total.ops, 1000);
        assert!(report.total.service_ms.is_some());
    }
}
