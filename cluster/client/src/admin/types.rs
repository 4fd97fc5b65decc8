//! What the admin API answers with: tables and their routing, a cluster's status, duplication
//! links and their progress, and a proxy's status. Plain data converted from the wire in
//! [`super::convert`] (the only place), so callers never see protobuf.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use tern_core::{
    ConflictKind, CopyState, DrRole, FailoverOutcome, LinkMode, LinkStatus, NodeId, PartitionConfig, TableId,
    TableStatus, Timetag,
};

/// A table as the meta servers describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    pub id: TableId,
    pub name: String,
    pub partitions: u32,
    pub replicas: u32,
    pub status: TableStatus,
    /// Its disaster-recovery role in this cluster.
    pub role: DrRole,
    /// Grows with every role change decided for the table.
    pub epoch: u64,
    /// The backup it is being restored from (`tern backup restore`): until the restore
    /// finishes it serves nobody. `None`: not restoring.
    pub restoring: Option<String>,
}

/// A table being restored from a backup, as `AdminClient::begin_restore` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoringTable {
    pub table: TableInfo,
    /// The backup it is being restored from.
    pub backup: String,
    /// It existed already, restoring from the same backup: this restore resumes that one.
    pub resumed: bool,
}

/// A table's routing: its partitions' configurations and the servers' addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRoute {
    pub table: TableInfo,
    /// By partition index; a partition the meta server sent no configuration for is missing.
    pub partitions: Vec<PartitionConfig>,
    pub addresses: BTreeMap<NodeId, String>,
    /// The table's DR lease in that cluster (`None`: a meta server that does not report it).
    pub dr_lease: Option<RouteLease>,
}

/// A table's DR lease in one cluster, as its meta leader reports it with the route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteLease {
    /// The cluster has DR voters (without them it has no lease at all).
    pub used: bool,
    /// The voters' names, sorted.
    pub voters: Vec<String>,
    /// An operator waived the lease there.
    pub waived: bool,
    /// Active copies: how long the lease lasts from when the meta leader answered (0: none).
    pub lease_left_ms: u64,
    /// Why there is none, if there is none.
    pub detail: String,
}

/// A cluster's DR lease (`tern cluster dr-lease`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrLeaseState {
    pub used: bool,
    pub voters: Vec<String>,
    /// How many voters must grant it.
    pub majority: u32,
    /// The operator's waiver: (reason, wall ms when set).
    pub waiver: Option<(String, u64)>,
    pub grants: Vec<VoterGrant>,
    /// Every active table's lease.
    pub tables: Vec<TableLease>,
    pub renew_interval_ms: u64,
}

/// One DR voter's last answer to the meta leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterGrant {
    pub voter: String,
    pub addr: String,
    pub granted: bool,
    pub lease_left_ms: u64,
    /// `None`: it never answered this meta leader.
    pub answered_ms_ago: Option<u64>,
    pub detail: String,
}

/// An active table's DR lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableLease {
    pub table: String,
    pub epoch: u64,
    pub lease_left_ms: u64,
    pub detail: String,
}

impl TableRoute {
    pub fn address(&self, node: NodeId) -> Option<&str> {
        self.addresses.get(&node).map(String::as_str)
    }

    /// How many partitions have a primary.
    pub fn with_primary(&self) -> usize {
        self.partitions.iter().filter(|c| c.primary.is_some()).count()
    }
}

/// A replica server's memory, from its last beacon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeMemory {
    pub resident_bytes: u64,
    /// Of that, in huge pages (transparent and reserved).
    pub huge_page_bytes: u64,
}

/// A replica server as the meta leader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node: NodeId,
    pub addr: String,
    pub alive: bool,
    pub decommissioned: bool,
    pub primaries: u32,
    pub replicas: u32,
    /// `None` if the node never said.
    pub memory: Option<NodeMemory>,
}

/// One cluster: its nodes, tables, partitions not fully healthy, and what the balancer has left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    pub cluster_name: String,
    pub cluster_id: u32,
    /// The leading meta server's Raft id, if one is known.
    pub meta_leader: Option<u64>,
    pub nodes: Vec<NodeStatus>,
    pub tables: Vec<TableInfo>,
    /// Fewer members than wanted, or no primary.
    pub unhealthy: Vec<PartitionConfig>,
    /// What the balancer still has to do; `None` when balanced.
    pub balancing: Option<String>,
}

