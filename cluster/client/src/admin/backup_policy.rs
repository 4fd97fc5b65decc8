//! Backup policies and backup operations in use, through the admin client (docs/backup.md
//! "Policies and scheduling"): the domain types, their protobuf forms (the only conversions)
//! and the calls. The meta server stores them (`tern_meta::state::backup`).

use serde::Serialize;
use tern_core::{Error, Result};
use tern_proto::pb;

use super::AdminClient;

/// Where a policy's backups go. Never credentials: the meta servers use their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyTargetInfo {
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

/// A backup policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupPolicy {
    pub name: String,
    pub tables: Vec<String>,
    pub target: PolicyTargetInfo,
    pub interval_secs: u64,
    /// Minutes after 00:00 UTC the runs are aligned to.
    pub start_minute: Option<u32>,
    pub keep_last: Option<u32>,
    pub max_age_secs: Option<u64>,
    pub limit_bytes_per_sec: Option<u64>,
    pub paused: bool,
    /// Set by the meta server.
    pub created_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "error")]
pub enum PolicyRunOutcome {
    Never,
    Running,
    Succeeded,
    Failed(String),
}

/// The last run of a policy for one table, or its retention run (`table` none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyRun {
    pub table: Option<String>,
    pub outcome: PolicyRunOutcome,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub backup_id: Option<String>,
    pub summary: String,
    pub next_due_ms: Option<u64>,
    /// Why this cluster does not back the table up (a standby copy, dropped, …).
    pub skipped: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyStatus {
    pub policy: BackupPolicy,
    pub runs: Vec<PolicyRun>,
    pub retention: Option<PolicyRun>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupOpKind {
    Backup,
    Restore,
    Retention,
}

/// A backup, restore or retention run in use on a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupOpInfo {
    pub id: u64,
    pub kind: BackupOpKind,
    pub target_url: String,
    pub target_endpoint: Option<String>,
    pub table: Option<String>,
    pub backup_id: Option<String>,
    pub policy: Option<String>,
    pub holder: String,
    /// How long it stays in use without a renewal (0 when asking: the server's default).
    pub lease_ms: u64,
    pub started_ms: u64,
    pub lease_until_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicyList {
    pub policies: Vec<PolicyStatus>,
    pub ops: Vec<BackupOpInfo>,
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn nonzero<T: Default + PartialEq>(n: T) -> Option<T> {
    (n != T::default()).then_some(n)
}

pub fn policy_to_pb(p: &BackupPolicy) -> pb::BackupPolicy {
    pb::BackupPolicy {
        name: p.name.clone(),
        tables: p.tables.clone(),
        target: Some(pb::BackupTarget {
            url: p.target.url.clone(),
            endpoint: p.target.endpoint.clone().unwrap_or_default(),
            region: p.target.region.clone().unwrap_or_default(),
            ..Default::default()
        }),
        interval_secs: p.interval_secs,
        has_start_minute: p.start_minute.is_some(),
        start_minute: p.start_minute.unwrap_or(0),
        keep_last: p.keep_last.unwrap_or(0),
        max_age_secs: p.max_age_secs.unwrap_or(0),
        limit_bytes_per_sec: p.limit_bytes_per_sec.unwrap_or(0),
        paused: p.paused,
        created_at_ms: p.created_at_ms,
    }
}

pub fn policy_from_pb(p: pb::BackupPolicy) -> BackupPolicy {
    let t = p.target.unwrap_or_default();
    BackupPolicy {
        name: p.name,
        tables: p.tables,
        target: PolicyTargetInfo { url: t.url, endpoint: opt(&t.endpoint), region: opt(&t.region) },
        interval_secs: p.interval_secs,
        start_minute: p.has_start_minute.then_some(p.start_minute),
        keep_last: nonzero(p.keep_last),
        max_age_secs: nonzero(p.max_age_secs),
        limit_bytes_per_sec: nonzero(p.limit_bytes_per_sec),
        paused: p.paused,
        created_at_ms: p.created_at_ms,
    }
}

pub fn run_to_pb(r: &PolicyRun) -> pb::BackupPolicyRun {
    use pb::BackupPolicyRunOutcome as O;
    let (outcome, error) = match &r.outcome {
        PolicyRunOutcome::Never => (O::Never, String::new()),
        PolicyRunOutcome::Running => (O::Running, String::new()),
        PolicyRunOutcome::Succeeded => (O::Succeeded, String::new()),
        PolicyRunOutcome::Failed(e) => (O::Failed, e.clone()),
    };
    pb::BackupPolicyRun {
        table: r.table.clone().unwrap_or_default(),
        outcome: outcome as i32,
        started_ms: r.started_ms.unwrap_or(0),
        ended_ms: r.ended_ms.unwrap_or(0),
        backup_id: r.backup_id.clone().unwrap_or_default(),
        error,
        summary: r.summary.clone(),
        next_due_ms: r.next_due_ms.unwrap_or(0),
        skipped: r.skipped.clone().unwrap_or_default(),
    }
}

pub fn run_from_pb(r: pb::BackupPolicyRun) -> PolicyRun {
    use pb::BackupPolicyRunOutcome as O;
    let outcome = match O::try_from(r.outcome).unwrap_or(O::Never) {
        O::Never => PolicyRunOutcome::Never,
        O::Running => PolicyRunOutcome::Running,
        O::Succeeded => PolicyRunOutcome::Succeeded,
        O::Failed => PolicyRunOutcome::Failed(r.error),
    };
    PolicyRun {
        table: opt(&r.table),
        outcome,
        started_ms: nonzero(r.started_ms),
        ended_ms: nonzero(r.ended_ms),
        backup_id: opt(&r.backup_id),
        summary: r.summary,
        next_due_ms: nonzero(r.next_due_ms),
        skipped: opt(&r.skipped),
    }
}

pub fn status_to_pb(s: &PolicyStatus) -> pb::BackupPolicyStatus {
    pb::BackupPolicyStatus {
        policy: Some(policy_to_pb(&s.policy)),
        runs: s.runs.iter().map(run_to_pb).collect(),
        retention: s.retention.as_ref().map(run_to_pb),
    }
}

pub fn status_from_pb(s: pb::BackupPolicyStatus) -> Result<PolicyStatus> {
    let policy = s.policy.ok_or_else(|| Error::invariant("a backup policy status without its policy"))?;
    Ok(PolicyStatus {
        policy: policy_from_pb(policy),
        runs: s.runs.into_iter().map(run_from_pb).collect(),
        retention: s.retention.map(run_from_pb),
    })
}

pub fn op_to_pb(o: &BackupOpInfo) -> pb::BackupOp {
    use pb::BackupOpKind as K;
    let kind = match o.kind {
        BackupOpKind::Backup => K::Backup,
        BackupOpKind::Restore => K::Restore,
        BackupOpKind::Retention => K::Retention,
    };
    pb::BackupOp {
        id: o.id,
        kind: kind as i32,
        target: Some(pb::BackupTarget {
            url: o.target_url.clone(),
            endpoint: o.target_endpoint.clone().unwrap_or_default(),
            ..Default::default()
        }),
        table: o.table.clone().unwrap_or_default(),
        backup_id: o.backup_id.clone().unwrap_or_default(),
        policy: o.policy.clone().unwrap_or_default(),
        holder: o.holder.clone(),
        lease_ms: o.lease_ms,
        started_ms: o.started_ms,
        lease_until_ms: o.lease_until_ms,
    }
}

pub fn op_from_pb(o: pb::BackupOp) -> Result<BackupOpInfo> {
    use pb::BackupOpKind as K;
    let kind = match K::try_from(o.kind) {
        Ok(K::Backup) => BackupOpKind::Backup,
        Ok(K::Restore) => BackupOpKind::Restore,
        Ok(K::Retention) => BackupOpKind::Retention,
        _ => return Err(Error::InvalidArgument(format!("unknown backup operation kind {}", o.kind))),
    };
    let t = o.target.unwrap_or_default();
    Ok(BackupOpInfo {
        id: o.id,
        kind,
        target_url: t.url,
        target_endpoint: opt(&t.endpoint),
        table: opt(&o.table),
        backup_id: opt(&o.backup_id),
        policy: opt(&o.policy),
        holder: o.holder,
        lease_ms: o.lease_ms,
        started_ms: o.started_ms,
        lease_until_ms: o.lease_until_ms,
    })
}

impl AdminClient {
    /// Adds a backup policy (refused, named, if the name exists, a table is unknown, the
    /// interval is under the server's minimum or the retention is empty).
    pub async fn add_backup_policy(&self, p: &BackupPolicy) -> Result<PolicyStatus> {
        let req = pb::BackupPolicyRequest { policy: Some(policy_to_pb(p)) };
        self.call(req, |mut c, r| async move { c.backup_policy_add(r).await })
            .await
            .and_then(status_from_pb)
            .map_err(|e| e.context(format!("add backup policy {}", p.name)))
    }

    /// Replaces the policy of the same name.
    pub async fn alter_backup_policy(&self, p: &BackupPolicy) -> Result<PolicyStatus> {
        let req = pb::BackupPolicyRequest { policy: Some(policy_to_pb(p)) };
        self.call(req, |mut c, r| async move { c.backup_policy_alter(r).await })
            .await
            .and_then(status_from_pb)
            .map_err(|e| e.context(format!("alter backup policy {}", p.name)))
    }

    pub async fn set_backup_policy_paused(&self, name: &str, paused: bool) -> Result<PolicyStatus> {
        let req = pb::BackupPolicyName { name: name.to_string(), paused };
        let verb = if paused { "pause" } else { "resume" };
        self.call(req, |mut c, r| async move { c.backup_policy_set_paused(r).await })
            .await
            .and_then(status_from_pb)
            .map_err(|e| e.context(format!("{verb} backup policy {name}")))
    }

    pub async fn remove_backup_policy(&self, name: &str) -> Result<()> {
        let req = pb::BackupPolicyName { name: name.to_string(), paused: false };
        self.call(req, |mut c, r| async move { c.backup_policy_remove(r).await })
            .await
            .map(|_| ())
            .map_err(|e| e.context(format!("remove backup policy {name}")))
    }

    /// Every policy (or the one named) with its last runs, and the operations in use.
    pub async fn list_backup_policies(&self, name: Option<&str>) -> Result<PolicyList> {
        let req = pb::BackupPolicyName { name: name.unwrap_or_default().to_string(), paused: false };
        let r = self
            .call(req, |mut c, r| async move { c.backup_policy_list(r).await })
            .await
            .map_err(|e| e.context("list backup policies"))?;
        Ok(PolicyList {
            policies: r.policies.into_iter().map(status_from_pb).collect::<Result<_>>()?,
            ops: r.ops.into_iter().map(op_from_pb).collect::<Result<_>>()?,
        })
    }

    /// Registers an operation in use on a target (refused while a conflicting one is in use:
    /// a retention run against backups and restores). Renew it within its lease; end it.
    pub async fn begin_backup_op(&self, op: &BackupOpInfo) -> Result<BackupOpInfo> {
        self.call(op_to_pb(op), |mut c, r| async move { c.backup_op_begin(r).await })
            .await
            .and_then(op_from_pb)
            .map_err(|e| e.context(format!("register a {:?} run on {}", op.kind, op.target_url)))
    }

    pub async fn renew_backup_op(&self, id: u64, backup_id: Option<&str>) -> Result<BackupOpInfo> {
        let req = pb::BackupOpRenewRequest { id, backup_id: backup_id.unwrap_or_default().to_string() };
        self.call(req, |mut c, r| async move { c.backup_op_renew(r).await })
            .await
            .and_then(op_from_pb)
            .map_err(|e| e.context(format!("renew backup operation {id}")))
    }

    pub async fn end_backup_op(&self, id: u64) -> Result<()> {
        let req = pb::BackupOpRenewRequest { id, backup_id: String::new() };
        self.call(req, |mut c, r| async move { c.backup_op_end(r).await })
            .await
            .map(|_| ())
            .map_err(|e| e.context(format!("end backup operation {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_runs_and_ops_survive_protobuf() {
        let p = BackupPolicy {
            name: "nightly".into(),
            tables: vec!["a".into(), "b".into()],
            target: PolicyTargetInfo {
                url: "s3://b/p".into(),
                endpoint: Some("http://h:1".into()),
                region: None,
            },
            interval_secs: 86_400,
            start_minute: Some(0),
            keep_last: Some(7),
            max_age_secs: None,
            limit_bytes_per_sec: Some(1000),
            paused: true,
            created_at_ms: 5,
        };
        assert_eq!(policy_from_pb(policy_to_pb(&p)), p);
        let run = PolicyRun {
            table: Some("a".into()),
            outcome: PolicyRunOutcome::Failed("no bucket".into()),
            started_ms: Some(1),
            ended_ms: Some(2),
            backup_id: None,
            summary: "x".into(),
            next_due_ms: Some(3),
            skipped: None,
        };
        assert_eq!(run_from_pb(run_to_pb(&run)), run);
        let op = BackupOpInfo {
            id: 3,
            kind: BackupOpKind::Retention,
            target_url: "s3://b/p".into(),
            target_endpoint: None,
            table: None,
            backup_id: Some("B".into()),
            policy: Some("nightly".into()),
            holder: "meta 1".into(),
            lease_ms: 10,
            started_ms: 1,
            lease_until_ms: 11,
        };
        assert_eq!(op_from_pb(op_to_pb(&op)).unwrap(), op);
    }
}
