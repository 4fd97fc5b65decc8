//! Beacons to the meta server, and what the answers bring: peer addresses, configurations,
//! then the lease (configurations first, so a demoted primary steps down before it could serve
//! on a fresh lease).

use std::sync::Arc;
use std::time::Duration;

use tern_core::{Ballot, ConfigChange, Gpid, NodeId};
use tern_proto::convert::{config_from_pb, gpid_to_pb, report_to_pb};
use tern_proto::pb;

use crate::node::Node;

pub async fn run(node: Arc<Node>) {
    // Shippers follow primaries between beacons too.
    tokio::spawn(follow_primaries(node.clone()));
    let mut interval = tokio::time::interval(node.opts.beacon_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    let mut memory = crate::memory::MemoryProbe::default();
    loop {
        interval.tick().await;
        let sent_at_ms = node.now().mono_ms;
        let req = pb::BeaconRequest {
            node: node.id.0,
            addr: node.opts.advertised(),
            sent_at_ms,
            reports: node.reports().iter().map(report_to_pb).collect(),
            dup_progress: node.shipping.progress(),
            memory: memory.current(),
        };
        match node
            .meta
            .call(|mut c| {
                let req = req.clone();
                async move { c.beacon(req).await }
            })
            .await
        {
            Ok(resp) => {
                if failures > 0 {
                    tracing::info!("meta server reachable again");
                }
                failures = 0;
                node.shipping.reported(&req.dup_progress);
                on_answer(&node, resp);
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!("beacon failed ({failures} in a row): {e}");
                }
            }
        }
    }
}

fn on_answer(node: &Node, resp: pb::BeaconResponse) {
    if resp.cluster_id != u32::from(node.opts.cluster_id.get()) {
        tracing::error!(
            "the meta server belongs to cluster {} ({}), this server to cluster {}: ignoring it",
            resp.cluster_id,
            resp.cluster_name,
            node.opts.cluster_id
        );
        return;
    }
    node.learn_addresses(resp.addresses.into_iter().map(|a| (NodeId(a.node), a.addr)));
    for c in &resp.configs {
        match config_from_pb(c) {
            Ok(config) => node.on_config(config),
            Err(e) => tracing::warn!("bad configuration from the meta server: {e}"),
        }
    }
    node.on_lease(resp.sent_at_ms, resp.lease_ms);
    node.shipping.set_links(resp.dup_links);
    node.on_purged_tables(&resp.purged_tables);
    node.set_table_roles(&resp.table_roles);
}

/// Asks the meta server for a configuration change on behalf of a primary.
pub async fn propose(node: &Node, gpid: Gpid, ballot: Ballot, change: ConfigChange) {
    let (add, target) = match change {
        ConfigChange::AddSecondary(n) => (true, n),
        ConfigChange::RemoveSecondary(n) => (false, n),
    };
    let req = pb::ProposeRequest {
        from: node.id.0,
        gpid: Some(gpid_to_pb(gpid)),
        ballot: ballot.0,
        add,
        node: target.0,
    };
    let call = node.meta.call(|mut c| async move { c.propose(req).await });
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(%gpid, "proposal {change:?} at ballot {ballot} failed: {e}"),
        Err(_) => tracing::warn!(%gpid, "proposal {change:?} at ballot {ballot} timed out"),
    }
}

/// Starts and stops duplication shippers as this node's primaries and the links change.
async fn follow_primaries(node: Arc<Node>) {
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = node.stopping();
    loop {
        tokio::select! {
            _ = interval.tick() => crate::shipping::reconcile(&node),
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}
