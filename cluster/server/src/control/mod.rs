//! The control plane of a replica server: beacons to the meta server and what their answers
//! bring (peer addresses, configurations, the lease, duplication links, DR roles, purged
//! tables), the node's memory figures, and the DR roles client requests are checked against.
//!
//! Read first: `beacon.rs`. Invariant: a beacon answer's configurations reach the replicas
//! before its lease does, so a demoted primary steps down before it could serve on a fresh
//! lease.

pub mod beacon;
pub mod memory;
pub mod roles;
