//! Backups: where snapshots go (targets) and what is snapshotted when (policies). Validated
//! and planned; `tern apply` gives each policy to the clusters holding its tables, whose meta
//! leaders run it (docs/backup.md "Policies and scheduling").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::located::Located;
use crate::units::{Bytes, HumanDuration};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Backup {
    #[serde(default)]
    pub targets: Vec<BackupTarget>,
    #[serde(default)]
    pub policies: Vec<BackupPolicy>,
}

/// An S3-compatible bucket and prefix. Credentials come from the usual AWS sources, never
/// from this file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupTarget {
    pub name: Located<String>,
    /// `s3://BUCKET[/PREFIX]`.
    #[schemars(regex(pattern = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"))]
    pub url: Located<String>,
    /// An S3-compatible endpoint, `http(s)://HOST[:PORT]` (absent: AWS S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Located<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Snapshots of some tables into a target, every `interval`, kept per `retention`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupPolicy {
    pub name: Located<String>,
    /// The tables it backs up (from the cluster of their active copy).
    pub tables: Vec<Located<String>>,
    /// The name of a target.
    pub target: Located<String>,
    /// How often (at least 1m).
    pub interval: Located<HumanDuration>,
    /// The first run's time of day, `HH:MM` in UTC (absent: when the policy is added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Located<String>>,
    pub retention: Located<Retention>,
    /// Most bytes per second uploaded, e.g. `50MiB` (absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_sec: Option<Located<Bytes>>,
}

/// Which backups are kept: the newest `keep`, and/or those younger than `max-age`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<Located<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Located<HumanDuration>>,
}
