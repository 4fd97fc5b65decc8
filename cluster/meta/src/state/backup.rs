//! Backup policies, their run records and the backup operations in use, per target
//! (docs/backup.md "Policies and scheduling").
//!
//! - A **policy** names tables of this cluster, a target (URL, endpoint, region — never
//!   credentials: the meta servers use their own), an interval aligned to an optional start
//!   time (UTC), retention (keep the newest N and/or a maximum age) and a bandwidth limit. The
//!   meta leader runs it (`crate::backup_schedule` decides, `crate::backup_runner` executes).
//! - A **run record** per (policy, table): the last run's start and end, its backup id and
//!   outcome. Per policy: the last retention run.
//! - An **operation in use** is a running backup, restore or retention run on a target, with a
//!   lease: one that is not renewed stops counting when the lease ends (a runner that crashed
//!   or lost its leadership blocks nobody for longer). `BeginBackupOp` is the one place the
//!   rule of docs/backup.md invariant 5 lives: a retention run excludes backups and restores on
//!   its target, and a backup or restore excludes retention runs. Restores' backups are what
//!   retention keeps as in use.
//!
//! Every rule reads the time from the command (`now_ms`), so applying is deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{MetaState, Response, TableStatus};

/// The shortest interval a policy may have by default (the meta server's
/// `--backup-min-interval` lowers it for tests only).
pub const MIN_INTERVAL_SECS: u64 = 60;
/// How long an operation counts as in use without a renewal.
pub const DEFAULT_OP_LEASE_MS: u64 = 60_000;

/// Where a policy's backups go. Credentials are never stored: the meta servers use their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTarget {
    /// `s3://bucket/prefix` or an absolute directory.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl PolicyTarget {
    /// What identifies a target for mutual exclusion: endpoint and URL without a trailing `/`.
    pub fn key(&self) -> String {
        target_key(&self.url, self.endpoint.as_deref())
    }
}

pub fn target_key(url: &str, endpoint: Option<&str>) -> String {
    format!("{}|{}", endpoint.unwrap_or("").trim_end_matches('/'), url.trim_end_matches('/'))
}

/// A backup policy as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPolicyRecord {
    pub name: String,
    pub tables: Vec<String>,
    pub target: PolicyTarget,
    pub interval_secs: u64,
    /// Runs are aligned to this minute of the UTC day (`HH:MM` as minutes); none: to the
    /// policy's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// Upload bandwidth per primary, bytes per second; none: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes_per_sec: Option<u64>,
    #[serde(default)]
    pub paused: bool,
    /// When it was added (wall clock ms): no run before it; without a start time, runs are
    /// aligned to it.
    pub created_at_ms: u64,
}

/// How a run ended (or that it has not yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOutcome {
    Running,
    Succeeded,
    Failed(String),
}

/// The last run of a policy for one table (or the policy's last retention run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRunRecord {
    pub started_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    pub outcome: RunOutcome,
    /// What it did, in a line (files uploaded, manifests deleted, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// The runs of one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRuns {
    /// By table name.
    #[serde(default)]
    pub tables: BTreeMap<String, BackupRunRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<BackupRunRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupOpKind {
    Backup,
    Restore,
    Retention,
}

/// An operation on a target, as its runner asks to begin it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBackupOp {
    pub kind: BackupOpKind,
    /// [`PolicyTarget::key`] of its target.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The backup it writes or reads, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The policy that runs it; none: an operator's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Who runs it (`meta 1`, `tern backup now on host`), shown to operators.
    pub holder: String,
    pub lease_ms: u64,
}

/// An operation in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOpRecord {
    pub id: u64,
    pub op: NewBackupOp,
    pub started_ms: u64,
    /// It stops counting at this time unless renewed.
    pub lease_until_ms: u64,
}

impl BackupOpRecord {
    pub fn live(&self, now_ms: u64) -> bool {
        self.lease_until_ms > now_ms
    }
}

/// May an operation of kind `new` start while `running` is in use on the same target?
pub fn ops_conflict(new: BackupOpKind, running: BackupOpKind) -> bool {
    use BackupOpKind::*;
    matches!((new, running), (Retention, _) | (_, Retention))
}

impl MetaState {
    pub(super) fn add_backup_policy(&mut self, p: &BackupPolicyRecord) -> Response {
        if self.backup_policies.contains_key(&p.name) {
            return Response::Refused(format!(
                "backup policy {:?} exists already (alter it, or remove it first)",
                p.name
            ));
        }
        if let Err(why) = self.check_policy(p) {
            return Response::Refused(why);
        }
        self.backup_policies.insert(p.name.clone(), p.clone());
        Response::Done
    }

    /// Replaces a policy (its name and creation time stay); runs recorded for tables it no
    /// longer names are forgotten.
    pub(super) fn alter_backup_policy(&mut self, p: &BackupPolicyRecord) -> Response {
        let Some(old) = self.backup_policies.get(&p.name) else {
            return Response::Refused(format!("no backup policy {:?}", p.name));
        };
        if let Err(why) = self.check_policy(p) {
            return Response::Refused(why);
        }
        let p = BackupPolicyRecord { created_at_ms: old.created_at_ms, ..p.clone() };
        if let Some(runs) = self.backup_runs.get_mut(&p.name) {
            runs.tables.retain(|t, _| p.tables.contains(t));
        }
        self.backup_policies.insert(p.name.clone(), p);
        Response::Done
    }

