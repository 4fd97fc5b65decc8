//! Topology as code: the YAML that describes a deployment, and the local deployments of
//! `tern up`/`tern down` ([`local`]).
//!
//! Filled by the topology issue. Owns: the strict schema (unknown fields are errors, reported
//! with line and column), validation, `plan` as a pure function of (desired, observed), and an
//! idempotent `apply` guarded by compare-and-set. Today: [`local`], which starts a deployment on
//! this machine as child processes of the `tern` binary and talks to it only through the admin
//! client (`tern_client::AdminClient`).
//!
//! Must not depend on: rocksdb or any server crate (it starts servers as processes).

pub mod local;
