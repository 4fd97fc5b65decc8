//! `tern up` / `tern down` / `tern ps`: a local multi-datacenter deployment for trying Tern
//! out, run by `tern_topology::local` (this module parses the flags and prints): by default two
//! clusters ("dc1", "dc2"), each with meta and replica servers as child processes of this
//! binary, a demo table in each and a two-way duplication link between them, and a proxy; with
//! `-f FILE`, a topology file's deployment (docs/topology.md, "`tern up -f`"). State lives in
//! `<dir>/cluster.json`, data in `<dir>/[<cluster>/]<process>/`, logs in `<dir>/logs/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tern_topology::local::{self, FileSpec, LocalSpec, Running};

use super::common::{duration_arg, runtime};
use super::{Exit, OutputFormat};

/// Exit status of `tern ps` when some process of the deployment does not run.
pub const EXIT_NOT_ALL_RUNNING: u8 = 3;

/// Start a local deployment on this machine: by default two clusters ("datacenters" dc1 and dc2,
/// each with meta servers and replica servers as processes), a demo table in each, and a
/// two-way duplication link between them; then wait for Ctrl-C (or return at once with
/// --detach; stop with `tern down`).
///
/// With -f FILE, the deployment a topology file describes: its clusters (names, ids), meta and
/// replica servers at the file's addresses (port 0: a free port, kept for the next run), and
/// its proxies with their Redis gateways; then the file's tables, roles and links are applied
/// by the same code as `tern apply`. The file with the ports picked is written to
/// DIR/topology.yaml (for `tern plan -f`). On a directory where the same file already runs, it
/// starts nothing and applies the file again; another file's directory is refused.
///
/// $ tern up -f topology/examples/two-dc.yaml --detach
///
/// $ tern ps
///
/// $ tern down
#[derive(Debug, Args)]
pub struct UpCmd {
    /// Directory for the deployment's data, logs and state.
    #[arg(long, default_value = "tern-local", env = "TERN_LOCAL_DIR")]
    dir: PathBuf,
    /// Run this topology file's deployment (YAML; see docs/topology.md) instead of the one the
    /// flags describe.
    #[arg(
        short = 'f',
        long = "file",
        env = "TERN_TOPOLOGY",
        value_name = "FILE",
        conflicts_with_all = ["clusters", "metas", "replicas", "table", "partitions"]
    )]
    file: Option<PathBuf>,
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
    /// How long each wait may take (servers joining, links starting, DR leases).
    #[arg(long, default_value = "60s", value_parser = duration_arg, value_name = "DURATION", env = "TERN_UP_WAIT")]
    wait: Duration,
}

/// Stop a local deployment started by `tern up --detach`: every process, proxies included.
/// Returns once none of them runs (one that ignores the stop for 30 s is killed); the data and
/// ports stay for the next `tern up`.
#[derive(Debug, Args)]
pub struct DownCmd {
    /// The deployment's directory.
    #[arg(long, default_value = "tern-local", env = "TERN_LOCAL_DIR")]
    dir: PathBuf,
}

/// List the processes of a local deployment (`tern up`): name, cluster, role, pid, address,
/// whether it runs, and its log.
///
/// Exit status: 0 every process runs; 3 some do not (after `tern down`: none); 1 no deployment
/// in the directory.
#[derive(Debug, Args)]
pub struct PsCmd {
    /// The deployment's directory.
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
            ready_within: self.wait,
            ..LocalSpec::new(self.dir.clone(), binary)
        })
    }

    pub fn run(self) -> anyhow::Result<()> {
        if let Some(file) = self.file.clone() {
            return self.run_file(file);
        }
        let spec = self.spec()?;
        let rt = runtime()?;
        let running = rt.block_on(local::up(&spec, |step| eprintln!("{step}")))?;
        self.print(&running);
        self.wait_or_detach(&rt, running)
    }

    fn run_file(self, file: PathBuf) -> anyhow::Result<()> {
        let topology = super::topology::load(&file)?;
        let spec = FileSpec {
            dir: self.dir.clone(),
            binary: std::env::current_exe().context("find the tern binary")?,
            file,
            topology,
            worker_threads: self.worker_threads,
            ready_within: self.wait,
            apply_deadline: Duration::from_secs(10),
        };
        let rt = runtime()?;
        let running = rt.block_on(local::up_file(&spec, |step| eprintln!("{step}")))?;
        print_file(&spec, &running);
        if running.adopted() {
            println!(
                "it was already running: nothing was started (stop it with: tern down --dir {})",
                running.dir().display()
            );
            return Ok(());
        }
        self.wait_or_detach(&rt, running)
    }

    fn wait_or_detach(&self, rt: &tokio::runtime::Runtime, running: Running) -> anyhow::Result<()> {
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

/// The banner of `up -f`: clusters, proxies (native and Redis) and what to try.
fn print_file(spec: &FileSpec, running: &Running) {
    let dir = running.dir().display();
    println!("Tern is running {}: data and logs in {dir}", spec.file.display());
    for c in running.clusters() {
        println!(
            "  cluster {} (id {}): meta servers {}; replica servers {}",
            c.name,
            c.id,
            c.meta_addrs().join(","),
            c.replicas.values().cloned().collect::<Vec<_>>().join(",")
        );
    }
    let table = spec.topology.tables.first().map(|t| t.name.to_string());
    for p in running.proxies() {
        println!("  proxy {}: {} (the native entry point)", p.name, p.listen);
        if let Some(r) = &p.redis {
            let port = r.rsplit_once(':').map_or(r.as_str(), |(_, p)| p);
            println!("    Redis gateway: {r}   try: redis-cli -p {port} set greeting hello");
        }
    }
    let entry = running
        .proxies()
        .first()
        .map(|p| p.listen.clone())
        .or_else(|| running.clusters().first().map(|c| c.meta_addrs().join(",")));
    if let (Some(entry), Some(table)) = (entry, table) {
        println!("  try: tern kv --meta {entry} --table {table} set user:1 name alice");
    }
    println!("  plan against it: tern plan -f {dir}/{}", local::file::DEPLOYED_FILE);
    println!("  processes: tern ps --dir {dir}");
}

impl DownCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let n = local::down(&self.dir)?;
        println!(
            "stopped {n} processes of {}; none runs now (the data stays for the next tern up)",
            self.dir.display()
        );
        Ok(())
    }
}

impl PsCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let list = local::ps(&self.dir)?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
            OutputFormat::Text => {
                let rows: Vec<[String; 7]> = list
                    .iter()
                    .map(|s| {
                        let p = &s.process;
                        [
                            p.name.clone(),
                            p.cluster.clone().unwrap_or_else(|| "-".into()),
                            p.role.to_string(),
                            p.pid.to_string(),
                            p.addr.clone(),
                            if s.alive { "yes".into() } else { "no".into() },
                            p.log.display().to_string(),
                        ]
                    })
                    .collect();
                let head = ["NAME", "CLUSTER", "ROLE", "PID", "ADDRESS", "ALIVE", "LOG"].map(String::from);
                let mut widths = head.clone().map(|h| h.len());
                for r in &rows {
                    for (w, c) in widths.iter_mut().zip(r) {
                        *w = (*w).max(c.len());
                    }
                }
                for r in std::iter::once(&head).chain(&rows) {
                    let cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
                    println!("{}", cells.join("  ").trim_end());
                }
            }
        }
        if list.iter().all(|s| s.alive) { Ok(()) } else { Err(Exit(EXIT_NOT_ALL_RUNNING).into()) }
    }
}
