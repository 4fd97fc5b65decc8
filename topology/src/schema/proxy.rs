//! Proxies: the stateless entry point in front of every cluster, with their Redis gateway and
//! automatic failover (the flags of `tern proxy`, as a file).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::located::Located;
use crate::units::HumanDuration;

/// A meta-proxy. It fronts every cluster of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Proxy {
    /// Its name (also its name as a DR voter).
    pub name: Located<String>,
    /// Where clients connect, `HOST:PORT` (port 0: picked by `tern up`).
    pub listen: Located<String>,
    /// It is one of the DR voters that grant active copies their DR lease (docs/meta-proxy.md).
    #[serde(default)]
    pub dr_voter: bool,
    /// A Redis-protocol (RESP2) gateway on this proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Redis>,
    /// Tables this proxy fails over automatically.
    #[serde(default)]
    pub auto_failover: Vec<AutoFailover>,
}

/// The Redis gateway: a Redis key is a hash key with an empty sort key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Redis {
    /// Where Redis clients connect, `HOST:PORT` (port 0: picked by `tern up`).
    pub listen: Located<String>,
    /// The table of database 0, where connections start.
    pub table: Located<String>,
    /// More databases for `SELECT N`: number → table.
    #[serde(default)]
    pub databases: std::collections::BTreeMap<u32, Located<String>>,
}

/// Automatic failover of one table: promote a standby once the active copy has not served for
/// `after`, and only if the standby's measured lag is within `rpo-budget`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AutoFailover {
    pub table: Located<String>,
    /// How long the active copy must not serve before a standby is promoted.
    #[serde(default = "default_after")]
    pub after: Located<HumanDuration>,
    /// The most lag (window of writes that may be lost) a promotion may accept.
    #[serde(default = "default_rpo_budget")]
    pub rpo_budget: Located<HumanDuration>,
}

/// `tern proxy --auto-failover`'s defaults.
fn default_after() -> Located<HumanDuration> {
    Located::new(HumanDuration(std::time::Duration::from_secs(10)))
}

fn default_rpo_budget() -> Located<HumanDuration> {
    Located::new(HumanDuration(std::time::Duration::from_secs(5)))
}
