//! A replicated state machine for the small group of meta servers (1 or 3), over openraft 0.9,
//! durable on local disk.
//!
//! # API
//!
//! ```text
//! pub trait Replicated: Send + Sync + 'static {
//!     type Command: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
//!     type Response: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + Default + 'static;
//!     fn apply(&mut self, command: &Self::Command) -> Self::Response;
//!     fn snapshot(&self) -> tern_core::Result<Vec<u8>>;
//!     fn restore(&mut self, data: &[u8]) -> tern_core::Result<()>;
//! }
//!
//! RaftGroup::<S>::start(id: u64, members: BTreeMap<u64, String>, dir: &Path, state: S, opts: RaftOptions)
//!     -> tern_core::Result<RaftGroup<S>>                       (async)
//! group.write(cmd: S::Command) -> Result<S::Response, WriteError>   (async)
//! group.barrier() -> Result<(), WriteError>                   (async)
//! group.read(|s: &S| ...) -> T
//! group.is_leader() -> bool
//! group.leader() -> Option<(u64, String)>
//! group.id() -> u64
//! group.service() -> RaftService<S>      (RaftServer::new(it), or it.into_server())
//! group.leader_changes() -> watch::Receiver<Option<u64>>
//! group.metrics() -> watch::Receiver<RaftMetrics<u64, BasicNode>>
//! group.raft() -> &openraft::Raft<Types<S>>
//! group.shutdown() -> tern_core::Result<()>                   (async)
//! ```
//!
//! A member is started with [`RaftGroup::start`] and serves its peers through the gRPC service
//! of [`RaftGroup::service`], which the caller adds to its tonic server:
//!
//! ```ignore
//! let group = RaftGroup::start(id, members, &dir, MyState::default(), RaftOptions::default()).await?;
//! tonic::transport::Server::builder().add_service(group.service().into_server()).serve(addr).await?;
//! ```
//!
//! `into_server()` is `RaftServer::new(service)` with the message size limits raised to what
//! peers send (4 MiB); plain `RaftServer::new(group.service())` works too, within tonic's default
//! limit of 4 MiB.
//!
//! Commands are submitted on the leader with [`RaftGroup::write`]; a follower answers
//! [`WriteError::NotLeader`] naming the leader if it knows it. Every member applies committed
//! commands in log order to its `S`, which [`RaftGroup::read`] exposes (possibly stale on a
//! follower; call [`RaftGroup::barrier`] on the leader first for a linearizable read).
//! [`RaftGroup::leader_changes`] is a watch of the id of the leader this member knows of: the
//! application starts leader-only work when it becomes `Some(group.id())` and stops it when it
//! changes (it becomes `None` on shutdown).
//!
//! # Durability
//!
//! Each member keeps in its directory: the log and vote ([`log_store`]: every append, truncation,
//! purge and vote change is fsynced before openraft is told it is done; a torn last log record
//! left by a crash is cut off on restart), the committed log id (atomically replaced, fsynced),
//! and the latest snapshot ([`state_machine`]: replaced atomically and fsynced). The applied
//! state itself is in memory only: a restart rebuilds it by restoring the snapshot and
//! re-applying the log after it. openraft takes a snapshot every
//! [`RaftOptions::snapshot_every`] applied entries and then purges the log up to
//! `snapshot_every` entries behind the snapshot.
//!
//! # Bootstrapping and limitations
//!
//! On a brand-new group the member with the smallest id initializes it with all `members` as
//! voters; the others wait to be contacted. Membership changes after that are not wrapped here
//! (use [`RaftGroup::raft`]). Do not start a member on an emptied directory while the group runs
//! with other members: it would have forgotten its vote. Only one process may use a directory
//! at a time (this is not checked). A write that times out or fails with `Other` may still
//! commit later: commands should be idempotent or carry their own deduplication.

mod file;
pub mod log_store;
mod network;
mod service;
pub mod state_machine;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use tern_core::{Error, Result};
use tokio::sync::watch;

pub use log_store::{LOG_FILE, LogReader, LogStore};
pub use openraft;
pub use service::RaftService;
pub use state_machine::{SNAPSHOT_FILE, SnapshotBuilder, StateMachineStore};
pub use types::{Entry, LogId, Types};

use state_machine::{AppliedHandle, read_applied};

