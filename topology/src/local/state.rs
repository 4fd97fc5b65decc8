//! The state file of a local deployment, `<dir>/cluster.json`: each cluster's name, id and
//! server addresses, the proxy's address, and the pids of every process (so `tern down` can
//! stop them). Read back by the next `tern up` on the same directory, which keeps its ports.
//! The layout is what scripts read (`.metas` is the first cluster's): do not rename fields.
//! `tern up -f FILE` also records the file, a digest of the processes it describes (its
//! [`layout`](State::layout)), every proxy, and every process with its role, address and log
//! (what `tern ps` lists).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tern_core::{Error, Result};

use super::LocalSpec;

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
    /// The meta-proxy in front of every cluster (with more than one cluster; with a file, its
    /// first proxy).
    #[serde(default)]
    pub proxy: Option<String>,
    /// Every proxy of a deployment started from a file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxies: Vec<ProxyState>,
    /// Every process started, in start order (a state written by an older version has only
    /// `pids`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessState>,
    /// The topology file (canonical path) of a deployment started by `tern up -f`; `None`: by
    /// flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// A digest of the processes the file describes (clusters, servers, proxies; not tables):
    /// `up -f` on a running deployment refuses a file whose processes differ.
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
    /// Its data directory under the deployment's (`None`: its name, or the deployment's own
    /// for the single cluster `local`).
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

    /// Fits the state to `spec`: clusters and servers that exist keep their ports, new ones
    /// get free ports, those beyond the spec are dropped. A directory from a single-cluster
    /// `up` of an older version (no `clusters`) becomes cluster `local`.
    pub fn plan(&mut self, spec: &LocalSpec) -> Result<()> {
        if self.clusters.is_empty() && !self.metas.is_empty() {
            self.clusters.push(ClusterState {
                name: "local".into(),
                id: 1,
                metas: self.metas.clone(),
                replicas: self.replicas.clone(),
                data_dir: None,
            });
        }
        let single = spec.clusters == 1;
        for i in 0..spec.clusters as usize {
            if self.clusters.len() <= i {
                let name = if single { "local".to_string() } else { format!("dc{}", i + 1) };
                self.clusters.push(ClusterState { name, id: i as u8 + 1, ..Default::default() });
            }
            let c = &mut self.clusters[i];
            for id in 1..=spec.metas {
                if let Entry::Vacant(e) = c.metas.entry(id) {
                    e.insert(free_addr()?);
                }
            }
            c.metas.retain(|id, _| *id <= spec.metas);
            for r in 1..=spec.replicas {
                if let Entry::Vacant(e) = c.replicas.entry(r) {
                    e.insert(free_addr()?);
                }
            }
        }
        self.clusters.truncate(spec.clusters as usize);
        self.proxy = match (single, self.proxy.take()) {
            (true, _) => None,
            (false, Some(a)) => Some(a),
            (false, None) => Some(free_addr()?),
        };
        self.metas = self.clusters[0].metas.clone();
        self.replicas = self.clusters[0].replicas.clone();
        self.plan_s3(spec.s3.is_some())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(clusters: u64, metas: u64, replicas: u64) -> LocalSpec {
        LocalSpec { clusters, metas, replicas, ..LocalSpec::new("d".into(), "tern".into()) }
    }

    #[test]
    fn a_second_plan_keeps_the_ports_and_fits_the_counts() {
        let mut s = State::default();
        s.plan(&spec(2, 1, 3)).unwrap();
        assert_eq!(
            s.clusters.iter().map(|c| (c.name.as_str(), c.id)).collect::<Vec<_>>(),
            [("dc1", 1), ("dc2", 2)]
        );
        assert_eq!((s.clusters[1].metas.len(), s.clusters[1].replicas.len()), (1, 3));
        assert_eq!(s.metas, s.clusters[0].metas);
        let proxy = s.proxy.clone().expect("two clusters have a proxy");
        let before = s.clone();
        s.plan(&spec(2, 1, 3)).unwrap();
        assert_eq!(s, before, "the same spec changes nothing");
        s.plan(&spec(1, 1, 3)).unwrap();
        assert_eq!((s.clusters.len(), s.proxy.as_deref()), (1, None));
        assert_eq!(s.clusters[0].metas, before.clusters[0].metas);
        assert_ne!(Some(proxy), s.proxy);
    }

    #[test]
    fn an_old_single_cluster_state_becomes_cluster_local_and_reads_back() {
        let old = r#"{"metas":{"1":"127.0.0.1:5"},"replicas":{"1":"127.0.0.1:6"},"pids":[7]}"#;
        let mut s: State = serde_json::from_str(old).unwrap();
        s.plan(&spec(1, 1, 1)).unwrap();
        assert_eq!(s.clusters[0].name, "local");
        assert_eq!(s.clusters[0].meta_addrs(), ["127.0.0.1:5"]);
        let dir = tempfile::tempdir().unwrap();
        s.save(dir.path()).unwrap();
        assert_eq!(State::read(dir.path()).unwrap(), s);
        assert_eq!(State::load(dir.path()), s);
    }
}