/// A link to add: from `table` of this cluster to a table of cluster `remote_cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLink {
    pub table: String,
    /// As the remote meta servers name their cluster.
    pub remote_cluster: String,
    pub remote_metas: Vec<String>,
    /// `None`: the same name as `table`.
    pub remote_table: Option<String>,
    /// Copy the table's records first, then ship the log from where the copy began.
    pub full_sync: bool,
    /// 0 = unlimited.
    pub max_bytes_per_sec: u64,
    pub mode: LinkMode,
}

impl NewLink {
    pub fn remote_table(&self) -> &str {
        self.remote_table.as_deref().unwrap_or(&self.table)
    }
}

/// A duplication link, as its source cluster's meta servers hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub id: u64,
    /// The source table (links outlive its name: a dropped and purged table's links stay).
    pub table: TableId,
    pub table_name: String,
    pub remote_cluster: String,
    pub remote_cluster_id: u32,
    pub remote_metas: Vec<String>,
    pub remote_table: String,
    pub status: LinkStatus,
    pub mode: LinkMode,
    /// 0 = unlimited.
    pub max_bytes_per_sec: u64,
    /// Per source partition: every write through this decree is acknowledged by the remote.
    /// Meaningless until the partition has started.
    pub confirmed: Vec<u64>,
    /// Per source partition: whether shipping has started.
    pub started: Vec<bool>,
    pub created_at_ms: u64,
}

impl Link {
    pub fn started(&self, partition: u32) -> bool {
        self.started.get(partition as usize).copied().unwrap_or(false)
    }
}

/// One partition's shipping progress on a link (default: nothing reported, nothing shipped).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionProgress {
    pub partition: u32,
    pub confirmed: u64,
    pub committed: u64,
    pub decrees_behind: u64,
    pub bytes_behind: u64,
    /// Seconds between the partition's newest applied write and what the remote table has
    /// applied, on the partition's own clock; meaningful only when `lag_unknown` is `None`.
    pub seconds_behind: f64,
    /// Why the lag cannot be told (the link fails, copies, is not running or has not reported
    /// lately): never read an unknown lag as 0.
    pub lag_unknown: Option<String>,
    /// Every write of the partition with a timetag at or below this is applied remotely.
    pub replicated_up_to: tern_core::Timetag,
    pub shipped_puts: u64,
    pub failed_batches: u64,
    /// The last attempt's error; `None` when it succeeded.
    pub last_error: Option<String>,
    pub conflicts: u64,
    /// The partition's primary, if it has one.
    pub primary: Option<NodeId>,
    /// How old the partition's last progress report is; `None`: the meta leader has none.
    pub reported_ms_ago: Option<u64>,
    pub clock_ahead: u64,
    /// Its full sync is copying existing records.
    pub syncing: bool,
    pub sync_records: u64,
    /// The throttle, in wire bytes: this partition's share of the link's limit now (0 =
    /// unlimited), the rate its primary measured, what it sent, and whether it wants more than
    /// its share.
    pub share_bytes_per_sec: u64,
    pub wire_bytes_per_sec: u64,
    pub wire_bytes: u64,
    pub throttled: bool,
    /// Of `conflicts`, remote records that shipped writes replaced.
    pub overwritten: u64,
    /// Journal entries its primaries dropped before the meta server heard of them.
    pub conflicts_dropped: u64,
}

/// A link with the progress of each of its partitions.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkReport {
    pub link: Link,
    pub partitions: Vec<PartitionProgress>,
    /// Conflicts of both kinds in total, as the meta state keeps them.
    pub conflicts: u64,
    /// Of `conflicts`, remote records that shipped writes replaced.
    pub overwritten: u64,
    /// Journal entries dropped before the meta server heard of them (still counted).
    pub conflicts_dropped: u64,
}

