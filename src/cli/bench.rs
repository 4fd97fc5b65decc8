//! `tern bench`: YCSB-like load against a Tern cluster, the echo baseline or etcd, reporting
//! throughput and latency percentiles. The engine is the `tern-bench` crate; this file parses
//! flags and prints. `tern bench-echo-server` (hidden) is the echo baseline's server process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use tern_bench::echo::{EchoServerProcess, EchoTarget};
use tern_bench::etcd::EtcdTarget;
use tern_bench::report::progress_line;
use tern_bench::tern::TernTarget;
use tern_bench::{Distribution, Report, RunConfig, Runner, Workload};

use super::OutputFormat;
use super::common::{bytes_arg, duration_arg, runtime, runtime_with_workers};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load a cluster with YCSB-like workloads and report throughput and latency.
    ///
    /// Workers (--concurrency) issue operations on keys user0000000000.. (sort key `field0`)
    /// with random values. Closed loop by default: each worker sends its next operation when
    /// the previous one answers. With --rate, open loop: operations start on a fixed schedule
    /// and latency counts from the scheduled start, so a stalled server shows up in the
    /// percentiles instead of slowing the load down. A line of progress goes to stderr every
    /// second; the report (text, or one JSON document with --output json) to stdout at the end.
    /// Ctrl-C ends the run early and still reports; a second Ctrl-C aborts.
    ///
    /// Run `--workload load` first so that reads find values. Examples:
    ///
    /// $ tern bench --meta 127.0.0.1:34601 --table bench --workload load
    ///
    /// $ tern bench --meta 127.0.0.1:34601 --table bench --workload a --duration 30s
    ///
    /// $ tern bench --target echo --workload write --duration 10s
    ///
    /// $ tern bench --target etcd --endpoints 127.0.0.1:2379 --workload c --rate 5000
    ///
    /// bench/run.sh runs them all against a local cluster and prints a markdown table.
    Bench(Box<BenchArgs>),
    /// The echo server of `tern bench --target echo`: prints its bound address on stdout,
    /// serves until stdin closes. Started by `tern bench`, not by hand.
    #[command(hide = true)]
    BenchEchoServer(EchoServerArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    /// A Tern cluster (--meta, --table).
    Tern,
    /// A gRPC service that only answers, started as a child process: the RPC ceiling of this
    /// machine.
    Echo,
    /// An etcd v3 cluster (--endpoints): puts and linearizable gets of the same keys and values.
    Etcd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WorkloadArg {
    /// Insert keys 0..N once (each worker a slice, in order); ends when done.
    Load,
    /// 50% read, 50% update.
    A,
    /// 95% read, 5% update.
    B,
    /// 100% read.
    C,
    /// 100% update (set).
    Write,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DistributionArg {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with YCSB's constant 0.99: a few keys take most operations.
    Zipfian,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to load [default: tern].
    // No clap default: `required_if_eq` below ignores defaults, so "absent" must mean tern.
    #[arg(long, value_enum, env = "TERN_BENCH_TARGET")]
    target: Option<TargetKind>,
    /// Meta server addresses of the Tern cluster, comma-separated `host:port` (--target tern).
    #[arg(
        long,
        env = "TERN_META",
        value_delimiter = ',',
        value_name = "ADDRS",
        required_unless_present("target"),
        required_if_eq("target", "tern")
    )]
    meta: Vec<String>,
    /// The table to load (--target tern). It must exist: `tern table create`.
    #[arg(
        long,
        env = "TERN_BENCH_TABLE",
        required_unless_present("target"),
        required_if_eq("target", "tern")
    )]
    table: Option<String>,
    /// etcd client endpoints, comma-separated `host:port` or `http://host:port` (--target etcd).
    #[arg(
        long,
        env = "TERN_BENCH_ETCD_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URLS",
        required_if_eq("target", "etcd")
    )]
    endpoints: Vec<String>,
    /// The operations to issue.
    #[arg(long, value_enum, env = "TERN_BENCH_WORKLOAD")]
    workload: WorkloadArg,
    /// How many keys: `load` inserts keys 0..N, the other workloads pick among them.
    #[arg(long, default_value_t = 100_000, env = "TERN_BENCH_KEYS", value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Size of every value, e.g. `100` or `4KiB`.
    #[arg(long, default_value = "100", env = "TERN_BENCH_VALUE_SIZE", value_name = "BYTES", value_parser = value_size_arg)]
    value_size: usize,
    /// Workers, each with one operation in flight.
    #[arg(long, default_value_t = 64, env = "TERN_BENCH_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// How long to measure, after the warm-up, e.g. `30s`, `5m`. Default 30s, or no time limit
    /// when --ops is given; `load` runs until every key is inserted unless this is given.
    #[arg(long, env = "TERN_BENCH_DURATION", value_parser = duration_arg)]
    duration: Option<Duration>,
    /// Stop after this many measured operations.
    #[arg(long, env = "TERN_BENCH_OPS", value_parser = clap::value_parser!(u64).range(1..))]
    ops: Option<u64>,
    /// Open loop: start operations on a schedule of this many per second in total (each taken
    /// by the first free worker; --concurrency caps how many are outstanding) and measure
    /// latency from each one's scheduled start; the report adds the service time (from the
    /// actual send). Without it: closed loop.
    #[arg(long, env = "TERN_BENCH_RATE", value_name = "OPS_PER_SEC", value_parser = rate_arg)]
    rate: Option<f64>,
    /// Threads of the load generator's runtime (default: one per core). On a machine shared with
    /// the servers under test, fewer leave them more CPU: `bench/run.sh` uses 1.
    #[arg(long, env = "TERN_BENCH_WORKER_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    worker_threads: Option<u64>,
    /// Run this long before measuring (ignored by `load`: every insert counts).
    #[arg(long, default_value = "2s", env = "TERN_BENCH_WARMUP", value_parser = duration_arg)]
    warmup: Duration,
    /// How reads and updates pick keys.
    #[arg(long, value_enum, default_value_t = DistributionArg::Uniform, env = "TERN_BENCH_DISTRIBUTION")]
    distribution: DistributionArg,
    /// Seed of the generator: the same seed gives every worker the same keys and values.
    #[arg(long, default_value_t = 42, env = "TERN_BENCH_SEED")]
    seed: u64,
    /// Measure duplication lag to a peer cluster (--target tern): after the warm-up, write a
    /// probe record to --table every --lag-interval and time how long after its acknowledgement
    /// it is readable through these meta servers (the peer cluster of a `tern dup` link).
    #[arg(long, env = "TERN_BENCH_LAG_PEER_META", value_delimiter = ',', value_name = "ADDRS")]
    lag_peer_meta: Vec<String>,
    /// The peer's table (default: the same name as --table).
    #[arg(long, env = "TERN_BENCH_LAG_PEER_TABLE", requires = "lag_peer_meta")]
    lag_peer_table: Option<String>,
    /// How often a lag probe starts.
    #[arg(long, default_value = "100ms", env = "TERN_BENCH_LAG_INTERVAL", value_parser = duration_arg)]
    lag_interval: Duration,
}

