//! The one path of `tern up`, with or without a file: a topology's processes started (or found
//! running), then the topology brought into service by `plan` and `apply::execute`, the code of
//! `tern apply`, so that `up` and `apply` cannot disagree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_client::AdminClient;
use tern_core::{Error, TableStatus};

use super::processes::{self, Processes};
use super::state::{self, State};
use super::{Running, UpError, file, readiness};
use crate::apply::{self, ApplyOptions, Progress};
use crate::plan::{Action, Plan};
use crate::schema::Topology;

/// Where the topology of a deployment comes from.
#[derive(Clone, Debug)]
pub(super) enum Origin {
    /// `tern up -f` of this file (its canonical path, recorded in the state).
    File(PathBuf),
    /// `tern up` without a file: its flags, as a command line.
    Flags(String),
}

impl Origin {
    /// The command that started it, quoted: "`tern up -f /x/two-dc.yaml`".
    fn command(&self) -> String {
        match self {
            Origin::File(p) => format!("`tern up -f {}`", p.display()),
            Origin::Flags(cmd) => format!("`{cmd}`"),
        }
    }
}

/// A deployment to run: the topology and how.
#[derive(Clone, Debug)]
pub(super) struct Deploy {
    /// The deployment's directory (absolute, existing).
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub origin: Origin,
    /// Validated; port 0 for addresses `up` picks.
    pub topology: Topology,
    pub worker_threads: Option<u64>,
    pub ready_within: Duration,
    pub apply_deadline: Duration,
    pub s3: Option<PathBuf>,
}

