//! Duplication links on the meta side: the `Dup*` RPCs, what beacons carry about links (with
//! each partition's share of its link's throttle, split by `tern_duplication::split_link_limit`
//! from what the partitions' primaries last reported), and which progress reports the leader
//! accepts. The replicated part (links, their status machine, confirmed decrees, the conflict
//! journal) is [`crate::state::dup`]; the leader keeps the rest of each report (committed
//! decree, bytes and seconds behind, errors, the throttle's rates) in memory only, since it is
//! re-reported every beacon.

use std::collections::HashMap;
use std::time::Duration;

use tern_client::MetaClient;
use tern_core::{Ballot, Decree, Error, ErrorCode, NodeId, Result, Timetag};
use tern_duplication::{Lag, LagReport, ShareDemand, split_link_limit};
use tern_proto::convert::{PbEnum, link_change_from_pb};
use tern_proto::pb;
use tokio::sync::oneshot;

use crate::leader::LeaderInput;
use crate::service::{MetaService, check_table_name};
use crate::state::dup::{
    ConflictKind, ConflictRecord, LinkMode, LinkRecord, LinkSeed, LinkStatus, NewLink, ProgressUpdate,
};
use crate::state::{Command, MetaState, Response as Applied, TableStatus, partition_key};

/// How long `DupAdd` waits for the remote cluster's meta servers, in all: well within the
/// 5 s a client gives one meta call.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(3);

/// The last progress report of one partition on one link, as the leader holds it.
#[derive(Clone, Debug)]
pub struct ReportedProgress {
    /// The report, without its journal entries (those are in the replicated state).
    pub progress: pb::DupProgress,
    /// How long ago it arrived.
    pub age_ms: u64,
}

/// The leader's in-memory progress, by (link, partition).
pub type DupStats = HashMap<(u64, u32), ReportedProgress>;

/// What the throttle split knows of each (link, partition), from the leader's reports.
pub type ShareDemands = HashMap<(u64, u32), ShareDemand>;

/// A report older than this says nothing of what a partition wants now.
const DEMAND_FRESH_MS: u64 = 10_000;

/// What one partition wants of its link's throttle, from its last report (`age_ms` old).
pub fn share_demand(p: &pb::DupProgress, age_ms: u64) -> ShareDemand {
    if age_ms > DEMAND_FRESH_MS {
        ShareDemand::Unknown
    } else if p.throttled {
        ShareDemand::Saturated
    } else {
        ShareDemand::Using(p.wire_bytes_per_sec)
    }
}

/// Each partition's share of `l`'s limit (empty when it has none); a partition missing from
/// `demands` has not reported lately.
pub fn link_shares(l: &LinkRecord, demands: &ShareDemands) -> Vec<u64> {
    if l.max_bytes_per_sec == 0 {
        return Vec::new();
    }
    let of = |p: usize| demands.get(&(l.id, p as u32)).copied().unwrap_or(ShareDemand::Unknown);
    let demand: Vec<ShareDemand> = (0..l.partition_count()).map(of).collect();
    split_link_limit(l.max_bytes_per_sec, &demand)
}

pub fn demands_of(stats: &DupStats) -> ShareDemands {
    stats.iter().map(|(k, r)| (*k, share_demand(&r.progress, r.age_ms))).collect()
}

pub fn conflict_to_pb(c: &ConflictRecord) -> pb::DupConflict {
    pb::DupConflict {
        hash_key: c.hash_key.clone(),
        sort_key: c.sort_key.clone(),
        incoming: c.incoming,
        stored: c.stored,
        kind: c.kind.to_pb(),
    }
}

fn conflict_from_pb(c: &pb::DupConflict) -> Result<ConflictRecord> {
    Ok(ConflictRecord {
        hash_key: c.hash_key.clone(),
        sort_key: c.sort_key.clone(),
        incoming: c.incoming,
        stored: c.stored,
        kind: ConflictKind::from_pb(c.kind, "conflict.kind")?,
    })
}

