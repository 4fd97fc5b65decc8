//! Pieces shared by commands: meta-server addresses, the async runtime, logging, shutdown,
//! confirmation prompts.

use anyhow::Context;
use clap::Args;

/// Where the cluster's meta servers are.
#[derive(Debug, Args, Clone)]
pub struct MetaAddrs {
    /// Meta server addresses, comma-separated `host:port` (any of them; the leader is found).
    #[arg(long = "meta", env = "TERN_META", value_delimiter = ',', value_name = "ADDRS", required = true)]
    pub meta: Vec<String>,
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with_workers(None)
}

/// The async runtime with `workers` worker threads (`None`: one per core).
pub fn runtime_with_workers(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all().build().context("start the async runtime")
}

/// Logs to stderr; `RUST_LOG` (e.g. `info`, `tern_server=debug`) overrides `default`.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: logs redirected to files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
    tracing::info!("shutting down");
}

/// Asks `what [y/N]` on stderr and reads the answer from stdin (what destructive verbs do
/// without `--yes`).
pub fn confirm(what: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    eprint!("{what} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Parses a duration flag like `10s`.
pub fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    tern_core::units::parse_duration(s).map_err(|e| e.to_string())
}

/// Parses a size flag like `256MiB`.
pub fn bytes_arg(s: &str) -> Result<u64, String> {
    tern_core::units::parse_bytes(s).map_err(|e| e.to_string())
}

/// Reads a TOML config file whose keys are the long flag names (kebab-case).
pub fn read_config<T: serde::de::DeserializeOwned + Default>(
    path: Option<&std::path::Path>,
) -> anyhow::Result<T> {
    let Some(path) = path else { return Ok(T::default()) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

/// `10MiB`, `1.5KiB`, `300B`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{v:.0}{}", UNITS[unit])
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

/// A duration for people: `12.3s` under two minutes, then `45.2min`, `30.1h`, `3.2d`.
/// The first name given more than once, if any (for flags that name things: `--cluster`,
/// `--dr-voters`).
pub fn repeated<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

pub fn human_ms(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if ms < 120_000 {
        format!("{s:.1}s")
    } else if ms < 7_200_000 {
        format!("{:.1}min", s / 60.0)
    } else if ms < 172_800_000 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::human_ms;

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(human_ms(4_100), "4.1s");
        assert_eq!(human_ms(119_900), "119.9s");
        assert_eq!(human_ms(600_000), "10.0min");
        assert_eq!(human_ms(86_407_200), "24.0h");
        assert_eq!(human_ms(3 * 86_400_000), "3.0d");
    }
}
