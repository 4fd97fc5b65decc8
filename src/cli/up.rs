//! `tern up` / `tern down`: a local multi-datacenter deployment for trying Tern out, run by
//! `tern_topology::local` (this module parses the flags and prints): by default two clusters
//! ("dc1", "dc2"), each with meta and replica servers as child processes of this binary, a demo
//! table in each and a two-way duplication link between them, and a proxy. State lives in
//! `<dir>/cluster.json`, data in `<dir>/[<cluster>/]<process>/`, logs in `<dir>/logs/`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tern_topology::local::{self, LocalSpec, Running};

use super::common::runtime;

/// Start a local deployment on this machine: by default two clusters ("datacenters" dc1 and dc2,
/// each with meta servers and replica servers as processes), a demo table in each, and a
/// two-way duplication link between them; then wait for Ctrl-C (or return at once with
/// --detach; stop with `tern down`).
#[derive(Debug, Args)]
pub struct UpCmd {
    /// Directory for the deployment's data, logs and state.
    #[arg(long, default_value = "tern-local", env = "TERN_LOCAL_DIR")]
    dir: PathBuf,
    /// Clusters to start (1 to 4). With more than one, every pair gets a two-way duplication
    /// link on the demo table (writes in any cluster reach all others).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=4))]
    clusters: u64,
    /// Meta servers per cluster (1 or 3).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    metas: u64,
    /// Replica servers per cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    replicas: u64,
    /// A table to create in every cluster if it does not exist yet (empty: none).
    #[arg(long, default_value = "demo")]
    table: String,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Return once the cluster is up, leaving it running (stop it with `tern down`).
    #[arg(long)]
    detach: bool,
    /// Worker threads of each replica server (default: this machine's cores shared out among
    /// all the replica servers started, at least 1; see `tern replica --help`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    worker_threads: Option<u64>,
}

/// Stop a local cluster started by `tern up --detach`.
#[derive(Debug, Args)]
pub struct DownCmd {
    #[arg(long, default_value = "tern-local", env = "TERN_LOCAL_DIR")]
    dir: PathBuf,
}

impl UpCmd {
    fn spec(&self) -> anyhow::Result<LocalSpec> {
        let binary = std::env::current_exe().context("find the tern binary")?;
        Ok(LocalSpec {
            clusters: self.clusters,
            metas: self.metas,
            replicas: self.replicas,
            table: self.table.clone(),
            partitions: self.partitions,
            worker_threads: self.worker_threads,
            ..LocalSpec::new(self.dir.clone(), binary)
        })
    }

    pub fn run(self) -> anyhow::Result<()> {
        let spec = self.spec()?;
        let rt = runtime()?;
        let running = rt.block_on(local::up(&spec, |step| eprintln!("{step}")))?;
        self.print(&running);
        if self.detach {
            println!("stop it with: tern down --dir {}", running.dir().display());
            running.detach();
            return Ok(());
        }
        println!("press Ctrl-C to stop");
        rt.block_on(async {
            super::common::shutdown_signal().await;
            running.stop().await;
        });
        println!("stopped");
        Ok(())
    }

    fn print(&self, running: &Running) {
        let clusters = running.clusters();
        println!(
            "Tern is running: {} cluster(s), each with {} meta server(s) and {} replica servers; data and logs in {}",
            self.clusters,
            self.metas,
            self.replicas,
            running.dir().display()
        );
        for c in clusters {
            println!("  cluster {} (id {}): meta servers {}", c.name, c.id, c.meta_addrs().join(","));
        }
        let meta = clusters[0].meta_addrs().join(",");
        if let Some(proxy) = running.proxy() {
            println!(
                "  proxy: {proxy} (the one entry point: table {} is active in {}, standby elsewhere)",
                self.table, clusters[0].name
            );
        }
        if !self.table.is_empty() {
            let entry = running.proxy().map_or_else(|| meta.clone(), str::to_string);
            println!("  try: tern kv --meta {entry} --table {} set user:1 name alice", self.table);
            if let Some(other) = clusters.get(1) {
                let m2 = other.meta_addrs().join(",");
                println!(
                    "       tern kv --meta {m2} --table {} get user:1 name    # duplicated to {}",
                    self.table, other.name
                );
                println!("       tern dup status --meta {meta}");
                println!("       tern table role {} --meta {m2}", self.table);
            } else {
                println!("       tern kv --meta {meta} --table {} get user:1 name", self.table);
            }
        }
        println!("       tern cluster status --meta {meta}");
    }
}

impl DownCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let n = local::down(&self.dir)?;
        println!("sent stop to {n} processes");
        Ok(())
    }
}
