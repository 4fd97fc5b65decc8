//! The admin API's messages ⇄ [`super::types`]: the one place they convert. From the wire,
//! every state enum goes through `tern_proto::convert` (an unspecified or unknown value is an
//! invalid argument naming the field) and sentinels (0 = none, `u64::MAX` = never, empty
//! string = none) become `Option`s. The other direction exists for what the proxy answers
//! (routes and its status), what the meta server answers about tables, and what this client
//! sends.

use tern_core::{
    ConflictKind, CopyState, DrRole, Error, FailoverOutcome, LinkMode, LinkStatus, NodeId, Result, TableId,
    Timetag,
};
use tern_proto::convert::{PbEnum, config_from_pb, config_to_pb, table_status_from_pb, table_status_to_pb};
use tern_proto::pb;

use super::types::{
    ClusterStatus, Conflict, CopyView, DrLeaseState, FailoverDecision, IncomingLinkReport, LeaseWait, Link,
    LinkConflicts, LinkReport, NewLink, NodeMemory, NodeStatus, PartitionProgress, ProxyStatus, ProxyTable,
    RouteLease, TableInfo, TableLease, TableRoute, Unhealthy, VoterGrant,
};

fn missing(what: &str, field: &str) -> Error {
    Error::InvalidArgument(format!("{what} without {field}"))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

// ---- tables ----

pub fn table_from_pb(t: pb::TableInfo) -> Result<TableInfo> {
    Ok(TableInfo {
        id: TableId(t.id),
        status: table_status_from_pb(t.status, t.dropped_at_ms, "table.status")?,
        role: DrRole::from_pb(t.role, "table.role")?,
        name: t.name,
        partitions: t.partitions,
        replicas: t.replicas,
        epoch: t.epoch,
        restoring: (!t.restoring.is_empty()).then_some(t.restoring),
    })
}

pub fn table_to_pb(t: &TableInfo) -> pb::TableInfo {
    let (status, dropped_at_ms) = table_status_to_pb(t.status);
    pb::TableInfo {
        id: t.id.0,
        name: t.name.clone(),
        partitions: t.partitions,
        replicas: t.replicas,
        status,
        dropped_at_ms,
        role: t.role.to_pb(),
        epoch: t.epoch,
        restoring: t.restoring.clone().unwrap_or_default(),
    }
}

pub fn route_from_pb(r: pb::Route) -> Result<TableRoute> {
    let table = table_from_pb(r.table.ok_or_else(|| missing("a route", "its table"))?)?;
    let mut partitions = r.partitions.iter().map(config_from_pb).collect::<Result<Vec<_>>>()?;
    partitions.sort_by_key(|c| c.gpid.partition);
    Ok(TableRoute {
        table,
        partitions,
        addresses: r.addresses.into_iter().map(|a| (NodeId(a.node), a.addr)).collect(),
        dr_lease: r.dr_lease.map(|l| RouteLease {
            used: l.used,
            voters: l.voters,
            waived: l.waived,
            lease_left_ms: l.lease_left_ms,
            detail: l.detail,
        }),
    })
}

pub fn route_to_pb(r: &TableRoute) -> pb::Route {
    pb::Route {
        table: Some(table_to_pb(&r.table)),
        partitions: r.partitions.iter().map(config_to_pb).collect(),
        addresses: r.addresses.iter().map(|(n, a)| pb::NodeAddress { node: n.0, addr: a.clone() }).collect(),
        dr_lease: r.dr_lease.as_ref().map(|l| pb::RouteDrLease {
            used: l.used,
            voters: l.voters.clone(),
            waived: l.waived,
            lease_left_ms: l.lease_left_ms,
            detail: l.detail.clone(),
        }),
    }
}

// ---- the DR lease ----

pub fn dr_lease_from_pb(s: pb::DrLeaseStatus) -> DrLeaseState {
    DrLeaseState {
        used: s.used,
        voters: s.voters,
        majority: s.majority,
        waiver: s.waived.then_some((s.waiver_reason, s.waived_at_ms)),
        grants: s
            .grants
            .into_iter()
            .map(|g| VoterGrant {
                voter: g.voter,
                addr: g.addr,
                granted: g.granted,
                lease_left_ms: g.lease_left_ms,
                answered_ms_ago: u64::try_from(g.answered_ms_ago).ok(),
                detail: g.detail,
            })
            .collect(),
        tables: s
            .tables
            .into_iter()
            .map(|t| TableLease {
                table: t.table,
                epoch: t.epoch,
                lease_left_ms: t.lease_left_ms,
                detail: t.detail,
            })
            .collect(),
        renew_interval_ms: s.renew_interval_ms,
    }
}

// ---- cluster ----

pub fn cluster_status_from_pb(s: pb::ClusterStatusResponse) -> Result<ClusterStatus> {
    Ok(ClusterStatus {
        cluster_name: s.cluster_name,
        cluster_id: s.cluster_id,
        meta_leader: (s.meta_leader != 0).then_some(s.meta_leader),
        nodes: s
            .nodes
            .into_iter()
            .map(|n| NodeStatus {
                node: NodeId(n.node),
                addr: n.addr,
                alive: n.alive,
                decommissioned: n.decommissioned,
                primaries: n.primaries,
                replicas: n.replicas,
                memory: n.memory.map(|m| NodeMemory {
                    resident_bytes: m.resident_bytes,
                    huge_page_bytes: m.huge_page_bytes,
                }),
            })
            .collect(),
        tables: s.tables.into_iter().map(table_from_pb).collect::<Result<_>>()?,
        unhealthy: s.unhealthy.iter().map(config_from_pb).collect::<Result<_>>()?,
        balancing: non_empty(s.balancing),
    })
}

// ---- duplication links ----

pub fn new_link_to_pb(l: &NewLink) -> pb::DupAddRequest {
    pb::DupAddRequest {
        table: l.table.clone(),
        remote_cluster: l.remote_cluster.clone(),
        remote_metas: l.remote_metas.clone(),
        remote_table: l.remote_table().to_string(),
        full_sync: l.full_sync,
        max_bytes_per_sec: l.max_bytes_per_sec,
        mode: l.mode.to_pb(),
        seed: None,
    }
}

pub fn link_from_pb(l: pb::DupLink) -> Result<Link> {
    Ok(Link {
        status: LinkStatus::from_pb(l.status, "link.status")?,
        mode: LinkMode::from_pb(l.mode, "link.mode")?,
        id: l.id,
        table: TableId(l.table),
        table_name: l.table_name,
        remote_cluster: l.remote_cluster,
        remote_cluster_id: l.remote_cluster_id,
        remote_metas: l.remote_metas,
        remote_table: l.remote_table,
        max_bytes_per_sec: l.max_bytes_per_sec,
        confirmed: l.confirmed,
        started: l.started,
        created_at_ms: l.created_at_ms,
    })
}

fn progress_from_pb(p: pb::DupPartitionStatus) -> PartitionProgress {
    PartitionProgress {
        partition: p.partition,
        confirmed: p.confirmed,
        committed: p.committed,
        decrees_behind: p.decrees_behind,
        bytes_behind: p.bytes_behind,
        seconds_behind: p.seconds_behind,
        lag_unknown: (!p.lag_known).then(|| {
            if p.lag_unknown.is_empty() { "not reported".to_string() } else { p.lag_unknown.clone() }
        }),
        replicated_up_to: Timetag::from_u64(p.replicated_up_to),
        shipped_puts: p.shipped_puts,
        failed_batches: p.failed_batches,
        last_error: non_empty(p.last_error),
        conflicts: p.conflicts,
        primary: (p.primary != 0).then_some(NodeId(p.primary)),
        reported_ms_ago: (p.reported_ms_ago != u64::MAX).then_some(p.reported_ms_ago),
        clock_ahead: p.clock_ahead,
        syncing: p.syncing,
        sync_records: p.sync_records,
        share_bytes_per_sec: p.share_bytes_per_sec,
        wire_bytes_per_sec: p.wire_bytes_per_sec,
        wire_bytes: p.wire_bytes,
        throttled: p.throttled,
        overwritten: p.overwritten,
        conflicts_dropped: p.conflicts_dropped,
    }
}

pub fn link_report_from_pb(s: pb::DupLinkStatus) -> Result<LinkReport> {
    Ok(LinkReport {
        link: link_from_pb(s.link.ok_or_else(|| missing("a link status", "its link"))?)?,
        partitions: s.partitions.into_iter().map(progress_from_pb).collect(),
        conflicts: s.conflicts,
        overwritten: s.overwritten,
        conflicts_dropped: s.conflicts_dropped,
    })
}

pub fn incoming_from_pb(i: pb::IncomingLinkStatus) -> IncomingLinkReport {
    IncomingLinkReport {
        table: i.table,
        from_cluster: i.from_cluster,
        source_table: i.source_table,
        replicated_up_to: i
            .replicated_up_to
            .iter()
            .map(|w| (*w != 0).then(|| Timetag::from_u64(*w)))
            .collect(),
        heard_ms_ago: (i.heard_ms_ago != u64::MAX).then_some(i.heard_ms_ago),
        purge_below: Timetag::from_u64(i.purge_below),
    }
}

pub fn conflicts_from_pb(r: pb::DupConflictsResponse) -> Result<LinkConflicts> {
    let conflict = |c: pb::DupConflict| {
        Ok(Conflict {
            kind: ConflictKind::from_pb(c.kind, "conflict.kind")?,
            hash_key: c.hash_key,
            sort_key: c.sort_key,
            incoming: Timetag::from_u64(c.incoming),
            stored: Timetag::from_u64(c.stored),
        })
    };
    Ok(LinkConflicts {
        total: r.total,
        overwritten: r.overwritten,
        dropped: r.dropped,
        recent: r.recent.into_iter().map(conflict).collect::<Result<_>>()?,
    })
}

// ---- proxy status ----

fn copy_from_pb(c: pb::ProxyClusterView) -> Result<CopyView> {
    Ok(CopyView {
        state: CopyState::from_pb(c.state, "cluster.state")?,
        cluster: c.cluster,
        epoch: c.epoch,
        healthy: c.healthy,
        detail: c.detail,
        lag_seconds: (c.lag_seconds >= 0.0).then_some(c.lag_seconds),
        lag_detail: c.lag_detail,
        decrees_behind: u64::try_from(c.decrees_behind).ok(),
        bytes_behind: u64::try_from(c.bytes_behind).ok(),
        dr_lease: c.dr_lease,
    })
}

fn copy_to_pb(c: &CopyView) -> pb::ProxyClusterView {
    pb::ProxyClusterView {
        cluster: c.cluster.clone(),
        state: c.state.to_pb(),
        epoch: c.epoch,
        healthy: c.healthy,
        detail: c.detail.clone(),
        lag_seconds: c.lag_seconds.unwrap_or(-1.0),
        lag_detail: c.lag_detail.clone(),
        decrees_behind: c.decrees_behind.map_or(-1, |n| n as i64),
        bytes_behind: c.bytes_behind.map_or(-1, |n| n as i64),
        dr_lease: c.dr_lease.clone(),
    }
}

fn decision_from_pb(d: pb::ProxyDecision) -> Result<FailoverDecision> {
    Ok(FailoverDecision {
        at_ms: d.at_ms,
        outcome: FailoverOutcome::from_pb(d.outcome, "last_decision.outcome")?,
        cluster: non_empty(d.cluster),
        epoch: d.epoch,
        reason: d.reason,
    })
}

fn decision_to_pb(d: &FailoverDecision) -> pb::ProxyDecision {
    pb::ProxyDecision {
        at_ms: d.at_ms,
        outcome: d.outcome.to_pb(),
        cluster: d.cluster.clone().unwrap_or_default(),
        epoch: d.epoch,
        reason: d.reason.clone(),
    }
}

fn proxy_table_from_pb(t: pb::ProxyTableStatus) -> Result<ProxyTable> {
    Ok(ProxyTable {
        table: t.table,
        active_cluster: non_empty(t.active_cluster),
        epoch: t.epoch,
        route_error: non_empty(t.route_error),
        clusters: t.clusters.into_iter().map(copy_from_pb).collect::<Result<_>>()?,
        auto_failover: t.auto_failover,
        failover_after_ms: t.failover_after_ms,
        rpo_budget_ms: t.rpo_budget_ms,
        active_unhealthy: (t.active_unhealthy_ms > 0)
            .then_some(Unhealthy { cluster: t.active_unhealthy_cluster, for_ms: t.active_unhealthy_ms }),
        last_decision: t.last_decision.map(decision_from_pb).transpose()?,
        lag_sampled_ms_ago: u64::try_from(t.lag_sampled_ms_ago).ok(),
        lease_wait: (t.lease_wait_ms > 0 || !t.lease_wait.is_empty())
            .then_some(LeaseWait { for_ms: t.lease_wait_ms, detail: t.lease_wait }),
    })
}

pub fn proxy_table_to_pb(t: &ProxyTable) -> pb::ProxyTableStatus {
    pb::ProxyTableStatus {
        table: t.table.clone(),
        active_cluster: t.active_cluster.clone().unwrap_or_default(),
        epoch: t.epoch,
        route_error: t.route_error.clone().unwrap_or_default(),
        clusters: t.clusters.iter().map(copy_to_pb).collect(),
        auto_failover: t.auto_failover,
        failover_after_ms: t.failover_after_ms,
        rpo_budget_ms: t.rpo_budget_ms,
        active_unhealthy_ms: t.active_unhealthy.as_ref().map_or(0, |u| u.for_ms.max(1)),
        active_unhealthy_cluster: t.active_unhealthy.as_ref().map_or(String::new(), |u| u.cluster.clone()),
        last_decision: t.last_decision.as_ref().map(decision_to_pb),
        lag_sampled_ms_ago: t.lag_sampled_ms_ago.map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        lease_wait_ms: t.lease_wait.as_ref().map_or(0, |w| w.for_ms),
        lease_wait: t.lease_wait.as_ref().map_or(String::new(), |w| w.detail.clone()),
    }
}

pub fn proxy_status_from_pb(s: pb::ProxyStatusResponse) -> Result<ProxyStatus> {
    Ok(ProxyStatus {
        clusters: s.clusters,
        tables: s.tables.into_iter().map(proxy_table_from_pb).collect::<Result<_>>()?,
        dr_name: non_empty(s.dr_name),
        dr_voters: s.dr_voters,
        witness: s.witness,
    })
}

pub fn proxy_status_to_pb(s: &ProxyStatus) -> pb::ProxyStatusResponse {
    pb::ProxyStatusResponse {
        clusters: s.clusters.clone(),
        tables: s.tables.iter().map(proxy_table_to_pb).collect(),
        dr_name: s.dr_name.clone().unwrap_or_default(),
        dr_voters: s.dr_voters.clone(),
        witness: s.witness,
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
