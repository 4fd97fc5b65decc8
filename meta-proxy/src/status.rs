//! `ProxyAdmin.Status` (what `tern proxy status` prints): per table the copy routed to, every
//! cluster's copy with its health and lag, and the last failover decision.

use std::time::{Duration, Instant};

use tern_proto::pb;
use tonic::{Request, Response, Status};

use crate::choose::View;
use crate::failover::{self, Policy};
use crate::watch::{TableState, Watcher};

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

fn cluster_view(name: &str, view: &View, s: &TableState) -> pb::ProxyClusterView {
    let (state, epoch) = match view {
        View::Route(_) => {
            failover::role_of(view).map_or(("active".to_string(), 0), |(r, e)| (r.to_string(), e))
        }
        View::NoTable => ("no-table".to_string(), 0),
        View::Unreachable(_) => ("unreachable".to_string(), 0),
    };
    let health = failover::health(view);
    let (lag_seconds, lag_detail) = match s.sample.as_ref().map(|smp| (smp, smp.lags.get(name))) {
        Some((_, Some(Ok(lag)))) => (lag.as_secs_f64(), String::new()),
        Some((_, Some(Err(e)))) => (-1.0, e.clone()),
        Some((smp, None)) if smp.from == name => (0.0, String::new()),
        _ => (-1.0, "not measured yet".to_string()),
    };
    pb::ProxyClusterView {
        cluster: name.to_string(),
        state,
        epoch,
        healthy: health.is_ok(),
        detail: health.err().unwrap_or_default(),
        lag_seconds,
        lag_detail,
    }
}

pub(crate) fn table_status(table: &str, s: &TableState, policy: Option<&Policy>) -> pb::ProxyTableStatus {
    let (active_cluster, epoch, route_error) = match &s.route {
        Ok((i, r)) => (s.views[*i].0.clone(), r.table.as_ref().map_or(0, |t| t.epoch), String::new()),
        Err(e) => (String::new(), 0, e.to_string()),
    };
    let now = Instant::now();
    pb::ProxyTableStatus {
        table: table.to_string(),
        active_cluster,
        epoch,
        route_error,
        clusters: s.views.iter().map(|(n, v)| cluster_view(n, v, s)).collect(),
        auto_failover: policy.is_some(),
        failover_after_ms: policy.map_or(0, |p| ms(p.after)),
        rpo_budget_ms: policy.map_or(0, |p| ms(p.rpo_budget)),
        active_unhealthy_ms: s
            .outage
            .as_ref()
            .map_or(0, |o| ms(now.saturating_duration_since(o.since)).max(1)),
        active_unhealthy_cluster: s.outage.as_ref().map_or(String::new(), |o| o.cluster.clone()),
        last_decision: s.last_decision.clone(),
        lag_sampled_ms_ago: s
            .sample
            .as_ref()
            .map_or(-1, |smp| ms(now.saturating_duration_since(smp.at)) as i64),
    }
}

/// The `ProxyAdmin` gRPC service.
#[derive(Debug)]
pub struct AdminService {
    pub(crate) watcher: std::sync::Arc<Watcher>,
}

#[tonic::async_trait]
impl pb::proxy_admin_server::ProxyAdmin for AdminService {
    async fn status(&self, _: Request<pb::Empty>) -> Result<Response<pb::ProxyStatusResponse>, Status> {
        let w = &self.watcher;
        // Tables with a policy show even before their first refresh.
        let tables = w.tables();
        let mut names: Vec<&String> = tables.keys().chain(w.policies.keys()).collect();
        names.sort();
        names.dedup();
        let out = names
            .into_iter()
            .map(|t| match tables.get(t) {
                Some(s) => table_status(t, s, w.policies.get(t)),
                None => pb::ProxyTableStatus {
                    table: t.clone(),
                    route_error: "not looked at yet".into(),
                    auto_failover: true,
                    lag_sampled_ms_ago: -1,
                    ..Default::default()
                },
            })
            .collect();
        let clusters = w.clusters.iter().map(|c| c.name.clone()).collect();
        drop(tables);
        Ok(Response::new(pb::ProxyStatusResponse { clusters, tables: out }))
    }
}