pub fn link_to_pb(l: &LinkRecord) -> pb::DupLink {
    pb::DupLink {
        id: l.id,
        table: l.table,
        table_name: l.table_name.clone(),
        remote_cluster: l.remote_cluster.clone(),
        remote_cluster_id: u32::from(l.remote_cluster_id),
        remote_metas: l.remote_metas.clone(),
        remote_table: l.remote_table.clone(),
        status: l.status.to_pb(),
        max_bytes_per_sec: l.max_bytes_per_sec,
        confirmed: l.confirmed.clone(),
        mode: l.mode.to_pb(),
        created_at_ms: l.created_at_ms,
        started: l.started.clone(),
        replicated_up_to: (0..l.partition_count()).map(|p| l.replicated_up_to(p)).collect(),
        // Set where the split is known (beacon answers, status).
        partition_bytes_per_sec: Vec::new(),
        seed_backup: l.seed_backup.clone().unwrap_or_default(),
    }
}

/// What a replica server learns about links from its beacon: every link not removed whose
/// source table this cluster still holds (serving or dropped but not purged), with each
/// partition's share of the link's throttle.
pub fn beacon_links(s: &MetaState, demands: &ShareDemands) -> Vec<pb::DupLink> {
    s.links
        .values()
        .filter(|l| l.status != LinkStatus::Removed && s.tables.contains_key(&l.table))
        .map(|l| pb::DupLink { partition_bytes_per_sec: link_shares(l, demands), ..link_to_pb(l) })
        .collect()
}

/// A report older than this tells nothing about a partition's lag (replica servers beacon every
/// second by default).
pub const LAG_REPORT_MAX_AGE_MS: u64 = 10_000;

/// A link with the state of each of its partitions. `reported_ms_ago` is `u64::MAX` for a
/// partition the leader has no report of (none since it took over). The lag is
/// `DupRules::lag`'s: on each partition's own clock, and unknown (with why) when it cannot be
/// told.
pub fn link_status(s: &MetaState, l: &LinkRecord, stats: &DupStats) -> pb::DupLinkStatus {
    let rules = tern_duplication::DupRules::default();
    let shares = link_shares(l, &demands_of(stats));
    let partitions = (0..l.partition_count())
        .map(|i| {
            let p = i as u32;
            let r = stats.get(&(l.id, p));
            let fresh = r.filter(|r| r.age_ms <= DEMAND_FRESH_MS).map(|r| &r.progress);
            let progress = r.map(|r| r.progress.clone()).unwrap_or_default();
            let confirmed = l.confirmed[i];
            let replicated_up_to = l.replicated_up_to(i).max(progress.replicated_up_to);
            let decrees_behind = if l.started[i] { progress.committed.saturating_sub(confirmed) } else { 0 };
            let report = r.map(|r| LagReport {
                age_ms: r.age_ms,
                syncing: progress.syncing,
                last_error: &progress.last_error,
                committed: Decree(progress.committed),
                committed_timetag: Timetag::from_u64(progress.committed_timetag),
                replicated_up_to: Timetag::from_u64(replicated_up_to),
            });
            let (lag_known, seconds_behind, lag_unknown) =
                match rules.lag(l.status, l.started[i], report, LAG_REPORT_MAX_AGE_MS) {
                    Lag::Known { seconds } => (true, seconds, String::new()),
                    Lag::Unknown(why) => (false, 0.0, why),
                };
            let primary =
                s.partitions.get(&partition_key(l.table, p)).and_then(|rec| rec.config.primary).unwrap_or(0);
            pb::DupPartitionStatus {
                partition: p,
                confirmed,
                committed: progress.committed,
                decrees_behind,
                bytes_behind: progress.bytes_behind,
                seconds_behind,
                shipped_puts: progress.shipped_puts,
                failed_batches: progress.failed_batches,
                last_error: progress.last_error.clone(),
                conflicts: l.partition_conflicts.get(i).map_or(0, |c| c.total),
                primary,
                reported_ms_ago: r.map_or(u64::MAX, |r| r.age_ms),
                clock_ahead: progress.clock_ahead,
                syncing: progress.syncing && !l.started[i],
                sync_records: progress.sync_records,
                replicated_up_to,
                committed_timetag: progress.committed_timetag,
                lag_known,
                lag_unknown,
                share_bytes_per_sec: shares.get(i).copied().unwrap_or(0),
                // A rate from a report that stopped coming is not a rate now.
                wire_bytes_per_sec: fresh.map_or(0, |p| p.wire_bytes_per_sec),
                wire_bytes: progress.wire_bytes,
                throttled: fresh.is_some_and(|p| p.throttled),
                overwritten: l.partition_conflicts.get(i).map_or(0, |c| c.overwritten_total),
                conflicts_dropped: l.partition_conflicts.get(i).map_or(0, |c| c.dropped_total),
            }
        })
        .collect();
    pb::DupLinkStatus {
        link: Some(pb::DupLink { partition_bytes_per_sec: shares, ..link_to_pb(l) }),
        partitions,
        conflicts: l.conflicts_total,
        overwritten: l.overwritten_total,
        conflicts_dropped: l.conflicts_dropped,
    }
}

