//! The deterministic simulator (tests only): whole Tern clusters — the configuration manager,
//! replica state machines over in-memory stores and logs, clients — in one thread, every random
//! choice drawn from one seed, with message loss, duplication, delay and reordering, one-way and
//! two-way partitions, crashes that lose whatever was not synced, disk faults and clock drift.
//! A run has a fault phase and a heal phase and then checks linearizability, that no
//! acknowledged write was lost, that replicas converged, that committed prefixes agree and that
//! two primaries never served at once. Two-cluster runs add a two-way duplication link and check
//! that the clusters converge, that no shipped write is lost, that nothing loops, that no
//! deleted key comes back once tombstones are dropped below the purge horizons, and that clocks
//! stay bounded when one cluster's clocks run far ahead; with the DR lease
//! (`SimConfig::two_clusters_dr`, `dr/`) the table is active in one cluster, DR voters and
//! proxies fail it over, and no two copies may ever take client writes at once. See
//! `docs/simulation.md`.
//!
//! Must not depend on: tokio, tonic, rocksdb, or real time.

pub mod checker;
mod client;
pub mod clock;
pub mod config;
mod dr;
mod dup;
mod keys;
mod meta;
mod net;
mod node;
mod observe;
mod trace;
mod variants;
mod world;
mod world_ctx;
mod world_dup;

pub use config::{ClusterSkew, DupBugs, DupConfig, Faults, PlantedBugs, SimConfig};
pub use dr::{DrBugs, DrConfig, DrStats};
pub use world::{RunResult, Stats, run};
