//! The meta server (`tern meta`).
//!
//! Filled by the running-cluster issue (#4), with the configuration-manager decisions of the
//! replication issue (#3). Owns: cluster state (tables, partition configurations, nodes,
//! duplication links, backup policies, DR roles and epochs) replicated with openraft and
//! persisted locally (no ZooKeeper); failure detection, reconfiguration, balancing as I/O-free
//! planners; table DDL. Exposes `run(opts, deps)`.
//!
//! Planners must not depend on: tokio, tonic, rocksdb, or any clock or I/O.
