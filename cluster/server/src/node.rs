//! The composition root of a replica server: its parts, made once at start and handed to each
//! other as narrow handles. Only the top layers (`control/` and `api/`) and `lib.rs` see the
//! whole `Node`; the replica host (`host/`), duplication (`dup/`), the logs (`log/`) and the
//! peer links (`peer/`) get just the handles they use.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_client::{MetaClient, Pool};
use tern_confman::NodeLease;
use tern_core::{NodeId, Result};
use tern_replica::Event;
use tern_rocks::RocksBackend;
use tokio::sync::watch;

use crate::clock::ServerClock;
use crate::control::roles::Roles;
use crate::dup::DupEnv;
use crate::dup::links::Links;
use crate::dup::shipping::Shipping;
use crate::host::HostEnv;
use crate::host::registry::Registry;
use crate::log::LogWriter;
use crate::options::ServerOptions;
use crate::peer::{Addresses, PeerNet};

pub struct Node {
    pub id: NodeId,
    pub opts: Arc<ServerOptions>,
    pub clock: ServerClock,
    pub meta: Arc<MetaClient>,
    pub peers: Arc<PeerNet>,
    pub registry: Arc<Registry>,
    pub links: Arc<Links>,
    pub shipping: Arc<Shipping>,
    /// What the duplication runtime works with.
    pub dup: DupEnv,
    pub roles: Arc<Roles>,
    lease: Mutex<NodeLease>,
    /// Set once the server is asked to stop: long-lived incoming streams end on it, or the
    /// server's graceful shutdown would wait for them forever.
    stopping: watch::Sender<bool>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Node {
    pub fn new(id: NodeId, opts: ServerOptions, backend: RocksBackend, logs: LogWriter) -> Result<Node> {
        let opts = Arc::new(opts);
        let mut meta = MetaClient::new(opts.meta.clone())?;
        meta.deadline = opts.beacon_interval.max(Duration::from_millis(500));
        let meta = Arc::new(meta);
        let clock = ServerClock::start(opts.test_clock_offset_ms, opts.max_clock_offset.as_millis() as u64);
        let peers = Arc::new(PeerNet::new(id, Arc::new(Addresses::default())));
        let links = Arc::new(Links::default());
        let env = Arc::new(HostEnv {
            id,
            opts: opts.clone(),
            clock: clock.clone(),
            backend,
            logs: logs.clone(),
            peers: peers.clone(),
            links: links.clone(),
            holds: Default::default(),
            pool: Pool::new(),
            meta: meta.clone(),
            next_checkpoint: AtomicU64::new(1),
            backup_limit: tern_backup::SharedLimit::default(),
        });
        let replica_opts = env.replica_options();
        let registry = Arc::new(Registry::new(env));
        let shipping = Arc::new(Shipping::default());
        let roles = Arc::new(Roles::default());
        let dup = DupEnv {
            cluster_id: opts.cluster_id,
            clock: clock.clone(),
            registry: registry.clone(),
            logs,
            links: links.clone(),
            shipping: shipping.clone(),
            request_timeout: opts.request_timeout,
            receiver: tern_duplication::Receiver {
                own_cluster: opts.cluster_id,
                own_partitions: None,
                max_clock_offset_ms: replica_opts.max_clock_offset_ms,
            },
            incoming: Arc::default(),
            roles: roles.clone(),
        };
        Ok(Node {
            id,
            opts,
            clock,
            meta,
            peers,
            registry,
            links,
            shipping,
            dup,
            roles,
            lease: Mutex::new(NodeLease::default()),
            stopping: watch::Sender::new(false),
        })
    }

    /// The server is stopping: end incoming peer streams.
    pub fn stop_serving(&self) {
        self.stopping.send_replace(true);
    }

    /// Becomes `true` once the server is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// The meta server acknowledged the beacon sent at monotonic time `sent_at_ms`.
    pub fn on_lease(&self, sent_at_ms: u64, lease_ms: u64) {
        let expires_at_ms = {
            let mut l = self.lease.lock().unwrap_or_else(|e| e.into_inner());
            l.on_ack(sent_at_ms, lease_ms);
            l.expires_at_ms()
        };
        for g in self.registry.gpids() {
            self.registry.deliver(g, Event::Lease { expires_at_ms });
        }
    }
}
