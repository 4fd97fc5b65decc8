//! Tern's storage seams.
//!
//! Owns: the [`PartitionStore`] trait — a back end implements a few raw operations (point read,
//! ordered scan, atomic batch write together with the applied decree, flush, checkpoint) and
//! gets the whole data model (get, multi_get, scans, incr, check-and-set, TTL, …) from the
//! provided methods, written once in [`apply`] and [`read`]. Also the in-memory store
//! ([`MemPartitionStore`]) and, behind the `testing` feature, the conformance suite and the
//! reference model every back end must match.
//!
//! Must not depend on: rocksdb, the AWS SDK, tokio or tonic.

pub mod apply;
pub mod clock;
pub mod dir;
pub mod log;
pub mod mem;
pub mod read;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use clock::SystemClock;
pub use log::{FileMutationLog, LogEntry, MemMutationLog, MutationLog};
pub use mem::{MemDisk, MemImage, MemPartitionStore};
pub use store::{AppliedMark, ApplyEntry, PartitionStore, RawBatch, RawVisit, purgeable};
