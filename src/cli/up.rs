//! `tern up` / `tern down` / `tern ps`: a local multi-datacenter deployment for trying Tern
//! out, run by `tern_topology::local` (this module parses the flags and prints): a topology
//! file's deployment (`-f FILE`), or the one the flags describe (by default the bundled
//! `topology/examples/two-dc.yaml`), both started and applied by the same code
//! (docs/topology.md, "`tern up`"). State lives in `<dir>/cluster.json`, data in
//! `<dir>/<cluster>/<process>/`, logs in `<dir>/logs/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tern_topology::local::{self, FileSpec, LocalSpec, Running};

use super::common::{duration_arg, runtime};
use super::{Exit, OutputFormat};

/// Exit status of `tern ps` when some process of the deployment does not run.
pub const EXIT_NOT_ALL_RUNNING: u8 = 3;

/// Start a local deployment on this machine and bring it into service: by default two
/// clusters ("datacenters" dc1 and dc2, each with a meta server and three replica servers as
/// processes), table demo active in dc1 and a standby in dc2 with a two-way duplication link,
/// and a proxy in front of both with a Redis gateway; then wait for Ctrl-C (or return at once
/// with --detach; stop with `tern down`).
///
/// The flags describe a topology (the default one is topology/examples/two-dc.yaml); with -f
/// FILE, a topology file's instead: its clusters (names, ids), meta and replica servers at the
/// file's addresses (port 0: a free port, kept for the next run), and its proxies with their
/// Redis gateways. Either way the processes are started, then the topology's tables, roles and
/// links are applied by the same code as `tern apply`, so `up` and `apply` cannot disagree. The
/// topology with the ports picked is written to DIR/topology.yaml (for `tern plan -f`). On a
/// directory where the same deployment runs, it starts nothing and applies again; a directory
/// of another file (or of flags, for -f) is refused. With s3s-fs installed, also a local S3
/// server for backups (DIR/backup.env).
///
/// $ tern up --detach
///
/// $ tern up -f topology/examples/two-dc.yaml --dir tern-file --detach
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
    /// flags below describe.
    #[arg(
        short = 'f',
        long = "file",
        env = "TERN_TOPOLOGY",
        value_name = "FILE",
        conflicts_with_all = ["clusters", "metas", "replicas", "table", "partitions"]
    )]
    file: Option<PathBuf>,
    /// Clusters to start (1 to 4): dc1, dc2, … (one: a single cluster named "local", without a
    /// proxy). With more than one, every pair gets a two-way duplication link on the table
    /// (writes in any cluster reach all others), and one proxy with a Redis gateway fronts them.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=4))]
    clusters: u64,
    /// Meta servers per cluster (1 or 3).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    metas: u64,
    /// Replica servers per cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    replicas: u64,
    /// A table in every cluster, active in the first, a standby elsewhere (empty: none). Its
    /// replicas: --replicas, at most 3.
    #[arg(long, default_value = "demo")]
    table: String,
    /// The table's partitions (fixed once it exists).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
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
    pub fn run(self) -> anyhow::Result<()> {
        let binary = std::env::current_exe().context("find the tern binary")?;
        let s3 = tern_backup::local_s3::find_s3s_fs();
        let rt = runtime()?;
        let progress = |step: &str| eprintln!("{step}");
        let (running, title) = match &self.file {
            Some(file) => {
                let spec = FileSpec {
                    dir: self.dir.clone(),
                    binary,
                    file: file.clone(),
                    topology: super::topology::load(file)?,
                    worker_threads: self.worker_threads,
                    ready_within: self.wait,
                    apply_deadline: APPLY_DEADLINE,
                    s3,
                };
                (rt.block_on(local::up_file(&spec, progress))?, format!("Tern is running {}", file.display()))
            }
            None => {
                let spec = LocalSpec {
                    clusters: self.clusters,
                    metas: self.metas,
                    replicas: self.replicas,
                    table: self.table.clone(),
                    partitions: self.partitions,
                    worker_threads: self.worker_threads,
                    ready_within: self.wait,
                    apply_deadline: APPLY_DEADLINE,
                    s3,
                    ..LocalSpec::new(self.dir.clone(), binary)
                };
                let title = format!(
                    "Tern is running: {} cluster(s), each with {} meta server(s) and {} replica servers",
                    self.clusters, self.metas, self.replicas
                );
                (rt.block_on(local::up(&spec, progress))?, title)
            }
        };
        let mut backups = rt.block_on(backup_target(&running))?;
        // Without a file, `tern up` gives its tables a backup policy on its S3 server.
        backups.policy =
            self.file.is_none() && backups.endpoint.is_some() && !running.topology().tables.is_empty();
        print_banner(&title, &running);
        if let Some(c) = running.clusters().first() {
            let table =
                running.topology().tables.first().map_or_else(|| "TABLE".to_string(), |t| t.name.to_string());
            backups.print(&table, &c.meta_addrs().join(","));
        }
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
}

