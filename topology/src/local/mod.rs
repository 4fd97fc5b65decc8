//! Local deployments for trying Tern out (what `tern up`/`tern ps`/`tern down` run): every
//! process of a topology on this machine, as child processes of the `tern` binary, brought into
//! service by the same `apply` as `tern apply`.
//!
//! Two ways to say what to run, one path to run it ([`deploy`]):
//! - [`up`]: `tern up`'s flags ([`LocalSpec`]), turned into a topology by [`flags`] (by default
//!   the bundled `topology/examples/two-dc.yaml`: clusters dc1 and dc2, table `demo` active in
//!   dc1 and a standby in dc2, linked both ways, a proxy that is the clusters' one DR voter,
//!   with a Redis gateway);
//! - [`up_file`]: a topology file ([`FileSpec`], `tern up -f`).
//!
//! Either way: each cluster's servers and each proxy at the topology's addresses (port 0 picked
//! and kept: [`file::resolve`]), then a wait for the servers, then `plan` and `apply::execute`
//! of the topology (tables, roles, links), then waits for the proxies, links and DR leases.
//! When given an s3s-fs binary, also a local S3-compatible server for backups (process `s3`,
//! buckets under `<dir>/s3`; the caller makes the bucket).
//!
//! Owns: choosing ports and keeping them in the state file ([`state`]), starting and stopping
//! the processes with their logs ([`processes`]), and waiting until the deployment serves
//! ([`readiness`], through the admin client only). Layout: state in `<dir>/cluster.json`, the
//! topology as run in `<dir>/topology.yaml`, data in `<dir>/<data-dir or cluster>/<process>/`,
//! logs in `<dir>/logs/`. Running `up` again on the same directory reuses the ports, the data
//! and the links; on a running deployment it starts nothing and applies again. If `up` fails,
//! it stops everything it started. [`ps`] lists the processes of a deployment, [`down`] stops
//! them and waits until they are gone.

mod deploy;
pub mod file;
pub mod flags;
pub mod processes;
pub mod readiness;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_core::Error;

pub use self::deploy::LOCAL_POLICY;
use self::deploy::{Deploy, Origin, deploy};
pub use self::flags::LocalSpec;
use self::processes::{Processes, alive, runs};
pub use self::state::{ClusterState, ProcessRole, ProcessState, ProxyState, State};
use crate::schema::Topology;

/// Why `up` failed. Whatever it had started is stopped.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// Before any process was started.
    #[error("{0}")]
    Prepare(Error),
    #[error("the local deployment did not come up: {cause} (logs in {})", logs.display())]
    NotUp { logs: PathBuf, cause: Error },
    /// The directory holds another deployment (another file, or a file where flags were given,
    /// or the other way round), or runs one with other processes: nothing was started or
    /// changed.
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
    /// `up` found the deployment already running (it started nothing; stop and detach do
    /// nothing).
    adopted: bool,
    /// The topology it runs, with the ports picked (what `<dir>/topology.yaml` holds).
    topology: Topology,
}

impl Running {
    /// The deployment's directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn clusters(&self) -> &[ClusterState] {
        &self.state.clusters
    }

    /// The first proxy's address, if there is a proxy.
    pub fn proxy(&self) -> Option<&str> {
        self.state.proxy.as_deref()
    }

    /// The topology it runs, with the ports picked (tables, roles, links: as applied).
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Every proxy.
    pub fn proxies(&self) -> &[ProxyState] {
        &self.state.proxies
    }

    /// The local S3 server for backups (`127.0.0.1:port`), if one was started; its buckets
    /// are directories under `<dir>/s3`.
    pub fn s3(&self) -> Option<&str> {
        self.state.s3.as_deref()
    }

    /// Whether `up` found the deployment running already and started nothing.
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

/// Starts the deployment `tern up`'s flags describe ([`flags::topology`]) and brings it into
/// service, like [`up_file`] of that topology. `progress` is told each step as it starts
/// ("waiting for 3 replica servers of dc1 to join…").
///
/// A directory that holds the deployment of a topology file is refused ([`UpError::Refused`]);
/// one that runs the same flags' processes starts nothing and applies again
/// ([`Running::adopted`]); one that runs other processes is refused.
pub async fn up(spec: &LocalSpec, progress: impl FnMut(&str)) -> Result<Running, UpError> {
    let dir = prepare_dir(&spec.dir)?;
    let previous = State::load(&dir);
    if let Some(file) = &previous.file {
        return Err(UpError::Refused(format!(
            "{} holds the deployment of the topology file {} (started by `tern up -f`): run `tern up -f {} --dir {}`, or use another --dir",
            dir.display(),
            file.display(),
            file.display(),
            dir.display()
        )));
    }
    let previous = flags::migrate(previous);
    let topology = flags::topology(spec, &previous).map_err(UpError::Prepare)?;
    let d = Deploy {
        dir,
        binary: spec.binary.clone(),
        origin: Origin::Flags(spec.command()),
        topology,
        worker_threads: spec.worker_threads,
        ready_within: spec.ready_within,
        apply_deadline: spec.apply_deadline,
        s3: spec.s3.clone(),
    };
    deploy(&d, previous, progress).await
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
pub async fn up_file(spec: &FileSpec, progress: impl FnMut(&str)) -> Result<Running, UpError> {
    let dir = prepare_dir(&spec.dir)?;
    let source = spec
        .file
        .canonicalize()
        .map_err(|e| UpError::Prepare(Error::io(format!("resolve {}", spec.file.display()), e)))?;
    let previous = State::load(&dir);
    let running = !previous.live_pids().is_empty();
    let what = if running { "runs" } else { "holds the data of" };
    let then = if running {
        format!("stop it first with `tern down --dir {}`, or use another --dir", dir.display())
    } else {
        "remove the directory, or use another --dir".into()
    };
    match &previous.file {
        Some(f) if *f != source => {
            return Err(UpError::Refused(format!(
                "{} {what} the deployment of another topology file, {}: {then}",
                dir.display(),
                f.display(),
            )));
        }
        None if !previous.clusters.is_empty() || !previous.pids.is_empty() => {
            return Err(UpError::Refused(format!(
                "{} {what} a deployment started by `tern up` without a file: {then}",
                dir.display(),
            )));
        }
        _ => {}
    }
    let d = Deploy {
        dir,
        binary: spec.binary.clone(),
        origin: Origin::File(source),
        topology: spec.topology.clone(),
        worker_threads: spec.worker_threads,
        ready_within: spec.ready_within,
        apply_deadline: spec.apply_deadline,
        s3: spec.s3.clone(),
    };
    deploy(&d, previous, progress).await
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