/// Sums over a link's partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkTotals {
    pub decrees_behind: u64,
    pub bytes_behind: u64,
    /// The largest known.
    pub max_seconds_behind: f64,
    /// Partitions whose last attempt failed.
    pub failing_partitions: usize,
    /// Partitions whose lag cannot be told.
    pub unknown_lag_partitions: usize,
    /// Wire bytes per second the partitions' primaries measured, summed: compare with the
    /// link's `max_bytes_per_sec`.
    pub wire_bytes_per_sec: u64,
}

impl LinkReport {
    pub fn totals(&self) -> LinkTotals {
        let p = &self.partitions;
        LinkTotals {
            decrees_behind: p.iter().map(|p| p.decrees_behind).sum(),
            bytes_behind: p.iter().map(|p| p.bytes_behind).sum(),
            max_seconds_behind: p
                .iter()
                .filter(|p| p.lag_unknown.is_none())
                .map(|p| p.seconds_behind)
                .fold(0.0, f64::max),
            failing_partitions: p.iter().filter(|p| p.last_error.is_some()).count(),
            unknown_lag_partitions: p.iter().filter(|p| p.lag_unknown.is_some()).count(),
            wire_bytes_per_sec: p.iter().map(|p| p.wire_bytes_per_sec).sum(),
        }
    }

    /// The lag the link's progress shows: the worst partition's seconds behind (measured on its
    /// own clock by the meta server of the sending cluster) plus the age of that measurement
    /// (writes since may be waiting) — what a failover now could lose. Unknown, with the reason,
    /// while the link is not shipping (paused counts: its lag grows and is measured) or any
    /// partition's lag cannot be told: an unknown lag is never read as 0.
    pub fn lag(&self) -> Result<std::time::Duration, String> {
        let l = &self.link;
        match l.status {
            LinkStatus::Shipping | LinkStatus::Paused => {}
            s => return Err(format!("the link is {s}, not shipping")),
        }
        let mut worst = 0f64;
        for p in &self.partitions {
            if let Some(why) = &p.lag_unknown {
                return Err(format!("partition {}: {why}", p.partition));
            }
            if !l.started(p.partition) {
                return Err(format!("partition {} has not started shipping", p.partition));
            }
            let Some(reported_ms_ago) = p.reported_ms_ago else {
                return Err(format!("partition {} never reported progress", p.partition));
            };
            worst = worst.max(p.seconds_behind + reported_ms_ago as f64 / 1000.0);
        }
        Ok(std::time::Duration::from_secs_f64(worst.max(0.0)))
    }
}

/// A link of another cluster into a table of this one, as this cluster sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingLinkReport {
    /// The receiving table here.
    pub table: String,
    pub from_cluster: u32,
    /// The sending table's id in its cluster.
    pub source_table: u32,
    /// Per sending partition: how far its writes are applied here (`None`: not heard since the
    /// meta leader started).
    pub replicated_up_to: Vec<Option<tern_core::Timetag>>,
    /// `None`: not heard since the meta leader started.
    pub heard_ms_ago: Option<u64>,
    /// The table's purge horizon: dead records older than it may be dropped.
    pub purge_below: tern_core::Timetag,
}

impl IncomingLinkReport {
    /// The sending partition furthest behind: what holds the table's tombstones back.
    pub fn oldest(&self) -> Option<tern_core::Timetag> {
        self.replicated_up_to.iter().map(|w| w.unwrap_or_default()).min()
    }
}

/// A two-way pair: the link added in this cluster and its reverse in the other one.
#[derive(Clone, Debug, PartialEq)]
pub struct TwoWayLinks {
    /// This cluster's name (the reverse link's remote).
    pub own_cluster: String,
    pub first: LinkReport,
    pub remote_cluster: String,
    pub second: LinkReport,
}

/// A conflict between a shipped write and a record of the remote side: which one survived is
/// `kind` (`ConflictKind::winner`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub hash_key: Vec<u8>,
    pub sort_key: Vec<u8>,
    /// The shipped write's timetag.
    pub incoming: Timetag,
    /// The timetag of the record the remote side had stored.
    pub stored: Timetag,
    pub kind: ConflictKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConflicts {
    /// Both kinds.
    pub total: u64,
    /// Of `total`, remote records that shipped writes replaced.
    pub overwritten: u64,
    /// Journal entries dropped before the meta server heard of them (counted in `total`).
    pub dropped: u64,
    /// Newest last.
    pub recent: Vec<Conflict>,
}

