//! The typed admin client: the one way tools (the CLI, `tern up`, later topology apply and the
//! DR runbook) talk to a cluster's meta servers and to proxies.
//!
//! Owns: [`AdminClient`] (tables, DR roles and epochs, the DR lease, cluster status, nodes, duplication links
//! including a two-way pair added with rollback) over [`MetaClient`] (leader following,
//! retries), [`ProxyAdminClient`] (a proxy's status), the domain types they answer with
//! ([`types`]) and their conversions from and to protobuf ([`convert`], the only place). Every
//! error is a `tern_core::Error` whose context says what was being done; its code is the
//! cause's, so callers still classify by code.

pub mod apply_version;
pub mod backup;
pub mod backup_policy;
pub mod convert;
mod drlease;
mod links;
mod proxy;
pub mod seed;
mod tables;
mod two_way;
pub mod types;

use std::future::Future;
use std::time::Duration;

use tern_core::{NodeId, Result};
use tern_proto::pb;
use tern_proto::pb::meta_client::MetaClient as PbMetaClient;
use tonic::transport::Channel;

pub use self::apply_version::TopologyVersionBump;
use self::convert::cluster_status_from_pb;
pub use self::drlease::DrillRecord;
pub use self::proxy::ProxyAdminClient;
pub use self::types::*;
use crate::MetaClient;

/// Administration of one cluster, through its meta servers (whichever leads).
#[derive(Debug)]
pub struct AdminClient {
    meta: MetaClient,
    /// The addresses it was given: what a reverse link names as this cluster's meta servers.
    metas: Vec<String>,
}

impl AdminClient {
    /// `metas`: the cluster's meta servers, `host:port` (any of them; the leader is found).
    pub fn connect(metas: Vec<String>) -> Result<AdminClient> {
        Ok(AdminClient { meta: MetaClient::new(metas.clone())?, metas })
    }

    /// How long one call may keep trying, across meta servers and redirects (default 10 s).
    pub fn with_deadline(mut self, deadline: Duration) -> AdminClient {
        self.meta.deadline = deadline;
        self
    }

    /// The meta server addresses it was given.
    pub fn metas(&self) -> &[String] {
        &self.metas
    }

    /// One meta call with `req`, following the leader and retrying.
    async fn call<Req, T, F, Fut>(&self, req: Req, f: F) -> Result<T>
    where
        Req: Clone,
        F: Fn(PbMetaClient<Channel>, Req) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.meta.call(|c| f(c, req.clone())).await
    }

    /// Nodes, tables, partitions not fully healthy, and balance.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        self.call(pb::Empty {}, |mut c, r| async move { c.cluster_status(r).await })
            .await
            .and_then(cluster_status_from_pb)
            .map_err(|e| e.context("ask for the cluster status"))
    }

    /// The cluster's name, as its meta servers were started with.
    pub async fn cluster_name(&self) -> Result<String> {
        let s = self
            .call(pb::Empty {}, |mut c, r| async move { c.cluster_status(r).await })
            .await
            .map_err(|e| e.context("ask this cluster's meta servers for its name"))?;
        Ok(s.cluster_name)
    }

    /// Drains `node` for removal: the balancer moves its primaries, then its replicas, away.
    pub async fn decommission(&self, node: NodeId) -> Result<()> {
        let req = pb::DecommissionRequest { node: node.0 };
        self.call(req, |mut c, r| async move { c.decommission(r).await })
            .await
            .map(|_| ())
            .map_err(|e| e.context(format!("decommission {node}")))
    }

    /// Undoes a decommission.
    pub async fn recommission(&self, node: NodeId) -> Result<()> {
        let req = pb::RecommissionRequest { node: node.0 };
        self.call(req, |mut c, r| async move { c.recommission(r).await })
            .await
            .map(|_| ())
            .map_err(|e| e.context(format!("recommission {node}")))
    }
}
