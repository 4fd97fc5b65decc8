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
use std::net::SocketAddr;
use std::time::Duration;

use tern_client::MetaClient;
use tern_core::{Error, Result};
use tern_proto::pb;

pub use service::{Cluster, ProxyService};

#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub listen: SocketAddr,
    /// Each cluster's name and meta server addresses.
    pub clusters: Vec<(String, Vec<String>)>,
    /// A table's routing is asked again once it is this old (role changes show within it).
    pub max_age: Duration,
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
    tonic::transport::Server::builder()
        .add_service(pb::meta_server::MetaServer::new(ProxyService::new(clusters, opts.max_age)))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| Error::io("serve", e))
}
