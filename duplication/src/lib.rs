//! Duplication: shipping a partition's private log to peer clusters.
//!
//! Filled by the duplication issue (#5). Owns: the I/O-free shipper (reads the log from the
//! confirmed decree, batches, routes each mutation by its own hash key, throttles, backs off),
//! its runtime inside each primary, and the last-writer-wins rules for applying duplicated
//! writes (tombstones included).
//!
//! The shipper core must not depend on: tokio, tonic, rocksdb, or any clock or I/O.