/// Sorts one beacon's progress reports: those from the partition's current primary at its
/// current ballot, on a link that is not removed, are accepted. Returns the updates worth
/// writing (something would change) and every accepted report (for the leader's memory).
pub fn accept_progress(
    s: &MetaState,
    node: u64,
    reports: Vec<pb::DupProgress>,
) -> (Vec<ProgressUpdate>, Vec<pb::DupProgress>) {
    let mut updates = Vec::new();
    let mut accepted = Vec::new();
    for mut p in reports {
        let Some(link) = s.links.get(&p.link).filter(|l| l.status != LinkStatus::Removed) else {
            tracing::debug!(link = p.link, node, "progress on an unknown or removed link ignored");
            continue;
        };
        let config = s.partitions.get(&partition_key(link.table, p.partition)).map(|r| r.config.config());
        if !config.is_some_and(|c| tern_duplication::report_counts(&c, NodeId(node), Ballot(p.ballot))) {
            tracing::debug!(
                link = p.link,
                partition = p.partition,
                node,
                ballot = p.ballot,
                "stale progress report ignored (not the current primary and ballot)"
            );
            continue;
        }
        let new_conflicts = p
            .recent_conflicts
            .iter()
            .filter_map(|c| {
                // From a server older than the kinds (a rolling upgrade): counted, not journaled.
                conflict_from_pb(c)
                    .inspect_err(|e| tracing::debug!(link = p.link, node, "journal entry left out: {e}"))
                    .ok()
            })
            .collect();
        let update = ProgressUpdate {
            link: p.link,
            partition: p.partition,
            node,
            confirmed: p.confirmed,
            conflicts: p.conflicts,
            replicated_up_to: p.replicated_up_to,
            overwritten: p.overwritten,
            conflicts_dropped: p.conflicts_dropped,
            new_conflicts,
        };
        // A partition still copying its records has no confirmed decree yet.
        if !p.syncing && link.progress_changes(&update) {
            updates.push(update);
        }
        p.recent_conflicts.clear();
        accepted.push(p);
    }
    (updates, accepted)
}

fn invalid(msg: String) -> tonic::Status {
    tern_proto::status::to_status(&Error::InvalidArgument(msg))
}

fn status(e: Error) -> tonic::Status {
    tern_proto::status::to_status(&e)
}

/// Checks the remote end of a new link: its meta servers answer as cluster `cluster`, with an
/// id other than `own_id`, and hold `table`. Returns the remote cluster's id. An unreachable
/// remote cluster is reported as an invalid argument (check `--to-meta`), not as retryable: the
/// client retrying the same call would only wait again.
/// Checks the remote cluster (name, id) and its table; `restoring`: the table may be one being
/// restored (a link seeded from a backup is added before the restore fills it).
async fn check_remote(
    cluster: &str,
    metas: &[String],
    table: &str,
    own_id: u8,
    restoring: bool,
) -> Result<u8> {
    let at = metas.join(",");
    let unreachable = |e: String| {
        Error::InvalidArgument(format!(
            "cannot reach the meta servers of cluster {cluster} at {at} (check --to-meta): {e}"
        ))
    };
    let mut client = MetaClient::new(metas.to_vec())?;
    // Shorter than the whole budget, so that the cause (e.g. connection refused) is reported.
    client.deadline = REMOTE_TIMEOUT - Duration::from_millis(500);
    let check = async {
        let st = client
            .call(|mut c| async move { c.cluster_status(pb::Empty {}).await })
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if st.cluster_name != cluster {
            return Err(Error::InvalidArgument(format!(
                "the meta servers at {at} serve cluster {:?}, not {cluster:?}: check --to and --to-meta",
                st.cluster_name
            )));
        }
        let id = u8::try_from(st.cluster_id)
            .map_err(|_| Error::InvalidArgument(format!("cluster {cluster} reports id {}", st.cluster_id)))?;
        if id == own_id {
            return Err(Error::InvalidArgument(format!(
                "cluster {cluster} has the same cluster id ({id}) as this cluster: either it is this \
                 cluster (a link to yourself is not allowed) or two clusters share an id (ids must be \
                 unique among clusters that replicate to each other)"
            )));
        }
        let req = pb::RouteRequest { table: table.to_string(), for_restore: restoring };
        let route = client
            .call(|mut c| {
                let req = req.clone();
                async move { c.get_route(req).await }
            })
            .await;
        match route {
            Ok(_) => Ok(id),
            Err(e) if e.code() == ErrorCode::TableNotFound => Err(Error::InvalidArgument(format!(
                "table {table} does not exist in cluster {cluster}; create it there first (any partition count)"
            ))),
            Err(e) => Err(unreachable(e.to_string())),
        }
    };
    tokio::time::timeout(REMOTE_TIMEOUT, check)
        .await
        .map_err(|_| unreachable(format!("no answer within {REMOTE_TIMEOUT:?}")))?
}