#[derive(Debug, Args)]
pub struct EchoServerArgs {
    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// Values up to 64 MiB (Tern's own limit, 1 MiB by default, is the server's to enforce).
fn value_size_arg(s: &str) -> Result<usize, String> {
    let n = bytes_arg(s)?;
    if n > 64 << 20 {
        return Err(format!("{s:?} is over 64MiB"));
    }
    usize::try_from(n).map_err(|e| e.to_string())
}

fn rate_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a positive number of operations per second")),
    }
}

impl BenchCommand {
    pub fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        match self {
            BenchCommand::Bench(args) => args.run(fmt),
            BenchCommand::BenchEchoServer(a) => {
                Ok(runtime()?.block_on(tern_bench::echo::run_server(a.listen))?)
            }
        }
    }
}

type ProbeTask = (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<tern_bench::LagReport>);

impl BenchArgs {
    /// Starts the duplication lag probe (after `warmup`) if --lag-peer-meta is given.
    fn lag_probe(&self, table: &str, warmup: Duration) -> anyhow::Result<Option<ProbeTask>> {
        if self.lag_peer_meta.is_empty() {
            return Ok(None);
        }
        let client = |meta: &[String]| {
            tern_client::TernClient::new(tern_client::ClientOptions::new(meta.to_vec())).map(Arc::new)
        };
        let probe = tern_bench::LagProbe {
            source: client(&self.meta)?,
            peer: client(&self.lag_peer_meta)?,
            source_table: table.to_string(),
            peer_table: self.lag_peer_table.clone().unwrap_or_else(|| table.to_string()),
            interval: self.lag_interval,
            poll: Duration::from_millis(2),
            deadline: Duration::from_secs(30),
            prefix: format!("lagprobe-{}-", std::process::id()),
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            probe.run(stop_rx).await
        });
        Ok(Some((stop, task)))
    }

    fn config(&self) -> RunConfig {
        let workload = match self.workload {
            WorkloadArg::Load => Workload::Load,
            WorkloadArg::A => Workload::A,
            WorkloadArg::B => Workload::B,
            WorkloadArg::C => Workload::C,
            WorkloadArg::Write => Workload::Write,
        };
        let default_duration =
            (self.ops.is_none() && workload != Workload::Load).then_some(Duration::from_secs(30));
        RunConfig {
            workload,
            keys: self.keys,
            value_size: self.value_size,
            concurrency: self.concurrency,
            duration: self.duration.or(default_duration),
            ops: self.ops,
            rate: self.rate,
            warmup: self.warmup,
            distribution: match self.distribution {
                DistributionArg::Uniform => Distribution::Uniform,
                DistributionArg::Zipfian => Distribution::Zipfian,
            },
            seed: self.seed,
        }
    }

    fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        let cfg = self.config();
        cfg.validate()?;
        // Started before the runtime: spawning and reading its address block.
        let echo = match self.target.unwrap_or(TargetKind::Tern) {
            TargetKind::Echo => {
                let mut cmd = std::process::Command::new(std::env::current_exe()?);
                cmd.args(["bench-echo-server", "--listen", "127.0.0.1:0"]);
                Some(EchoServerProcess::spawn(cmd)?)
            }
            _ => None,
        };
        let mut lag = None;
        let warmup = cfg.warmup;
        let report = runtime_with_workers(self.worker_threads.map(|n| n as usize))?.block_on(async {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("stopping (Ctrl-C again to abort)");
                    let _ = stop_tx.send(true);
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
            let mut runner = Runner::new(cfg).with_stop(stop_rx);
            if fmt == OutputFormat::Text {
                runner = runner.with_progress(|p| eprintln!("{}", progress_line(p)));
            }
            let report: Report = match self.target.unwrap_or(TargetKind::Tern) {
                TargetKind::Tern => {
                    let table = self.table.clone().unwrap_or_default();
                    let probe = self.lag_probe(&table, warmup)?;
                    let report = runner.run(Arc::new(TernTarget::new(self.meta.clone(), table)?)).await?;
                    if let Some((stop, task)) = probe {
                        let _ = stop.send(true);
                        lag = Some(task.await?);
                    }
                    report
                }
                TargetKind::Echo => {
                    let addr = echo
                        .as_ref()
                        .map(EchoServerProcess::addr)
                        .ok_or_else(|| anyhow::anyhow!("the echo server did not start"))?;
                    runner.run(Arc::new(EchoTarget::new(addr, self.value_size)?)).await?
                }
                TargetKind::Etcd => runner.run(Arc::new(EtcdTarget::new(&self.endpoints)?)).await?,
            };
            anyhow::Ok(report)
        });
        drop(echo);
        let report = report?;
        match fmt {
            OutputFormat::Text => {
                print!("{}", report.to_text());
                if let Some(l) = &lag {
                    print!("{}", l.to_text());
                }
            }
            OutputFormat::Json => {
                let mut v = report.to_json();
                if let Some(l) = &lag {
                    v["dup_lag"] = serde_json::to_value(l)?;
                }
                println!("{v}");
            }
        }
        if report.total.ops == 0 && report.total.errors > 0 {
            let codes: Vec<String> =
                report.total.errors_by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
            anyhow::bail!(tern_bench::BenchError::AllFailed(codes.join(", ")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tern").chain(args.iter().copied()))
    }

    #[test]
    fn tern_target_needs_meta_and_table() {
        let e = parse(&["bench", "--workload", "a", "--table", "t"]).unwrap_err();
        assert!(e.to_string().contains("--meta"), "{e}");
        let e = parse(&["bench", "--workload", "a", "--meta", "127.0.0.1:1"]).unwrap_err();
        assert!(e.to_string().contains("--table"), "{e}");
        assert!(parse(&["bench", "--workload", "a", "--meta", "127.0.0.1:1", "--table", "t"]).is_ok());
    }

    #[test]
    fn etcd_target_needs_endpoints_echo_needs_nothing() {
        let e = parse(&["bench", "--target", "etcd", "--workload", "c"]).unwrap_err();
        assert!(e.to_string().contains("--endpoints"), "{e}");
        assert!(parse(&["bench", "--target", "echo", "--workload", "c"]).is_ok());
    }

    #[test]
    fn bad_flags_name_the_flag() {
        for (args, flag) in [
            (&["bench", "--target", "echo", "--workload", "x"][..], "--workload"),
            (&["bench", "--target", "echo", "--workload", "a", "--rate", "0"], "--rate"),
            (&["bench", "--target", "echo", "--workload", "a", "--duration", "soon"], "--duration"),
            (&["bench", "--target", "echo", "--workload", "a", "--value-size", "1PB"], "--value-size"),
            (&["bench", "--target", "echo", "--workload", "a", "--concurrency", "0"], "--concurrency"),
            (&["bench", "--target", "echo", "--workload", "a", "--keys", "0"], "--keys"),
            (&["bench", "--target", "nope", "--workload", "a"], "--target"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.to_string().contains(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn durations_default_by_workload() {
        let cfg = |args: &[&str]| match parse(args).unwrap().command {
            crate::cli::Command::Bench(BenchCommand::Bench(a)) => a.config(),
            other => panic!("{other:?}"),
        };
        let base = ["bench", "--target", "echo", "--workload"];
        let run = cfg(&[&base[..], &["a"]].concat());
        assert_eq!(run.duration, Some(Duration::from_secs(30)));
        assert_eq!(run.warmup, Duration::from_secs(2));
        assert_eq!(run.concurrency, 64);
        assert_eq!(run.keys, 100_000);
        assert_eq!(run.value_size, 100);
        assert_eq!(cfg(&[&base[..], &["load"]].concat()).duration, None);
        assert_eq!(cfg(&[&base[..], &["a", "--ops", "10"]].concat()).duration, None);
        let open =
            cfg(&[&base[..], &["write", "--rate", "2500.5", "--value-size", "1KiB", "--duration", "1m"]]
                .concat());
        assert_eq!(open.rate, Some(2500.5));
        assert_eq!(open.value_size, 1024);
        assert_eq!(open.duration, Some(Duration::from_secs(60)));
    }
}
