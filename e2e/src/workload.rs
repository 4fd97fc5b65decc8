//! Concurrent writers that record what the cluster acknowledged, and the check that every
//! acknowledged write reads back.
//!
//! Each key is written once, with a value unique to it. A write that returned `Ok` is
//! *acknowledged*: it must be readable with that value forever after. A write that returned an
//! error (timeout, `OUTCOME_UNKNOWN`, transport) is *unknown*: it may or may not have been
//! applied, so it may be absent, but if present it must have its value.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tern_client::TernClient;
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{WriteOp, partition_of};
use tokio::task::JoinHandle;

/// The sort key every workload record uses.
pub const SORT_KEY: &[u8] = b"v";

/// What writers did: key → value, by outcome.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub acked: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Key → (value, the error the write returned).
    pub unknown: BTreeMap<Vec<u8>, (Vec<u8>, String)>,
    /// Writes that failed with an error that is not retryable. The workload's writes are all
    /// valid, so only availability errors (retryable codes) may fail them: anything else is a
    /// misclassified error.
    pub fatal: Vec<String>,
}

impl Ledger {
    pub fn merge(&mut self, other: Ledger) {
        self.acked.extend(other.acked);
        self.unknown.extend(other.unknown);
        self.fatal.extend(other.fatal);
    }

    /// Records a failed write of `key`.
    fn failed(&mut self, key: Vec<u8>, value: Vec<u8>, e: &tern_core::Error, why: String) {
        if !e.is_retryable() {
            self.fatal.push(format!("{}: {why}", String::from_utf8_lossy(&key)));
        }
        self.unknown.insert(key, (value, why));
    }

    /// What a test reports once [`verify`] passed: `N acked, M unknown (K applied)`, where
    /// `applied` is what `verify` returned.
    pub fn summary(&self, applied: usize) -> String {
        format!("{} acked, {} unknown ({applied} applied)", self.acked.len(), self.unknown.len())
    }

    /// Panics if a write failed with an error that is not retryable.
    #[track_caller]
    pub fn assert_no_fatal_errors(&self) {
        assert!(self.fatal.is_empty(), "valid writes failed with non-retryable errors: {:#?}", self.fatal);
    }
}

/// Writers running in tasks, each writing fresh keys one after another as fast as the cluster
/// acknowledges them.
#[derive(Debug)]
pub struct Writers {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<Ledger>>,
    /// Acknowledged writes per partition.
    acks: Arc<Vec<AtomicU64>>,
    errors: Arc<AtomicU64>,
}

impl Writers {
    /// Starts `n` writers on `table` (with `partitions` partitions); keys start with `prefix`.
    pub fn start(client: Arc<TernClient>, table: &str, partitions: u32, n: usize, prefix: &str) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acks: Arc<Vec<AtomicU64>> = Arc::new((0..partitions).map(|_| AtomicU64::new(0)).collect());
        let errors = Arc::new(AtomicU64::new(0));
        let handles = (0..n)
            .map(|w| {
                let (client, stop, acks, errors) =
                    (client.clone(), stop.clone(), acks.clone(), errors.clone());
                let (table, prefix) = (table.to_string(), prefix.to_string());
                tokio::spawn(async move {
                    let mut ledger = Ledger::default();
                    let mut seq = 0u64;
                    let started = std::time::Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let key = format!("{prefix}-w{w}-{seq:06}").into_bytes();
                        let value = format!("{prefix}-w{w}-{seq}-value").into_bytes();
                        match client.write(&table, set(&key, &value)).await {
                            Ok(_) => {
                                acks[partition_of(&key, partitions).0 as usize]
                                    .fetch_add(1, Ordering::Relaxed);
                                ledger.acked.insert(key, value);
                            }
                            Err(e) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                let at = wall_clock();
                                let took = started.elapsed();
                                let why = format!("{e} ({}) at {at} ({took:?} into the run)", e.code());
                                ledger.failed(key, value, &e, why);
                            }
                        }
                    }
                    ledger
                })
            })
            .collect();
        Writers { stop, handles, acks, errors }
    }

    /// Creates `table` in `cluster` (`partitions` partitions of 3 replicas) and starts `n`
    /// writers on it (see [`Writers::start`]); returns once every partition has taken writes.
    pub async fn on_new_table(
        cluster: &crate::Cluster,
        table: &str,
        partitions: u32,
        n: usize,
        prefix: &str,
    ) -> Writers {
        cluster.create_table(table, partitions, 3).await;
        let writers = Writers::start(cluster.client(), table, partitions, n, prefix);
        writers.wait_progress(cluster, &vec![0; partitions as usize], crate::cluster::SETTLE).await;
        writers
    }

    /// Acknowledged writes so far, per partition.
    pub fn acks(&self) -> Vec<u64> {
        self.acks.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    }

    pub fn total_acks(&self) -> u64 {
        self.acks().iter().sum()
    }

    /// Writes that returned an error so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Waits until every partition has more acknowledged writes than in `before` (from
    /// [`Writers::acks`]), i.e. writes flow to every partition again.
    pub async fn wait_progress(&self, cluster: &crate::Cluster, before: &[u64], timeout: Duration) {
        cluster
            .wait_for("acknowledged writes on every partition", timeout, || async {
                let now = self.acks();
                let stuck: Vec<usize> = (0..now.len()).filter(|p| now[*p] <= before[*p]).collect();
                if stuck.is_empty() {
                    Ok(())
                } else {
                    Err(format!("no new acks on partitions {stuck:?} (errors so far: {})", self.errors()))
                }
            })
            .await
    }

    /// Waits until `n` more writes than `since` (from [`Writers::total_acks`]) are acknowledged.
    pub async fn wait_acks(&self, cluster: &crate::Cluster, since: u64, n: u64, timeout: Duration) {
        cluster
            .wait_for(&format!("{n} more acknowledged writes"), timeout, || async {
                let got = self.total_acks() - since;
                if got >= n { Ok(()) } else { Err(format!("{got} (errors so far: {})", self.errors())) }
            })
            .await
    }

    /// Stops the writers (each finishes the write it is doing) and returns what they did.
    pub async fn stop(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Ledger::default();
        for h in self.handles {
            all.merge(h.await.unwrap_or_else(|e| panic!("a writer task failed: {e}")));
        }
        all
    }
}

