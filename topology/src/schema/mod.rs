//! The topology file as Rust types: what `tern plan`/`tern apply` read, what `tern up` runs
//! locally, and what the JSON Schema for editors is generated from ([`crate::json_schema`]).
//! Every struct refuses unknown fields; names are kebab-case in the file. A field read as
//! [`Located`] keeps its line and column for the semantic checks of [`crate::validate`].
//!
//! Shape checks that need no other part of the file (ranges, formats) are in `validate` too,
//! so that all of them are reported at once instead of one parse error at a time.

mod backup;
mod proxy;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::backup::{Backup, BackupPolicy, BackupTarget, Retention};
pub use self::proxy::{AutoFailover, Proxy, Redis};
use crate::located::Located;
use crate::units::{Bytes, HumanDuration};

/// The version of the topology format this crate reads.
pub const VERSION: u32 = 1;

/// A whole deployment: clusters (one per datacenter), the tables they hold and the
/// duplication links between their copies, the proxies in front of them, and backups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Topology {
    /// The format's version: 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: Located<u32>,
    /// The clusters, one per datacenter. At least one.
    pub clusters: Vec<Cluster>,
    /// The tables, each with its copies in some of the clusters.
    #[serde(default)]
    pub tables: Vec<Table>,
    /// The meta-proxies: the one entry point for clients (native and Redis).
    #[serde(default)]
    pub proxies: Vec<Proxy>,
    /// Backup targets and policies (snapshots in S3-compatible storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
}

/// One datacenter's strongly consistent cluster: its meta servers and replica servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Cluster {
    /// The cluster's name (`dc1`): what links, copies and proxies call it.
    pub name: Located<String>,
    /// 1 to 127, unique: it travels in every timetag, so last-writer-wins ties break by it.
    /// Never change it once the cluster holds data.
    #[schemars(range(min = 1, max = 127))]
    pub id: Located<u32>,
    /// Where it runs (informational; shown by `tern plan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The meta servers, `HOST:PORT` each (1, or 3 for high availability). Port 0: `tern up`
    /// picks a free port (local runs only).
    pub meta_servers: Vec<Located<String>>,
    /// The replica servers, `HOST:PORT` each (at least as many as any table's replicas).
    pub replica_servers: Vec<Located<String>>,
    /// Local runs (`tern up`): the directory of this cluster's data under the deployment's
    /// directory (default: the cluster's name). Each server gets `meta-N`/`replica-N` in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<Located<String>>,
}

/// A table and its copies: one copy per cluster that holds it, exactly one of them active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Table {
    /// 1 to 64 letters, digits, `_`, `.`, `-`.
    pub name: Located<String>,
    /// Partitions of every copy (1 to 4096). Cannot change once created.
    #[schemars(range(min = 1, max = 4096))]
    pub partitions: Located<u32>,
    /// Replicas of each partition (1 to 9; 3 is usual).
    #[schemars(range(min = 1, max = 9))]
    pub replicas: Located<u32>,
    /// The clusters holding a copy and each copy's role: exactly one `active`.
    pub copies: Vec<TableCopy>,
    /// A TTL given to records written without one (whole seconds, e.g. `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<Located<HumanDuration>>,
    /// Duplication links between the copies; a link each way makes the table writable in both.
    #[serde(default)]
    pub links: Vec<Link>,
}

/// One cluster's copy of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TableCopy {
    /// The cluster holding it.
    pub cluster: Located<String>,
    /// `active` takes client writes (the proxy routes to it); `standby` only receives
    /// duplicated writes.
    #[serde(default)]
    pub role: Located<Role>,
}

/// A copy's disaster-recovery role.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Active,
    #[default]
    Standby,
}

impl Role {
    pub fn dr_role(self) -> tern_core::DrRole {
        match self {
            Role::Active => tern_core::DrRole::Active,
            Role::Standby => tern_core::DrRole::Standby,
        }
    }
}

/// A one-way duplication link: the writes of the table's copy in `from` are shipped to its
/// copy in `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Link {
    /// The cluster whose copy ships its writes.
    pub from: Located<String>,
    /// The cluster whose copy receives them.
    pub to: Located<String>,
    /// Most bytes per second the link ships (on the wire), e.g. `10MiB`. Absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_sec: Option<Located<Bytes>>,
    /// Keep the link but stop shipping (the log is held from where it stopped).
    #[serde(default)]
    pub paused: bool,
}

impl Topology {
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| *c.name == name)
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| *t.name == name)
    }
}

impl Table {
    /// The cluster of the active copy (the first one, if the file is not validated).
    pub fn active(&self) -> Option<&str> {
        self.copies.iter().find(|c| *c.role == Role::Active).map(|c| c.cluster.as_str())
    }

    pub fn holds_copy(&self, cluster: &str) -> bool {
        self.copies.iter().any(|c| *c.cluster == cluster)
    }

    /// Whether a link runs from `from` to `to`.
    pub fn has_link(&self, from: &str, to: &str) -> bool {
        self.links.iter().any(|l| *l.from == from && *l.to == to)
    }
}
