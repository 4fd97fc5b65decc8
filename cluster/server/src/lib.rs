//! The replica server (`tern replica`).
//!
//! Filled by the running-cluster issue (#4). Owns: one task per replica fed by one event queue,
//! the node-level group-commit log writer, RocksDB stores with a shared block cache, the tonic
//! services for clients and peers, beacons to the meta server and lease handling, learning
//! transfers. Exposes `run(opts, deps)`; the `tern` binary only parses flags and calls it.
//!
//! Must not contain: replication decisions (those live in `tern-replica`, I/O-free).