    pub(super) fn set_backup_policy_paused(&mut self, name: &str, paused: bool) -> Response {
        match self.backup_policies.get_mut(name) {
            Some(p) => {
                p.paused = paused;
                Response::Done
            }
            None => Response::Refused(format!("no backup policy {name:?}")),
        }
    }

    pub(super) fn remove_backup_policy(&mut self, name: &str) -> Response {
        if self.backup_policies.remove(name).is_none() {
            return Response::Refused(format!("no backup policy {name:?}"));
        }
        self.backup_runs.remove(name);
        Response::Done
    }

    /// The rules every stored policy obeys (the service also checks the interval against the
    /// server's minimum, and the target's syntax, before writing).
    fn check_policy(&self, p: &BackupPolicyRecord) -> Result<(), String> {
        if p.name.is_empty() {
            return Err("a backup policy needs a name".into());
        }
        if p.tables.is_empty() {
            return Err(format!("backup policy {:?} names no table", p.name));
        }
        for t in &p.tables {
            if !self.tables.values().any(|r| r.name == *t && r.status == TableStatus::Serving) {
                return Err(format!("backup policy {:?}: no table {t:?} in this cluster", p.name));
            }
        }
        if p.interval_secs == 0 {
            return Err(format!("backup policy {:?}: the interval must be positive", p.name));
        }
        if p.keep_last.is_none() && p.max_age_secs.is_none() {
            return Err(format!(
                "backup policy {:?}: retention is empty (give keep-last and/or max-age)",
                p.name
            ));
        }
        if p.keep_last == Some(0) || p.max_age_secs == Some(0) {
            return Err(format!("backup policy {:?}: keep-last and max-age must be positive", p.name));
        }
        if p.start_minute.is_some_and(|m| m >= 24 * 60) {
            return Err(format!("backup policy {:?}: the start time is past 23:59", p.name));
        }
        if p.target.url.is_empty() {
            return Err(format!("backup policy {:?} has no target", p.name));
        }
        Ok(())
    }

    /// Begins an operation unless a conflicting one is in use on its target; forgets
    /// operations whose lease ended.
    pub(super) fn begin_backup_op(&mut self, op: &NewBackupOp, now_ms: u64) -> Response {
        self.backup_ops.retain(|_, o| o.live(now_ms));
        if op.policy.is_some()
            && let Some(o) = self
                .backup_ops
                .values()
                .find(|o| o.op.kind == op.kind && o.op.policy == op.policy && o.op.table == op.table)
        {
            return Response::Refused(format!(
                "policy {:?} is running this already (operation {}, {})",
                op.policy.as_deref().unwrap_or(""),
                o.id,
                o.op.holder
            ));
        }
        if let Some(o) =
            self.backup_ops.values().find(|o| o.op.target == op.target && ops_conflict(op.kind, o.op.kind))
        {
            return Response::Refused(format!(
                "a {:?} run ({}{}) is in use on this target until its end or lease (at {} ms): \
                 retention and backups on one target do not overlap",
                o.op.kind,
                o.op.holder,
                o.op.table.as_deref().map(|t| format!(", table {t}")).unwrap_or_default(),
                o.lease_until_ms
            ));
        }
        self.next_backup_op += 1;
        let rec = BackupOpRecord {
            id: self.next_backup_op,
            op: op.clone(),
            started_ms: now_ms,
            lease_until_ms: now_ms + op.lease_ms,
        };
        self.backup_ops.insert(rec.id, rec.clone());
        Response::BackupOp(rec)
    }

    /// Renews an operation's lease (and records its backup id once known). An operation whose
    /// lease ended is gone: its runner must stop (it may have been overlapped).
    pub(super) fn renew_backup_op(&mut self, id: u64, backup_id: Option<&str>, now_ms: u64) -> Response {
        match self.backup_ops.get_mut(&id) {
            Some(o) if o.live(now_ms) => {
                o.lease_until_ms = now_ms + o.op.lease_ms;
                if let Some(b) = backup_id {
                    o.op.backup_id = Some(b.to_string());
                }
                Response::BackupOp(o.clone())
            }
            _ => Response::Refused(format!("backup operation {id} is not in use (its lease ended)")),
        }
    }

    pub(super) fn end_backup_op(&mut self, id: u64) -> Response {
        self.backup_ops.remove(&id);
        Response::Done
    }

    /// Records a run of `policy`: of `table`'s backup, or (none) of its retention.
    pub(super) fn record_backup_run(
        &mut self,
        policy: &str,
        table: Option<&str>,
        run: &BackupRunRecord,
    ) -> Response {
        if !self.backup_policies.contains_key(policy) {
            return Response::Refused(format!("no backup policy {policy:?}"));
        }
        let runs = self.backup_runs.entry(policy.to_string()).or_default();
        match table {
            Some(t) => {
                runs.tables.insert(t.to_string(), run.clone());
            }
            None => runs.retention = Some(run.clone()),
        }
        Response::Done
    }

    /// The operations in use on `target` at `now_ms`.
    pub fn live_backup_ops(&self, target: &str, now_ms: u64) -> Vec<&BackupOpRecord> {
        self.backup_ops.values().filter(|o| o.op.target == target && o.live(now_ms)).collect()
    }
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
