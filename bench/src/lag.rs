//! Duplication lag, measured from outside: while a workload runs against one cluster, a probe
//! writes a fresh record there every `interval` and times how long after the write was
//! acknowledged it becomes readable in a peer cluster (polled every `poll`). It measures what
//! a user sees (shipping, the peer's 2PC, routing), not what `tern dup status` reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tern_client::TernClient;
use tern_core::WriteOp;
use tern_core::read::{ReadOp, ReadResult};
use tokio::sync::{mpsc, watch};

/// How one probe ended.
enum Probe {
    Seen(Duration),
    /// Not readable in the peer within the deadline.
    Missing,
    /// The write to the source failed (not counted as lag).
    WriteFailed,
}

/// What the probe measured, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LagReport {
    pub probes: u64,
    pub seen: u64,
    /// Probes not readable in the peer within `deadline_secs`.
    pub missing: u64,
    pub write_failures: u64,
    pub deadline_secs: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LagReport {
    pub fn to_text(&self) -> String {
        format!(
            "duplication lag (write acknowledged in the source -> readable in the peer): {} probes, \
             {} seen, {} missing after {:.0} s, {} writes failed; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
            self.probes,
            self.seen,
            self.missing,
            self.deadline_secs,
            self.write_failures,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

/// The probe's settings.
#[derive(Clone, Debug)]
pub struct LagProbe {
    pub source: Arc<TernClient>,
    pub peer: Arc<TernClient>,
    pub source_table: String,
    pub peer_table: String,
    /// A new probe this often.
    pub interval: Duration,
    /// Each probe reads the peer this often until it sees its record.
    pub poll: Duration,
    /// A probe not seen within this is counted missing.
    pub deadline: Duration,
    /// Probe keys are `<prefix><n>`: distinct per run, so no probe sees an older one.
    pub prefix: String,
}

impl LagProbe {
    /// Probes until `stop` turns true, then waits for the probes in flight and reports.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> LagReport {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            n += 1;
            let (p, tx) = (self.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send(p.one(n).await);
            });
        }
        drop(tx);
        let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        let mut r = LagReport { deadline_secs: self.deadline.as_secs_f64(), ..Default::default() };
        while let Some(p) = rx.recv().await {
            r.probes += 1;
            match p {
                Probe::Seen(d) => {
                    r.seen += 1;
                    let _ = hist.record((d.as_micros() as u64).max(1));
                }
                Probe::Missing => r.missing += 1,
                Probe::WriteFailed => r.write_failures += 1,
            }
        }
        if r.seen > 0 {
            let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
            (r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms) =
                (ms(0.5), ms(0.9), ms(0.99), hist.max() as f64 / 1000.0);
        }
        r
    }

    async fn one(&self, n: u64) -> Probe {
        let key = format!("{}{n}", self.prefix).into_bytes();
        let write =
            WriteOp::Set { hash_key: key.clone(), sort_key: b"lag".to_vec(), value: vec![1], ttl_secs: 0 };
        if self.source.write(&self.source_table, write).await.is_err() {
            return Probe::WriteFailed;
        }
        let acked = Instant::now();
        let read = ReadOp::Get { hash_key: key, sort_key: b"lag".to_vec() };
        while acked.elapsed() < self.deadline {
            if let Ok(ReadResult::Get(Some(_))) = self.peer.read(&self.peer_table, read.clone()).await {
                return Probe::Seen(acked.elapsed());
            }
            tokio::time::sleep(self.poll).await;
        }
        Probe::Missing
    }
}
