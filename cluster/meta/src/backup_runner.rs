//! The meta leader's backup runner: every tick it asks the schedule (`backup_schedule.rs`, pure)
//! what is due and runs it — a policy's backup of one table (`tern_backup::take_backup` through
//! an admin client to this cluster's own meta servers, as `tern backup now` does), or its
//! retention run on its target — recording each run's start and outcome in the replicated
//! state (docs/backup.md "Policies and scheduling").
//!
//! Every run holds a backup operation in the state (`state/backup.rs`) with a lease it renews;
//! a run that cannot renew (its lease ended, this server no longer leads) stops. The runner is
//! a task of the leader only: when leadership goes it is aborted with its runs, whose leases
//! then end, and the new leader's schedule runs them again (a backup starts fresh: a half backup
//! has no manifest, so it never looks like one; its intent is deleted by the next retention).
//!
//! Credentials: none are stored. The meta server opens targets with its own chain — the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, …), then the profile
//! files (`AWS_PROFILE`) — and the replica servers, which upload, use theirs.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tern_backup::model::{
    BackupId, RetentionInput, RetentionPolicy, apply_retention, plan_scoped_retention, read_contents,
};
use tern_backup::{TakeOptions, TargetSpec, take_backup};
use tern_client::AdminClient;
use tern_core::{Error, Result};
use tokio::task::JoinSet;

use crate::MetaSm;
use crate::backup_schedule::{ScheduleAction, due_runs};
use crate::leader::write_error;
use crate::raft::RaftGroup;
use crate::state::backup::{BackupOpKind, BackupPolicyRecord, BackupRunRecord, NewBackupOp, RunOutcome};
use crate::state::{Command, Response};

/// Settings of backup policies on a meta server.
#[derive(Clone, Debug)]
pub struct BackupRunnerOptions {
    /// The shortest interval a policy may have (60 s; lower only in tests).
    pub min_interval: Duration,
    /// How often the leader looks for due runs.
    pub tick: Duration,
    /// How long a backup operation stays in use without a renewal (renewed every third).
    pub op_lease: Duration,
    /// Partitions backed up at once, and attempts per partition, in a scheduled backup.
    pub concurrency: usize,
    pub attempts: u32,
}

impl Default for BackupRunnerOptions {
    fn default() -> Self {
        BackupRunnerOptions {
            min_interval: Duration::from_secs(crate::state::backup::MIN_INTERVAL_SECS),
            tick: Duration::from_secs(5),
            op_lease: Duration::from_millis(crate::state::backup::DEFAULT_OP_LEASE_MS),
            concurrency: 4,
            attempts: 4,
        }
    }
}

struct Runner {
    group: Arc<RaftGroup<MetaSm>>,
    opts: BackupRunnerOptions,
    admin: AdminClient,
    holder: String,
}

/// Runs due backups and retention runs until aborted (when leadership ends).
pub async fn run(group: Arc<RaftGroup<MetaSm>>, opts: BackupRunnerOptions, id: u64, metas: Vec<String>) {
    let admin = match AdminClient::connect(metas) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("backup policies will not run: connect to this cluster's meta servers: {e}");
            return;
        }
    };
    let runner = Arc::new(Runner { group, opts, admin, holder: format!("meta {id}") });
    let mut running: HashSet<ScheduleAction> = HashSet::new();
    // Dropping the set (the task aborted) aborts every run in it.
    let mut runs: JoinSet<ScheduleAction> = JoinSet::new();
    let mut tick = tokio::time::interval(runner.opts.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        while let Some(done) = runs.try_join_next() {
            if let Ok(a) = done {
                running.remove(&a);
            }
        }
        if !runner.group.is_leader() {
            continue;
        }
        let due = runner.group.read(|s| due_runs(&s.0, crate::wall_ms()));
        for action in due {
            if running.insert(action.clone()) {
                let r = runner.clone();
                runs.spawn(async move {
                    r.execute(&action).await;
                    action
                });
            }
        }
    }
}

fn now_ms() -> u64 {
    crate::wall_ms()
}

fn spec(p: &BackupPolicyRecord) -> TargetSpec {
    TargetSpec {
        url: p.target.url.clone(),
        endpoint: p.target.endpoint.clone(),
        region: p.target.region.clone(),
        access_key_id: None,
        secret_access_key: None,
    }
}

impl Runner {
    async fn write(&self, cmd: Command) -> Result<Response> {
        self.group.write(cmd).await.map_err(write_error)
    }

