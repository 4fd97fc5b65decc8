//! A primary's request to the meta server for a configuration change (add or remove a
//! secondary), sent on its behalf. Lost or refused proposals are repeated by the replica while
//! their reason holds.

use std::time::Duration;

use tern_client::MetaClient;
use tern_core::{Ballot, ConfigChange, Gpid, NodeId};
use tern_proto::convert::gpid_to_pb;
use tern_proto::pb;

pub async fn propose(meta: &MetaClient, me: NodeId, gpid: Gpid, ballot: Ballot, change: ConfigChange) {
    let (add, target) = match change {
        ConfigChange::AddSecondary(n) => (true, n),
        ConfigChange::RemoveSecondary(n) => (false, n),
    };
    let req = pb::ProposeRequest {
        from: me.0,
        gpid: Some(gpid_to_pb(gpid)),
        ballot: ballot.0,
        add,
        node: target.0,
    };
    let call = meta.call(|mut c| async move { c.propose(req).await });
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(%gpid, "proposal {change:?} at ballot {ballot} failed: {e}"),
        Err(_) => tracing::warn!(%gpid, "proposal {change:?} at ballot {ballot} timed out"),
    }
}
