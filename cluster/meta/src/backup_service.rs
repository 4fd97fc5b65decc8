//! The `Meta` calls of backup policies and backup operations in use (`state/backup.rs`): check
//! the request, write the command, answer with the stored result. Conversions to and from the
//! admin client's types are here; the client's own module is the one place they become protobuf.

use tern_backup::TargetSpec;
use tern_client::admin::backup_policy::{
    BackupOpInfo, BackupOpKind as OpKind, BackupPolicy, PolicyList, PolicyRun, PolicyRunOutcome,
    PolicyStatus, PolicyTargetInfo, op_from_pb, op_to_pb, policy_from_pb, status_to_pb,
};
use tern_core::{Error, Result};
use tern_proto::pb;
use tonic::Status;

use crate::backup_schedule::{next_due_ms, table_backed_up_here};
use crate::service::MetaService;
use crate::state::backup::{
    BackupOpKind, BackupOpRecord, BackupPolicyRecord, BackupRunRecord, NewBackupOp, PolicyTarget, RunOutcome,
    target_key,
};
use crate::state::{Command, MetaState, Response as Applied};

fn status(e: Error) -> Status {
    tern_proto::status::to_status(&e)
}

fn invalid(msg: String) -> Status {
    status(Error::InvalidArgument(msg))
}

pub fn policy_record(p: &BackupPolicy) -> BackupPolicyRecord {
    BackupPolicyRecord {
        name: p.name.clone(),
        tables: p.tables.clone(),
        target: PolicyTarget {
            url: p.target.url.clone(),
            endpoint: p.target.endpoint.clone(),
            region: p.target.region.clone(),
        },
        interval_secs: p.interval_secs,
        start_minute: p.start_minute,
        keep_last: p.keep_last,
        max_age_secs: p.max_age_secs,
        limit_bytes_per_sec: p.limit_bytes_per_sec,
        paused: p.paused,
        created_at_ms: p.created_at_ms,
    }
}

pub fn policy_info(p: &BackupPolicyRecord) -> BackupPolicy {
    BackupPolicy {
        name: p.name.clone(),
        tables: p.tables.clone(),
        target: PolicyTargetInfo {
            url: p.target.url.clone(),
            endpoint: p.target.endpoint.clone(),
            region: p.target.region.clone(),
        },
        interval_secs: p.interval_secs,
        start_minute: p.start_minute,
        keep_last: p.keep_last,
        max_age_secs: p.max_age_secs,
        limit_bytes_per_sec: p.limit_bytes_per_sec,
        paused: p.paused,
        created_at_ms: p.created_at_ms,
    }
}

fn run_info(table: Option<&str>, r: Option<&BackupRunRecord>) -> PolicyRun {
    PolicyRun {
        table: table.map(str::to_string),
        outcome: match r.map(|r| &r.outcome) {
            None => PolicyRunOutcome::Never,
            Some(RunOutcome::Running) => PolicyRunOutcome::Running,
            Some(RunOutcome::Succeeded) => PolicyRunOutcome::Succeeded,
            Some(RunOutcome::Failed(e)) => PolicyRunOutcome::Failed(e.clone()),
        },
        started_ms: r.map(|r| r.started_ms),
        ended_ms: r.and_then(|r| r.ended_ms),
        backup_id: r.and_then(|r| r.backup_id.clone()),
        summary: r.map(|r| r.summary.clone()).unwrap_or_default(),
        next_due_ms: None,
        skipped: None,
    }
}

/// A policy with its last runs and when each table is due next, as of `now_ms`.
pub fn policy_status(s: &MetaState, p: &BackupPolicyRecord, now_ms: u64) -> PolicyStatus {
    let runs = s.backup_runs.get(&p.name);
    let tables = p
        .tables
        .iter()
        .map(|t| {
            let last = runs.and_then(|r| r.tables.get(t));
            let mut run = run_info(Some(t), last);
            match table_backed_up_here(s, t) {
                Err(why) => run.skipped = Some(why.to_string()),
                Ok(()) if !p.paused => run.next_due_ms = Some(next_due_ms(p, last, now_ms)),
                Ok(()) => {}
            }
            run
        })
        .collect();
    let retention = runs.and_then(|r| r.retention.as_ref()).map(|r| run_info(None, Some(r)));
    PolicyStatus { policy: policy_info(p), runs: tables, retention }
}

