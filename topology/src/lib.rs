//! Topology as code: the YAML file that describes a deployment ([`schema`]), its strict
//! parsing ([`parse`]) and semantic validation ([`validate`]), its JSON Schema
//! ([`json_schema`]), [`plan()`] as a pure function of (desired, observed), carrying a plan out
//! ([`apply`]: observe, check, execute through the admin client), and the local deployments of
//! `tern up`/`tern down` ([`local`]), and the same deployment as Kubernetes manifests or a
//! Docker Compose file ([`export`]).
//!
//! Owns: the file format and its rules; the difference between a file and a running
//! deployment; the order and idempotence of apply's steps. Does not own: the wire (the typed
//! admin client of `tern-client`; [`observed::observed_from`] converts what it answers), the DR
//! switchover (`tern-runbook`, which apply calls for a `move-active` step), the CLI. Guide:
//! docs/topology.md.
//!
//! Must not depend on: rocksdb or any server crate (it starts servers as processes).

pub mod apply;
pub mod diag;
pub mod export;
pub mod json_schema;
pub mod local;
pub mod located;
pub mod observed;
pub mod parse;
pub mod plan;
pub mod proxy_command;
pub mod schema;
mod suggest;
pub mod units;
pub mod validate;

use std::path::Path;

pub use self::diag::{Diagnostic, Diagnostics};
pub use self::observed::Observed;
pub use self::plan::{Plan, plan};
pub use self::schema::Topology;

impl Topology {
    /// Reads, parses and validates the topology file at `path`: every problem found, one per
    /// line of the error's `Display`, each naming `file:line:column`.
    pub fn load(path: impl AsRef<Path>) -> Result<Topology, Diagnostics> {
        let path = path.as_ref();
        let t = parse::read(path)?;
        checked(t, &path.display().to_string())
    }

    /// [`Topology::load`] of text; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Topology, Diagnostics> {
        checked(parse::parse(text, file)?, file)
    }
}

fn checked(t: Topology, file: &str) -> Result<Topology, Diagnostics> {
    let problems = validate::validate(&t, file);
    if problems.is_empty() { Ok(t) } else { Err(problems) }
}
