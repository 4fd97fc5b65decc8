//! The configuration manager's decisions: the part of the meta server that decides who serves
//! each partition. I/O-free: `ConfigManager::handle(now_ms, event, &mut actions)`; the meta
//! server (issue #4) runs it behind Raft, the simulator runs it directly.
//!
//! Owns: node failure detection from beacons and the lease rule (`lease.rs`), choosing a new
//! primary, removing failed members, assigning learners, and recovery when every replica of a
//! partition was lost, and balancing (`balancer.rs`): draining decommissioned nodes, role switches
//! and replica copies. See `docs/replication.md`.
//!
//! `now` is the manager's *monotonic* clock in milliseconds: grace periods must not stretch or
//! shrink when the wall clock is stepped.
//!
//! Must not depend on: tokio, tonic, rocksdb, or anything that reads a clock or does I/O.

#[cfg(test)]
mod balance_tests;
mod balancer;
mod lease;
mod manager;
mod options;
mod placement;
#[cfg(test)]
mod tests;

pub use lease::NodeLease;
pub use manager::{CmAction, CmEvent, ConfigManager, Demoted, NodeSummary, PersistedPartition};
pub use options::CmOptions;
