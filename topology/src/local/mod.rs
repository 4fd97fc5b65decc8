//! A local deployment for trying Tern out (what `tern up`/`tern down` run): by default two
//! clusters ("dc1", "dc2", cluster ids 1 and 2), each with meta and replica servers as child
//! processes of the `tern` binary, a demo table in each that is active in the first cluster and
//! a standby elsewhere, a two-way duplication link between every pair of clusters, and a proxy
//! in front of them all, which is also the clusters' one DR voter (their active tables take
//! client writes while the proxy runs). One cluster is named "local" and has no proxy (and no
//! DR lease). When given an s3s-fs binary ([`LocalSpec::s3`]), also a local S3-compatible server
//! for backups (process `s3`, buckets under `<dir>/s3`; the caller makes the bucket).
//!
//! Owns: choosing ports and keeping them in the state file ([`state`]), starting and stopping
//! the processes with their logs ([`processes`]), and waiting until the deployment serves
//! ([`readiness`], through the admin client only). Layout: state in `<dir>/cluster.json`, data in
//! `<dir>/[<cluster>/]<process>/`, logs in `<dir>/logs/`. Running `up` again on the same
//! directory reuses the ports, the data and the links. If `up` fails, it stops everything it
//! started.
//!
//! [`up_file`] runs a topology file instead ([`file`]: its clusters, servers and proxies at the
//! file's addresses, port 0 picked), then brings it into service with the same `apply` as
//! `tern apply` (tables, roles, links), so the two cannot disagree. [`ps`] lists the processes
//! of a deployment, [`down`] stops them and waits until they are gone.

pub mod file;
pub mod processes;
pub mod readiness;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_core::Error;

use self::processes::{Processes, alive, runs};
pub use self::state::{ClusterState, ProcessRole, ProcessState, ProxyState, State};
use crate::apply::{self, ApplyOptions, Progress};
use crate::schema::Topology;

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
    /// The S3-compatible server to start for backups (the s3s-fs binary), if any.
    pub s3: Option<PathBuf>,
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
            s3: None,
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
    /// The directory holds another deployment (`tern up -f`): nothing was started or changed.
    #[error("{0}")]
    Refused(String),
}

/// A deployment `up` started: its processes are children of this one until [`Running::stop`]
/// or [`Running::detach`]; dropped, it kills them.
#[derive(Debug)]
pub struct Running {
    dir: PathBuf,
    state: State,
    processes: Processes,
    /// `up -f` found the deployment already running (it started nothing; stop and detach do
    /// nothing).
    adopted: bool,
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

    /// Every proxy (of a deployment started from a file).
    pub fn proxies(&self) -> &[ProxyState] {
        &self.state.proxies
    }

    /// The local S3 server for backups (`127.0.0.1:port`), if one was started; its buckets
    /// are directories under `<dir>/s3`.
    pub fn s3(&self) -> Option<&str> {
        self.state.s3.as_deref()
    }

    /// Whether `up -f` found the deployment running already and started nothing.
    pub fn adopted(&self) -> bool {
        self.adopted
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

/// Creates a deployment's directory if needed and returns its absolute path.
fn prepare_dir(dir: &Path) -> Result<PathBuf, UpError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| UpError::Prepare(Error::io(format!("create {}", dir.display()), e)))?;
    dir.canonicalize().map_err(|e| UpError::Prepare(Error::io(format!("resolve {}", dir.display()), e)))
}

