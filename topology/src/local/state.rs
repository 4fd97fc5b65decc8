//! The state file of a local deployment, `<dir>/cluster.json`: each cluster's name, id and
//! server addresses, the proxy's address, and the pids of every process (so `tern down` can
//! stop them). Read back by the next `tern up` on the same directory, which keeps its ports.
//! The layout is what scripts read (`.metas` is the first cluster's, `.proxy` the first
//! proxy's, `.clusters[i].metas`, `.pids`): do not rename fields. It also records the topology
//! file (`tern up -f`; none for `tern up`'s flags), a digest of the processes the topology
//! describes (its [`layout`](State::layout)), every proxy, and every process with its role,
//! address and log (what `tern ps` lists).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tern_core::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The first cluster's servers (at the top level, so scripts written for one cluster keep
    /// reading `.metas`).
    pub metas: BTreeMap<u64, String>,
    pub replicas: BTreeMap<u64, String>,
    /// Every process of every cluster.
    pub pids: Vec<u32>,
    #[serde(default)]
    pub clusters: Vec<ClusterState>,
    /// The first proxy's address (`tern up`'s flags: the proxy, with more than one cluster).
    #[serde(default)]
    pub proxy: Option<String>,
    /// Every proxy (a state of an older `tern up` has only `proxy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxies: Vec<ProxyState>,
    /// Every process started, in start order (a state written by an older version has only
    /// `pids`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessState>,
    /// The topology file (canonical path) of a deployment started by `tern up -f`; `None`: by
    /// `tern up`'s flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// A digest of the processes the topology describes (clusters, servers, proxies; not
    /// tables): `up` on a running deployment refuses a topology whose processes differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// The binary the processes were started from: `down` signals only processes that still
    /// run it (a pid may have been reused since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<PathBuf>,
    /// The local S3-compatible server for backups (`127.0.0.1:port`), when one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<String>,
}

/// A proxy of a deployment started from a file, at the address it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyState {
    pub name: String,
    pub listen: String,
    /// Its Redis gateway, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

/// What a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessRole {
    Meta,
    Replica,
    Proxy,
    /// The local S3-compatible server for backups (s3s-fs).
    S3,
}

impl std::fmt::Display for ProcessRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProcessRole::Meta => "meta",
            ProcessRole::Replica => "replica",
            ProcessRole::Proxy => "proxy",
            ProcessRole::S3 => "s3",
        })
    }
}

/// One process of the deployment, as `tern ps` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessState {
    /// `dc1-meta-1`, `dc2-replica-3`, `proxy`: also its log's name.
    pub name: String,
    /// The cluster it belongs to (`None`: a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub role: ProcessRole,
    pub pid: u32,
    /// Where it listens (a proxy with a Redis gateway: both, comma-separated).
    pub addr: String,
    pub log: PathBuf,
    /// The program it runs when that is not the deployment's `tern` binary (the S3 server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<PathBuf>,
}

/// One cluster: its meta servers and replica servers by index, `127.0.0.1:port` each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub id: u8,
    pub metas: BTreeMap<u64, String>,
    pub replicas: BTreeMap<u64, String>,
    /// Its data directory under the deployment's (`.`: the deployment's own; `None`, in a
    /// state of an older `tern up`: its name, or the deployment's own for cluster `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
}

impl ClusterState {
    pub fn meta_addrs(&self) -> Vec<String> {
        self.metas.values().cloned().collect()
    }
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

/// `HOST:PORT` with a port of `host` that was free a moment ago (the OS picks it).
pub fn free_addr_on(host: &str) -> Result<String> {
    let what = || format!("find a free port on {host} (tern up runs every process on this machine)");
    let l = std::net::TcpListener::bind((host.trim_start_matches('[').trim_end_matches(']'), 0))
        .map_err(|e| Error::io(what(), e))?;
    Ok(format!("{host}:{}", l.local_addr().map_err(|e| Error::io(what(), e))?.port()))
}

fn free_addr() -> Result<String> {
    free_addr_on("127.0.0.1")
}

impl State {
    /// The state left in `dir` by an earlier `up`, or an empty one (a missing or unreadable
    /// file starts afresh).
    pub fn load(dir: &Path) -> State {
        std::fs::read(path(dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Reads the state file `down` needs: it must exist.
    pub fn read(dir: &Path) -> Result<State> {
        let p = path(dir);
        let bytes = std::fs::read(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidArgument(format!("{} is not a local deployment's state: {e}", p.display()))
        })
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = path(dir);
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::invariant(format!("serialize the local deployment's state: {e}")))?;
        std::fs::write(&p, bytes).map_err(|e| Error::io(format!("write {}", p.display()), e))
    }

    /// Keeps the S3 server's port when it is wanted, picks one if it has none; forgets it
    /// otherwise.
    pub fn plan_s3(&mut self, wanted: bool) -> Result<()> {
        self.s3 = match (wanted, self.s3.take()) {
            (false, _) => None,
            (true, Some(a)) => Some(a),
            (true, None) => Some(free_addr()?),
        };
        Ok(())
    }
}
