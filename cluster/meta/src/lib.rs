//! The meta server (`tern meta`).
//!
//! Owns: the cluster's replicated state ([`state`]: tables, partition configurations, nodes;
//! later duplication links, backup policies, DR roles and epochs), replicated among meta servers
//! with openraft ([`raft`]) and persisted on local disk (no ZooKeeper); running the
//! configuration manager (`tern-confman`) on the leader ([`leader`]); the `Meta` gRPC service
//! ([`service`]) and table DDL; duplication links ([`dup`], their replicated part in
//! [`state::dup`]). [`run`] is the whole server; the `tern` binary only parses flags.
//!
//! Decisions (failure detection, reconfiguration, placement) live in `tern-confman`, which has
//! no I/O; this crate persists and carries them out.

mod apply_version_service;
pub mod backup_runner;
pub mod backup_schedule;
mod backup_service;
pub mod drlease;
pub mod dup;
pub mod horizon;
mod leader;
pub mod raft;
pub mod service;
pub mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_client::Pool;
use tern_confman::CmOptions;
use tern_core::{ClusterId, Error, Result};
use tern_proto::pb;

use crate::raft::{RaftGroup, RaftOptions, Replicated};
use crate::state::{Command, MetaState, Response};

/// The replicated state machine of the meta servers.
#[derive(Debug, Default)]
pub struct MetaSm(pub MetaState);

impl Replicated for MetaSm {
    type Command = Command;
    type Response = Response;

    fn apply(&mut self, command: &Command) -> Response {
        self.0.apply(command)
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.0).map_err(|e| Error::invariant(format!("serialize meta state: {e}")))
    }

    fn restore(&mut self, data: &[u8]) -> Result<()> {
        self.0 = serde_json::from_slice(data)
            .map_err(|e| Error::corruption(format!("meta state snapshot: {e}")))?;
        Ok(())
    }
}

pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Clone, Debug)]
pub struct MetaOptions {
    /// This meta server's id in `members` (1, 2, 3, …).
    pub id: u64,
    pub listen: SocketAddr,
    /// Every meta server: id → `host:port` (the same address serves clients and Raft).
    pub members: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    pub cluster_name: String,
    pub cluster_id: ClusterId,
    pub cm: CmOptions,
    /// How long a dropped table can be recalled before its data is forgotten.
    pub recall_window: Duration,
    /// How many recent conflicts (writes that lost last-writer-wins on the remote side) each
    /// duplication link keeps in the replicated state. Default [`DEFAULT_DUP_CONFLICT_JOURNAL`].
    pub dup_conflict_journal: u32,
    /// Dead records (tombstones, expired records) stay at least this long (by their timetag)
    /// before a table's purge horizon passes them, however caught up its incoming links are.
    pub tombstone_retention: Duration,
    /// An incoming link not heard for this long stops holding its table's tombstones back.
    pub dup_hold_limit: Duration,
    pub raft: RaftOptions,
    /// The DR lease: its voters (none: no lease) and how often it is renewed.
    pub dr_lease: drlease::DrLeaseOptions,
    /// Backup policies: minimum interval, how often the leader looks for due runs, leases.
    pub backup: backup_runner::BackupRunnerOptions,
}

pub const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_DUP_HOLD_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

pub const DEFAULT_DUP_CONFLICT_JOURNAL: u32 = 100;