fn op_kind(k: OpKind) -> BackupOpKind {
    match k {
        OpKind::Backup => BackupOpKind::Backup,
        OpKind::Restore => BackupOpKind::Restore,
        OpKind::Retention => BackupOpKind::Retention,
    }
}

/// An operation as the admin API shows it (its target is the key's parts).
pub fn op_info(o: &BackupOpRecord) -> BackupOpInfo {
    let (endpoint, url) = o.op.target.split_once('|').unwrap_or(("", &o.op.target));
    BackupOpInfo {
        id: o.id,
        kind: match o.op.kind {
            BackupOpKind::Backup => OpKind::Backup,
            BackupOpKind::Restore => OpKind::Restore,
            BackupOpKind::Retention => OpKind::Retention,
        },
        target_url: url.to_string(),
        target_endpoint: (!endpoint.is_empty()).then(|| endpoint.to_string()),
        table: o.op.table.clone(),
        backup_id: o.op.backup_id.clone(),
        policy: o.op.policy.clone(),
        holder: o.op.holder.clone(),
        lease_ms: o.op.lease_ms,
        started_ms: o.started_ms,
        lease_until_ms: o.lease_until_ms,
    }
}

/// Checks what the state cannot: the interval against this server's minimum, the target's
/// syntax, the name's characters.
pub fn check_policy_request(p: &BackupPolicy, min_interval_secs: u64) -> Result<()> {
    let name = &p.name;
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Error::InvalidArgument(format!(
            "backup policy name {name:?}: 1-64 characters from [A-Za-z0-9_.-]"
        )));
    }
    if p.interval_secs < min_interval_secs {
        return Err(Error::InvalidArgument(format!(
            "backup policy {name:?}: interval {}s is under the minimum of {min_interval_secs}s",
            p.interval_secs
        )));
    }
    let spec = TargetSpec {
        url: p.target.url.clone(),
        endpoint: p.target.endpoint.clone(),
        region: p.target.region.clone(),
        access_key_id: None,
        secret_access_key: None,
    };
    spec.kind().map_err(|e| Error::InvalidArgument(format!("backup policy {name:?}: target: {e}")))?;
    if let Some(e) = &p.target.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(Error::InvalidArgument(format!(
            "backup policy {name:?}: endpoint {e:?}: expected http://host:port or https://host:port"
        )));
    }
    Ok(())
}

impl MetaService {
    fn refused(applied: Applied) -> std::result::Result<(), Status> {
        match applied {
            Applied::Refused(why) => Err(invalid(why)),
            _ => Ok(()),
        }
    }

    fn policy_answer(&self, name: &str) -> std::result::Result<pb::BackupPolicyStatus, Status> {
        let now = crate::wall_ms();
        self.group
            .read(|s| s.0.backup_policies.get(name).map(|p| status_to_pb(&policy_status(&s.0, p, now))))
            .ok_or_else(|| invalid(format!("no backup policy {name:?}")))
    }

    pub(crate) async fn do_backup_policy_add(
        &self,
        r: pb::BackupPolicyRequest,
        alter: bool,
    ) -> std::result::Result<pb::BackupPolicyStatus, Status> {
        let p = policy_from_pb(r.policy.ok_or_else(|| invalid("a request without a policy".into()))?);
        check_policy_request(&p, self.backup.min_interval.as_secs()).map_err(status)?;
        let mut rec = policy_record(&p);
        rec.created_at_ms = crate::wall_ms();
        let cmd = if alter {
            Command::AlterBackupPolicy { policy: rec }
        } else {
            Command::AddBackupPolicy { policy: rec }
        };
        Self::refused(self.write(cmd).await?)?;
        tracing::info!(policy = p.name, "backup policy {}", if alter { "altered" } else { "added" });
        self.policy_answer(&p.name)
    }

