//! `tern up` without a file: the deployment its flags describe, as a [`Topology`], so that it
//! runs through the same code as `tern up -f` (start the file's processes, then `apply` its
//! tables, roles and links) and `up` and `apply` cannot disagree. All pure.
//!
//! With the default flags the topology is `topology/examples/two-dc.yaml` (a test pins it).
//! What the flags describe, for N clusters:
//! - clusters `dc1`…`dcN` (ids 1…N, region `local`), or the single cluster `local` for
//!   `--clusters 1`, each with `--metas` meta and `--replicas` replica servers at port 0;
//! - table `--table` (unless empty) with `--partitions` partitions and `min(--replicas, 3)`
//!   replicas, active in the first cluster, a standby in the others, linked both ways between
//!   every pair of clusters;
//! - with more than one cluster, one proxy named `proxy`, the clusters' one DR voter, with a
//!   Redis gateway whose database 0 is the table.
//!
//! A directory keeps what it was started with ([`migrate`], [`topology`]): its clusters' names
//! (so `--clusters 1` after a two-cluster run keeps `dc1`, as it always did), the ports of its
//! servers and proxy, and the single cluster `local` its data at the top of the directory
//! (`data-dir: .`), where older versions put it.

use std::path::PathBuf;
use std::time::Duration;

use tern_core::{Error, Result};

use super::state::{ClusterState, ProxyState, State};
use crate::schema::{Cluster, Link, Proxy, Redis, Role, Table, TableCopy, Topology, VERSION};

/// The name of the single cluster of `tern up --clusters 1`.
pub const SINGLE_CLUSTER: &str = "local";
/// The name of the proxy of `tern up` (also its name as the DR voter, and its process's).
pub const PROXY: &str = "proxy";
/// The `data-dir` of the single cluster: the deployment's directory itself.
pub const TOP: &str = ".";
/// Every listener of `tern up`: loopback, a port picked at the first run.
const ANY_PORT: &str = "127.0.0.1:0";

/// What to start: `tern up`'s flags (without a file) and how to run it.
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
    /// A table in every cluster (empty: none).
    pub table: String,
    pub partitions: u32,
    /// Worker threads of each replica server (`None`: the machine's cores shared out among all
    /// the replica servers, at least 1).
    pub worker_threads: Option<u64>,
    /// How long each wait (servers joining, links starting, leases) may take.
    pub ready_within: Duration,
    /// How long each call of apply to a cluster may keep trying.
    pub apply_deadline: Duration,
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
            apply_deadline: Duration::from_secs(10),
            s3: None,
        }
    }

    /// The flags as a command line (in messages and in the deployed file's header).
    pub fn command(&self) -> String {
        let table = if self.table.is_empty() { "''" } else { self.table.as_str() };
        format!(
            "tern up --clusters {} --metas {} --replicas {} --table {table} --partitions {}",
            self.clusters, self.metas, self.replicas, self.partitions
        )
    }
}

/// The state an older version of `tern up` left, in today's terms: a single-cluster state
/// without `clusters` becomes cluster `local`, and the proxy known only by its address
/// (`proxy`) becomes proxy `proxy`, so that their ports are kept.
pub fn migrate(mut s: State) -> State {
    if s.clusters.is_empty() && !s.metas.is_empty() {
        s.clusters.push(ClusterState {
            name: SINGLE_CLUSTER.into(),
            id: 1,
            metas: s.metas.clone(),
            replicas: s.replicas.clone(),
            data_dir: None,
        });
    }
    if s.proxies.is_empty()
        && let Some(listen) = &s.proxy
    {
        s.proxies.push(ProxyState { name: PROXY.into(), listen: listen.clone(), redis: None });
    }
    s
}

/// The deployment `spec`'s flags describe in a directory that holds `previous` (see the module
/// doc), validated like a file. An error names what the flags got wrong.
pub fn topology(spec: &LocalSpec, previous: &State) -> Result<Topology> {
    let n = spec.clusters as usize;
    let names: Vec<String> = (0..n)
        .map(|i| match previous.clusters.get(i) {
            Some(c) => c.name.clone(),
            None if n == 1 => SINGLE_CLUSTER.to_string(),
            None => format!("dc{}", i + 1),
        })
        .collect();
    let any = |count: u64| (0..count).map(|_| ANY_PORT.to_string().into()).collect::<Vec<_>>();
    let clusters = names
        .iter()
        .enumerate()
        .map(|(i, name)| Cluster {
            name: name.clone().into(),
            id: (i as u32 + 1).into(),
            region: Some("local".into()),
            meta_servers: any(spec.metas),
            replica_servers: any(spec.replicas),
            data_dir: (name == SINGLE_CLUSTER).then(|| TOP.to_string().into()),
        })
        .collect();
    let mut tables = Vec::new();
    if !spec.table.is_empty() {
        let copies = names
            .iter()
            .enumerate()
            .map(|(i, c)| TableCopy {
                cluster: c.clone().into(),
                role: (if i == 0 { Role::Active } else { Role::Standby }).into(),
            })
            .collect();
        let link = |from: &String, to: &String| Link {
            from: from.clone().into(),
            to: to.clone().into(),
            max_bytes_per_sec: None,
            paused: false,
        };
        let mut links = Vec::new();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                links.extend([link(a, b), link(b, a)]);
            }
        }
        tables.push(Table {
            name: spec.table.clone().into(),
            partitions: spec.partitions.into(),
            replicas: (spec.replicas.min(3) as u32).into(),
            copies,
            default_ttl: None,
            links,
        });
    }
    let mut proxies = Vec::new();
    if n > 1 {
        proxies.push(Proxy {
            name: PROXY.to_string().into(),
            listen: ANY_PORT.to_string().into(),
            dr_voter: true,
            redis: (!spec.table.is_empty()).then(|| Redis {
                listen: ANY_PORT.to_string().into(),
                table: spec.table.clone().into(),
                databases: Default::default(),
            }),
            auto_failover: Vec::new(),
        });
    }
    let t = Topology { version: VERSION.into(), clusters, tables, proxies, backup: None };
    let problems = crate::validate::validate(&t, "the flags");
    if !problems.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "`{}` describes a deployment tern cannot run:\n{problems}",
            spec.command()
        )));
    }
    Ok(t)
}

#[cfg(test)]
#[path = "flags_tests.rs"]
mod tests;
