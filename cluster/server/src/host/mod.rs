//! The replica host: the replicas this server runs, each in its own task around
//! `tern_replica::Replica`, with its actions carried out by the executor the simulator runs too
//! (`tern_host`).
//!
//! Read first: `registry.rs` (which replicas exist here and how they are reached), `task.rs`
//! (one task per replica: its queues and timers), `server_host.rs` (what the executor's
//! `ReplicaHost` means on this server: RocksDB, the group-commit log writer, peer links),
//! then `checkpoint.rs` (checkpoints for learners), `backup.rs` (a primary backing up its partition;
//! `holds.rs`, the log it holds meanwhile) and `gc.rs` (replicas no longer served).
//!
//! Invariants: one task owns a replica's state machine and store (no locks around replication
//! state); completions the server owes a replica (log appends made durable, configurations,
//! leases) are never dropped, while client requests and peer messages wait in a bounded queue
//! (`registry::QUEUE`) and are refused or dropped when it is full; nothing here decides
//! anything about replication or duplication (that is `tern-replica`, `tern-host` and
//! `tern-duplication`).

pub mod backup;
pub mod checkpoint;
pub mod gc;
pub mod holds;
pub mod identity;
pub mod propose;
pub mod registry;
pub mod reply;
mod server_host;
pub mod task;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tern_client::{MetaClient, Pool};
use tern_core::NodeId;
use tern_replica::ReplicaOptions;
use tern_rocks::RocksBackend;

use crate::clock::ServerClock;
use crate::dup::links::Links;
use crate::log::LogWriter;
use crate::options::ServerOptions;
use crate::peer::PeerNet;

/// What every replica task of this server shares: the narrow set of handles it works with.
#[derive(Debug)]
pub struct HostEnv {
    pub id: NodeId,
    pub opts: Arc<ServerOptions>,
    pub clock: ServerClock,
    pub backend: RocksBackend,
    pub logs: LogWriter,
    pub peers: Arc<PeerNet>,
    /// The duplication links (what they hold back of each log).
    pub links: Arc<Links>,
    /// Running operations' holds on logs (a backup's upload).
    pub holds: Arc<holds::LogHolds>,
    pub pool: Pool,
    pub meta: Arc<MetaClient>,
    pub next_checkpoint: AtomicU64,
    /// The bandwidth limit every backup upload of this server shares (`--limit-mbps` bounds
    /// the server, not each partition).
    pub backup_limit: tern_backup::SharedLimit,
}

impl HostEnv {
    pub fn replica_options(&self) -> ReplicaOptions {
        let mut o = ReplicaOptions::new(self.opts.cluster_id);
        o.limits = self.opts.limits;
        o.max_clock_offset_ms = self.opts.max_clock_offset.as_millis() as u64;
        o
    }
}
