//! Measurements and the report: per-operation-kind HDR histograms of latency (microseconds),
//! error counts by code, and their rendering as a text table or one JSON document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::OpError;
use crate::runner::{Progress, ReadOutcome, RunConfig};
use crate::workload::OpKind;

/// Latencies above this are recorded as this (10 minutes, in microseconds).
const MAX_LATENCY_US: u64 = 600_000_000;

fn new_histogram() -> Histogram<u64> {
    // 3 significant digits: percentiles are exact to 0.1%.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// What one operation kind measured.
#[derive(Clone, Debug)]
pub struct KindStats {
    /// Latency of successful operations: from the scheduled start in an open loop, from the
    /// send in a closed loop.
    pub latency: Histogram<u64>,
    /// Open loop only: from the actual send (what the server and network took).
    pub service: Option<Histogram<u64>>,
    pub errors: BTreeMap<&'static str, u64>,
    pub misses: u64,
}

impl KindStats {
    fn new(open_loop: bool) -> KindStats {
        KindStats {
            latency: new_histogram(),
            service: open_loop.then(new_histogram),
            errors: BTreeMap::new(),
            misses: 0,
        }
    }

    fn merge(&mut self, other: &KindStats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        if let (Some(a), Some(b)) = (&mut self.service, &other.service) {
            let _ = a.add(b);
        }
        for (code, n) in &other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.misses += other.misses;
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Everything a worker (or, merged, the run) measured. Kinds are created on first use so that
/// 64 workers do not each carry histograms they never fill.
#[derive(Clone, Debug)]
pub struct RunStats {
    open_loop: bool,
    kinds: [Option<KindStats>; 3],
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl RunStats {
    pub fn new(open_loop: bool) -> RunStats {
        RunStats { open_loop, kinds: [None, None, None] }
    }

    fn kind_mut(&mut self, kind: OpKind) -> &mut KindStats {
        let open_loop = self.open_loop;
        self.kinds[kind.index()].get_or_insert_with(|| KindStats::new(open_loop))
    }

    pub fn kind(&self, kind: OpKind) -> Option<&KindStats> {
        self.kinds[kind.index()].as_ref()
    }

    /// Records one operation: `latency` from its intended start, `service` from its send.
    pub fn record(
        &mut self,
        kind: OpKind,
        result: Result<ReadOutcome, OpError>,
        latency: Duration,
        service: Duration,
    ) {
        let s = self.kind_mut(kind);
        match result {
            Ok(outcome) => {
                s.latency.saturating_record(micros(latency));
                if let Some(h) = &mut s.service {
                    h.saturating_record(micros(service));
                }
                if outcome == ReadOutcome::Missing {
                    s.misses += 1;
                }
            }
            Err(e) => *s.errors.entry(e.code).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: &RunStats) {
        for kind in OpKind::ALL {
            if let Some(o) = other.kind(kind) {
                self.kind_mut(kind).merge(o);
            }
        }
    }

    /// All kinds together.
    fn total(&self) -> Option<KindStats> {
        let mut all: Option<KindStats> = None;
        for s in self.kinds.iter().flatten() {
            match &mut all {
                None => all = Some(s.clone()),
                Some(a) => a.merge(s),
            }
        }
        all
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency { p50: 0.0, p99: 0.0, p999: 0.0, max: 0.0, mean: 0.0 };
        }
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// The numbers of one operation kind, or of all together.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpSummary {
    /// Successful operations (reads of absent keys included, see `misses`).
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations by code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Reads that found no value (the key was never written).
    pub misses: u64,
    /// Successful operations per second of the measured time.
    pub throughput_ops_per_sec: f64,
    /// Latency of successful operations (in an open loop, from the scheduled start).
    pub latency_ms: Latency,
    /// Open loop only: latency from the actual send, without the time spent waiting behind
    /// earlier operations of the same worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_ms: Option<Latency>,
}

impl OpSummary {
    fn of(s: &KindStats, elapsed: Duration) -> OpSummary {
        let ops = s.latency.len();
        let secs = elapsed.as_secs_f64();
        OpSummary {
            ops,
            errors: s.error_count(),
            errors_by_code: s.errors.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            misses: s.misses,
            throughput_ops_per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
            latency_ms: Latency::of(&s.latency),
            service_ms: s.service.as_ref().map(Latency::of),
        }
    }
}

/// The result of one run: what ran, and what it measured. Serialized as is for `--output json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub target: String,
    pub workload: String,
    /// The workload's mix, e.g. "95% read / 5% update".
    pub mix: String,
    pub distribution: String,
    pub keys: u64,
    pub value_size_bytes: usize,
    pub concurrency: u32,
    /// `closed` (each worker back to back) or `open` (paced at `rate_ops_per_sec`).
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_ops_per_sec: Option<f64>,
    pub warmup_secs: f64,
    /// The measured time (after the warm-up).
    pub elapsed_secs: f64,
    /// The run was interrupted (Ctrl-C) before its end.
    pub stopped_early: bool,
    pub seed: u64,
    /// All operation kinds together.
    pub total: OpSummary,
    /// By operation kind: `read`, `update`, `insert`.
    pub ops: BTreeMap<String, OpSummary>,
}

impl Report {
    pub fn new(
        target: &str,
        cfg: &RunConfig,
        elapsed: Duration,
        stopped_early: bool,
        stats: &RunStats,
    ) -> Report {
        let empty = KindStats::new(cfg.rate.is_some());
        let total = stats.total().unwrap_or(empty);
        Report {
            target: target.to_string(),
            workload: cfg.workload.name().to_string(),
            mix: cfg.workload.describe().to_string(),
            distribution: cfg.distribution.name().to_string(),
            keys: cfg.keys,
            value_size_bytes: cfg.value_size,
            concurrency: cfg.concurrency,
            mode: if cfg.rate.is_some() { "open" } else { "closed" }.to_string(),
            rate_ops_per_sec: cfg.rate,
            warmup_secs: if cfg.workload == crate::Workload::Load { 0.0 } else { cfg.warmup.as_secs_f64() },
            elapsed_secs: elapsed.as_secs_f64(),
            stopped_early,
            seed: cfg.seed,
            total: OpSummary::of(&total, elapsed),
            ops: OpKind::ALL
                .iter()
                .filter_map(|k| stats.kind(*k).map(|s| (k.name().to_string(), OpSummary::of(s, elapsed))))
                .collect(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The report as a readable table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mode = match self.rate_ops_per_sec {
            None => "closed loop".to_string(),
            Some(r) => format!("open loop at {r} ops/s"),
        };
        let _ = writeln!(
            out,
            "target {}, workload {} ({}), {} keys {}, {}-byte values, {} workers, {}",
            self.target,
            self.workload,
            self.mix,
            self.keys,
            self.distribution,
            self.value_size_bytes,
            self.concurrency,
            mode
        );
        let _ = writeln!(
            out,
            "measured {:.1} s{}{}",
            self.elapsed_secs,
            if self.warmup_secs > 0.0 {
                format!(" after {:.1} s of warm-up", self.warmup_secs)
            } else {
                String::new()
            },
            if self.stopped_early { " (stopped early)" } else { "" }
        );
        if self.rate_ops_per_sec.is_some() {
            let _ =
                writeln!(out, "latency from each operation's scheduled start (service time: from its send)");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<8} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "op", "ops", "errors", "ops/s", "p50 ms", "p99 ms", "p999 ms", "max ms"
        );
        let row = |out: &mut String, name: &str, s: &OpSummary, l: &Latency| {
            let _ = writeln!(
                out,
                "{:<8} {:>10} {:>8} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name, s.ops, s.errors, s.throughput_ops_per_sec, l.p50, l.p99, l.p999, l.max
            );
        };
        for (name, s) in &self.ops {
            row(&mut out, name, s, &s.latency_ms);
        }
        if self.ops.len() > 1 {
            row(&mut out, "total", &self.total, &self.total.latency_ms);
        }
        if self.rate_ops_per_sec.is_some() {
            let _ = writeln!(out, "service time:");
            for (name, s) in &self.ops {
                if let Some(l) = &s.service_ms {
                    row(&mut out, name, s, l);
                }
            }
        }
        for (name, s) in &self.ops {
            if !s.errors_by_code.is_empty() {
                let codes: Vec<String> = s.errors_by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
                let _ = writeln!(out, "{name} errors: {}", codes.join(", "));
            }
            if s.misses > 0 {
                let _ = writeln!(out, "{name}: {} of {} found no value (key never written)", s.misses, s.ops);
            }
        }
        out
    }
}

/// One progress line for stderr.
pub fn progress_line(p: &Progress) -> String {
    format!(
        "[{:>4}s] {:>9.0} ops/s{}  {} ops, {} errors",
        p.elapsed.as_secs(),
        p.ops_per_sec,
        if p.warming_up { " (warm-up)" } else { "" },
        p.ops,
        p.errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Distribution, Workload};

    fn cfg(rate: Option<f64>) -> RunConfig {
        RunConfig {
            workload: Workload::A,
            keys: 1000,
            value_size: 100,
            concurrency: 8,
            duration: Some(Duration::from_secs(10)),
            ops: None,
            rate,
            warmup: Duration::from_secs(2),
            distribution: Distribution::Uniform,
            seed: 42,
        }
    }

    /// 1000 reads of 1..=1000 µs and 10 updates: 9 at 2 ms, one failing with TIMEOUT.
    fn stats(open_loop: bool) -> RunStats {
        let mut s = RunStats::new(open_loop);
        for us in 1..=1000u64 {
            let outcome = if us % 100 == 0 { ReadOutcome::Missing } else { ReadOutcome::Found };
            s.record(OpKind::Read, Ok(outcome), Duration::from_micros(us), Duration::from_micros(us / 2));
        }
        let mut other = RunStats::new(open_loop);
        for _ in 0..9 {
            let d = Duration::from_millis(2);
            other.record(OpKind::Update, Ok(ReadOutcome::Found), d, d);
        }
        other.record(OpKind::Update, Err(OpError::TIMEOUT), Duration::from_secs(10), Duration::from_secs(10));
        s.merge(&other);
        s
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let s = stats(false);
        let l = Latency::of(&s.kind(OpKind::Read).map(|k| k.latency.clone()).unwrap_or_else(new_histogram));
        // HdrHistogram with 3 significant digits: values within 0.1%.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-9;
        assert!(close(l.p50, 0.500), "{l:?}");
        assert!(close(l.p99, 0.990), "{l:?}");
        assert!(close(l.p999, 0.999), "{l:?}");
        assert!(close(l.max, 1.000), "{l:?}");
        assert!((l.mean - 0.5005).abs() < 0.001, "{l:?}");
        assert_eq!(Latency::of(&new_histogram()).p99, 0.0);
    }

    #[test]
    fn latencies_past_the_histogram_bound_saturate() {
        let mut s = RunStats::new(false);
        s.record(OpKind::Read, Ok(ReadOutcome::Found), Duration::from_secs(3600), Duration::ZERO);
        let max = s.kind(OpKind::Read).map(|k| k.latency.max()).unwrap_or(0);
        assert!((MAX_LATENCY_US..=MAX_LATENCY_US + MAX_LATENCY_US / 1000).contains(&max), "{max}");
    }

    #[test]
    fn report_counts_ops_errors_misses_and_throughput() {
        let r = Report::new("tern", &cfg(None), Duration::from_secs(10), false, &stats(false));
        assert_eq!(r.ops["read"].ops, 1000);
        assert_eq!(r.ops["read"].misses, 10);
        assert_eq!(r.ops["update"].ops, 9);
        assert_eq!(r.ops["update"].errors, 1);
        assert_eq!(r.ops["update"].errors_by_code["TIMEOUT"], 1);
        assert_eq!(r.total.ops, 1009);
        assert_eq!(r.total.errors, 1);
        assert!((r.total.throughput_ops_per_sec - 100.9).abs() < 1e-9);
        assert!(!r.ops.contains_key("insert"));
        // The failed update's 10 s is not a latency.
        assert!(r.ops["update"].latency_ms.max < 2.01);
    }

    #[test]
    fn json_shape() {
        let r = Report::new("tern", &cfg(None), Duration::from_secs(10), false, &stats(false));
        let j = r.to_json();
        for field in [
            "target",
            "workload",
            "mix",
            "distribution",
            "keys",
            "value_size_bytes",
            "concurrency",
            "mode",
            "warmup_secs",
            "elapsed_secs",
            "stopped_early",
            "seed",
            "total",
            "ops",
        ] {
            assert!(j.get(field).is_some(), "missing {field} in {j}");
        }
        assert_eq!(j["target"], "tern");
        assert_eq!(j["workload"], "a");
        assert_eq!(j["mode"], "closed");
        assert!(j.get("rate_ops_per_sec").is_none());
        let read = &j["ops"]["read"];
        for field in ["ops", "errors", "errors_by_code", "misses", "throughput_ops_per_sec", "latency_ms"] {
            assert!(read.get(field).is_some(), "missing ops.read.{field} in {read}");
        }
        for p in ["p50", "p99", "p999", "max", "mean"] {
            assert!(read["latency_ms"][p].is_f64(), "latency_ms.{p}");
        }
        assert!(read.get("service_ms").is_none(), "closed loop has no service time");
        assert_eq!(j["ops"]["update"]["errors_by_code"]["TIMEOUT"], 1);
        assert_eq!(j["total"]["ops"], 1009);

        let open =
            Report::new("etcd", &cfg(Some(500.0)), Duration::from_secs(10), true, &stats(true)).to_json();
        assert_eq!(open["mode"], "open");
        assert_eq!(open["rate_ops_per_sec"], 500.0);
        assert_eq!(open["stopped_early"], true);
        assert!(open["ops"]["read"]["service_ms"]["p99"].is_f64());
        // Service time excludes the wait: half the latency here.
        assert!(
            open["ops"]["read"]["service_ms"]["p50"].as_f64()
                < open["ops"]["read"]["latency_ms"]["p50"].as_f64()
        );
    }

    #[test]
    fn text_table() {
        let text = Report::new("tern", &cfg(None), Duration::from_secs(10), false, &stats(false)).to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "target tern, workload a (50% read / 50% update), 1000 keys uniform, 100-byte values, 8 workers, closed loop"
        );
        assert_eq!(lines[1], "measured 10.0 s after 2.0 s of warm-up");
        assert_eq!(
            lines[3],
            "op              ops   errors      ops/s    p50 ms    p99 ms   p999 ms    max ms"
        );
        assert_eq!(
            lines[4],
            "read           1000        0        100     0.500     0.990     0.999     1.000"
        );
        assert_eq!(
            lines[5],
            "update            9        1          1     2.000     2.000     2.000     2.000"
        );
        assert!(lines[6].starts_with("total          1009        1        101"), "{}", lines[6]);
        assert_eq!(lines[7], "read: 10 of 1000 found no value (key never written)");
        assert_eq!(lines[8], "update errors: TIMEOUT 1");

        let open =
            Report::new("tern", &cfg(Some(500.0)), Duration::from_secs(10), false, &stats(true)).to_text();
        assert!(open.contains("open loop at 500 ops/s"), "{open}");
        assert!(open.contains("service time:"), "{open}");
    }

    #[test]
    fn progress_lines() {
        let p = Progress {
            elapsed: Duration::from_secs(3),
            warming_up: true,
            ops: 1234,
            errors: 0,
            ops_per_sec: 411.6,
        };
        assert_eq!(progress_line(&p), "[   3s]       412 ops/s (warm-up)  1234 ops, 0 errors");
    }
}