/// How long each call of the apply that `up` runs may keep trying.
const APPLY_DEADLINE: Duration = Duration::from_secs(10);

/// The banner of `up`: clusters, proxies (native and Redis) and what to try.
fn print_banner(title: &str, running: &Running) {
    let dir = running.dir().display();
    println!("{title}; data and logs in {dir}");
    let clusters = running.clusters();
    for c in clusters {
        println!(
            "  cluster {} (id {}): meta servers {}; replica servers {}",
            c.name,
            c.id,
            c.meta_addrs().join(","),
            c.replicas.values().cloned().collect::<Vec<_>>().join(",")
        );
    }
    let table = running.topology().tables.first();
    for p in running.proxies() {
        let name = if p.name == local::flags::PROXY { String::new() } else { format!(" {}", p.name) };
        let routes = table
            .and_then(|t| Some((t, t.active()?)))
            .map(|(t, a)| format!(": table {} is active in {a}", t.name.as_str()))
            .unwrap_or_default();
        println!("  proxy{name}: {} (the native entry point{routes})", p.listen);
        if let Some(r) = &p.redis {
            let port = r.rsplit_once(':').map_or(r.as_str(), |(_, p)| p);
            println!("    Redis gateway: {r}   try: redis-cli -p {port} set greeting hello");
        }
    }
    let meta_of =
        |name: &str| clusters.iter().find(|c| c.name == name).unwrap_or(&clusters[0]).meta_addrs().join(",");
    if let (Some(t), Some(first)) = (table, clusters.first()) {
        let active = t.active().unwrap_or(first.name.as_str());
        let meta = meta_of(active);
        let entry = running.proxy().map_or_else(|| meta.clone(), str::to_string);
        let name = t.name.as_str();
        println!("  try: tern kv --meta {entry} --table {name} set user:1 name alice");
        if let Some(other) = t.copies.iter().map(|c| c.cluster.as_str()).find(|c| *c != active) {
            let m2 = meta_of(other);
            println!("       tern kv --meta {m2} --table {name} get user:1 name    # duplicated to {other}");
            println!("       tern dup status --meta {meta}");
            println!("       tern table role {name} --meta {m2}");
            println!("       tern dr status --dir {dir} --table {name}");
        } else {
            println!("       tern kv --meta {entry} --table {name} get user:1 name");
        }
    }
    if let Some(first) = clusters.first() {
        println!("       tern cluster status --meta {}", first.meta_addrs().join(","));
    }
    println!("  plan against it: tern plan -f {dir}/{}", local::file::DEPLOYED_FILE);
    println!("  processes: tern ps --dir {dir}");
}

/// The bucket `tern up` creates on its S3 server.
pub const BACKUP_BUCKET: &str = tern_backup::local_s3::DEV_BUCKET;
/// The file `tern up` writes the backup target into, for `set -a; . DIR/backup.env`.
pub const BACKUP_ENV: &str = "backup.env";