/// The application state replicated by Raft. Commands are applied in log order on every member.
pub trait Replicated: Send + Sync + 'static {
    type Command: serde::Serialize + serde::de::DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    type Response: serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + fmt::Debug
        + Send
        + Sync
        + Default
        + 'static;

    /// Applies one committed command. Must be deterministic: every member applies the same
    /// commands in the same order and must end in the same state.
    fn apply(&mut self, command: &Self::Command) -> Self::Response;
    /// Whole-state serialization for snapshots.
    fn snapshot(&self) -> Result<Vec<u8>>;
    /// Replaces the whole state with one serialized by [`Replicated::snapshot`].
    fn restore(&mut self, data: &[u8]) -> Result<()>;
}

/// Timing and log-compaction settings of a group. All members should use the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftOptions {
    /// The election timeout range in milliseconds, `(min, max)`; `min` must exceed
    /// `heartbeat_ms` and be below `max`.
    pub election_timeout_ms: (u64, u64),
    /// The leader's heartbeat interval in milliseconds (also the append-entries RPC timeout).
    pub heartbeat_ms: u64,
    /// Take a snapshot every this many log entries (at least 1). The log keeps up to as many
    /// entries behind the latest snapshot, for slightly lagging followers.
    pub snapshot_every: u64,
    /// How long [`RaftGroup::write`] and [`RaftGroup::barrier`] wait before giving up with a
    /// `Timeout` error (the write may still commit).
    pub request_timeout_ms: u64,
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            election_timeout_ms: (300, 600),
            heartbeat_ms: 100,
            snapshot_every: 1000,
            request_timeout_ms: 5000,
        }
    }
}

/// Why a write (or a barrier) failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This member does not lead; `leader` is the leader's id and Raft address, if known.
    #[error("not the meta leader (leader: {leader:?})")]
    NotLeader { leader: Option<(u64, String)> },
    #[error(transparent)]
    Other(#[from] Error),
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Error {
        match e {
            WriteError::NotLeader { leader: Some((id, addr)) } => {
                Error::Unavailable(format!("not the meta leader; the leader is {id} at {addr}"))
            }
            WriteError::NotLeader { leader: None } => {
                Error::Unavailable("not the meta leader; no leader known".into())
            }
            WriteError::Other(e) => e,
        }
    }
}

/// One member of a Raft group replicating `S`.
pub struct RaftGroup<S: Replicated> {
    id: u64,
    members: BTreeMap<u64, String>,
    raft: Raft<Types<S>>,
    applied: AppliedHandle<S>,
    leader_tx: Arc<watch::Sender<Option<u64>>>,
    leader_task: tokio::task::JoinHandle<()>,
    request_timeout: Duration,
}

impl<S: Replicated> fmt::Debug for RaftGroup<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftGroup").field("id", &self.id).field("members", &self.members).finish()
    }
}

impl<S: Replicated> Drop for RaftGroup<S> {
    fn drop(&mut self) {
        self.leader_task.abort();
    }
}

fn unavailable(what: &str, e: impl fmt::Display) -> Error {
    Error::Unavailable(format!("{what}: {e}"))
}

fn config(opts: &RaftOptions) -> Result<Config> {
    let (min, max) = opts.election_timeout_ms;
    if opts.snapshot_every == 0 {
        return Err(Error::InvalidArgument("raft snapshot_every must be at least 1".into()));
    }
    Config {
        cluster_name: "tern-meta".into(),
        election_timeout_min: min,
        election_timeout_max: max,
        heartbeat_interval: opts.heartbeat_ms,
        // Per snapshot chunk; a chunk is at most 512 KiB (about 2 MiB as JSON).
        install_snapshot_timeout: (4 * max).max(2000),
        snapshot_max_chunk_size: 512 << 10,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_every),
        max_in_snapshot_log_to_keep: opts.snapshot_every,
        ..Config::default()
    }
    .validate()
    .map_err(|e| Error::InvalidArgument(format!("raft options: {e}")))
}

