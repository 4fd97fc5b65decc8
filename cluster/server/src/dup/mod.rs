//! Duplication on a replica server: the runtime around the I/O-free decisions of the
//! `tern-duplication` crate (`Shipper`, `DupRules`).
//!
//! Read first: `links.rs` (the links this server knows, and what of each log they hold back),
//! `shipping.rs` (one shipper task per link and partition this server leads; progress for the
//! beacon), `shipper_task.rs` (one shipper: log → batches → the remote cluster), `receive.rs`
//! (the receiving side: the `Duplicate` RPC, admitted by `DupRules::admit`), `full_sync.rs`
//! (copying a partition's records), `carried.rs` (the log a checkpoint carries), `wire.rs` (what
//! a request weighs for the throttle), `metrics.rs`.
//!
//! Why here and not in `duplication/`: the runtime drives a replica server's own parts (its
//! replica tasks, its log writer, its clients to other clusters), so it lives with them; every
//! decision it acts on lives in `tern-duplication`, which the simulator runs too.
//!
//! Invariants: every decision (admission, retention, start point, batching, confirmed decree)
//! is `tern-duplication`'s; a shipper runs only on the partition's current primary, at its
//! ballot, and starts where `DupRules::start_point` says; what a shipper reports as confirmed
//! was acknowledged by the remote primaries.

pub mod carried;
mod full_sync;
pub mod incoming;
pub mod links;
mod metrics;
pub mod receive;
pub mod restore;
mod shipper_task;
pub mod shipping;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use tern_core::ClusterId;

use crate::clock::ServerClock;
use crate::host::registry::Registry;
use crate::log::LogWriter;

/// The handles the duplication runtime works with.
#[derive(Clone, Debug)]
pub struct DupEnv {
    pub cluster_id: ClusterId,
    pub clock: ServerClock,
    pub registry: Arc<Registry>,
    pub logs: LogWriter,
    pub links: Arc<links::Links>,
    pub shipping: Arc<shipping::Shipping>,
    /// How long a duplicated batch waits for its partition's answer.
    pub request_timeout: Duration,
    /// What this server tells `DupRules::admit` about itself (`own_partitions` per table from
    /// `roles`).
    pub receiver: tern_duplication::Receiver,
    /// What incoming links said of themselves, for the next beacon.
    pub incoming: Arc<incoming::Incoming>,
    /// The tables' DR roles, partition counts and purge horizons (from beacons).
    pub roles: Arc<crate::control::roles::Roles>,
}
