//! The meta-proxy (`tern proxy`): one entry point for clients across clusters.
//!
//! Built so far (issue #6, part 2): it answers the meta servers' routing query (`GetRoute`) for
//! any table with the routing of the cluster whose copy is `active` at the highest DR epoch
//! ([`choose`]), so clients pointed only at proxies follow a role change without a restart
//! (a write that meets the old, now standby, copy makes the client ask again). Stateless: run
//! any number. Not built yet: push of role changes, automatic failover, the RESP gateway,
//! `tern proxy status`.
//!
//! Must not depend on: rocksdb.

pub mod choose;
pub mod resp;
pub mod service;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tern_client::{ClientOptions, MetaClient, TernClient};
use tern_core::{Error, Result};
use tern_proto::pb;

pub use resp::RespOptions;
pub use service::{Cluster, ProxyService};

#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub listen: SocketAddr,
    /// Each cluster's name and meta server addresses.
    pub clusters: Vec<(String, Vec<String>)>,
    /// A table's routing is asked again once it is this old (role changes show within it).
    pub max_age: Duration,
    /// The Redis gateway, if wanted.
    pub resp: Option<RespOptions>,
}

/// Serves until `shutdown` completes.
pub async fn run(opts: ProxyOptions, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    if opts.clusters.is_empty() {
        return Err(Error::InvalidArgument(
            "a proxy needs at least one cluster (--cluster NAME=ADDRS)".into(),
        ));
    }
    let mut clusters = Vec::new();
    for (name, addrs) in &opts.clusters {
        let mut meta = MetaClient::new(addrs.clone())?;
        // One slow cluster must not hold up routing to the others.
        meta.deadline = Duration::from_secs(1);
        clusters.push(Cluster { name: name.clone(), meta });
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {}", opts.listen), e))?;
    let names: Vec<&str> = opts.clusters.iter().map(|(n, _)| n.as_str()).collect();
    tracing::info!(listen = %opts.listen, "proxy serving routing for clusters {}", names.join(", "));
    let shutdown = shutdown.boxed().shared();
    let gateway = match &opts.resp {
        None => None,
        Some(resp) => {
            let routing = listener.local_addr().map_err(|e| Error::io("read the listen address", e))?;
            Some(start_gateway(resp, routing).await?)
        }
    };
    let grpc = tonic::transport::Server::builder()
        .add_service(pb::meta_server::MetaServer::new(ProxyService::new(clusters, opts.max_age)))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.clone(),
        );
    let resp = async {
        if let Some((listener, gateway)) = gateway {
            resp::serve(listener, gateway, shutdown).await;
        }
    };
    let (served, ()) = tokio::join!(grpc, resp);
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