    async fn execute(&self, action: &ScheduleAction) {
        let (policy, table) = match action {
            ScheduleAction::Backup { policy, table } => (policy, Some(table.as_str())),
            ScheduleAction::Retention { policy } => (policy, None),
        };
        let Some(p) = self.group.read(|s| s.0.backup_policies.get(policy).cloned()) else { return };
        let op = NewBackupOp {
            kind: if table.is_some() { BackupOpKind::Backup } else { BackupOpKind::Retention },
            target: p.target.key(),
            table: table.map(str::to_string),
            backup_id: None,
            policy: Some(p.name.clone()),
            holder: self.holder.clone(),
            lease_ms: self.opts.op_lease.as_millis() as u64,
        };
        let op_id = match self.write(Command::BeginBackupOp { op, now_ms: now_ms() }).await {
            Ok(Response::BackupOp(o)) => o.id,
            Ok(Response::Refused(why)) => {
                tracing::debug!(policy = p.name, "not yet: {why}");
                return;
            }
            Ok(other) => {
                tracing::error!("begin backup operation returned {other:?}");
                return;
            }
            Err(e) => {
                tracing::info!(policy = p.name, "backup run not started: {e}");
                return;
            }
        };
        let started_ms = now_ms();
        let mut record = BackupRunRecord {
            started_ms,
            ended_ms: None,
            backup_id: None,
            outcome: RunOutcome::Running,
            summary: String::new(),
        };
        let rec = |record: BackupRunRecord| Command::RecordBackupRun {
            policy: p.name.clone(),
            table: table.map(str::to_string),
            run: record,
        };
        if let Err(e) = self.write(rec(record.clone())).await {
            tracing::info!(policy = p.name, "backup run not started: {e}");
            let _ = self.write(Command::EndBackupOp { id: op_id }).await;
            return;
        }
        let what = match table {
            Some(t) => format!("backup of table {t}"),
            None => format!("retention run on {}", p.target.url),
        };
        tracing::info!(policy = p.name, "{what} started");
        let work = async {
            match table {
                Some(t) => self.backup(&p, t).await,
                None => self.retention(&p).await,
            }
        };
        let result = tokio::select! {
            r = work => r,
            e = self.keep_lease(op_id) => Err(e),
        };
        record.ended_ms = Some(now_ms());
        match result {
            Ok((id, summary)) => {
                tracing::info!(policy = p.name, "{what} done: {summary}");
                record.backup_id = id;
                record.summary = summary;
                record.outcome = RunOutcome::Succeeded;
            }
            Err(e) => {
                tracing::warn!(policy = p.name, "{what} failed: {e}");
                record.outcome = RunOutcome::Failed(e.to_string());
            }
        }
        if let Err(e) = self.write(rec(record)).await {
            tracing::warn!(policy = p.name, "record the outcome of the {what}: {e}");
        }
        let _ = self.write(Command::EndBackupOp { id: op_id }).await;
    }

    /// Renews the operation's lease until it cannot: returns why.
    async fn keep_lease(&self, id: u64) -> Error {
        let every = self.opts.op_lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match self.write(Command::RenewBackupOp { id, backup_id: None, now_ms: now_ms() }).await {
                Ok(Response::BackupOp(_)) => {}
                Ok(Response::Refused(why)) => return Error::Unavailable(why),
                Ok(other) => return Error::invariant(format!("renew backup operation returned {other:?}")),
                Err(e) => return e,
            }
        }
    }

    async fn backup(&self, p: &BackupPolicyRecord, table: &str) -> Result<(Option<String>, String)> {
        let spec = spec(p);
        let store = tern_backup::open_target(&spec)
            .await
            .map_err(|e| Error::Unavailable(format!("open backup target {}: {e}", spec.url)))?;
        let opts = TakeOptions {
            concurrency: self.opts.concurrency,
            max_attempts: self.opts.attempts,
            limit_bytes_per_sec: p.limit_bytes_per_sec,
            resume: None,
            tool_version: format!("tern {} (policy {})", env!("CARGO_PKG_VERSION"), p.name),
        };
        let s = take_backup(&self.admin, store, &spec, table, &opts, &|_| {})
            .await
            .map_err(|e| Error::Unavailable(format!("back up table {table}: {e}")))?;
        let summary = format!(
            "{} files uploaded ({} bytes), {} already stored, {} partitions, {:.1}s",
            s.files_uploaded,
            s.bytes_uploaded,
            s.files_skipped,
            s.manifest.partitions.len(),
            s.elapsed.as_secs_f64()
        );
        Ok((Some(s.manifest.backup_id.to_string()), summary))
    }

    async fn retention(&self, p: &BackupPolicyRecord) -> Result<(Option<String>, String)> {
        let spec = spec(p);
        let fail =
            |doing: &str, e: tern_backup::Error| Error::Unavailable(format!("{doing} {}: {e}", spec.url));
        let store = tern_backup::open_target(&spec).await.map_err(|e| fail("open backup target", e))?;
        let contents = read_contents(&*store).await.map_err(|e| fail("list", e))?;
        // Restores reading a backup of this target keep it (none can start while this runs).
        let (cluster, in_use) = self.group.read(|s| {
            let ids: BTreeSet<BackupId> =
                s.0.live_backup_ops(&p.target.key(), now_ms())
                    .iter()
                    .filter_map(|o| o.op.backup_id.as_deref()?.parse().ok())
                    .collect();
            (s.0.cluster_name.clone(), ids)
        });
        let input = RetentionInput {
            manifests: &contents.manifests,
            pending: &contents.pending,
            stored_files: &contents.stored_files,
            in_use: &in_use,
        };
        let rule = RetentionPolicy {
            keep_last: p.keep_last,
            max_age: p.max_age_secs.map(|s| chrono::Duration::seconds(s as i64)),
        };
        let now = Utc.timestamp_millis_opt(now_ms() as i64).single().unwrap_or_else(Utc::now);
        let in_scope =
            |m: &tern_backup::model::Manifest| m.cluster == cluster && p.tables.contains(&m.table.name);
        let plan = plan_scoped_retention(&input, &rule, now, &in_scope);
        apply_retention(&*store, &plan).await.map_err(|e| fail("delete from", e))?;
        let deleted = match plan.delete_manifests.len() {
            0 => "no backup deleted".to_string(),
            n => format!(
                "{n} backup(s) deleted ({})",
                plan.delete_manifests.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ")
            ),
        };
        Ok((
            None,
            format!(
                "{deleted}, {} stale intent(s), {} file(s) deleted",
                plan.delete_pending.len(),
                plan.delete_files.len()
            ),
        ))
    }
}
