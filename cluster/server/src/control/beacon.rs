//! Beacons to the meta server, and what the answers bring: peer addresses, configurations,
//! then the lease (configurations first, so a demoted primary steps down before it could serve
//! on a fresh lease).

use std::sync::Arc;
use std::time::Duration;

use tern_core::NodeId;
use tern_proto::convert::{config_from_pb, report_to_pb};
use tern_proto::pb;

use crate::node::Node;

pub async fn run(node: Arc<Node>) {
    // Shippers follow primaries between beacons too.
    tokio::spawn(follow_primaries(node.clone()));
    let mut interval = tokio::time::interval(node.opts.beacon_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    let mut memory = super::memory::MemoryProbe::default();
    loop {
        interval.tick().await;
        let sent_at_ms = node.clock.now().mono_ms;
        let req = pb::BeaconRequest {
            node: node.id.0,
            addr: node.opts.advertised(),
            sent_at_ms,
            reports: node.registry.reports().iter().map(report_to_pb).collect(),
            dup_progress: node.shipping.progress(),
            memory: memory.current(),
            incoming: node.dup.incoming.report(),
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
    node.peers.addresses().learn(resp.addresses.into_iter().map(|a| (NodeId(a.node), a.addr)));
    for c in &resp.configs {
        match config_from_pb(c) {
            Ok(config) => node.registry.on_config(config),
            Err(e) => tracing::warn!("bad configuration from the meta server: {e}"),
        }
    }
    node.on_lease(resp.sent_at_ms, resp.lease_ms);
    node.links.set(resp.dup_links);
    node.registry.on_purged_tables(&resp.purged_tables);
    node.roles.set(&resp.table_roles, resp.sent_at_ms, resp.dr_lease);
    // Each table's purge horizon goes to its replicas: primaries log a newer one. Its age (how
    // far back deletes are kept, held back by incoming links) is a gauge.
    let now_ms = node.clock.now().wall_ms;
    for (table, below) in node.roles.purge_horizons() {
        if below == tern_core::Timetag::ZERO {
            continue;
        }
        let age_s = now_ms.saturating_sub(below.physical_ms()) as f64 / 1000.0;
        metrics::gauge!("tern_purge_horizon_age_seconds", "table" => table.to_string()).set(age_s);
        for g in node.registry.gpids().into_iter().filter(|g| g.table.0 == table) {
            node.registry.deliver(g, tern_replica::Event::PurgeHorizon { below });
        }
    }
}

/// Starts and stops duplication shippers as this node's primaries and the links change.
async fn follow_primaries(node: Arc<Node>) {
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = node.stopping();
    loop {
        tokio::select! {
            _ = interval.tick() => crate::dup::shipping::reconcile(&node.dup),
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}
