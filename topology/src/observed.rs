//! [`Observed`]: the running deployment as plain data, what [`crate::plan()`] compares the file
//! with. Built from the typed admin client's answers by [`observed_from`] (a pure conversion:
//! the caller does the calls), or from a topology by [`Observed::of_topology`] (what a
//! deployment looks like once the file is applied; tests use it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tern_client::admin::backup_policy::BackupPolicy;
use tern_client::admin::{LinkReport, ProxyStatus, TableInfo};
use tern_core::{DrRole, LinkMode, LinkStatus, TableStatus};

use crate::schema::{Role, Topology};

/// A running deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The version of the state this was read at, opaque: [`Observed::digest`] of what was
    /// read, each cluster's `topology_versions` included. `apply` carries it, refuses to run if
    /// the deployment's digest moved since, and then compare-and-sets every cluster's topology
    /// version on its meta servers (docs/topology.md, "The version rule").
    pub version: String,
    /// By cluster name, the topology state version its meta servers keep (bumped by every
    /// apply that changes something). Empty when built without asking them (tests,
    /// [`Observed::of_topology`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topology_versions: BTreeMap<String, u64>,
    /// By name, the clusters that answered. A cluster of the file missing here is planned as
    /// if it held nothing.
    pub clusters: BTreeMap<String, ObservedCluster>,
    /// Backup policies by name, merged over the clusters that hold them (each cluster keeps
    /// the policy for the tables it has a copy of; see [`policies_from`]).
    pub backup_policies: BTreeMap<String, ObservedPolicy>,
    /// Proxies by name; `None`: not asked (their settings are then not planned).
    pub proxies: Option<BTreeMap<String, ObservedProxy>>,
}

/// One cluster: its serving tables and its outgoing links (removed ones left out).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedCluster {
    pub tables: BTreeMap<String, ObservedTable>,
    /// Sorted by id.
    pub links: Vec<ObservedLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedTable {
    pub partitions: u32,
    pub replicas: u32,
    pub role: DrRole,
    pub epoch: u64,
    /// `None` also when the cluster does not report one (today's meta servers keep no default
    /// TTL).
    pub default_ttl: Option<Duration>,
}

/// An outgoing link of one of the cluster's tables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedLink {
    pub id: u64,
    pub table: String,
    /// The receiving cluster.
    pub to: String,
    /// The receiving table (the file's links always name the same table).
    pub remote_table: String,
    pub status: LinkStatus,
    pub mode: LinkMode,
    /// 0 = unlimited.
    pub max_bytes_per_sec: u64,
}

/// A backup policy with its target resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ObservedPolicy {
    pub tables: Vec<String>,
    pub url: String,
    pub endpoint: Option<String>,
    pub interval: Duration,
    pub start_time: Option<String>,
    pub keep: Option<u32>,
    pub max_age: Option<Duration>,
    /// 0 = unlimited.
    pub max_bytes_per_sec: u64,
}

/// What a proxy reports of its settings: whether it is a DR voter, and its automatic failover
/// per table. (Its Redis gateway is not reported by `ProxyAdmin.Status`.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedProxy {
    pub dr_voter: bool,
    /// Table → (after, RPO budget).
    pub auto_failover: BTreeMap<String, (Duration, Duration)>,
}

impl Observed {
    /// A digest of everything but `version` (the clusters' topology versions included): two reads of an unchanged deployment give the
    /// same one. A link's status counts only as paused or not: a new link moves from `init`
    /// through `syncing-checkpoint` to `shipping` on its own, and the plan reads no more of it,
    /// so that progress is not a change an apply should be refused for.
    pub fn digest(&self) -> String {
        let mut clusters = self.clusters.clone();
        for l in clusters.values_mut().flat_map(|c| c.links.iter_mut()) {
            if l.status != LinkStatus::Paused {
                l.status = LinkStatus::Shipping;
            }
        }
        let content = (&clusters, &self.backup_policies, &self.proxies, &self.topology_versions);
        let bytes = serde_json::to_vec(&content).unwrap_or_default();
        format!("{:016x}", tern_core::hash::hash_key_hash(&bytes))
    }

    /// `self` with its version set to its digest.
    pub fn versioned(mut self) -> Observed {
        self.version = self.digest();
        self
    }

    pub fn cluster(&self, name: &str) -> Option<&ObservedCluster> {
        self.clusters.get(name)
    }

