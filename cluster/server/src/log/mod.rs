//! The replica server's logs: the node-level group-commit writer (`writer.rs`) that owns every
//! replica's private log and the node's shared log.
//!
//! Read first: `writer.rs`'s module doc. Invariants: an append is reported durable only after
//! the shared log's fsync covering it; appends and resets of one partition happen in the order
//! they were asked for; a failed append or reset is reported to its replica, which stops.

mod writer;

pub use writer::{AppendDone, DEFAULT_MAX_SPACING, GroupPolicy, LogSlice, LogWriter, ResetDone};
