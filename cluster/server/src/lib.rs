//! The replica server (`tern replica`).
//!
//! Read first: `node.rs` (the parts and how they are wired), then the concern you change:
//!
//! * `host/`: the replicas this server runs, one task each around `tern_replica::Replica`,
//!   whose actions the shared executor `tern_host` carries out (the simulator runs the same);
//!   checkpoints for learners and backups; garbage collection of replicas no longer served;
//! * `log/`: the node-level group-commit log writer (one fsync per group for every replica);
//! * `peer/`: peer links (length-prefixed frames on the one listening port);
//! * `dup/`: duplication's runtime (shippers, the `Duplicate` RPC, full sync, metrics) around
//!   the decisions of `tern-duplication`;
//! * `control/`: beacons to the meta server, the lease, DR roles, memory figures;
//! * `api/`: the gRPC services and client pipeline streams.
//!
//! Lower layers (`host`, `dup`, `log`, `peer`) get narrow handles (`HostEnv`, `DupEnv`,
//! `LogWriter`, `PeerNet`), never the whole [`node::Node`]. [`run`] is the whole server; the
//! `tern` binary only parses flags.
//!
//! Must not contain replication or duplication decisions: those live in `tern-replica`,
//! `tern-host` and `tern-duplication`, I/O-free.

mod api;
mod clock;
mod control;
mod dup;
mod host;
pub mod log;
mod node;
mod options;
mod peer;

use std::future::Future;
use std::sync::Arc;

use tern_core::{Error, Result};
use tern_proto::pb;
use tern_rocks::RocksBackend;
use tern_storage::SystemClock;

pub use options::ServerOptions;

/// How long a stopping server waits for requests in flight.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a replica server until `shutdown` completes.
pub async fn run(opts: ServerOptions, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let id = host::identity::load_or_create(&opts.data_dir)?;
    tracing::info!(node = %id, listen = %opts.listen, data_dir = %opts.data_dir.display(), "replica server starting");
    let backend = RocksBackend::new(opts.rocks.clone(), Arc::new(SystemClock));
    let logs = log::LogWriter::start(opts.group_commit, &opts.data_dir.join("shared-log"))?;
    host::backup::clean_leftovers(&opts.data_dir);
    let node = Arc::new(node::Node::new(id, opts.clone(), backend, logs)?);
    let opened = node.registry.open_existing()?;
    tracing::info!(node = %id, "opened {opened} replicas from disk");

    if let Some(addr) = opts.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(addr).install().map_err(
            |e| Error::InvalidArgument(format!("serve metrics on {addr} (--metrics-listen): {e}")),
        )?;
        tracing::info!(node = %id, "metrics at http://{addr}/metrics");
    }
    let services = api::services::Services { node: node.clone() };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {}", opts.listen), e))?;
    // One port: peer links are read by `accept`, everything else goes to the gRPC server.
    let (grpc_tx, grpc_rx) = tokio::sync::mpsc::channel(64);
    let registry = node.registry.clone();
    let deliver: peer::accept::Deliver = Arc::new(move |env| registry.on_peer_envelope(env));
    let acceptor = tokio::spawn(peer::accept::run(listener, deliver, node.stopping(), grpc_tx));
    let incoming = tokio_stream::wrappers::ReceiverStream::new(grpc_rx);
    let beacons = tokio::spawn(control::beacon::run(node.clone()));
    let gc = tokio::spawn(host::gc::run(node.registry.clone(), node.stopping()));
    let server = tonic::transport::Server::builder()
        .add_service(pb::kv_server::KvServer::new(services.clone()).max_decoding_message_size(64 << 20))
        .add_service(pb::peer_server::PeerServer::new(services.clone()))
        .add_service(pb::replica_backup_server::ReplicaBackupServer::new(services.clone()))
        .add_service(pb::control_server::ControlServer::new(services))
        .serve_with_incoming_shutdown(incoming, {
            let node = node.clone();
            async move {
                shutdown.await;
                node.stop_serving();
            }
        });
    // Requests in flight get a moment to finish; a stop must not wait on them for long.
    let mut stopping = node.stopping();
    let drain_limit = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(DRAIN).await;
    };
    let result = tokio::select! {
        r = server => r.map_err(|e| Error::io("serve", e)),
        _ = drain_limit => {
            tracing::warn!(node = %id, "requests still open {DRAIN:?} after the stop signal; stopping without them");
            Ok(())
        }
    };
    acceptor.abort();
    beacons.abort();
    gc.abort();
    dup::shipping::stop_all(&node.shipping);
    tracing::info!(node = %id, "replica server stopped");
    result
}