impl<S: Replicated> RaftGroup<S> {
    /// Starts (or restarts from `dir`) member `id` of the group whose members and their
    /// `host:port` Raft addresses are `members` (which must contain `id`). `state` is the state
    /// before any command; on restart it is restored from the snapshot in `dir` and the log after
    /// it is re-applied. On a brand-new group the member with the smallest id initializes the
    /// group with all `members` as voters; the others wait to be contacted. Creates `dir`.
    pub async fn start(
        id: u64,
        members: BTreeMap<u64, String>,
        dir: &Path,
        state: S,
        opts: RaftOptions,
    ) -> Result<Self> {
        if !members.contains_key(&id) {
            return Err(Error::InvalidArgument(format!(
                "raft member {id} is not among the members {members:?}"
            )));
        }
        let config = Arc::new(config(&opts)?);
        let dir = dir.to_path_buf();
        let (log, sm) = file::blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
            Ok((LogStore::<S>::open(&dir)?, StateMachineStore::open(&dir, state)?))
        })
        .await?;
        let applied = sm.applied();
        let network = network::Network::new(id, Arc::new(tern_client::Pool::new()));
        let raft = Raft::new(id, config, network, log, sm).await.map_err(|e| unavailable("start raft", e))?;

        let first = members.keys().next().copied();
        if first == Some(id) && !raft.is_initialized().await.map_err(|e| unavailable("start raft", e))? {
            let nodes: BTreeMap<u64, BasicNode> =
                members.iter().map(|(i, a)| (*i, BasicNode::new(a))).collect();
            match raft.initialize(nodes).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    let _ = raft.shutdown().await;
                    return Err(unavailable("initialize raft group", e));
                }
            }
        }

        let (leader_tx, _) = watch::channel(None);
        let leader_tx = Arc::new(leader_tx);
        let leader_task = tokio::spawn(watch_leader(raft.metrics(), leader_tx.clone()));
        Ok(RaftGroup {
            id,
            members,
            raft,
            applied,
            leader_tx,
            leader_task,
            request_timeout: Duration::from_millis(opts.request_timeout_ms),
        })
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Replicates and applies `cmd`; returns its response once committed and applied on this
    /// (leader) member. On a non-leader: `NotLeader` naming the leader if known.
    pub async fn write(&self, cmd: S::Command) -> Result<S::Response, WriteError> {
        let res =
            tokio::time::timeout(self.request_timeout, self.raft.client_write(cmd)).await.map_err(|_| {
                Error::Timeout(format!("raft write not applied after {:?}", self.request_timeout))
            })?;
        match res {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(self.not_leader(f)),
            Err(e) => Err(unavailable("raft write", e).into()),
        }
    }

    /// Waits until this member has confirmed with a quorum that it still leads and has applied
    /// everything committed before the call (openraft's `ensure_linearizable`): reads after it
    /// see every write acknowledged before it. `NotLeader` on a non-leader.
    pub async fn barrier(&self) -> Result<(), WriteError> {
        let res = tokio::time::timeout(self.request_timeout, self.raft.ensure_linearizable()).await.map_err(
            |_| Error::Timeout(format!("raft barrier not reached after {:?}", self.request_timeout)),
        )?;
        match res {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => Err(self.not_leader(f)),
            Err(e) => Err(unavailable("raft barrier", e).into()),
        }
    }

    fn not_leader(&self, f: ForwardToLeader<u64, BasicNode>) -> WriteError {
        let leader = f.leader_id.and_then(|id| {
            let addr = f.leader_node.map(|n| n.addr).or_else(|| self.members.get(&id).cloned())?;
            Some((id, addr))
        });
        WriteError::NotLeader { leader }
    }

    /// Read access to the state applied on this member.
    pub fn read<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&read_applied(&self.applied).state)
    }

    /// Whether this member currently believes it leads.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Who leads (id, Raft address), as far as this member knows.
    pub fn leader(&self) -> Option<(u64, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id).map(|n| n.addr.clone());
        Some((id, addr.or_else(|| self.members.get(&id).cloned())?))
    }

    /// The gRPC service peers call; add `service().into_server()` (or
    /// `RaftServer::new(service())`) to the member's tonic server.
    pub fn service(&self) -> RaftService<S> {
        RaftService::new(self.raft.clone())
    }

    /// A watch of the leader's id as this member knows it: it changes whenever leadership
    /// changes, and is `None` while no leader is known and after shutdown.
    pub fn leader_changes(&self) -> watch::Receiver<Option<u64>> {
        self.leader_tx.subscribe()
    }

    /// openraft's metrics of this member (state, term, leader, last log/applied/snapshot/purged).
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<u64, BasicNode>> {
        self.raft.metrics()
    }

    /// The underlying openraft handle (for membership changes and other advanced uses).
    pub fn raft(&self) -> &Raft<Types<S>> {
        &self.raft
    }

    /// Stops this member: no more RPCs are served or sent. Everything durable stays in `dir`.
    pub async fn shutdown(&self) -> Result<()> {
        let res = self.raft.shutdown().await;
        self.leader_task.abort();
        self.leader_tx.send_replace(None);
        res.map_err(|e| unavailable("shut down raft", e))
    }
}

/// Mirrors `current_leader` from openraft's metrics into `tx`, sending only changes.
async fn watch_leader(
    mut metrics: watch::Receiver<RaftMetrics<u64, BasicNode>>,
    tx: Arc<watch::Sender<Option<u64>>>,
) {
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        tx.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
        if metrics.changed().await.is_err() {
            tx.send_replace(None);
            return;
        }
    }
}
