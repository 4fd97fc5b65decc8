//! The decisions of seeding a duplication peer from a backup, pure: which backup, whether the
//! source's logs still cover it, and which steps a (re-)run takes. The runtime is
//! [`super::run`]; docs/backup.md, "Seeding a duplication peer", is the guide.

use std::collections::BTreeMap;

use tern_backup::model::{BackupId, Manifest};
use tern_client::admin::seed::ReplicaLog;
use tern_core::{LinkStatus, NodeId, PartitionConfig};

/// Why a seed cannot go on (each names what is wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedRefusal {
    #[error(
        "no backup of table {table} in {target}: take one (`tern backup now --table {table}`) or use --full-sync"
    )]
    NoBackup { table: String, target: String },
    #[error("backup {backup} is of table {of}, not {table}")]
    OtherTable { backup: String, of: String, table: String },
    #[error("backup {backup} is of cluster {of}'s table, not this cluster's ({cluster})")]
    OtherCluster { backup: String, of: String, cluster: String },
    #[error(
        "backup {backup} has {backup_partitions} partitions but table {table} has {partitions}: it is a backup of another table of that name"
    )]
    PartitionCount { backup: String, table: String, backup_partitions: u32, partitions: u32 },
    #[error(
        "partition {partition} of table {table}: the log of {node} starts at decree {log_start}, after the backup's decree {decree} + 1, so the writes made since the backup are no longer all there; take a fresh backup (`tern backup now --table {table}`) and seed from it, or add the link with --full-sync"
    )]
    LogGone { table: String, partition: u32, node: NodeId, log_start: u64, decree: u64 },
    #[error(
        "partition {partition} of table {table}: its primary {node} has committed only through decree {applied}, before the backup's decree {decree}: the backup is of another table of that name"
    )]
    BehindBackup { table: String, partition: u32, node: NodeId, applied: u64, decree: u64 },
    #[error(
        "remote table {table} exists and serves: seed into a new table (--remote-table) or drop it there first"
    )]
    RemoteServes { table: String },
    #[error(
        "remote table {table} is being restored from backup {other}, not {backup}: finish or drop that restore first"
    )]
    RemoteRestoringOther { table: String, other: String, backup: String },
    #[error(
        "remote table {table} does not exist although link {link} was seeded into it: remove the link (`tern dup remove {link}`) and seed again"
    )]
    RemoteGone { table: String, link: u64 },
    #[error(
        "table {table} already has link {link} to that table ({status}){why}: remove it first (`tern dup remove {link}`)"
    )]
    LinkExists { table: String, link: u64, status: LinkStatus, why: String },
}

/// The backup to seed from: `named`, which must be of `table`, or the newest of `table`
/// among `ids` (ids sort by their time).
pub fn choose_backup(
    table: &str,
    named: Option<&BackupId>,
    ids: &[BackupId],
    target: &str,
) -> Result<BackupId, SeedRefusal> {
    if let Some(id) = named {
        if id.table() != table {
            return Err(SeedRefusal::OtherTable {
                backup: id.to_string(),
                of: id.table().to_string(),
                table: table.to_string(),
            });
        }
        return Ok(id.clone());
    }
    ids.iter()
        .filter(|id| id.table() == table)
        .max()
        .cloned()
        .ok_or_else(|| SeedRefusal::NoBackup { table: table.to_string(), target: target.to_string() })
}

/// Whether `manifest` is a backup of this cluster's `table` of `partitions` partitions.
pub fn check_manifest(
    manifest: &Manifest,
    cluster: &str,
    table: &str,
    partitions: u32,
) -> Result<(), SeedRefusal> {
    let backup = manifest.backup_id.to_string();
    if manifest.table.name != table {
        return Err(SeedRefusal::OtherTable { backup, of: manifest.table.name.clone(), table: table.into() });
    }
    if manifest.cluster != cluster {
        return Err(SeedRefusal::OtherCluster {
            backup,
            of: manifest.cluster.clone(),
            cluster: cluster.into(),
        });
    }
    if manifest.table.partition_count != partitions {
        return Err(SeedRefusal::PartitionCount {
            backup,
            table: table.into(),
            backup_partitions: manifest.table.partition_count,
            partitions,
        });
    }
    Ok(())
}

/// What the source's logs say about a seed at `decrees` (per partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Every replica of every partition holds its log from the decree after the backup's.
    Covered,
    /// Not told yet: a replica did not report, or (`link` given) has not heard the link yet.
    Waiting { partition: u32, node: Option<NodeId>, why: &'static str },
}