/// What became of a link's source table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceTable {
    Serving,
    Dropped,
    /// Dropped and forgotten after its recall window.
    Purged,
}

impl SourceTable {
    pub fn name(self) -> &'static str {
        match self {
            SourceTable::Serving => "serving",
            SourceTable::Dropped => "dropped",
            SourceTable::Purged => "purged",
        }
    }
}

impl fmt::Display for SourceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Every table's status in one cluster, by id: what [`SourceTable`] a link has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableStates(pub HashMap<TableId, TableStatus>);

impl TableStates {
    pub fn of(&self, table: TableId) -> SourceTable {
        match self.0.get(&table) {
            Some(TableStatus::Serving) => SourceTable::Serving,
            Some(TableStatus::Dropped { .. }) => SourceTable::Dropped,
            None => SourceTable::Purged,
        }
    }
}

/// What a proxy sees and decided (`ProxyAdmin.Status`).
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyStatus {
    /// The clusters it fronts.
    pub clusters: Vec<String>,
    pub tables: Vec<ProxyTable>,
    /// Its name as a DR voter (`None`: it grants no DR lease).
    pub dr_name: Option<String>,
    /// The DR voters it counts.
    pub dr_voters: Vec<String>,
    /// A `tern witness`: it grants and promises, routes nothing.
    pub witness: bool,
}

/// One table a proxy routes.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyTable {
    pub table: String,
    /// The cluster routed to, if any copy is active.
    pub active_cluster: Option<String>,
    pub epoch: u64,
    /// Why there is no route.
    pub route_error: Option<String>,
    pub clusters: Vec<CopyView>,
    pub auto_failover: bool,
    pub failover_after_ms: u64,
    pub rpo_budget_ms: u64,
    /// The copy last routed to has not served since this long.
    pub active_unhealthy: Option<Unhealthy>,
    pub last_decision: Option<FailoverDecision>,
    /// How long ago the standbys' lag was measured; `None`: never.
    pub lag_sampled_ms_ago: Option<u64>,
    /// A promotion waiting for the old active copy's DR lease to have certainly expired.
    pub lease_wait: Option<LeaseWait>,
}

impl ProxyTable {
    /// A table the proxy has a failover policy for (`auto_failover`) but has not looked at yet.
    pub fn not_looked_at(table: &str, auto_failover: bool) -> ProxyTable {
        ProxyTable {
            table: table.to_string(),
            active_cluster: None,
            epoch: 0,
            route_error: Some("not looked at yet".into()),
            clusters: Vec::new(),
            auto_failover,
            failover_after_ms: 0,
            rpo_budget_ms: 0,
            active_unhealthy: None,
            last_decision: None,
            lag_sampled_ms_ago: None,
            lease_wait: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseWait {
    /// How much longer.
    pub for_ms: u64,
    /// What it waits on.
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhealthy {
    pub cluster: String,
    /// At least 1.
    pub for_ms: u64,
}

/// One cluster's copy of a table, as a proxy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyView {
    pub cluster: String,
    pub state: CopyState,
    pub epoch: u64,
    /// Reachable and every partition has a primary.
    pub healthy: bool,
    /// Why not healthy (empty when healthy).
    pub detail: String,
    /// Standbys: the window of the active copy's writes that may not have reached this one.
    pub lag_seconds: Option<f64>,
    /// Why the lag is unknown.
    pub lag_detail: String,
    /// Standbys, measured with the lag: decrees and bytes of the active copy's log not applied
    /// here yet, summed over partitions.
    pub decrees_behind: Option<u64>,
    pub bytes_behind: Option<u64>,
    /// Its DR lease as its cluster reports it ("held 4.1s", "none: ..."); empty: not known.
    pub dr_lease: String,
}

/// A decision of automatic failover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverDecision {
    /// Wall clock, ms since the epoch.
    pub at_ms: u64,
    pub outcome: FailoverOutcome,
    /// The cluster promoted or fenced.
    pub cluster: Option<String>,
    /// The epoch it was given.
    pub epoch: u64,
    pub reason: String,
}