/// Runs a meta server until `shutdown` completes.
pub async fn run(opts: MetaOptions, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    opts.cm.validate()?;
    if !opts.members.contains_key(&opts.id) {
        return Err(Error::InvalidArgument(format!(
            "meta id {} is not among the members {:?}",
            opts.id, opts.members
        )));
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {}", opts.listen), e))?;
    let group = Arc::new(
        RaftGroup::start(
            opts.id,
            opts.members.clone(),
            &opts.data_dir.join("raft"),
            MetaSm::default(),
            opts.raft.clone(),
        )
        .await?,
    );
    let leader_slot: Arc<Mutex<Option<tokio::sync::mpsc::Sender<leader::LeaderInput>>>> =
        Arc::new(Mutex::new(None));
    let pool = Arc::new(Pool::new());
    let dr_lease = Arc::new(drlease::DrLease::new(opts.dr_lease.clone()));
    if dr_lease.used() {
        let voters: Vec<String> = opts.dr_lease.voters.iter().map(|(n, a)| format!("{n}={a}")).collect();
        tracing::info!(
            "DR lease: active tables take client writes only while a majority of {} grant it",
            voters.join(", ")
        );
    } else {
        tracing::warn!(
            "NO DR LEASE: no --dr-voters, so this cluster's active tables take client writes even when \
             no proxy can reach it; a standby promoted elsewhere meanwhile (by hand, or by a proxy \
             started with --unsafe-failover-without-lease) takes writes at the same time (split brain). \
             Proxies with --auto-failover refuse to promote away from this cluster."
        );
    }
    let renewing = tokio::spawn(drlease::run(dr_lease.clone(), group.clone(), pool.clone()));
    let supervisor = tokio::spawn(supervise(group.clone(), opts.clone(), leader_slot.clone(), pool));
    let svc = service::MetaService {
        group: group.clone(),
        leader: leader_slot,
        memory: Default::default(),
        dr_lease,
        backup: opts.backup.clone(),
    };
    tracing::info!(id = opts.id, listen = %opts.listen, "meta server started");
    let server = tonic::transport::Server::builder()
        .add_service(pb::meta_server::MetaServer::new(svc))
        .add_service(pb::raft_server::RaftServer::new(group.service()).max_decoding_message_size(64 << 20))
        .serve_with_incoming_shutdown(
            // Nagle off (the builder's setting does not reach an incoming stream we pass in).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        );
    let result = server.await.map_err(|e| Error::io("serve", e));
    supervisor.abort();
    renewing.abort();
    let _ = group.shutdown().await;
    tracing::info!(id = opts.id, "meta server stopped");
    result
}

/// Starts the leader's duties whenever this server becomes leader, stops them when it stops.
async fn supervise(
    group: Arc<RaftGroup<MetaSm>>,
    opts: MetaOptions,
    slot: Arc<Mutex<Option<tokio::sync::mpsc::Sender<leader::LeaderInput>>>>,
    pool: Arc<Pool>,
) {
    let mut changes = group.leader_changes();
    // Backup policies run on the leader only (`backup_runner.rs`); aborting it aborts its runs.
    let mut backups: Option<AbortOnDrop> = None;
    loop {
        let leads = group.is_leader();
        let running =
            slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|tx| !tx.is_closed());
        if leads && !running {
            if let Err(e) = init_cluster(&group, &opts).await {
                tracing::error!("cannot lead: {e}");
            } else {
                let lo = leader::LeaderOptions {
                    cm: opts.cm.clone(),
                    tick: Duration::from_millis(200),
                    recall_window: opts.recall_window,
                    dup_conflict_journal: opts.dup_conflict_journal,
                    tombstone_retention: opts.tombstone_retention,
                    dup_hold_limit: opts.dup_hold_limit,
                };
                *slot.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(leader::spawn(group.clone(), lo, pool.clone()));
                drop(backups.replace(AbortOnDrop(tokio::spawn(backup_runner::run(
                    group.clone(),
                    opts.backup.clone(),
                    opts.id,
                    opts.members.values().cloned().collect(),
                )))));
            }
        } else if !leads && running {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
            drop(backups.take());
            tracing::info!("no longer leading");
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// A task that ends with its owner (the supervisor, itself aborted when the server stops).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Names the cluster on its first leader; refuses to lead a group that serves another cluster.
async fn init_cluster(group: &RaftGroup<MetaSm>, opts: &MetaOptions) -> Result<()> {
    let (name, id) = group.read(|s| (s.0.cluster_name.clone(), s.0.cluster_id));
    if id == opts.cluster_id.get() && name == opts.cluster_name {
        return Ok(());
    }
    match group.write(Command::Init { name: opts.cluster_name.clone(), id: opts.cluster_id.get() }).await {
        Ok(Response::Refused(why)) => Err(Error::InvalidArgument(why)),
        Ok(_) => Ok(()),
        Err(e) => Err(leader::write_error(e)),
    }
}
