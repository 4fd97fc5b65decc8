//! Duplication: shipping a partition's private log to peer clusters.
//!
//! Filled by the duplication issue (#5); design and status in `docs/duplication.md`. Owns: the
//! I/O-free shipper (reads the log from the confirmed decree, batches, routes each mutation by
//! its own hash key, throttles, backs off), later its runtime inside each primary. The
//! last-writer-wins rules for applying duplicated writes (tombstones included) live with every
//! other write rule in `tern-storage`'s `apply.rs`; this crate produces the puts they apply.
//!
//! What is here:
//!
//! * [`entry_to_puts`] (`convert.rs`): a committed log entry becomes record states with
//!   timetags (`WriteOp::Put`); writes that arrived by duplication are dropped, so two-way links
//!   do not loop;
//! * [`Shipper`] (`shipper.rs`): the state machine of one (link, source partition): read-ahead,
//!   per-remote-partition batching and pipelining, exact confirmed decree, backoff, throttle
//!   (`throttle.rs`).
//!
//! The shipper core must not depend on: tokio, tonic, rocksdb, or any clock or I/O. Time comes
//! in as `now_ms` parameters.

mod convert;
mod shipper;
mod throttle;

pub use convert::entry_to_puts;
pub use shipper::{Batch, Shipper, ShipperOptions, ShipperStats};
