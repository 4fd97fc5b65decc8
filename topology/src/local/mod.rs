//! A local deployment for trying Tern out (what `tern up`/`tern down` run): by default two
//! clusters ("dc1", "dc2", cluster ids 1 and 2), each with meta and replica servers as child
//! processes of the `tern` binary, a demo table in each that is active in the first cluster and
//! a standby elsewhere, a two-way duplication link between every pair of clusters, and a proxy
//! in front of them all, which is also the clusters' one DR voter (their active tables take
//! client writes while the proxy runs). One cluster is named "local" and has no proxy (and no
//! DR lease).
//!
//! Owns: choosing ports and keeping them in the state file ([`state`]), starting and stopping
//! the processes with their logs ([`processes`]), and waiting until the deployment serves
//! ([`readiness`], through the admin client only). Layout: state in `<dir>/cluster.json`, data in
//! `<dir>/[<cluster>/]<process>/`, logs in `<dir>/logs/`. Running `up` again on the same
//! directory reuses the ports, the data and the links. If `up` fails, it stops everything it
//! started.

pub mod processes;
pub mod readiness;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_core::Error;

use self::processes::Processes;
pub use self::state::{ClusterState, State};

/// What to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSpec {
    /// Directory for the deployment's data, logs and state (created if missing).
    pub dir: PathBuf,
    /// The `tern` binary to start the servers from.
    pub binary: PathBuf,
    /// Clusters (1 to 4; checked by the caller's flags).
    pub clusters: u64,
    /// Meta servers per cluster.
    pub metas: u64,
    /// Replica servers per cluster.
    pub replicas: u64,
    /// A table to create in every cluster if it does not exist yet (empty: none).
    pub table: String,
    pub partitions: u32,
    /// Worker threads of each replica server (`None`: the machine's cores shared out among all
    /// the replica servers, at least 1).
    pub worker_threads: Option<u64>,
    /// How long each wait (servers joining, links starting) may take.
    pub ready_within: Duration,
}

impl LocalSpec {
    /// `tern up`'s defaults: two clusters of one meta and three replica servers, table `demo`
    /// with 4 partitions.
    pub fn new(dir: PathBuf, binary: PathBuf) -> LocalSpec {
        LocalSpec {
            dir,
            binary,
            clusters: 2,
            metas: 1,
            replicas: 3,
            table: "demo".into(),
            partitions: 4,
            worker_threads: None,
            ready_within: Duration::from_secs(60),
        }
    }

    fn single(&self) -> bool {
        self.clusters == 1
    }
}

/// Why `up` failed. Whatever it had started is stopped.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// Before any process was started.
    #[error("{0}")]
    Prepare(Error),
    #[error("the local deployment did not come up: {cause} (logs in {})", logs.display())]
    NotUp { logs: PathBuf, cause: Error },
}

/// A deployment `up` started: its processes are children of this one until [`Running::stop`]
/// or [`Running::detach`]; dropped, it kills them.
#[derive(Debug)]
pub struct Running {
    dir: PathBuf,
    state: State,
    processes: Processes,
}

impl Running {
    /// The deployment's directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn clusters(&self) -> &[ClusterState] {
        &self.state.clusters
    }

    /// The proxy's address (with more than one cluster).
    pub fn proxy(&self) -> Option<&str> {
        self.state.proxy.as_deref()
    }

    /// Stops every process and waits for them.
    pub async fn stop(self) {
        self.processes.stop().await
    }

    /// Leaves the deployment running (`down` stops it, from the state file).
    pub fn detach(self) {
        self.processes.detach()
    }
}