/// Starts the deployment `spec` describes and waits until it serves. `progress` is told each
/// step as it starts ("waiting for 3 replica servers of dc1 to join…").
pub async fn up(spec: &LocalSpec, mut progress: impl FnMut(&str)) -> Result<Running, UpError> {
    let dir = prepare_dir(&spec.dir)?;
    let mut state = State::load(&dir);
    if let Some(file) = &state.file {
        return Err(UpError::Refused(format!(
            "{} holds the deployment of the topology file {} (started by `tern up -f`): run `tern up -f {} --dir {}`, or use another --dir",
            dir.display(),
            file.display(),
            file.display(),
            dir.display()
        )));
    }
    state.plan(spec).map_err(UpError::Prepare)?;
    state.binary = Some(spec.binary.clone());
    let mut processes = Processes::new(spec.binary.clone(), dir.clone());
    let started = start(spec, &dir, &mut state, &mut processes, &mut progress).await;
    match started {
        Ok(()) => Ok(Running { dir, state, processes, adopted: false }),
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
    start_s3(spec.s3.as_deref(), dir, state, processes, progress)?;
    state.pids = processes.pids();
    state.processes = processes.processes();
    state.save(dir)?;
    wait_s3(state, spec.ready_within, progress).await?;
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

/// Starts the S3 server for backups, if there is one to start, on the state's address.
fn start_s3(
    binary: Option<&Path>,
    dir: &Path,
    state: &State,
    processes: &mut Processes,
    progress: &mut impl FnMut(&str),
) -> tern_core::Result<()> {
    if let (Some(binary), Some(addr)) = (binary, &state.s3) {
        progress(&format!("starting the S3 server for backups on {addr} ({})", binary.display()));
        processes.spawn_s3(binary, addr, &dir.join("s3"))?;
    }
    Ok(())
}

async fn wait_s3(state: &State, within: Duration, progress: &mut impl FnMut(&str)) -> tern_core::Result<()> {
    if let Some(addr) = &state.s3 {
        progress("waiting for the S3 server to listen…");
        readiness::wait_listening(addr, "the S3 server", within).await?;
    }
    Ok(())
}

/// Stops a deployment left running (`tern up --detach`): SIGTERM to every process of its state
/// file that still runs (and runs the `tern` binary it was started from), then waits until
/// they have exited; one still running after [`processes::STOP_GRACE`] is killed. Returns how
/// many it stopped. The state (ports, data) stays for the next `up`.
pub fn down(dir: &Path) -> tern_core::Result<usize> {
    let state =
        State::read(dir).map_err(|e| e.context(format!("no local deployment in {}", dir.display())))?;
    let live = state.live_pids();
    let left = processes::stop_pids(&live, processes::STOP_GRACE);
    if !left.is_empty() {
        return Err(Error::Unavailable(format!("processes {left:?} did not stop, even killed")));
    }
    Ok(live.len())
}

/// One process of a local deployment and whether it runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProcessStatus {
    #[serde(flatten)]
    pub process: ProcessState,
    pub alive: bool,
}

/// The processes of the deployment in `dir` (`tern ps`), in start order. A state written by an
/// older version knows only pids: those are listed as `process-N`.
pub fn ps(dir: &Path) -> tern_core::Result<Vec<ProcessStatus>> {
    let state =
        State::read(dir).map_err(|e| e.context(format!("no local deployment in {}", dir.display())))?;
    let binary = state.binary.as_deref();
    Ok(state
        .known_processes(dir)
        .into_iter()
        .map(|p| {
            let alive = alive(p.pid) && runs(p.pid, p.binary.as_deref().or(binary));
            ProcessStatus { process: p, alive }
        })
        .collect())
}

impl State {
    /// Every process the state knows of (from `pids` alone for an older state).
    fn known_processes(&self, dir: &Path) -> Vec<ProcessState> {
        if !self.processes.is_empty() {
            return self.processes.clone();
        }
        let logs = dir.join("logs");
        self.pids
            .iter()
            .enumerate()
            .map(|(i, pid)| ProcessState {
                name: format!("process-{}", i + 1),
                cluster: None,
                role: ProcessRole::Replica,
                pid: *pid,
                addr: String::new(),
                log: logs.clone(),
                binary: None,
            })
            .collect()
    }

    /// The pids of the deployment that still run its binary.
    pub fn live_pids(&self) -> Vec<u32> {
        let binary = self.binary.as_deref();
        if self.processes.is_empty() {
            return self.pids.iter().copied().filter(|p| alive(*p) && runs(*p, binary)).collect();
        }
        self.processes
            .iter()
            .filter(|p| alive(p.pid) && runs(p.pid, p.binary.as_deref().or(binary)))
            .map(|p| p.pid)
            .collect()
    }
}

/// What `up -f` starts: a topology file's deployment on this machine.
#[derive(Clone, Debug)]
pub struct FileSpec {
    /// Directory for the deployment's data, logs and state (created if missing).
    pub dir: PathBuf,
    /// The `tern` binary to start the servers from.
    pub binary: PathBuf,
    /// The topology file (named in the state, to tell another file from this one).
    pub file: PathBuf,
    /// The file, read and validated.
    pub topology: Topology,
    /// Worker threads of each replica server (`None`: the cores shared out).
    pub worker_threads: Option<u64>,
    /// How long each wait (servers joining, links starting, leases) may take.
    pub ready_within: Duration,
    /// How long each call of apply to a cluster may keep trying.
    pub apply_deadline: Duration,
    /// The S3-compatible server to start for backups (the s3s-fs binary), if any.
    pub s3: Option<PathBuf>,
}

/// Starts the deployment of a topology file and brings it into service: every cluster's meta
/// and replica servers and every proxy (with its Redis gateway) as processes, a wait for the
/// replica servers to join, then `apply` of the file (tables, roles, links: the steps apply can
/// do and that destroy nothing; the others are reported through `progress` and left to `tern
/// apply`), then waits for the proxies to listen, the links to start and the DR leases.
///
/// On a directory where the same file's deployment runs, it starts nothing and applies the
/// file again (normally nothing to do): the result is [`Running::adopted`]. A directory that
/// holds another deployment (another file, or one started by flags), running or not, is
/// refused ([`UpError::Refused`]) before anything is done.
pub async fn up_file(spec: &FileSpec, mut progress: impl FnMut(&str)) -> Result<Running, UpError> {
    let dir = prepare_dir(&spec.dir)?;
    let source = spec
        .file
        .canonicalize()
        .map_err(|e| UpError::Prepare(Error::io(format!("resolve {}", spec.file.display()), e)))?;
    let previous = State::load(&dir);
    let running = !previous.live_pids().is_empty();
    let stop_first = format!("stop it first with `tern down --dir {}`, or use another --dir", dir.display());
    match &previous.file {
        Some(f) if *f != source => {
            let what = if running { "runs" } else { "holds the data of" };
            return Err(UpError::Refused(format!(
                "{} {what} the deployment of another topology file, {}: {}",
                dir.display(),
                f.display(),
                if running { stop_first } else { "remove the directory, or use another --dir".into() }
            )));
        }
        None if !previous.clusters.is_empty() || !previous.pids.is_empty() => {
            let what = if running { "runs" } else { "holds the data of" };
            return Err(UpError::Refused(format!(
                "{} {what} a deployment started by `tern up` without a file: {}",
                dir.display(),
                if running { stop_first } else { "remove the directory, or use another --dir".into() }
            )));
        }
        _ => {}
    }
    let logs = dir.join("logs");
    if running {
        if previous.layout.as_deref() != Some(file::layout(&spec.topology).as_str()) {
            return Err(UpError::Refused(format!(
                "the clusters, servers or proxies of {} changed since its deployment in {} was started: {stop_first}; then `tern up -f` again (the data stays)",
                spec.file.display(),
                dir.display()
            )));
        }
        progress("already running: applying the file again");
        let state = previous;
        serve(spec, &dir, &state, &mut progress).await.map_err(|cause| UpError::NotUp { logs, cause })?;
        let processes = Processes::new(spec.binary.clone(), dir.clone());
        return Ok(Running { dir, state, processes, adopted: true });
    }
    let mut state =
        file::resolve(&spec.topology, &previous, &mut state::free_addr_on).map_err(UpError::Prepare)?;
    state.file = Some(source);
    state.binary = Some(spec.binary.clone());
    state.s3 = previous.s3.clone();
    state.plan_s3(spec.s3.is_some()).map_err(UpError::Prepare)?;
    check_free(&state).map_err(UpError::Prepare)?;
    let mut processes = Processes::new(spec.binary.clone(), dir.clone());
    let started = start_file(spec, &dir, &mut state, &mut processes, &mut progress).await;
    match started {
        Ok(()) => Ok(Running { dir, state, processes, adopted: false }),
        Err(cause) => {
            progress("stopping what was started");
            processes.stop().await;
            Err(UpError::NotUp { logs, cause })
        }
    }
}

/// Every address of `s` is free on this machine (a clear error before anything starts, rather
/// than a server that fails to bind).
fn check_free(s: &State) -> tern_core::Result<()> {
    let mut all: Vec<(String, &str)> = Vec::new();
    for c in &s.clusters {
        all.extend(
            c.metas.iter().map(|(i, a)| (format!("meta server {i} of cluster {}", c.name), a.as_str())),
        );
        all.extend(
            c.replicas.iter().map(|(i, a)| (format!("replica server {i} of cluster {}", c.name), a.as_str())),
        );
    }
    for p in &s.proxies {
        all.push((format!("proxy {}", p.name), p.listen.as_str()));
        if let Some(r) = &p.redis {
            all.push((format!("the Redis gateway of proxy {}", p.name), r.as_str()));
        }
    }
    if let Some(a) = &s.s3 {
        all.push(("the S3 server for backups".into(), a.as_str()));
    }
    for (what, addr) in all {
        std::net::TcpListener::bind(addr).map_err(|e| {
            Error::InvalidArgument(format!(
                "{what} cannot listen on {addr}: {e} (another process holds the port, or the address is not one of this machine)"
            ))
        })?;
    }
    Ok(())
}

async fn start_file(
    spec: &FileSpec,
    dir: &Path,
    state: &mut State,
    processes: &mut Processes,
    progress: &mut impl FnMut(&str),
) -> tern_core::Result<()> {
    let t = &spec.topology;
    let servers: usize = state.clusters.iter().map(|c| c.replicas.len()).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = spec.worker_threads.map_or_else(|| (cores / servers.max(1)).max(1), |n| n as usize);
    let voters = file::voters(t, state);
    for c in &state.clusters {
        let base = dir.join(c.data_dir.as_deref().unwrap_or(&c.name));
        progress(&format!(
            "starting cluster {} (id {}): {} meta server(s), {} replica server(s)",
            c.name,
            c.id,
            c.metas.len(),
            c.replicas.len()
        ));
        processes.spawn_cluster(&base, &format!("{}-", c.name), c, workers, voters.as_deref())?;
    }
    for (p, ps) in t.proxies.iter().zip(&state.proxies) {
        let mut addr = ps.listen.clone();
        if let Some(r) = &ps.redis {
            progress(&format!("starting proxy {} on {} (Redis gateway on {r})", ps.name, ps.listen));
            addr = format!("{addr},{r}");
        } else {
            progress(&format!("starting proxy {} on {}", ps.name, ps.listen));
        }
        let args =
            processes::proxy_args(p, &ps.listen, ps.redis.as_deref(), &state.clusters, voters.as_deref());
        processes.spawn_file_proxy(&ps.name, &addr, &args)?;
    }
    start_s3(spec.s3.as_deref(), dir, state, processes, progress)?;
    state.pids = processes.pids();
    state.processes = processes.processes();
    state.save(dir)?;
    wait_s3(state, spec.ready_within, progress).await?;
    serve(spec, dir, state, progress).await
}

/// Brings the started deployment of `spec` into service (idempotent): waits for the replica
/// servers, writes `<dir>/topology.yaml`, waits for the proxies, applies the file, waits for
/// the links and the DR leases.
async fn serve(
    spec: &FileSpec,
    dir: &Path,
    state: &State,
    progress: &mut impl FnMut(&str),
) -> tern_core::Result<()> {
    let t = &spec.topology;
    let within = spec.ready_within;
    for (c, tc) in state.clusters.iter().zip(&t.clusters) {
        let n = tc.replica_servers.len();
        progress(&format!("waiting for {n} replica servers of {} to join…", c.name));
        readiness::wait_joined(c, n, within).await.map_err(|e| e.context(format!("cluster {}", c.name)))?;
    }
    let deployed = file::deployed(t, state);
    let path = dir.join(file::DEPLOYED_FILE);
    let source = state.file.as_deref().unwrap_or(&spec.file);
    std::fs::write(&path, file::deployed_yaml(t, state, source)?)
        .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    // The proxies first: apply asks them for their settings.
    for p in &state.proxies {
        progress(&format!("waiting for proxy {} to listen…", p.name));
        readiness::wait_listening(&p.listen, &format!("proxy {}", p.name), within).await?;
        if let Some(r) = &p.redis {
            readiness::wait_listening(r, &format!("the Redis gateway of proxy {}", p.name), within).await?;
        }
    }
    apply_file(&deployed, &path, spec.apply_deadline, progress).await?;
    if t.tables.iter().any(|table| !table.links.is_empty()) {
        for c in &state.clusters {
            progress(&format!("waiting for the duplication links of {} to start…", c.name));
            readiness::wait_links_started(c, within).await?;
        }
    }
    for c in &state.clusters {
        progress(&format!("waiting for {} to hold its DR lease (if it has DR voters)…", c.name));
        readiness::wait_dr_lease(c, within).await?;
    }
    Ok(())
}

/// `tern apply -f` of the deployed file, without asking: the steps apply can do and that
/// destroy nothing. Blocked and destructive steps are reported and left out (`tern apply -f
/// <dir>/topology.yaml --allow-destructive` runs the destructive ones).
async fn apply_file(
    t: &Topology,
    path: &Path,
    deadline: Duration,
    progress: &mut impl FnMut(&str),
) -> tern_core::Result<()> {
    let failed = |e: apply::ApplyError| Error::Unavailable(format!("apply {}: {e}", path.display()));
    let observed = apply::observe(t, deadline).await.map_err(failed)?;
    let mut plan = crate::plan(t, &observed);
    let mut kept = Vec::with_capacity(plan.steps.len());
    for s in std::mem::take(&mut plan.steps) {
        let what = crate::plan::describe(&s.action);
        if let Some(why) = &s.blocked {
            progress(&format!("not applied: {what}: apply cannot do it yet: {why}"));
        } else if let Some(why) = &s.destructive {
            progress(&format!(
                "not applied: {what}: destructive ({why}); run `tern apply -f {} --allow-destructive` to do it",
                path.display()
            ));
        } else {
            kept.push(s);
        }
    }
    plan.steps = kept;
    if plan.is_empty() {
        progress("applied the file: nothing to change");
        return Ok(());
    }
    let opts = ApplyOptions { deadline, ..ApplyOptions::default() };
    let report = apply::execute(t, &plan, &opts, |p| match p {
        Progress::Start { index, total, step } => {
            progress(&format!("apply [{index}/{total}] {} ...", crate::plan::describe(&step.action)))
        }
        Progress::Done { index, total, outcome, took_ms, .. } => {
            progress(&format!("apply [{index}/{total}] done in {took_ms} ms: {outcome}"))
        }
        Progress::Note(line) => progress(&format!("    {line}")),
    })
    .await
    .map_err(failed)?;
    progress(&format!("applied the file: {} step(s)", report.steps.len()));
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
