//! `tern up` / `tern down`: a local multi-datacenter deployment for trying Tern out: by default
//! two clusters ("dc1", "dc2", cluster ids 1 and 2), each with meta and replica servers as child
//! processes of this binary, a demo table in each and a two-way duplication link between them.
//! `--clusters 1` starts one cluster ("local"). State (ports, pids) lives in
//! `<dir>/cluster.json`; data in `<dir>/[<cluster>/]<process>/`, logs in `<dir>/logs/`. Running
//! `tern up` again on the same directory reuses the ports, the data and the links.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use tern_client::MetaClient;
use tern_proto::pb;

use super::common::{available_cores, runtime};

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

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The first cluster's servers (at the top level, so scripts written for one cluster keep
    /// reading `.metas`).
    metas: BTreeMap<u64, String>,
    replicas: BTreeMap<u64, String>,
    /// Every process of every cluster.
    pids: Vec<u32>,
    #[serde(default)]
    clusters: Vec<ClusterState>,
    /// The meta-proxy in front of every cluster (with more than one cluster).
    #[serde(default)]
    proxy: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClusterState {
    name: String,
    id: u8,
    metas: BTreeMap<u64, String>,
    replicas: BTreeMap<u64, String>,
}

impl ClusterState {
    fn meta_addrs(&self) -> Vec<String> {
        self.metas.values().cloned().collect()
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

fn spawn(dir: &Path, name: &str, args: &[String]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("find the tern binary")?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let log = std::fs::File::create(dir.join("logs").join(format!("{name}.log")))?;
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {name}"))
}

fn stop(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    }
}

impl UpCmd {
    pub fn run(self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("create {}", self.dir.display()))?;
        let dir = self.dir.canonicalize()?;
        let mut state: State = std::fs::read(state_path(&dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if state.clusters.is_empty() && !state.metas.is_empty() {
            // A directory from a single-cluster `tern up`: that cluster keeps its ports and data.
            state.clusters.push(ClusterState {
                name: "local".into(),
                id: 1,
                metas: state.metas.clone(),
                replicas: state.replicas.clone(),
            });
        }
        let single = self.clusters == 1;
        for i in 0..self.clusters as usize {
            if state.clusters.len() <= i {
                let name = if single { "local".to_string() } else { format!("dc{}", i + 1) };
                state.clusters.push(ClusterState { name, id: i as u8 + 1, ..Default::default() });
            }
            let c = &mut state.clusters[i];
            for id in 1..=self.metas {
                if let std::collections::btree_map::Entry::Vacant(e) = c.metas.entry(id) {
                    e.insert(format!("127.0.0.1:{}", free_port()?));
                }
            }
            c.metas.retain(|id, _| *id <= self.metas);
            for r in 1..=self.replicas {
                if let std::collections::btree_map::Entry::Vacant(e) = c.replicas.entry(r) {
                    e.insert(format!("127.0.0.1:{}", free_port()?));
                }
            }
        }
        state.clusters.truncate(self.clusters as usize);
        let servers = (self.clusters * self.replicas) as usize;
        let workers =
            self.worker_threads.map_or_else(|| (available_cores() / servers).max(1), |n| n as usize);
        let mut children = Vec::new();
        for c in &state.clusters {
            // One cluster keeps the historical layout (`<dir>/meta-1`); several get a directory each.
            let base = if single && c.name == "local" { dir.clone() } else { dir.join(&c.name) };
            let prefix = if single { String::new() } else { format!("{}-", c.name) };
            children.extend(spawn_cluster(&dir, &base, &prefix, c, workers)?);
        }
        if !single {
            let addr = match state.proxy.clone() {
                Some(a) => a,
                None => format!("127.0.0.1:{}", free_port()?),
            };
            let mut args = vec!["proxy".to_string(), "--listen".into(), addr.clone()];
            for c in &state.clusters {
                args.extend(["--cluster".to_string(), format!("{}={}", c.name, c.meta_addrs().join(","))]);
            }
            children.push(spawn(&dir, "proxy", &args)?);
            state.proxy = Some(addr);
        } else {
            state.proxy = None;
        }
        state.metas = state.clusters[0].metas.clone();
        state.replicas = state.clusters[0].replicas.clone();
        state.pids = children.iter().map(Child::id).collect();
        std::fs::write(state_path(&dir), serde_json::to_vec_pretty(&state)?)?;
        let ready = runtime()?.block_on(async {
            for c in &state.clusters {
                wait_ready(&c.meta_addrs(), self.replicas as usize, &self.table, self.partitions)
                    .await
                    .with_context(|| format!("cluster {}", c.name))?;
            }
            if !self.table.is_empty() {
                link_all(&state.clusters, &self.table).await?;
                standby_all_but_first(&state.clusters, &self.table).await?;
                wait_links_started(&state.clusters).await?;
            }
            anyhow::Ok(())
        });
        if let Err(e) = ready {
            stop(&state.pids);
            anyhow::bail!(
                "the local deployment did not come up: {e:#} (logs in {})",
                dir.join("logs").display()
            );
        }
        println!(
            "Tern is running: {} cluster(s), each with {} meta server(s) and {} replica servers; data and logs in {}",
            self.clusters,
            self.metas,
            self.replicas,
            dir.display()
        );
        for c in &state.clusters {
            println!("  cluster {} (id {}): meta servers {}", c.name, c.id, c.meta_addrs().join(","));
        }
        let meta = state.clusters[0].meta_addrs().join(",");
        if let Some(proxy) = &state.proxy {
            println!(
                "  proxy: {proxy} (the one entry point: table {} is active in {}, standby elsewhere)",
                self.table, state.clusters[0].name
            );
        }
        if !self.table.is_empty() {
            let entry = state.proxy.clone().unwrap_or_else(|| meta.clone());
            println!("  try: tern kv --meta {entry} --table {} set user:1 name alice", self.table);
            if let Some(other) = state.clusters.get(1) {
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
        if self.detach {
            println!("stop it with: tern down --dir {}", dir.display());
            return Ok(());
        }
        println!("press Ctrl-C to stop");
        runtime()?.block_on(super::common::shutdown_signal());
        stop(&state.pids);
        for mut c in children {
            let _ = c.wait();
        }
        println!("stopped");
        Ok(())
    }
}

/// Starts one cluster's meta and replica servers; data under `base`, logs named with `prefix`.
fn spawn_cluster(
    dir: &Path,
    base: &Path,
    prefix: &str,
    c: &ClusterState,
    workers: usize,
) -> anyhow::Result<Vec<Child>> {
    let members: Vec<String> = c.metas.iter().map(|(id, a)| format!("{id}={a}")).collect();
    let mut children = Vec::new();
    for (id, addr) in &c.metas {
        let args: Vec<String> = vec![
            "meta".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.clone(),
            "--members".into(),
            members.join(","),
            "--data-dir".into(),
            base.join(format!("meta-{id}")).display().to_string(),
            "--cluster-name".into(),
            c.name.clone(),
            "--cluster-id".into(),
            c.id.to_string(),
        ];
        children.push(spawn(dir, &format!("{prefix}meta-{id}"), &args)?);
    }
    for (i, addr) in &c.replicas {
        let args: Vec<String> = vec![
            "replica".into(),
            "--listen".into(),
            addr.clone(),
            "--meta".into(),
            c.meta_addrs().join(","),
            "--data-dir".into(),
            base.join(format!("replica-{i}")).display().to_string(),
            "--cluster-id".into(),
            c.id.to_string(),
            "--worker-threads".into(),
            workers.to_string(),
        ];
        children.push(spawn(dir, &format!("{prefix}replica-{i}"), &args)?);
    }
    Ok(children)
}

/// Waits until every partition of every link has started shipping: a link ships what is written
/// after that, so the deployment is ready for the demo's first write only then.
async fn wait_links_started(clusters: &[ClusterState]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for c in clusters {
        let client = MetaClient::new(c.meta_addrs())?;
        loop {
            let links = client
                .call(|mut m| async move { m.dup_list(pb::DupListRequest { table: String::new() }).await })
                .await?;
            let started = links
                .links
                .iter()
                .filter_map(|l| l.link.as_ref())
                .filter(|l| l.status == "shipping")
                .all(|l| l.started.iter().all(|s| *s));
            if started {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the duplication links of cluster {} did not start within 60 s",
                c.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Makes `table` a standby (epoch 1) in every cluster but the first, the first time only (a
/// compare-and-set from epoch 0: a later run, or a role an operator changed, is left alone), so
/// that the proxy has exactly one active copy to route to.
async fn standby_all_but_first(clusters: &[ClusterState], table: &str) -> anyhow::Result<()> {
    for c in clusters.iter().skip(1) {
        let client = MetaClient::new(c.meta_addrs())?;
        let req = pb::SetTableRoleRequest {
            table: table.to_string(),
            role: "standby".into(),
            epoch: 1,
            check_epoch: true,
            expect_epoch: 0,
        };
        let r = client
            .call(|mut m| {
                let req = req.clone();
                async move { m.set_table_role(req).await }
            })
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.code() == tern_core::ErrorCode::EpochConflict => {}
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!("make {table} a standby in {}", c.name)));
            }
        }
    }
    Ok(())
}

/// A two-way duplication link on `table` between every pair of clusters, unless it exists.
async fn link_all(clusters: &[ClusterState], table: &str) -> anyhow::Result<()> {
    for (i, a) in clusters.iter().enumerate() {
        let client = MetaClient::new(a.meta_addrs())?;
        let links = client
            .call(|mut c| async move { c.dup_list(pb::DupListRequest { table: String::new() }).await })
            .await
            .with_context(|| format!("list the links of cluster {}", a.name))?;
        for (j, b) in clusters.iter().enumerate() {
            let exists = links
                .links
                .iter()
                .filter_map(|l| l.link.as_ref())
                .any(|l| l.remote_cluster == b.name && l.table_name == table && l.status != "removed");
            if i == j || exists {
                continue;
            }
            let req = pb::DupAddRequest {
                table: table.to_string(),
                remote_cluster: b.name.clone(),
                remote_metas: b.meta_addrs(),
                remote_table: table.to_string(),
                full_sync: false,
                max_bytes_per_sec: 0,
                mode: "two-way".into(),
            };
            client
                .call(|mut c| {
                    let req = req.clone();
                    async move { c.dup_add(req).await }
                })
                .await
                .with_context(|| format!("link table {table} of cluster {} to cluster {}", a.name, b.name))?;
        }
    }
    Ok(())
}

async fn wait_ready(meta: &[String], replicas: usize, table: &str, partitions: u32) -> anyhow::Result<()> {
    let client = MetaClient::new(meta.to_vec())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.call(|mut c| async move { c.cluster_status(pb::Empty {}).await }).await;
        match status {
            Ok(s) if s.nodes.iter().filter(|n| n.alive).count() >= replicas => break,
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(s) => anyhow::bail!(
                "only {} of {replicas} replica servers joined",
                s.nodes.iter().filter(|n| n.alive).count()
            ),
            Err(e) => return Err(e.into()),
        }
    }
    if table.is_empty() {
        return Ok(());
    }
    let tables = client.call(|mut c| async move { c.list_tables(pb::Empty {}).await }).await?;
    if !tables.tables.iter().any(|t| t.name == table) {
        let req =
            pb::CreateTableRequest { name: table.to_string(), partitions, replicas: replicas.min(3) as u32 };
        client
            .call(|mut c| {
                let req = req.clone();
                async move { c.create_table(req).await }
            })
            .await?;
    }
    Ok(())
}

impl DownCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let path = state_path(&self.dir);
        let bytes =
            std::fs::read(&path).with_context(|| format!("no local cluster state at {}", path.display()))?;
        let state: State =
            serde_json::from_slice(&bytes).with_context(|| format!("read {}", path.display()))?;
        stop(&state.pids);
        println!("sent stop to {} processes", state.pids.len());
        Ok(())
    }
}
