//! `tern up` / `tern down`: a local cluster of meta and replica servers as child processes of
//! this binary, for trying Tern out. State (ports, pids) lives in `<dir>/cluster.json`; data and
//! logs in `<dir>/<process>/`. Running `tern up` again on the same directory reuses the ports and
//! the data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use tern_client::MetaClient;
use tern_proto::pb;

use super::common::runtime;

/// Start a local cluster (meta servers + replica servers as processes on this machine) and a
/// demo table, then wait for Ctrl-C (or return at once with --detach; stop with `tern down`).
#[derive(Debug, Args)]
pub struct UpCmd {
    /// Directory for the cluster's data, logs and state.
    #[arg(long, default_value = "tern-local", env = "TERN_LOCAL_DIR")]
    dir: PathBuf,
    /// Meta servers (1 or 3).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    metas: u64,
    /// Replica servers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    replicas: u64,
    /// A table to create if it does not exist yet (empty: none).
    #[arg(long, default_value = "demo")]
    table: String,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Return once the cluster is up, leaving it running (stop it with `tern down`).
    #[arg(long)]
    detach: bool,
}

/// Stop a local cluster started by `tern up --detach`.
#[derive(Debug, Args)]
pub struct DownCmd {
    #[arg(long, default_value = "tern-local", env = "TERN_LOCAL_DIR")]
    dir: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    metas: BTreeMap<u64, String>,
    replicas: BTreeMap<u64, String>,
    pids: Vec<u32>,
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
        for id in 1..=self.metas {
            if let std::collections::btree_map::Entry::Vacant(e) = state.metas.entry(id) {
                e.insert(format!("127.0.0.1:{}", free_port()?));
            }
        }
        state.metas.retain(|id, _| *id <= self.metas);
        for i in 1..=self.replicas {
            if let std::collections::btree_map::Entry::Vacant(e) = state.replicas.entry(i) {
                e.insert(format!("127.0.0.1:{}", free_port()?));
            }
        }
        let members: Vec<String> = state.metas.iter().map(|(id, a)| format!("{id}={a}")).collect();
        let meta_addrs: Vec<String> = state.metas.values().cloned().collect();
        let mut children = Vec::new();
        for (id, addr) in &state.metas {
            let args: Vec<String> = vec![
                "meta".into(),
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                addr.clone(),
                "--members".into(),
                members.join(","),
                "--data-dir".into(),
                dir.join(format!("meta-{id}")).display().to_string(),
                "--cluster-name".into(),
                "local".into(),
                "--cluster-id".into(),
                "1".into(),
            ];
            children.push(spawn(&dir, &format!("meta-{id}"), &args)?);
        }
        for (i, addr) in &state.replicas {
            let args: Vec<String> = vec![
                "replica".into(),
                "--listen".into(),
                addr.clone(),
                "--meta".into(),
                meta_addrs.join(","),
                "--data-dir".into(),
                dir.join(format!("replica-{i}")).display().to_string(),
                "--cluster-id".into(),
                "1".into(),
            ];
            children.push(spawn(&dir, &format!("replica-{i}"), &args)?);
        }
        state.pids = children.iter().map(Child::id).collect();
        std::fs::write(state_path(&dir), serde_json::to_vec_pretty(&state)?)?;
        let ready = runtime()?.block_on(wait_ready(
            &meta_addrs,
            self.replicas as usize,
            &self.table,
            self.partitions,
        ));
        if let Err(e) = ready {
            stop(&state.pids);
            anyhow::bail!(
                "the local cluster did not come up: {e:#} (logs in {})",
                dir.join("logs").display()
            );
        }
        let meta = meta_addrs.join(",");
        println!(
            "Tern is running: {} meta server(s), {} replica servers; data and logs in {}",
            self.metas,
            self.replicas,
            dir.display()
        );
        println!("  meta servers: {meta}");
        if !self.table.is_empty() {
            println!("  try: tern kv --meta {meta} --table {} set user:1 name alice", self.table);
            println!("       tern kv --meta {meta} --table {} get user:1 name", self.table);
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