/// Whether every member of each partition (`configs`, by partition index) holds its log from
/// `decrees[p] + 1` on, judged from `logs` (each server's report of its replicas). With
/// `link_heard`, a replica counts only once it has heard the seeded link at the backup's decree
/// (from then on its log garbage collection keeps that log, so coverage seen then lasts).
pub fn check_coverage(
    table: &str,
    decrees: &[u64],
    configs: &[PartitionConfig],
    logs: &[ReplicaLog],
    link_heard: bool,
) -> Result<Coverage, SeedRefusal> {
    let by: BTreeMap<(u32, NodeId), &ReplicaLog> = logs.iter().map(|l| ((l.partition, l.node), l)).collect();
    for (p, decree) in decrees.iter().copied().enumerate() {
        let p = p as u32;
        let Some(config) = configs.iter().find(|c| c.gpid.partition.0 == p) else {
            return Ok(Coverage::Waiting { partition: p, node: None, why: "no configuration known" });
        };
        if config.primary.is_none() {
            return Ok(Coverage::Waiting { partition: p, node: None, why: "no primary" });
        }
        for node in config.members() {
            let Some(log) = by.get(&(p, node)) else {
                return Ok(Coverage::Waiting {
                    partition: p,
                    node: Some(node),
                    why: "no report from the replica",
                });
            };
            if log.applied < decree && config.primary != Some(node) {
                // A secondary still catching up (a restart, say): its log is told later.
                return Ok(Coverage::Waiting {
                    partition: p,
                    node: Some(node),
                    why: "catching up with its primary",
                });
            }
            if log.applied < decree {
                return Err(SeedRefusal::BehindBackup {
                    table: table.into(),
                    partition: p,
                    node,
                    applied: log.applied,
                    decree,
                });
            }
            // An empty log at the backup's decree covers it: the next write is decree + 1.
            let log_start = log.range.map_or(log.applied + 1, |(first, _)| first);
            if log_start > decree + 1 {
                return Err(SeedRefusal::LogGone {
                    table: table.into(),
                    partition: p,
                    node,
                    log_start,
                    decree,
                });
            }
            if link_heard && log.link_confirmed.is_none() {
                return Ok(Coverage::Waiting {
                    partition: p,
                    node: Some(node),
                    why: "has not heard the link yet",
                });
            }
        }
    }
    Ok(Coverage::Covered)
}

/// The remote table, as its cluster reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteTable {
    Absent,
    Restoring { backup: String },
    Serving,
}

/// A link of the source table to the remote table, if one is live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingLink {
    pub id: u64,
    pub status: LinkStatus,
    /// The backup it was seeded from, if it was.
    pub seed_backup: Option<String>,
}

/// One step of a seed, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Check the source's logs cover the backup (before any change).
    CheckLog,
    /// Create the remote table, restoring from the backup (it serves nobody until the end).
    CreateRemoteTable,
    /// Add the link paused, every partition at the backup's decree.
    AddLink,
    /// Wait until every source replica heard the link, and check the log again.
    ConfirmHold,
    /// Restore the backup into the remote table (a resumed restore sends everything again).
    Restore,
    /// Resume the link: ship the log from each backup decree + 1.
    StartShipping,
}

/// The steps a run takes from where an earlier (interrupted) run left things.
pub fn steps(
    table: &str,
    remote_table: &str,
    backup: &str,
    link: Option<&ExistingLink>,
    remote: &RemoteTable,
) -> Result<Vec<Step>, SeedRefusal> {
    use Step::*;
    let link_exists = |why: String, l: &ExistingLink| SeedRefusal::LinkExists {
        table: table.into(),
        link: l.id,
        status: l.status,
        why,
    };
    match link {
        None => match remote {
            RemoteTable::Absent => {
                Ok(vec![CheckLog, CreateRemoteTable, AddLink, ConfirmHold, Restore, StartShipping])
            }
            RemoteTable::Restoring { backup: b } if b == backup => {
                Ok(vec![CheckLog, AddLink, ConfirmHold, Restore, StartShipping])
            }
            RemoteTable::Restoring { backup: other } => Err(SeedRefusal::RemoteRestoringOther {
                table: remote_table.into(),
                other: other.clone(),
                backup: backup.into(),
            }),
            RemoteTable::Serving => Err(SeedRefusal::RemoteServes { table: remote_table.into() }),
        },
        Some(l) => match l.seed_backup.as_deref() {
            None => Err(link_exists(String::new(), l)),
            Some(b) if b != backup => Err(link_exists(format!(", seeded from backup {b}"), l)),
            Some(_) => match (l.status, remote) {
                (LinkStatus::Paused, RemoteTable::Restoring { backup: b }) if b == backup => {
                    Ok(vec![ConfirmHold, Restore, StartShipping])
                }
                (LinkStatus::Paused, RemoteTable::Serving) => Ok(vec![ConfirmHold, StartShipping]),
                (LinkStatus::Shipping, RemoteTable::Serving) => Ok(vec![]),
                (_, RemoteTable::Absent) => {
                    Err(SeedRefusal::RemoteGone { table: remote_table.into(), link: l.id })
                }
                (_, RemoteTable::Restoring { backup: other }) if other != backup => {
                    Err(SeedRefusal::RemoteRestoringOther {
                        table: remote_table.into(),
                        other: other.clone(),
                        backup: backup.into(),
                    })
                }
                _ => Err(link_exists(format!(", seeded from backup {backup}"), l)),
            },
        },
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