/// Where the backups of a local deployment go: its S3 server's bucket, or (without s3s-fs) a
/// directory of the deployment.
struct BackupTarget {
    env_file: PathBuf,
    target: String,
    /// The S3 server's endpoint (`None`: a local directory).
    endpoint: Option<String>,
    /// The tables have `tern up`'s backup policy.
    policy: bool,
}

/// Creates the backup target of `running` (the bucket on its S3 server, else `<dir>/backups`)
/// and writes `<dir>/backup.env` with the variables `tern backup` reads.
async fn backup_target(running: &Running) -> anyhow::Result<BackupTarget> {
    use tern_backup::local_s3::{DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY, ensure_bucket};
    let dir = running.dir();
    // One prefix per deployment's first cluster, as a shared bucket would have one per cluster.
    let cluster = running.clusters().first().map_or("local", |c| c.name.as_str());
    let env_file = dir.join(BACKUP_ENV);
    let (target, endpoint, vars) = match running.s3() {
        Some(addr) => {
            let endpoint = format!("http://{addr}");
            ensure_bucket(&endpoint, BACKUP_BUCKET, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY)
                .await
                .with_context(|| format!("create the backup bucket on the local S3 server {endpoint}"))?;
            let target = format!("s3://{BACKUP_BUCKET}/{cluster}");
            let vars = vec![
                ("TERN_BACKUP_TARGET", target.clone()),
                ("TERN_BACKUP_ENDPOINT", endpoint.clone()),
                ("AWS_ACCESS_KEY_ID", DEV_ACCESS_KEY_ID.to_string()),
                ("AWS_SECRET_ACCESS_KEY", DEV_SECRET_ACCESS_KEY.to_string()),
                ("AWS_REGION", "us-east-1".to_string()),
            ];
            (target, Some(endpoint), vars)
        }
        None => {
            let path = dir.join("backups");
            std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
            let target = path.display().to_string();
            (target.clone(), None, vec![("TERN_BACKUP_TARGET", target)])
        }
    };
    let mut text = String::from(
        "# The backup target of this local deployment (written by `tern up`): `set -a; . THIS_FILE; set +a`\n# then `tern backup now|list|verify|restore` need no target flags. Local development keys only.\n",
    );
    for (k, v) in &vars {
        text.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(&env_file, text).with_context(|| format!("write {}", env_file.display()))?;
    Ok(BackupTarget { env_file, target, endpoint, policy: false })
}

impl BackupTarget {
    fn print(&self, table: &str, meta: &str) {
        use tern_backup::local_s3::{DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY, INSTALL_SCRIPT};
        let env = self.env_file.display();
        match &self.endpoint {
            Some(endpoint) => {
                println!("  backups: S3 server {endpoint}, bucket {BACKUP_BUCKET} (target {})", self.target);
                if self.policy {
                    println!(
                        "    policy {}: every table, every 10 minutes, the newest 6 kept (tern backup policy describe {} --meta {meta})",
                        tern_topology::local::LOCAL_POLICY,
                        tern_topology::local::LOCAL_POLICY
                    );
                }
                println!(
                    "    tern backup now --table {table} --meta {meta} --target {} --endpoint {endpoint} --access-key-id {DEV_ACCESS_KEY_ID} --secret-access-key {DEV_SECRET_ACCESS_KEY}",
                    self.target
                );
                println!("    or: set -a; . {env}; set +a; tern backup now --table {table} --meta {meta}");
                println!(
                    "    AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY={DEV_SECRET_ACCESS_KEY} AWS_REGION=us-east-1 aws --endpoint-url {endpoint} s3 ls --recursive s3://{BACKUP_BUCKET}/"
                );
            }
            None => {
                println!(
                    "  backups: to the directory {} (s3s-fs is not installed: {INSTALL_SCRIPT} installs it, then `tern up` again starts a local S3 server)",
                    self.target
                );
                println!("    tern backup now --table {table} --meta {meta} --target {}", self.target);
                println!("    or: set -a; . {env}; set +a; tern backup now --table {table} --meta {meta}");
            }
        }
    }
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