    pub(crate) async fn do_backup_policy_set_paused(
        &self,
        r: pb::BackupPolicyName,
    ) -> std::result::Result<pb::BackupPolicyStatus, Status> {
        Self::refused(
            self.write(Command::SetBackupPolicyPaused { name: r.name.clone(), paused: r.paused }).await?,
        )?;
        tracing::info!(policy = r.name, "backup policy {}", if r.paused { "paused" } else { "resumed" });
        self.policy_answer(&r.name)
    }

    pub(crate) async fn do_backup_policy_remove(
        &self,
        r: pb::BackupPolicyName,
    ) -> std::result::Result<(), Status> {
        Self::refused(self.write(Command::RemoveBackupPolicy { name: r.name.clone() }).await?)?;
        tracing::info!(policy = r.name, "backup policy removed");
        Ok(())
    }

    pub(crate) fn do_backup_policy_list(
        &self,
        r: pb::BackupPolicyName,
    ) -> std::result::Result<pb::BackupPolicyListResponse, Status> {
        self.leader()?;
        let now = crate::wall_ms();
        let list = self.group.read(|s| {
            let s = &s.0;
            let policies: Vec<PolicyStatus> = s
                .backup_policies
                .values()
                .filter(|p| r.name.is_empty() || p.name == r.name)
                .map(|p| policy_status(s, p, now))
                .collect();
            let ops = s.backup_ops.values().filter(|o| o.live(now)).map(op_info).collect();
            PolicyList { policies, ops }
        });
        if !r.name.is_empty() && list.policies.is_empty() {
            return Err(invalid(format!("no backup policy {:?}", r.name)));
        }
        Ok(pb::BackupPolicyListResponse {
            policies: list.policies.iter().map(status_to_pb).collect(),
            ops: list.ops.iter().map(op_to_pb).collect(),
        })
    }

    pub(crate) async fn do_backup_op_begin(
        &self,
        r: pb::BackupOp,
    ) -> std::result::Result<pb::BackupOp, Status> {
        let o = op_from_pb(r).map_err(status)?;
        if o.target_url.is_empty() {
            return Err(invalid("a backup operation names no target".into()));
        }
        let lease_ms = if o.lease_ms == 0 { self.backup.op_lease.as_millis() as u64 } else { o.lease_ms };
        let op = NewBackupOp {
            kind: op_kind(o.kind),
            target: target_key(&o.target_url, o.target_endpoint.as_deref()),
            table: o.table,
            backup_id: o.backup_id,
            policy: o.policy,
            holder: o.holder,
            lease_ms,
        };
        match self.write(Command::BeginBackupOp { op, now_ms: crate::wall_ms() }).await? {
            Applied::BackupOp(rec) => Ok(op_to_pb(&op_info(&rec))),
            // Not retryable by the call: the caller decides whether to wait (the runner tries
            // again next tick; `tern backup now` says what is in the way).
            Applied::Refused(why) => Err(invalid(why)),
            other => Err(status(Error::invariant(format!("begin backup operation returned {other:?}")))),
        }
    }

    pub(crate) async fn do_backup_op_renew(
        &self,
        r: pb::BackupOpRenewRequest,
    ) -> std::result::Result<pb::BackupOp, Status> {
        let backup_id = (!r.backup_id.is_empty()).then_some(r.backup_id);
        match self.write(Command::RenewBackupOp { id: r.id, backup_id, now_ms: crate::wall_ms() }).await? {
            Applied::BackupOp(rec) => Ok(op_to_pb(&op_info(&rec))),
            Applied::Refused(why) => Err(invalid(why)),
            other => Err(status(Error::invariant(format!("renew backup operation returned {other:?}")))),
        }
    }

    pub(crate) async fn do_backup_op_end(
        &self,
        r: pb::BackupOpRenewRequest,
    ) -> std::result::Result<(), Status> {
        self.write(Command::EndBackupOp { id: r.id }).await?;
        Ok(())
    }
}
