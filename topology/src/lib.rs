//! Topology as code: the YAML that describes a deployment.
//!
//! Filled by the topology issue. Owns: the strict schema (unknown fields are errors, reported
//! with line and column), validation, `plan` as a pure function of (desired, observed), and an
//! idempotent `apply` guarded by compare-and-set; `tern up`/`down` for local deployments.