impl MetaService {
    /// The leader's in-memory progress reports.
    async fn dup_stats(&self) -> std::result::Result<DupStats, tonic::Status> {
        let (reply, rx) = oneshot::channel();
        self.send(LeaderInput::DupStats { reply }).await?;
        rx.await.map_err(|_| status(Error::Unavailable("leadership changed".into())))
    }

    async fn incoming(&self) -> std::result::Result<Vec<crate::horizon::IncomingView>, tonic::Status> {
        let (reply, rx) = oneshot::channel();
        self.send(LeaderInput::Incoming { reply }).await?;
        rx.await.map_err(|_| status(Error::Unavailable("leadership changed".into())))
    }

    async fn link_reply(&self, applied: Applied) -> std::result::Result<pb::DupLinkStatus, tonic::Status> {
        match applied {
            Applied::Link(l) => {
                let stats = self.dup_stats().await?;
                Ok(self.group.read(|s| link_status(&s.0, &l, &stats)))
            }
            Applied::Refused(why) => Err(invalid(why)),
            other => Err(status(Error::invariant(format!("a link command returned {other:?}")))),
        }
    }

    pub(crate) async fn do_dup_add(
        &self,
        r: pb::DupAddRequest,
    ) -> std::result::Result<pb::DupLinkStatus, tonic::Status> {
        self.leader()?;
        let mode = LinkMode::from_pb(r.mode, "mode").map_err(status)?;
        let remote_cluster = r.remote_cluster.trim().to_string();
        if remote_cluster.is_empty() {
            return Err(invalid("the remote cluster's name is missing (--to)".into()));
        }
        if r.remote_metas.iter().all(|a| a.trim().is_empty()) {
            return Err(invalid(format!(
                "unknown cluster {remote_cluster}: give its meta addresses (--to-meta)"
            )));
        }
        let remote_metas: Vec<String> =
            r.remote_metas.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        let remote_table = if r.remote_table.is_empty() { r.table.clone() } else { r.remote_table.clone() };
        check_table_name(&remote_table)?;
        let (table, own_name, own_id) = self.group.read(|s| {
            let t = match s.0.table_by_name(&r.table) {
                Some(t) if t.status == TableStatus::Serving => Ok(t.clone()),
                Some(_) => Err(invalid(format!(
                    "table {} is dropped: recall it (`tern table recall`) before adding a link",
                    r.table
                ))),
                None => Err(status(Error::TableNotFound(r.table.clone()))),
            }?;
            if let Some(l) = s.0.live_link_to(t.id, &remote_cluster, &remote_table) {
                return Err(invalid(format!(
                    "table {} already has link {} to table {} of cluster {remote_cluster} ({})",
                    t.name, l.id, l.remote_table, l.status
                )));
            }
            Ok((t, s.0.cluster_name.clone(), s.0.cluster_id))
        })?;
        if remote_cluster == own_name {
            return Err(invalid(format!(
                "{remote_cluster} is this cluster's own name: a link to yourself is not allowed \
                 (clusters that replicate to each other need different names and ids)"
            )));
        }
        let remote_cluster_id =
            check_remote(&remote_cluster, &remote_metas, &remote_table, own_id, r.seed.is_some())
                .await
                .map_err(status)?;
        let link = NewLink {
            table: table.id,
            table_name: table.name.clone(),
            remote_cluster,
            remote_cluster_id,
            remote_metas,
            remote_table,
            mode,
            // A full sync copies each partition's records first; the link ships once every
            // partition has (see `LinkRecord::record`).
            status: if r.full_sync { LinkStatus::SyncingCheckpoint } else { LinkStatus::Shipping },
            max_bytes_per_sec: r.max_bytes_per_sec,
            created_at_ms: crate::wall_ms(),
        };
        let command = match r.seed {
            Some(seed) => {
                if r.full_sync {
                    return Err(invalid("a link seeded from a backup does not also take a full sync".into()));
                }
                Command::AddSeededLink { link, seed: LinkSeed { backup: seed.backup, decrees: seed.decrees } }
            }
            None => Command::AddLink { link },
        };
        let applied = self.write(command).await?;
        if let Applied::Link(l) = &applied {
            tracing::info!(
                "duplication link {} added: table {} → cluster {} table {} ({})",
                l.id,
                l.table_name,
                l.remote_cluster,
                l.remote_table,
                l.mode
            );
        }
        self.link_reply(applied).await
    }

