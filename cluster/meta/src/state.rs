//! The meta server's replicated state and the commands that change it. Applied in Raft log order
//! on every meta server; a leader's decisions are written here before anyone is told about them.
//! Duplication links live in [`dup`].

pub mod apply_version;
pub mod backup;
pub mod dr;
pub mod drill;
pub mod dup;
#[cfg(test)]
mod golden_tests;
pub mod incoming;
pub mod reconcile;
pub mod restore;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tern_confman::{Demoted, PersistedPartition};
pub use tern_core::TableStatus;
use tern_core::{Ballot, Error, Gpid, NodeId, PartitionConfig, Result};

use self::backup::{BackupOpRecord, BackupPolicyRecord, BackupRunRecord, NewBackupOp, PolicyRuns};
use self::dr::{DrLeaseWaiver, DrRole, RoleChange};
use self::dup::{LinkChange, LinkRecord, LinkSeed, NewLink, ProgressUpdate};
use self::incoming::{IncomingRecord, TableHorizon};

/// A partition configuration as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub table: u32,
    pub partition: u32,
    pub ballot: u64,
    pub primary: Option<u64>,
    pub secondaries: Vec<u64>,
}

impl From<&PartitionConfig> for ConfigRecord {
    fn from(c: &PartitionConfig) -> Self {
        ConfigRecord {
            table: c.gpid.table.0,
            partition: c.gpid.partition.0,
            ballot: c.ballot.0,
            primary: c.primary.map(|p| p.0),
            secondaries: c.secondaries.iter().map(|s| s.0).collect(),
        }
    }
}

