//! The same topology beyond one machine: Kubernetes manifests ([`k8s()`], built from the typed
//! API objects of `k8s-openapi`) and a Docker Compose file ([`compose()`]). Both run the same
//! processes with the same flags as `tern up`: meta servers, replica servers and proxies, each
//! a `tern meta` / `tern replica` / `tern proxy` of the image the repository's `Dockerfile`
//! builds. The command lines are built in one place ([`args`]), so the two formats cannot
//! disagree.
//!
//! Addresses: the file's hosts are replaced by the names the processes get where they run (pod
//! DNS names of a headless Service, Compose service names); the file's ports are kept (port 0,
//! for `tern up`, becomes the default port of that kind of server). The topology as deployed
//! (the same file with those addresses) is what the manifests ship in their ConfigMap, for
//! `tern apply -f` from inside. Guide: docs/topology.md, "Beyond one machine".

mod args;
mod compose;
mod k8s;
mod names;

use crate::schema::Topology;

pub use self::compose::compose;
pub use self::k8s::{CONFIG_MAP, K8sOptions, ManifestFile, TOPOLOGY_KEY, k8s, k8s_files};

/// Default ports of each kind of server, used where the file says port 0 (local runs).
pub const META_PORT: u16 = 34601;
pub const REPLICA_PORT: u16 = 34801;
pub const PROXY_PORT: u16 = 34700;
pub const REDIS_PORT: u16 = 6379;
/// Where replica servers and proxies serve Prometheus metrics (`--metrics-listen`) in their
/// container; the liveness probe reads it.
pub const METRICS_PORT: u16 = 9100;
/// Where a container keeps its data (the persistent volume's mount point).
pub const DATA_DIR: &str = "/var/lib/tern";
/// Where the topology file is mounted in meta server containers.
pub const TOPOLOGY_DIR: &str = "/etc/tern";

/// Why a topology could not be exported. The file itself was validated by
/// [`Topology::load`]; these are the limits of the target.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A name of the file does not make a valid Kubernetes or Compose object name.
    #[error("{what} `{name}`: {why}")]
    Name { what: String, name: String, why: String },
    /// Two names of the file map to the same object name.
    #[error("{first} and {second} both become the object name `{object}`: rename one of them")]
    Clash { first: String, second: String, object: String },
    /// An address of the file is not `HOST:PORT`.
    #[error("{what}: `{addr}` is not HOST:PORT")]
    Address { what: String, addr: String },
    /// An option is out of range.
    #[error("{0}")]
    Option(String),
    /// The output could not be written as YAML.
    #[error("write the {what} as YAML: {cause}")]
    Yaml { what: String, cause: String },
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// The port of `HOST:PORT`, or `default` for port 0.
fn port_of(addr: &str, default: u16, what: &str) -> Result<u16> {
    let bad = || ExportError::Address { what: what.to_string(), addr: addr.to_string() };
    let (_, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>().map_err(|_| bad())? {
        0 => Ok(default),
        p => Ok(p),
    }
}

/// The ports every server of one kind listens on: the first address's (each server runs in its
/// own container, so they need not differ as on one machine).
fn first_port(addrs: &[crate::located::Located<String>], default: u16, what: &str) -> Result<u16> {
    match addrs.first() {
        Some(a) => port_of(a, default, what),
        None => Ok(default),
    }
}

/// Where each process of the topology is reached, as deployed: the topology's addresses with
/// their hosts replaced.
#[derive(Clone, Debug)]
struct Placement {
    clusters: Vec<ClusterPlace>,
    proxies: Vec<ProxyPlace>,
}

#[derive(Clone, Debug)]
struct ClusterPlace {
    meta_port: u16,
    replica_port: u16,
    /// `(id, HOST:PORT)` per meta server, ids from 1.
    metas: Vec<(u32, String)>,
    replicas: Vec<String>,
}

#[derive(Clone, Debug)]
struct ProxyPlace {
    port: u16,
    redis_port: Option<u16>,
    /// Where clients reach it, `HOST:PORT`.
    addr: String,
    redis_addr: Option<String>,
}

impl Placement {
    /// `host(kind, base, index)` names the host of server `index` (from 1; 0 for a proxy) of
    /// `kind` (`meta`, `replica`, `proxy`) of the cluster or proxy whose object name is `base`
    /// ([`names::Names`]).
    fn new(
        t: &Topology,
        names: &names::Names,
        host: &dyn Fn(&str, &str, usize) -> String,
    ) -> Result<Placement> {
        let mut clusters = Vec::new();
        for (c, base) in t.clusters.iter().zip(&names.clusters) {
            let meta_port =
                first_port(&c.meta_servers, META_PORT, &format!("cluster {} meta-servers", *c.name))?;
            let replica_port = first_port(
                &c.replica_servers,
                REPLICA_PORT,
                &format!("cluster {} replica-servers", *c.name),
            )?;
            let metas = (1..=c.meta_servers.len())
                .map(|i| (i as u32, format!("{}:{meta_port}", host("meta", base, i))))
                .collect();
            let replicas = (1..=c.replica_servers.len())
                .map(|i| format!("{}:{replica_port}", host("replica", base, i)))
                .collect();
            clusters.push(ClusterPlace { meta_port, replica_port, metas, replicas });
        }
        let mut proxies = Vec::new();
        for (p, base) in t.proxies.iter().zip(&names.proxies) {
            let port = port_of(&p.listen, PROXY_PORT, &format!("proxy {} listen", *p.name))?;
            let redis_port = match &p.redis {
                Some(r) => Some(port_of(&r.listen, REDIS_PORT, &format!("proxy {} redis.listen", *p.name))?),
                None => None,
            };
            let h = host("proxy", base, 0);
            proxies.push(ProxyPlace {
                port,
                redis_port,
                addr: format!("{h}:{port}"),
                redis_addr: redis_port.map(|r| format!("{h}:{r}")),
            });
        }
        Ok(Placement { clusters, proxies })
    }

    /// `--dr-voters` of every meta server and proxy: the proxies that are DR voters.
    fn voters(&self, t: &Topology) -> Option<String> {
        let v: Vec<String> = t
            .proxies
            .iter()
            .zip(&self.proxies)
            .filter(|(p, _)| p.dr_voter)
            .map(|(p, place)| format!("{}={}", *p.name, place.addr))
            .collect();
        (!v.is_empty()).then(|| v.join(","))
    }

    /// The topology with every address replaced by where it is deployed: the file
    /// `tern apply -f` reads next to the deployment.
    fn deployed(&self, t: &Topology) -> Topology {
        let mut d = t.clone();
        for (c, place) in d.clusters.iter_mut().zip(&self.clusters) {
            c.meta_servers = place.metas.iter().map(|(_, a)| a.clone().into()).collect();
            c.replica_servers = place.replicas.iter().map(|a| a.clone().into()).collect();
            c.data_dir = None;
        }
        for (p, place) in d.proxies.iter_mut().zip(&self.proxies) {
            p.listen = place.addr.clone().into();
            if let (Some(r), Some(a)) = (p.redis.as_mut(), &place.redis_addr) {
                r.listen = a.clone().into();
            }
        }
        d
    }
}

/// `value` as YAML, through serde-saphyr (the library that reads the topology file).
fn to_yaml<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_saphyr::to_string(value)
        .map_err(|e| ExportError::Yaml { what: what.to_string(), cause: e.to_string() })
}

#[cfg(test)]
mod tests;