/// Runs `d` in its directory, which holds `previous` (already checked to be a deployment of the
/// same origin, or none): on a running deployment of the same processes, starts nothing and
/// applies again; on a running one of other processes, refuses; otherwise starts every process
/// (ports kept from `previous`) and brings the deployment into service. Whatever it started is
/// stopped again if that fails.
pub(super) async fn deploy(
    d: &Deploy,
    previous: State,
    mut progress: impl FnMut(&str),
) -> Result<Running, UpError> {
    let dir = d.dir.clone();
    let logs = dir.join("logs");
    if !previous.live_pids().is_empty() {
        let stop_first =
            format!("stop it first with `tern down --dir {}`, or use another --dir", dir.display());
        if previous.layout.as_deref() != Some(file::layout(&d.topology).as_str()) {
            return Err(UpError::Refused(match &d.origin {
                Origin::File(f) => format!(
                    "the clusters, servers or proxies of {} changed since its deployment in {} was started: {stop_first}; then `tern up -f` again (the data stays)",
                    f.display(),
                    dir.display()
                ),
                Origin::Flags(_) if previous.layout.is_none() => format!(
                    "{} runs a deployment started by an older `tern up`: {stop_first}; then `tern up` again (the data stays)",
                    dir.display()
                ),
                Origin::Flags(cmd) => format!(
                    "{} runs a deployment with other clusters, servers or proxies than `{cmd}` describes: {stop_first}; then `tern up` again (the data stays)",
                    dir.display()
                ),
            }));
        }
        progress("already running: applying the topology again");
        let state = previous;
        serve(d, &state, &mut progress).await.map_err(|cause| UpError::NotUp { logs, cause })?;
        let topology = file::deployed(&d.topology, &state);
        let processes = Processes::new(d.binary.clone(), dir.clone());
        return Ok(Running { dir, state, processes, adopted: true, topology });
    }
    let mut state =
        file::resolve(&d.topology, &previous, &mut state::free_addr_on).map_err(UpError::Prepare)?;
    state.file = match &d.origin {
        Origin::File(f) => Some(f.clone()),
        Origin::Flags(_) => None,
    };
    state.binary = Some(d.binary.clone());
    state.s3 = previous.s3.clone();
    state.plan_s3(d.s3.is_some()).map_err(UpError::Prepare)?;
    check_free(&state).map_err(UpError::Prepare)?;
    let mut processes = Processes::new(d.binary.clone(), dir.clone());
    match start(d, &mut state, &mut processes, &mut progress).await {
        Ok(()) => {
            let topology = file::deployed(&d.topology, &state);
            Ok(Running { dir, state, processes, adopted: false, topology })
        }
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

/// Starts every process of `d` as `state` places them, records them in the state file, and
/// brings the deployment into service.
async fn start(
    d: &Deploy,
    state: &mut State,
    processes: &mut Processes,
    progress: &mut impl FnMut(&str),
) -> tern_core::Result<()> {
    let (t, dir) = (&d.topology, d.dir.as_path());
    let servers: usize = state.clusters.iter().map(|c| c.replicas.len()).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = d.worker_threads.map_or_else(|| (cores / servers.max(1)).max(1), |n| n as usize);
    let voters = file::voters(t, state);
    if d.s3.is_some() && state.s3.is_some() {
        // The servers run the scheduled backups into the local S3 server (`local_backups`).
        for (k, v) in tern_backup::local_s3::dev_env() {
            processes.set_env(k, v);
        }
    }
    for c in &state.clusters {
        let base = match c.data_dir.as_deref() {
            Some(super::flags::TOP) => dir.to_path_buf(),
            other => dir.join(other.unwrap_or(&c.name)),
        };
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
    if let (Some(binary), Some(addr)) = (&d.s3, &state.s3) {
        progress(&format!("starting the S3 server for backups on {addr} ({})", binary.display()));
        processes.spawn_s3(binary, addr, &dir.join("s3"))?;
    }
    state.pids = processes.pids();
    state.processes = processes.processes();
    state.save(dir)?;
    if let Some(addr) = &state.s3 {
        progress("waiting for the S3 server to listen…");
        readiness::wait_listening(addr, "the S3 server", d.ready_within).await?;
    }
    serve(d, state, progress).await
}

/// Brings the started deployment of `d` into service (idempotent): waits for the replica
/// servers, writes `<dir>/topology.yaml`, waits for the proxies, applies the topology, waits
/// for the links and the DR leases.
async fn serve(d: &Deploy, state: &State, progress: &mut impl FnMut(&str)) -> tern_core::Result<()> {
    let with_backups = local_backups(d, state);
    let t = with_backups.as_ref().unwrap_or(&d.topology);
    let within = d.ready_within;
    for (c, tc) in state.clusters.iter().zip(&t.clusters) {
        let n = tc.replica_servers.len();
        progress(&format!("waiting for {n} replica servers of {} to join…", c.name));
        readiness::wait_joined(c, n, within).await.map_err(|e| e.context(format!("cluster {}", c.name)))?;
    }
    let deployed = file::deployed(t, state);
    let path = d.dir.join(file::DEPLOYED_FILE);
    std::fs::write(&path, file::deployed_yaml(t, state, &d.origin.command())?)
        .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    // The proxies first: apply asks them for their settings.
    for p in &state.proxies {
        progress(&format!("waiting for proxy {} to listen…", p.name));
        readiness::wait_listening(&p.listen, &format!("proxy {}", p.name), within).await?;
        if let Some(r) = &p.redis {
            readiness::wait_listening(r, &format!("the Redis gateway of proxy {}", p.name), within).await?;
        }
    }
    apply_topology(&deployed, &path, d.apply_deadline, progress).await?;
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

/// `tern apply -f` of the deployed topology (written at `path`), without asking: the steps
/// apply can do and that destroy nothing. Blocked and destructive steps are reported and left
/// out (`tern apply -f <dir>/topology.yaml --allow-destructive` runs the destructive ones).
async fn apply_topology(
    t: &Topology,
    path: &Path,
    deadline: Duration,
    progress: &mut impl FnMut(&str),
) -> tern_core::Result<()> {
    let failed = |e: apply::ApplyError| Error::Unavailable(format!("apply {}: {e}", path.display()));
    let observed = apply::observe(t, deadline).await.map_err(failed)?;
    let mut plan = crate::plan(t, &observed);
    let dropped = dropped_tables(t, &plan, deadline).await;
    let mut kept = Vec::with_capacity(plan.steps.len());
    for s in std::mem::take(&mut plan.steps) {
        let what = crate::plan::describe(&s.action);
        if let Some((table, cluster)) = table_of(&s.action).and_then(|t| dropped.get_key_value(t)) {
            progress(&format!(
                "not applied: {what}: table {table} was dropped in {cluster} and can still be recalled (`tern table recall {table}`), so it cannot be created again yet"
            ));
        } else if let Some(why) = &s.blocked {
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
        progress("applied the topology: nothing to change");
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
    progress(&format!("applied the topology: {} step(s)", report.steps.len()));
    Ok(())
}

/// The tables `plan` would create that a cluster holds dropped, by table (with that cluster):
/// the meta servers refuse to create a table again while the dropped one can be recalled.
/// `up` then leaves the table as it is (as it always has) instead of failing. A cluster that
/// does not answer is left to the step to report.
async fn dropped_tables(t: &Topology, plan: &Plan, deadline: Duration) -> BTreeMap<String, String> {
    let mut dropped = BTreeMap::new();
    for s in &plan.steps {
        let Action::CreateTable { cluster, table, .. } = &s.action else { continue };
        let Some(c) = t.cluster(cluster) else { continue };
        let metas: Vec<String> = c.meta_servers.iter().map(|a| a.value.clone()).collect();
        let Ok(admin) = AdminClient::connect(metas) else { continue };
        let Ok(tables) = admin.with_deadline(deadline).list_tables().await else { continue };
        if tables.iter().any(|i| i.name == *table && i.status != TableStatus::Serving) {
            dropped.entry(table.clone()).or_insert_with(|| cluster.clone());
        }
    }
    dropped
}

/// The table a step is about, if it is about one.
fn table_of(a: &Action) -> Option<&str> {
    match a {
        Action::CreateTable { table, .. }
        | Action::DropTable { table, .. }
        | Action::AlterTable { table, .. }
        | Action::SetRole { table, .. }
        | Action::MoveActive { table, .. }
        | Action::AddLink { table, .. }
        | Action::RemoveLink { table, .. }
        | Action::PauseLink { table, .. }
        | Action::ResumeLink { table, .. }
        | Action::SetThrottle { table, .. } => Some(table),
        Action::AddPolicy { .. }
        | Action::AlterPolicy { .. }
        | Action::RemovePolicy { .. }
        | Action::ChangeProxy { .. } => None,
    }
}

/// `tern up` without a file, with its local S3 server: the topology its flags describe plus a
/// backup policy for every table (`local-default`: every 10 minutes into
/// `s3://tern-backups/<first cluster>`, the newest 6 kept), so a new user has backups without
/// configuring anything. A file's deployment (`-f`) runs exactly its file. `None`: nothing to
/// add.
fn local_backups(d: &Deploy, state: &State) -> Option<Topology> {
    use crate::schema::{Backup, BackupPolicy, BackupTarget, Retention};
    use crate::units::HumanDuration;
    use tern_backup::local_s3::{DEV_BUCKET, DEV_REGION};
    let (Origin::Flags(_), Some(addr)) = (&d.origin, &state.s3) else { return None };
    let t = &d.topology;
    if t.backup.is_some() || t.tables.is_empty() || d.s3.is_none() {
        return None;
    }
    let first = t.clusters.first()?;
    let target = "local";
    let mut with = t.clone();
    with.backup = Some(Backup {
        targets: vec![BackupTarget {
            name: target.to_string().into(),
            url: format!("s3://{DEV_BUCKET}/{}", first.name.value).into(),
            endpoint: Some(format!("http://{addr}").into()),
            region: Some(DEV_REGION.to_string()),
        }],
        policies: vec![BackupPolicy {
            name: LOCAL_POLICY.to_string().into(),
            tables: t.tables.iter().map(|table| table.name.value.clone().into()).collect(),
            target: target.to_string().into(),
            interval: HumanDuration(Duration::from_secs(600)).into(),
            start_time: None,
            retention: Retention { keep: Some(6.into()), max_age: None }.into(),
            max_bytes_per_sec: None,
        }],
    });
    Some(with)
}

/// The backup policy `tern up` gives its tables (see [`local_backups`]).
pub const LOCAL_POLICY: &str = "local-default";