impl ConfigRecord {
    pub fn config(&self) -> PartitionConfig {
        PartitionConfig {
            gpid: Gpid::new(self.table, self.partition),
            ballot: Ballot(self.ballot),
            primary: self.primary.map(NodeId),
            secondaries: self.secondaries.iter().map(|s| NodeId(*s)).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub config: ConfigRecord,
    pub replicas: usize,
    pub last_members: Vec<u64>,
    /// A primary demoted by a role switch and the switch's ballot, until it steps down.
    #[serde(default)]
    pub demoted: Option<(u64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRecord {
    pub id: u32,
    pub name: String,
    pub partitions: u32,
    pub replicas: u32,
    pub status: TableStatus,
    /// Disaster-recovery role in this cluster and its epoch (`state/dr.rs`).
    #[serde(default)]
    pub role: DrRole,
    #[serde(default)]
    pub epoch: u64,
    /// The backup it is being restored from (`state/restore.rs`): until the restore finishes
    /// it serves no client reads or writes. Absent: not restoring (and in older state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restoring: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub addr: String,
    pub decommissioned: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub cluster_name: String,
    pub cluster_id: u8,
    pub tables: BTreeMap<u32, TableRecord>,
    pub next_table_id: u32,
    /// By `"table.partition"` (JSON object keys must be strings).
    pub partitions: BTreeMap<String, PartitionRecord>,
    pub nodes: BTreeMap<u64, NodeRecord>,
    /// Duplication links from this cluster's tables, by id (removed ones stay, as history).
    #[serde(default)]
    pub links: BTreeMap<u64, LinkRecord>,
    #[serde(default)]
    pub next_link_id: u64,
    /// Per table: its purge horizon and the links of other clusters into it (`incoming.rs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub horizons: BTreeMap<u32, TableHorizon>,
    /// The DR lease waived by an operator, if it is (`state/dr.rs`). Absent in older state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_lease_waiver: Option<DrLeaseWaiver>,
    /// Unplanned failovers into this cluster, by table name, oldest first; the newest
    /// `FailoverRecord::KEPT_PER_TABLE` are kept (`state/dr.rs`). Absent in older state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failovers: BTreeMap<String, Vec<tern_core::FailoverRecord>>,
    /// What `tern dr reconcile` did after those failovers, by table name, oldest first; the
    /// newest `ReconcileSummary::KEPT_PER_TABLE` are kept (`state/reconcile.rs`). Absent in older
    /// state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reconciles: BTreeMap<String, Vec<tern_core::ReconcileSummary>>,
    /// The reports of the newest `tern dr drill` runs this cluster took part in
    /// (`state/drill.rs`). Absent in older state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drills: Vec<drill::DrillEntry>,
    /// Backup policies by name (`state/backup.rs`). Absent in older state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backup_policies: BTreeMap<String, BackupPolicyRecord>,
    /// Each policy's last runs, by policy name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backup_runs: BTreeMap<String, PolicyRuns>,
    /// Backup operations in use (backups, restores, retention runs), by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backup_ops: BTreeMap<u64, BackupOpRecord>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_backup_op: u64,
    /// The topology state version `tern apply` compares and bumps (`state/apply_version.rs`).
    /// Absent (0) in older state.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub topology_version: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Names the cluster, once.
    Init {
        name: String,
        id: u8,
    },
    CreateTable {
        name: String,
        partitions: u32,
        replicas: u32,
    },
    DropTable {
        name: String,
        at_ms: u64,
    },
    RecallTable {
        name: String,
    },
    /// Forgets a dropped table (after its recall window).
    PurgeTable {
        id: u32,
    },
    SetConfig {
        partition: PartitionRecord,
    },
    RegisterNode {
        id: u64,
        addr: String,
    },
    Decommission {
        id: u64,
    },
    /// Undoes a decommission.
    Recommission {
        id: u64,
    },
    /// A new duplication link; refused unless its table serves and has no live link to the
    /// same remote table.
    AddLink {
        link: NewLink,
    },
    ChangeLink {
        id: u64,
        change: LinkChange,
    },
    /// Shipping progress accepted from one beacon's reports: confirmed decrees only move
    /// forward; the conflict journal keeps the last `journal` entries per link.
    RecordDupProgress {
        updates: Vec<ProgressUpdate>,
        journal: u32,
    },
    /// A table's DR role and epoch (compare-and-set on the epoch if asked).
    SetTableRole {
        change: RoleChange,
    },
    /// Another cluster's table ships into `table` (`state/incoming.rs`).
    RegisterIncoming {
        table: u32,
        link: IncomingRecord,
    },
    /// An incoming link stops holding `table`'s purge horizon back (silent past the hold limit).
    ForgetIncoming {
        table: u32,
        from_cluster: u8,
        source_table: u32,
    },
    /// `table`'s purge horizon rises to `below` (a timetag), if that is higher.
    RaisePurgeHorizon {
        table: u32,
        below: u64,
    },
    /// Waives the DR lease (`Some`) or enforces it again (`None`).
    SetDrLeaseWaiver {
        waiver: Option<DrLeaseWaiver>,
    },
    /// Keeps the record of an unplanned failover into this cluster (`tern dr failover`).
    RecordFailover {
        record: tern_core::FailoverRecord,
    },
    /// Keeps what `tern dr reconcile` did (or measured so far) after a failover.
    RecordReconcile {
        summary: tern_core::ReconcileSummary,
    },
    /// Keeps a drill's report (`state/drill.rs`).
    RecordDrill {
        drill: drill::DrillEntry,
    },
    /// Creates `name` restoring from `backup`, or finds it already restoring from it
    /// (`state/restore.rs`).
    BeginRestore {
        name: String,
        partitions: u32,
        replicas: u32,
        backup: String,
    },
    /// The restore of `name` from `backup` is complete: the table serves.
    FinishRestore {
        name: String,
        backup: String,
    },
    /// A duplication link seeded from a backup (`tern dup add --seed-from-backup`): added
    /// paused, every partition started at the backup's decree (`LinkRecord::seeded`).
    AddSeededLink {
        link: NewLink,
        seed: LinkSeed,
    },
    /// A new backup policy (`state/backup.rs`): refused if the name exists, a table is unknown
    /// or the retention is empty.
    AddBackupPolicy {
        policy: BackupPolicyRecord,
    },
    /// Replaces a policy of the same name (its creation time stays).
    AlterBackupPolicy {
        policy: BackupPolicyRecord,
    },
    SetBackupPolicyPaused {
        name: String,
        paused: bool,
    },
    RemoveBackupPolicy {
        name: String,
    },
    /// Begins a backup operation on a target unless a conflicting one is in use there.
    BeginBackupOp {
        op: NewBackupOp,
        now_ms: u64,
    },
    RenewBackupOp {
        id: u64,
        backup_id: Option<String>,
        now_ms: u64,
    },
    EndBackupOp {
        id: u64,
    },
    /// A policy's run for `table` (none: its retention run) started or ended.
    RecordBackupRun {
        policy: String,
        table: Option<String>,
        run: BackupRunRecord,
    },
    /// Compare-and-set on the topology state version (`state/apply_version.rs`): refused unless
    /// it is `expect`; increments it otherwise.
    BumpTopologyVersion {
        expect: u64,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    #[default]
    Done,
    Table(TableRecord),
    Link(Box<LinkRecord>),
    /// The command was refused; the message says why (applied identically everywhere).
    Refused(String),
    /// A compare-and-set on a table's epoch found another one.
    EpochConflict {
        expected: u64,
        actual: u64,
    },
    /// `BeginRestore`'s table, and whether it existed already (a resumed restore).
    Restoring {
        table: TableRecord,
        resumed: bool,
    },
    /// A backup operation begun or renewed.
    BackupOp(BackupOpRecord),
}

pub fn partition_key(table: u32, partition: u32) -> String {
    format!("{table}.{partition}")
}

impl MetaState {
    pub fn table_by_name(&self, name: &str) -> Option<&TableRecord> {
        self.tables.values().find(|t| t.name == name)
    }

    pub fn serving_table(&self, name: &str) -> Result<&TableRecord> {
        match self.table_by_name(name) {
            Some(t) if t.status == TableStatus::Serving => Ok(t),
            _ => Err(Error::TableNotFound(name.to_string())),
        }
    }

    pub fn table_configs(&self, id: u32) -> Vec<PartitionConfig> {
        self.partitions.values().filter(|p| p.config.table == id).map(|p| p.config.config()).collect()
    }

    /// What a new leader's configuration manager starts from.
    pub fn persisted_partitions(&self) -> Vec<PersistedPartition> {
        self.partitions
            .values()
            .map(|p| PersistedPartition {
                config: p.config.config(),
                replicas: p.replicas,
                last_members: p.last_members.iter().map(|n| NodeId(*n)).collect(),
                demoted: p.demoted.map(|(n, b)| Demoted { node: NodeId(n), ballot: Ballot(b) }),
            })
            .collect()
    }

    pub fn apply(&mut self, cmd: &Command) -> Response {
        match cmd {
            Command::Init { name, id } => {
                if self.cluster_id != 0 && (self.cluster_id != *id || self.cluster_name != *name) {
                    return Response::Refused(format!(
                        "this meta group already serves cluster {} ({}), not {id} ({name})",
                        self.cluster_id, self.cluster_name
                    ));
                }
                self.cluster_name = name.clone();
                self.cluster_id = *id;
            }
            Command::CreateTable { name, partitions, replicas } => {
                if self.table_by_name(name).is_some() {
                    return Response::Refused(format!("table {name:?} already exists"));
                }
                self.next_table_id += 1;
                let t = TableRecord {
                    id: self.next_table_id,
                    name: name.clone(),
                    partitions: *partitions,
                    replicas: *replicas,
                    status: TableStatus::Serving,
                    role: DrRole::Active,
                    epoch: 0,
                    restoring: None,
                };
                self.tables.insert(t.id, t.clone());
                return Response::Table(t);
            }
            Command::DropTable { name, at_ms } => match self.tables.values_mut().find(|t| t.name == *name) {
                Some(t) if t.status == TableStatus::Serving => {
                    t.status = TableStatus::Dropped { at_ms: *at_ms };
                    return Response::Table(t.clone());
                }
                _ => return Response::Refused(format!("no serving table {name:?}")),
            },
            Command::RecallTable { name } => match self.tables.values_mut().find(|t| t.name == *name) {
                Some(t) if matches!(t.status, TableStatus::Dropped { .. }) => {
                    t.status = TableStatus::Serving;
                    return Response::Table(t.clone());
                }
                _ => return Response::Refused(format!("no dropped table {name:?} to recall")),
            },
            Command::PurgeTable { id } => {
                self.tables.remove(id);
                self.partitions.retain(|_, p| p.config.table != *id);
                self.horizons.remove(id);
            }
            Command::SetConfig { partition } => {
                let key = partition_key(partition.config.table, partition.config.partition);
                // Ballots only grow: a stale write (from a deposed leader) changes nothing.
                if self.partitions.get(&key).is_some_and(|p| p.config.ballot >= partition.config.ballot) {
                    return Response::Refused(format!("stale configuration for {key}"));
                }
                self.partitions.insert(key, partition.clone());
            }
            Command::RegisterNode { id, addr } => {
                let d = self.nodes.get(id).is_some_and(|n| n.decommissioned);
                self.nodes.insert(*id, NodeRecord { addr: addr.clone(), decommissioned: d });
            }
            Command::Decommission { id } => match self.nodes.get_mut(id) {
                Some(n) => n.decommissioned = true,
                None => return Response::Refused(format!("no node {}", NodeId(*id))),
            },
            Command::Recommission { id } => match self.nodes.get_mut(id) {
                Some(n) => n.decommissioned = false,
                None => return Response::Refused(format!("no node {}", NodeId(*id))),
            },
            Command::AddLink { link } => return self.add_link(link),
            Command::AddSeededLink { link, seed } => return self.add_seeded_link(link, seed),
            Command::ChangeLink { id, change } => return self.change_link(*id, *change),
            Command::RecordDupProgress { updates, journal } => {
                return self.record_dup_progress(updates, *journal);
            }
            Command::SetTableRole { change } => return self.set_table_role(change),
            Command::RegisterIncoming { table, link } => return self.register_incoming(*table, *link),
            Command::ForgetIncoming { table, from_cluster, source_table } => {
                return self.forget_incoming(*table, *from_cluster, *source_table);
            }
            Command::RaisePurgeHorizon { table, below } => return self.raise_purge_horizon(*table, *below),
            Command::SetDrLeaseWaiver { waiver } => self.dr_lease_waiver = waiver.clone(),
            Command::RecordFailover { record } => return self.record_failover(record),
            Command::RecordReconcile { summary } => return self.record_reconcile(summary),
            Command::RecordDrill { drill } => return self.record_drill(drill),
            Command::BeginRestore { name, partitions, replicas, backup } => {
                return self.begin_restore(name, *partitions, *replicas, backup);
            }
            Command::FinishRestore { name, backup } => return self.finish_restore(name, backup),
            Command::AddBackupPolicy { policy } => return self.add_backup_policy(policy),
            Command::AlterBackupPolicy { policy } => return self.alter_backup_policy(policy),
            Command::SetBackupPolicyPaused { name, paused } => {
                return self.set_backup_policy_paused(name, *paused);
            }
            Command::RemoveBackupPolicy { name } => return self.remove_backup_policy(name),
            Command::BeginBackupOp { op, now_ms } => return self.begin_backup_op(op, *now_ms),
            Command::RenewBackupOp { id, backup_id, now_ms } => {
                return self.renew_backup_op(*id, backup_id.as_deref(), *now_ms);
            }
            Command::EndBackupOp { id } => return self.end_backup_op(*id),
            Command::RecordBackupRun { policy, table, run } => {
                return self.record_backup_run(policy, table.as_deref(), run);
            }
            Command::BumpTopologyVersion { expect } => return self.bump_topology_version(*expect),
        }
        Response::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_drop_and_recall() {
        let mut s = MetaState::default();
        let Response::Table(t) =
            s.apply(&Command::CreateTable { name: "t".into(), partitions: 4, replicas: 3 })
        else {
            panic!()
        };
        assert_eq!(t.id, 1);
        assert!(matches!(
            s.apply(&Command::CreateTable { name: "t".into(), partitions: 1, replicas: 1 }),
            Response::Refused(_)
        ));
        s.apply(&Command::DropTable { name: "t".into(), at_ms: 5 });
        assert!(s.serving_table("t").is_err());
        s.apply(&Command::RecallTable { name: "t".into() });
        assert_eq!(s.serving_table("t").unwrap().id, 1);
    }

    #[test]
    fn configurations_only_move_forward() {
        let mut s = MetaState::default();
        let rec = |ballot| PartitionRecord {
            config: ConfigRecord { table: 1, partition: 0, ballot, primary: Some(1), secondaries: vec![2] },
            replicas: 3,
            last_members: vec![1, 2],
            demoted: None,
        };
        assert_eq!(s.apply(&Command::SetConfig { partition: rec(2) }), Response::Done);
        assert!(matches!(s.apply(&Command::SetConfig { partition: rec(2) }), Response::Refused(_)));
        assert!(matches!(s.apply(&Command::SetConfig { partition: rec(1) }), Response::Refused(_)));
        assert_eq!(s.table_configs(1)[0].ballot, Ballot(2));
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<MetaState>(&json).unwrap(), s);
    }
}
