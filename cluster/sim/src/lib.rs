//! The deterministic simulator (tests only): whole clusters in one thread from one seed.
//! See `docs/simulation.md`.
//!
//! Must not depend on: tokio, tonic, rocksdb, or real time.

pub mod checker;
