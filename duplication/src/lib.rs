//! Duplication: shipping a partition's private log to peer clusters.
//!
//! Filled by the duplication issue (#5); design and status in `docs/duplication.md`. Owns: the
//! I/O-free shipper (reads the log from the confirmed decree, batches, routes each mutation by
//! its own hash key, throttles, backs off), and the rules every replica of a linked table follows. The
//! last-writer-wins rules for applying duplicated writes (tombstones included) live with every
//! other write rule in `tern-storage`'s `apply.rs`; this crate produces the puts they apply.
//!
//! What is here:
//!
//! * [`entry_to_puts`] (`convert.rs`): a committed log entry becomes record states with
//!   timetags (`WriteOp::Put`); writes that arrived by duplication are dropped, so two-way links
//!   do not loop; [`record_to_put`]: a stored record as a full sync copies it;
//! * [`Shipper`] (`shipper.rs`): the state machine of one (link, source partition): read-ahead,
//!   per-remote-partition batching and pipelining, exact confirmed decree, backoff, throttle
//!   ([`Throttle`], `throttle.rs`: wire bytes per second, what was sent and whether it wants more);
//! * [`split_link_limit`] (`share.rs`): how the meta leader splits a link's limit among its
//!   partitions' primaries;
//! * [`judge_put`] (`conflict.rs`): what counts as a conflict on the receiving side, and the
//!   bounded [`ConflictQueue`] a sending server keeps journal entries in until a beacon carries
//!   them;
//! * [`admit_restore`] (`restore.rs`): admission of a backup's records into a table being
//!   restored from it (not a link: timetags of any cluster, the same routing and clock rules);
//! * [`DupRules`] (`rules.rs`): every other decision of duplication, shared by the replica
//!   server and the simulator: admission of a received batch (`receive.rs`), how much log the
//!   links need (`retention.rs`), where a new primary's shipper starts (`start.rs`), how long a
//!   receiving table keeps its tombstones (`horizon.rs`).
//!
//! The runtime that drives these inside a replica server is `cluster/server/src/dup/`; the
//! simulator drives the same ones in `cluster/sim/src/dup/`.
//!
//! The shipper core must not depend on: tokio, tonic, rocksdb, or any clock or I/O. Time comes
//! in as `now_ms` parameters.

mod conflict;
mod convert;
mod horizon;
mod lag;
mod receive;
mod restore;
mod retention;
mod rules;
mod share;
mod shipper;
mod start;
mod throttle;

pub use conflict::{ConflictQueue, PENDING_CONFLICTS, PutVerdict, judge_put};
pub use convert::{entry_to_puts, record_to_put};
pub use horizon::IncomingLink;
pub use lag::{Lag, LagReport};
pub use receive::{Admitted, IncomingBatch, Receiver};
pub use restore::{RestoreBatch, admit_restore};
pub use retention::{LinkProgress, report_counts};
pub use rules::DupRules;
#[cfg(feature = "planted-bugs")]
pub use rules::PlantedDupBugs;
pub use share::{ShareDemand, partition_share, split_link_limit};
pub use shipper::{Batch, Shipper, ShipperOptions, ShipperStats};
pub use start::StartPoint;
pub use throttle::{
    PayloadSize, RATE_WINDOW_MS, SATURATED_FOR_MS, Throttle, ThrottleReport, WireSize, max_request_bytes,
};
