//! The command-line interface: nouns and verbs, as in `tern kv set` or `tern dr failover`.

mod kv;
mod planned;

use clap::{Parser, Subcommand, ValueEnum};

pub use kv::KvArgs;

/// Exit code of a command that ran and failed (bad input, an error from the store). Usage
/// errors exit with 2 (clap's convention).
pub const EXIT_FAILED: u8 = 1;

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
    #[command(flatten)]
    Planned(planned::Planned),
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
        Command::Planned(p) => p.run(),
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