/// Starts the deployment `spec` describes and waits until it serves. `progress` is told each
/// step as it starts ("waiting for 3 replica servers of dc1 to join…").
pub async fn up(spec: &LocalSpec, mut progress: impl FnMut(&str)) -> Result<Running, UpError> {
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| UpError::Prepare(Error::io(format!("create {}", spec.dir.display()), e)))?;
    let dir = spec
        .dir
        .canonicalize()
        .map_err(|e| UpError::Prepare(Error::io(format!("resolve {}", spec.dir.display()), e)))?;
    let mut state = State::load(&dir);
    state.plan(spec).map_err(UpError::Prepare)?;
    let mut processes = Processes::new(spec.binary.clone(), dir.clone());
    let started = start(spec, &dir, &mut state, &mut processes, &mut progress).await;
    match started {
        Ok(()) => Ok(Running { dir, state, processes }),
        Err(cause) => {
            progress("stopping what was started");
            processes.stop().await;
            Err(UpError::NotUp { logs: dir.join("logs"), cause })
        }
    }
}

async fn start(
    spec: &LocalSpec,
    dir: &Path,
    state: &mut State,
    processes: &mut Processes,
    progress: &mut impl FnMut(&str),
) -> tern_core::Result<()> {
    let servers = (spec.clusters * spec.replicas) as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = spec.worker_threads.map_or_else(|| (cores / servers).max(1), |n| n as usize);
    let single = spec.single();
    for c in &state.clusters {
        // One cluster keeps the historical layout (`<dir>/meta-1`); several get a directory each.
        let base = if single && c.name == "local" { dir.to_path_buf() } else { dir.join(&c.name) };
        let prefix = if single { String::new() } else { format!("{}-", c.name) };
        progress(&format!(
            "starting cluster {}: {} meta server(s), {} replica server(s)",
            c.name,
            c.metas.len(),
            c.replicas.len()
        ));
        let voters = state.proxy.as_deref().map(processes::proxy_voters);
        processes.spawn_cluster(&base, &prefix, c, workers, voters.as_deref())?;
    }
    if let Some(addr) = &state.proxy {
        progress(&format!("starting the proxy on {addr}"));
        processes.spawn_proxy(addr, &state.clusters)?;
    }
    state.pids = processes.pids();
    state.save(dir)?;
    let replicas = spec.replicas as usize;
    for c in &state.clusters {
        progress(&format!("waiting for {replicas} replica servers of {} to join…", c.name));
        readiness::wait_joined(c, replicas, spec.ready_within)
            .await
            .map_err(|e| e.context(format!("cluster {}", c.name)))?;
        if !spec.table.is_empty() {
            let copies = spec.replicas.min(3) as u32;
            if readiness::ensure_table(c, &spec.table, spec.partitions, copies)
                .await
                .map_err(|e| e.context(format!("cluster {}", c.name)))?
            {
                progress(&format!("created table {} in {}", spec.table, c.name));
            }
        }
    }
    if spec.table.is_empty() {
        return Ok(());
    }
    let table = &spec.table;
    for (i, a) in state.clusters.iter().enumerate() {
        for b in &state.clusters[i + 1..] {
            progress(&format!("linking table {table} of {} and {} both ways…", a.name, b.name));
            readiness::link_pair(a, b, table).await?;
        }
    }
    for c in state.clusters.iter().skip(1) {
        if readiness::make_standby(c, table).await.map_err(|e| e.context(format!("cluster {}", c.name)))? {
            progress(&format!("table {table} is a standby in {}", c.name));
        }
    }
    if state.clusters.len() > 1 {
        for c in &state.clusters {
            progress(&format!("waiting for the duplication links of {} to start…", c.name));
            readiness::wait_links_started(c, spec.ready_within).await?;
        }
        for c in &state.clusters {
            progress(&format!("waiting for {} to hold its DR lease (granted by the proxy)…", c.name));
            readiness::wait_dr_lease(c, spec.ready_within).await?;
        }
    }
    Ok(())
}

/// Stops a deployment left running (`tern up --detach`): SIGTERM to every process in its state
/// file. Returns how many it signalled.
pub fn down(dir: &Path) -> tern_core::Result<usize> {
    let state =
        State::read(dir).map_err(|e| e.context(format!("no local deployment in {}", dir.display())))?;
    processes::terminate(&state.pids);
    Ok(state.pids.len())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
