//! The PacificA replica state machine (Lin et al., "PacificA: Replication in Log-Based
//! Distributed Storage Systems", MSR 2008), as Apache Pegasus uses it, for one partition
//! replica.
//!
//! `Replica::handle(now_ms, event, &mut actions)` is the whole interface: events in (client
//! requests, peer messages, configuration updates, lease updates, log and store completions,
//! timer ticks), actions out (append to the log, apply to the store, send, reply). It never
//! reads a clock, draws randomness or does I/O; a runtime (the replica server, or the
//! simulator) executes the actions and feeds completions back. Invariants and the lease rule
//! are in `docs/replication.md`.
//!
//! Must not depend on: tokio, tonic, rocksdb, the AWS SDK.

mod admission;
pub mod codec;
mod learner;
mod message;
mod options;
mod primary;
mod replica;
mod resolve;
mod role;
mod secondary;
#[cfg(test)]
mod tests;
mod window;

pub use message::{Action, CheckpointRef, Event, Now, PeerMessage, ReadOp, Refusal, Reign, Reply, RequestId};
pub use options::ReplicaOptions;
pub use replica::Replica;