    pub(crate) async fn do_dup_change(
        &self,
        r: pb::DupChangeRequest,
    ) -> std::result::Result<pb::DupLinkStatus, tonic::Status> {
        let change = link_change_from_pb(&r).map_err(status)?;
        let applied = self.write(Command::ChangeLink { id: r.id, change }).await?;
        if matches!(applied, Applied::Link(_)) {
            tracing::info!("duplication link {}: {change}", r.id);
        }
        self.link_reply(applied).await
    }

    pub(crate) async fn do_dup_list(
        &self,
        r: pb::DupListRequest,
    ) -> std::result::Result<pb::DupListResponse, tonic::Status> {
        let stats = self.dup_stats().await?;
        let incoming = self.incoming().await?;
        self.group.read(|s| {
            let links: Vec<_> =
                s.0.links
                    .values()
                    .filter(|l| r.table.is_empty() || l.table_name == r.table)
                    .map(|l| link_status(&s.0, l, &stats))
                    .collect();
            let table_name = |id: u32| s.0.tables.get(&id).map_or_else(String::new, |t| t.name.clone());
            let incoming: Vec<_> = incoming
                .into_iter()
                .filter(|v| r.table.is_empty() || table_name(v.table) == r.table)
                .map(|v| pb::IncomingLinkStatus {
                    table: table_name(v.table),
                    table_id: v.table,
                    from_cluster: u32::from(v.link.from_cluster),
                    source_table: v.link.source_table,
                    source_partitions: v.link.partitions,
                    replicated_up_to: v.replicated_up_to,
                    heard_ms_ago: v.heard_ago.map_or(u64::MAX, |d| d.as_millis() as u64),
                    purge_below: s.0.horizon(v.table).map_or(0, |h| h.purge_below),
                })
                .collect();
            if links.is_empty()
                && incoming.is_empty()
                && !r.table.is_empty()
                && s.0.table_by_name(&r.table).is_none()
            {
                return Err(status(Error::TableNotFound(r.table.clone())));
            }
            Ok(pb::DupListResponse { links, incoming })
        })
    }

    pub(crate) async fn do_dup_conflicts(
        &self,
        r: pb::DupChangeRequest,
    ) -> std::result::Result<pb::DupConflictsResponse, tonic::Status> {
        self.leader()?;
        self.group.read(|s| match s.0.links.get(&r.id) {
            Some(l) => Ok(pb::DupConflictsResponse {
                total: l.conflicts_total,
                recent: l.recent_conflicts.iter().map(conflict_to_pb).collect(),
                overwritten: l.overwritten_total,
                dropped: l.conflicts_dropped,
            }),
            None => Err(invalid(format!("no duplication link {} (see `tern dup list`)", r.id))),
        })
    }
}

#[cfg(test)]
#[path = "dup_tests.rs"]
mod tests;