    /// The deployment `t` describes, as it would be observed once applied (active copies at
    /// epoch 0, standbys at epoch 1, as `tern up` leaves them; proxies observed).
    pub fn of_topology(t: &Topology) -> Observed {
        let mut clusters: BTreeMap<String, ObservedCluster> =
            t.clusters.iter().map(|c| (c.name.value.clone(), ObservedCluster::default())).collect();
        let mut next_id = 1;
        for table in &t.tables {
            for copy in &table.copies {
                let c = clusters.entry(copy.cluster.value.clone()).or_default();
                let active = *copy.role == Role::Active;
                c.tables.insert(
                    table.name.value.clone(),
                    ObservedTable {
                        partitions: *table.partitions,
                        replicas: *table.replicas,
                        role: copy.role.dr_role(),
                        epoch: if active { 0 } else { 1 },
                        default_ttl: table.default_ttl.as_ref().map(|d| d.0),
                    },
                );
            }
            for link in &table.links {
                let c = clusters.entry(link.from.value.clone()).or_default();
                let two_way = table.has_link(&link.to, &link.from);
                c.links.push(ObservedLink {
                    id: next_id,
                    table: table.name.value.clone(),
                    to: link.to.value.clone(),
                    remote_table: table.name.value.clone(),
                    status: if link.paused { LinkStatus::Paused } else { LinkStatus::Shipping },
                    mode: if two_way { LinkMode::TwoWay } else { LinkMode::OneWay },
                    max_bytes_per_sec: link.max_bytes_per_sec.as_ref().map_or(0, |b| b.0),
                });
                next_id += 1;
            }
        }
        let backup_policies = crate::plan::desired_policies(t);
        let proxies =
            t.proxies.iter().map(|p| (p.name.value.clone(), crate::plan::desired_proxy(p))).collect();
        Observed {
            version: String::new(),
            topology_versions: BTreeMap::new(),
            clusters,
            backup_policies,
            proxies: Some(proxies),
        }
        .versioned()
    }
}

/// One cluster as its admin client reports it: `tables` from `list_tables` (dropped ones are
/// left out), `links` from `links(None)` (removed ones are left out).
pub fn cluster_from(tables: &[TableInfo], links: &[LinkReport]) -> ObservedCluster {
    let tables = tables
        .iter()
        .filter(|t| t.status == TableStatus::Serving)
        .map(|t| {
            let o = ObservedTable {
                partitions: t.partitions,
                replicas: t.replicas,
                role: t.role,
                epoch: t.epoch,
                default_ttl: None,
            };
            (t.name.clone(), o)
        })
        .collect();
    let mut links: Vec<ObservedLink> = links
        .iter()
        .map(|r| &r.link)
        .filter(|l| l.status != LinkStatus::Removed)
        .map(|l| ObservedLink {
            id: l.id,
            table: l.table_name.clone(),
            to: l.remote_cluster.clone(),
            remote_table: l.remote_table.clone(),
            status: l.status,
            mode: l.mode,
            max_bytes_per_sec: l.max_bytes_per_sec,
        })
        .collect();
    links.sort_by_key(|l| l.id);
    ObservedCluster { tables, links }
}

/// A proxy's settings from its `ProxyAdmin.Status`.
pub fn proxy_from(status: &ProxyStatus) -> ObservedProxy {
    ObservedProxy {
        dr_voter: status.dr_name.is_some(),
        auto_failover: status
            .tables
            .iter()
            .filter(|t| t.auto_failover)
            .map(|t| {
                let d = (Duration::from_millis(t.failover_after_ms), Duration::from_millis(t.rpo_budget_ms));
                (t.table.clone(), d)
            })
            .collect(),
    }
}

/// A deployment from its clusters' answers (`(name, tables, links)` each) and, if asked, its
/// proxies' (`(name, status)` each); versioned by its digest.
pub fn observed_from(
    clusters: &[(&str, &[TableInfo], &[LinkReport])],
    proxies: Option<&[(&str, &ProxyStatus)]>,
) -> Observed {
    Observed {
        version: String::new(),
        topology_versions: BTreeMap::new(),
        clusters: clusters.iter().map(|(n, t, l)| (n.to_string(), cluster_from(t, l))).collect(),
        backup_policies: BTreeMap::new(),
        proxies: proxies.map(|ps| ps.iter().map(|(n, s)| (n.to_string(), proxy_from(s))).collect()),
    }
    .versioned()
}

/// The backup policies of the clusters (`(cluster, policies)` each), by name: a policy held by
/// several clusters is one policy with the union of their tables, in the order first seen
/// (plans compare tables as sets). Its other settings are the first cluster's.
pub fn policies_from(clusters: &[(&str, &[BackupPolicy])]) -> BTreeMap<String, ObservedPolicy> {
    let mut out: BTreeMap<String, ObservedPolicy> = BTreeMap::new();
    for (_, policies) in clusters {
        for p in *policies {
            let o = out.entry(p.name.clone()).or_insert_with(|| ObservedPolicy {
                tables: Vec::new(),
                url: p.target.url.clone(),
                endpoint: p.target.endpoint.clone(),
                interval: Duration::from_secs(p.interval_secs),
                start_time: p.start_minute.map(|m| format!("{:02}:{:02}", m / 60, m % 60)),
                keep: p.keep_last,
                max_age: p.max_age_secs.map(Duration::from_secs),
                max_bytes_per_sec: p.limit_bytes_per_sec.unwrap_or(0),
            });
            for t in &p.tables {
                if !o.tables.contains(t) {
                    o.tables.push(t.clone());
                }
            }
        }
    }
    out
}

/// The role a copy should have, in the file's terms.
pub fn role_of(r: DrRole) -> Role {
    match r {
        DrRole::Active => Role::Active,
        DrRole::Standby => Role::Standby,
    }
}
