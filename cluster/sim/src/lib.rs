//! The deterministic simulator (tests only).
//!
//! Filled by the replication-core issue (#3). Owns: running a whole cluster (configuration
//! manager, replica state machines, in-memory stores and logs, clients) in one thread from one
//! seed, with message delay, loss, duplication and reordering, partitions, crashes, disk faults
//! and clock drift; and the checkers (linearizability, no lost acknowledged write, convergence,
//! one primary per lease window). `TERN_SIM_SEED=<n>` replays a run exactly.
//!
//! Must not depend on: tokio, tonic, rocksdb, or real time.
