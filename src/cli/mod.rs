//! The command-line interface: nouns and verbs, as in `tern kv set` or `tern dr failover`.

mod admin;
mod backup;
mod bench;
mod common;
mod dr;
mod dr_reconcile;
mod drlease;
mod dup;
mod export;
mod kv;
mod proxy;
mod proxy_status;
mod servers;
mod topology;
mod up;

use clap::{Parser, Subcommand, ValueEnum};

pub use kv::KvArgs;

/// Exit code of a command that ran and failed (bad input, an error from the store). Usage
/// errors exit with 2 (clap's convention).
pub const EXIT_FAILED: u8 = 1;

/// A command that ran and printed what it found, and whose exit status says more than "it
/// failed" (`tern dr status`: 3 degraded, 4 unsafe; `tern plan`: 3 changes pending). `main` exits with the code and prints no
/// error line.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Tern: a geo-replicated, multi-cluster key-value store.
///
/// Each datacenter runs a strongly consistent cluster (PacificA replication over RocksDB);
/// clusters replicate to each other asynchronously under last-writer-wins; a meta-proxy is the
/// single entry point for clients. This one binary runs every process and every operator
/// command.
#[derive(Debug, Parser)]
#[command(name = "tern", version = long_version(), propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Output format of commands that print results.
    #[arg(long, value_enum, global = true, default_value_t = OutputFormat::Text, env = "TERN_OUTPUT")]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable text.
    Text,
    /// One JSON document per command, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version and the git commit it was built from.
    Version,
    /// Read and write records: get, set, del, multi-get, incr, cas, scan, ...
    Kv(Box<KvArgs>),
    /// Run a meta server: the cluster's configuration, replicated with Raft among meta servers.
    Meta(Box<servers::MetaCmd>),
    /// Run a replica server: hosts partition replicas, replicates writes, serves clients.
    Replica(Box<servers::ReplicaCmd>),
    /// Create, drop, recall, list and describe tables.
    #[command(subcommand)]
    Table(admin::TableCmd),
    /// Nodes, tables and partition health of one cluster.
    #[command(subcommand)]
    Cluster(admin::ClusterCmd),
    /// Duplication links that ship a table's writes to another cluster: add, list, status,
    /// pause, resume, remove, set-throttle, conflicts.
    #[command(subcommand)]
    Dup(dup::DupCmd),
    Proxy(Box<proxy::ProxyCmd>),
    Witness(Box<drlease::WitnessCmd>),
    /// Disaster recovery: every table's copies across clusters, roles, lag and what a failover
    /// now could lose (status); a planned move (switchover), an unplanned one with a loss report
    /// (failover), shipping the old side's unshipped writes after it (reconcile), comparing
    /// copies (verify), a measured rehearsal (drill).
    #[command(subcommand)]
    Dr(dr::DrCmd),
    Plan(Box<topology::PlanCmd>),
    Apply(Box<topology::ApplyCmd>),
    Up(up::UpCmd),
    /// Write a topology for other deployment tools: Kubernetes manifests (`k8s`) or a Docker
    /// Compose file (`compose`).
    #[command(subcommand)]
    Export(export::ExportCmd),
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    Down(up::DownCmd),
    Ps(up::PsCmd),
    #[command(flatten)]
    Bench(bench::BenchCommand),
}

fn long_version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("TERN_GIT_HASH"), ")")
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            crate::output::version(cli.output, env!("CARGO_PKG_VERSION"), env!("TERN_GIT_HASH"));
            Ok(())
        }
        Command::Kv(args) => kv::run(*args, cli.output),
        Command::Meta(m) => m.run(),
        Command::Replica(r) => r.run(),
        Command::Table(t) => t.run(cli.output),
        Command::Cluster(c) => c.run(cli.output),
        Command::Dup(d) => d.run(cli.output),
        Command::Proxy(p) => p.run(cli.output),
        Command::Witness(w) => w.run(),
        Command::Dr(d) => d.run(cli.output),
        Command::Plan(p) => p.run(cli.output),
        Command::Apply(a) => a.run(cli.output),
        Command::Up(u) => u.run(),
        Command::Export(e) => e.run(),
        Command::Backup(b) => b.run(cli.output),
        Command::Down(d) => d.run(),
        Command::Ps(p) => p.run(cli.output),
        Command::Bench(b) => b.run(cli.output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
