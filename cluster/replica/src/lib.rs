//! The PacificA replica state machine (Lin et al., MSR 2008, as used by Apache Pegasus).
//!
//! Filled by the replication-core issue (#3). Owns: `handle(&mut self, now, event)` for one
//! partition replica (primary, secondary, learner, inactive, error): two-phase commit, ballot
//! checks, lease-guarded reads, reconfiguration proposals, reconciliation, learning and crash
//! recovery. It emits actions (append, send, apply, reply, set timer) for a runtime to execute.
//!
//! Must not depend on: tokio, tonic, rocksdb, the AWS SDK, or anything that reads a clock, draws
//! randomness or does I/O. Time and randomness come in as parameters.
