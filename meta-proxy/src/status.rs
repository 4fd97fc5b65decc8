//! `ProxyAdmin.Status` (what `tern proxy status` prints): per table the copy routed to, every
//! cluster's copy with its health and lag, and the last failover decision.

use std::time::{Duration, Instant};

use tern_client::admin::convert::proxy_status_to_pb;
use tern_client::admin::{CopyView, LeaseWait, ProxyStatus, ProxyTable, RouteLease, Unhealthy};
use tern_core::{CopyState, DrRole};
use tern_proto::pb;
use tonic::{Request, Response, Status};

use crate::choose::View;
use crate::failover::{self, Policy};
use crate::watch::{TableState, Watcher};

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// A copy's DR lease in words, as its cluster reported it.
fn lease_text(view: &View) -> String {
    let View::Route(r) = view else { return String::new() };
    let active = r.table.role == DrRole::Active;
    match &r.dr_lease {
        None => String::new(),
        Some(RouteLease { used: false, .. }) => "none (no DR voters)".into(),
        Some(RouteLease { waived: true, .. }) => "waived by an operator".into(),
        Some(_) if !active => String::new(),
        Some(l) if l.lease_left_ms > 0 => format!("held {:.1}s", l.lease_left_ms as f64 / 1000.0),
        Some(l) => format!("none: {}", l.detail),
    }
}

fn cluster_view(name: &str, view: &View, s: &TableState) -> CopyView {
    let (state, epoch) = match view {
        View::Route(_) => failover::role_of(view).map_or((CopyState::Active, 0), |(r, e)| (r.into(), e)),
        View::NoTable => (CopyState::NoTable, 0),
        View::Unreachable(_) => (CopyState::Unreachable, 0),
    };
    let health = failover::health(view);
    let (lag_seconds, lag_detail) = match s.sample.as_ref().map(|smp| (smp, smp.lags.get(name))) {
        Some((_, Some(Ok(lag)))) => (Some(lag.as_secs_f64()), String::new()),
        Some((_, Some(Err(e)))) => (None, e.clone()),
        Some((smp, None)) if smp.from == name => (Some(0.0), String::new()),
        _ => (None, "not measured yet".to_string()),
    };
    let behind = s.sample.as_ref().and_then(|smp| smp.behind.get(name).copied());
    CopyView {
        cluster: name.to_string(),
        state,
        epoch,
        healthy: health.is_ok(),
        detail: health.err().unwrap_or_default(),
        lag_seconds,
        lag_detail,
        decrees_behind: behind.map(|b| b.0),
        bytes_behind: behind.map(|b| b.1),
        dr_lease: lease_text(view),
    }
}

pub(crate) fn table_status(
    table: &str,
    s: &TableState,
    policy: Option<&Policy>,
    voters: usize,
) -> ProxyTable {
    let (active_cluster, epoch, route_error) = match &s.route {
        Ok((i, r)) => (Some(s.views[*i].0.clone()), r.table.epoch, None),
        Err(e) => (None, 0, Some(e.to_string())),
    };
    let now = Instant::now();
    ProxyTable {
        table: table.to_string(),
        active_cluster,
        epoch,
        route_error,
        clusters: s.views.iter().map(|(n, v)| cluster_view(n, v, s)).collect(),
        auto_failover: policy.is_some(),
        failover_after_ms: policy.map_or(0, |p| ms(p.after)),
        rpo_budget_ms: policy.map_or(0, |p| ms(p.rpo_budget)),
        active_unhealthy: s.outage.as_ref().map(|o| Unhealthy {
            cluster: o.cluster.clone(),
            for_ms: ms(now.saturating_duration_since(o.since)).max(1),
        }),
        last_decision: s.last_decision.clone(),
        lag_sampled_ms_ago: s.sample.as_ref().map(|smp| ms(now.saturating_duration_since(smp.at))),
        lease_wait: s.deposing.as_ref().map(|d| LeaseWait {
            for_ms: ms(d.expires_at.saturating_duration_since(now)),
            detail: d.describe(voters),
        }),
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
                Some(s) => table_status(t, s, w.policies.get(t), w.dr.voters.len()),
                None => ProxyTable::not_looked_at(t, true),
            })
            .collect();
        let clusters = w.clusters.iter().map(|c| c.name.clone()).collect();
        drop(tables);
        Ok(Response::new(proxy_status_to_pb(&ProxyStatus {
            clusters,
            tables: out,
            dr_name: w.dr.name.clone(),
            dr_voters: w.dr.names(),
            witness: w.witness,
        })))
    }
}
