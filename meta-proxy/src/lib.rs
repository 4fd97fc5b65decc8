//! The meta-proxy (`tern proxy`): one entry point for clients across clusters.
//!
//! It answers the meta servers' routing query (`GetRoute`) for any table with the routing of
//! the cluster whose copy is `active` at the highest DR epoch ([`choose`]), so clients pointed
//! only at proxies follow a role change without a restart (a write that meets the old, now
//! standby, copy makes the client ask again). It watches the tables it routes ([`watch`]),
//! measures the standbys' duplication lag, and, for tables given a policy, fails over
//! automatically within an RPO budget ([`failover`]) once the old active copy's DR lease has
//! certainly expired ([`lease`]); `ProxyAdmin.Status` ([`status`]) shows it all. With
//! `--dr-name` it is a DR voter ([`voter`]): clusters renew their DR lease with it. Stateless
//! apart from a voter's in-memory floors: run any number (the epoch compare-and-set decides
//! between them).
//!
//! Must not depend on: rocksdb.

pub mod choose;
pub mod failover;
pub mod lease;
pub mod resp;
pub mod service;
pub mod status;
pub mod voter;
pub mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tern_client::{AdminClient, ClientOptions, TernClient};
use tern_core::{Error, Result};
use tern_proto::pb;

pub use failover::Policy;
pub use resp::RespOptions;
pub use service::{Cluster, ProxyService};
pub use voter::DrOptions;
pub use watch::Watcher;

#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub listen: SocketAddr,
    /// Each cluster's name and meta server addresses.
    pub clusters: Vec<(String, Vec<String>)>,
    /// A table's routing is asked again once it is this old (role changes show within it).
    pub max_age: Duration,
    /// How often watched tables are refreshed (and failover considered).
    pub interval: Duration,
    /// Tables that fail over automatically, and how.
    pub failover: HashMap<String, Policy>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The Redis gateway, if wanted.
    pub resp: Option<RespOptions>,
    /// The DR lease: voters, this process's voter name, the override (docs/meta-proxy.md).
    pub dr: DrOptions,
    /// Run as a DR witness only (`tern witness`): grant and promise, route nothing.
    pub witness: bool,
}

impl ProxyOptions {
    pub fn new(listen: SocketAddr, clusters: Vec<(String, Vec<String>)>) -> ProxyOptions {
        ProxyOptions {
            listen,
            clusters,
            max_age: Duration::from_millis(500),
            interval: Duration::from_millis(500),
            failover: HashMap::new(),
            metrics_listen: None,
            resp: None,
            dr: DrOptions::default(),
            witness: false,
        }
    }
}

/// Serves until `shutdown` completes.
pub async fn run(opts: ProxyOptions, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    if opts.clusters.is_empty() && !opts.witness {
        return Err(Error::InvalidArgument(
            "a proxy needs at least one cluster (--cluster NAME=ADDRS)".into(),
        ));
    }
    opts.dr.validate()?;
    if opts.witness {
        if opts.dr.name.is_none() {
            return Err(Error::InvalidArgument(
                "a witness needs its name among the DR voters (--dr-name)".into(),
            ));
        }
        if !opts.failover.is_empty() || opts.resp.is_some() {
            return Err(Error::InvalidArgument(
                "a witness routes nothing: no --auto-failover, no Redis gateway".into(),
            ));
        }
    }
    let mut clusters = Vec::new();
    for (name, addrs) in &opts.clusters {
        // One slow cluster must not hold up routing to the others.
        let admin = AdminClient::connect(addrs.clone())?.with_deadline(Duration::from_secs(1));
        clusters.push(Cluster { name: name.clone(), admin });
    }
    for table in opts.failover.keys() {
        if table.is_empty() {
            return Err(Error::InvalidArgument("an automatic failover policy needs a table name".into()));
        }
    }
    if let Some(addr) = opts.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| Error::InvalidArgument(format!("cannot serve metrics on {addr}: {e}")))?;
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {}", opts.listen), e))?;
    let names: Vec<&str> = opts.clusters.iter().map(|(n, _)| n.as_str()).collect();
    tracing::info!(listen = %opts.listen, "proxy serving routing for clusters {}", names.join(", "));
    for (table, p) in &opts.failover {
        tracing::info!(
            table,
            "automatic failover on: after {:?} without the active copy, if a standby is within {:?}, once the old copy's DR lease has certainly expired",
            p.after,
            p.rpo_budget
        );
    }
    if let Some(name) = &opts.dr.name {
        tracing::info!(
            "DR voter {name}: grants {:?} leases; voters {}",
            opts.dr.lease,
            opts.dr.names().join(", ")
        );
    }
    if opts.dr.unsafe_failover_without_lease && !opts.failover.is_empty() {
        tracing::warn!(
            "--unsafe-failover-without-lease: automatic failover promotes without waiting for the old active copy's DR lease; a cluster cut off from the proxies but reachable by clients may take writes at the same time (split brain)"
        );
    } else if opts.dr.voters.is_empty() && !opts.failover.is_empty() {
        tracing::warn!(
            "automatic failover without --dr-voters: this proxy cannot learn when an active copy's DR lease ends, so it refuses every promotion"
        );
    }
    let watcher =
        Arc::new(Watcher::new(clusters, opts.max_age, opts.failover.clone(), opts.dr.clone(), opts.witness));
    let watching = tokio::spawn(watcher.clone().run(opts.interval));
    let shutdown = shutdown.boxed().shared();
    let gateway = match &opts.resp {
        None => None,
        Some(resp) => {
            let routing = listener.local_addr().map_err(|e| Error::io("read the listen address", e))?;
            Some(start_gateway(resp, routing).await?)
        }
    };
    let grpc = tonic::transport::Server::builder()
        .add_service(pb::meta_server::MetaServer::new(ProxyService::new(watcher.clone())))
        .add_service(pb::dr_voter_server::DrVoterServer::new(voter::VoterService {
            watcher: watcher.clone(),
        }))
        .add_service(pb::proxy_admin_server::ProxyAdminServer::new(status::AdminService { watcher }))
        .serve_with_incoming_shutdown(
            // Nagle off (the builder's setting does not reach an incoming stream we pass in).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.clone(),
        );
    let resp = async {
        if let Some((listener, gateway)) = gateway {
            resp::serve(listener, gateway, shutdown).await;
        }
    };
    let (served, ()) = tokio::join!(grpc, resp);
    watching.abort();
    served.map_err(|e| Error::io("serve", e))
}

/// Binds the Redis gateway's listener. Its Tern client asks this proxy for routes (at
/// `routing`, the proxy's own gRPC address), so it follows a change of the active cluster.
async fn start_gateway(
    resp: &RespOptions,
    routing: SocketAddr,
) -> Result<(tokio::net::TcpListener, Arc<resp::Gateway>)> {
    if !resp.dbs.contains_key(&0) {
        return Err(Error::InvalidArgument(
            "the Redis gateway needs a table for database 0 (--resp-table TABLE)".into(),
        ));
    }
    let routing = match routing.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), routing.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), routing.port()),
        _ => routing,
    };
    let client = TernClient::new(ClientOptions::new(vec![routing.to_string()]))?;
    let listener = tokio::net::TcpListener::bind(resp.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {} (redis gateway)", resp.listen), e))?;
    let tables: Vec<String> = resp.dbs.iter().map(|(n, t)| format!("{n}={t}")).collect();
    tracing::info!(listen = %resp.listen, "redis gateway serving databases {}", tables.join(", "));
    Ok((listener, Arc::new(resp::Gateway::new(client, resp.dbs.clone()))))
}