/// Seconds since the epoch with milliseconds, to find a moment in the servers' logs.
fn wall_clock() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}s since the epoch", d.as_secs(), d.subsec_millis())
}

/// A set of hash key `k{i}`, sort key `s`, value `v`: the small numbered writes the proxy and
/// failover scenarios count.
pub fn numbered_set(i: u64) -> WriteOp {
    set_op(format!("k{i}"), "s", "v", 0)
}

/// A set of one record (`ttl_secs` 0: no expiry).
pub fn set_op(
    hash_key: impl Into<Vec<u8>>,
    sort_key: impl Into<Vec<u8>>,
    value: impl Into<Vec<u8>>,
    ttl_secs: u32,
) -> WriteOp {
    WriteOp::Set { hash_key: hash_key.into(), sort_key: sort_key.into(), value: value.into(), ttl_secs }
}

/// The write of a workload: `key` (sort key [`SORT_KEY`]) set to `value`, no TTL.
fn set(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Set { hash_key: key.to_vec(), sort_key: SORT_KEY.to_vec(), value: value.to_vec(), ttl_secs: 0 }
}

/// Writes `n` fresh keys (`PREFIX-NNNNNN`) to `table`, a few at a time, and returns what was
/// acknowledged.
pub async fn write_batch(client: &Arc<TernClient>, table: &str, prefix: &str, n: usize) -> Ledger {
    const IN_FLIGHT: usize = 8;
    let mut tasks = Vec::new();
    for lane in 0..IN_FLIGHT {
        let (client, table, prefix) = (client.clone(), table.to_string(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let mut ledger = Ledger::default();
            for i in (lane..n).step_by(IN_FLIGHT) {
                let key = format!("{prefix}-{i:06}").into_bytes();
                let value = format!("{prefix}-{i}-value").into_bytes();
                match client.write(&table, set(&key, &value)).await {
                    Ok(_) => {
                        ledger.acked.insert(key, value);
                    }
                    Err(e) => {
                        let why = format!("{e} ({})", e.code());
                        ledger.failed(key, value, &e, why);
                    }
                }
            }
            ledger
        }));
    }
    let mut all = Ledger::default();
    for t in tasks {
        all.merge(t.await.unwrap_or_else(|e| panic!("a writer task failed: {e}")));
    }
    all
}

/// Reads back every key of `ledger` from `table` and panics, listing them, if an acknowledged
/// write is missing or wrong, or an unknown one holds another value. Returns how many unknown
/// writes turned out applied.
pub async fn verify(client: &Arc<TernClient>, table: &str, ledger: &Ledger) -> usize {
    let partitions =
        client.route(table, true).await.unwrap_or_else(|e| panic!("route of {table}: {e}")).partitions;
    let mut keys: Vec<(Vec<u8>, Vec<u8>, bool)> =
        ledger.acked.iter().map(|(k, v)| (k.clone(), v.clone(), true)).collect();
    keys.extend(ledger.unknown.iter().map(|(k, (v, _))| (k.clone(), v.clone(), false)));
    // A few readers in parallel, each over a slice.
    const READERS: usize = 8;
    let chunk = keys.len().div_ceil(READERS).max(1);
    let mut tasks = Vec::new();
    for part in keys.chunks(chunk) {
        let (client, table, part) = (client.clone(), table.to_string(), part.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut problems = Vec::new();
            let mut applied_unknown = 0;
            for (key, value, acked) in part {
                let op = ReadOp::Get { hash_key: key.clone(), sort_key: SORT_KEY.to_vec() };
                let shown = String::from_utf8_lossy(&key).into_owned();
                let p = partition_of(&key, partitions).0;
                match client.read(&table, op).await {
                    Ok(ReadResult::Get(Some(v))) if v == value => applied_unknown += usize::from(!acked),
                    Ok(ReadResult::Get(None)) if !acked => {}
                    Ok(ReadResult::Get(None)) => {
                        problems.push(format!("{shown} (partition {p}): acked, missing"))
                    }
                    Ok(ReadResult::Get(Some(v))) => problems.push(format!(
                        "{shown} (partition {p}): holds {:?}, wrote {:?}",
                        String::from_utf8_lossy(&v),
                        String::from_utf8_lossy(&value)
                    )),
                    Ok(other) => problems.push(format!("{shown}: a get returned {other:?}")),
                    Err(e) => {
                        problems.push(format!("{shown} (partition {p}): read failed: {e} ({})", e.code()))
                    }
                }
            }
            (problems, applied_unknown)
        }));
    }
    let mut problems = Vec::new();
    let mut applied_unknown = 0;
    for t in tasks {
        let (p, a) = t.await.unwrap_or_else(|e| panic!("a reader task failed: {e}"));
        problems.extend(p);
        applied_unknown += a;
    }
    if !problems.is_empty() {
        problems.sort();
        panic!(
            "{} of {} acknowledged and {} unknown writes do not read back right; first ones:\n  {}",
            problems.len(),
            ledger.acked.len(),
            ledger.unknown.len(),
            problems.iter().take(30).cloned().collect::<Vec<_>>().join("\n  ")
        );
    }
    applied_unknown
}
