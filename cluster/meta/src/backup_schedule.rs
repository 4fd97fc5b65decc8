//! When backup policies run: a pure function of the replicated state and the time
//! (docs/backup.md "Policies and scheduling"). The meta leader's runner (`backup_runner.rs`)
//! calls [`due_runs`] every tick and carries out what it returns.
//!
//! Rules:
//! - a policy's runs are due at its *slots*: `anchor + k × interval`, the anchor being its start
//!   time on 1970-01-01 UTC, or else its creation: `--every 1d --at 02:30` is every day at 02:30
//!   UTC, `--every 1h --at 00:00` every hour on the hour, `--every 1h` hourly from when added;
//! - a (policy, table) is due when the newest slot is later than both its last run's start and
//!   the policy's creation: after missed slots (a leader change, a pause, a long run) it runs
//!   once, not once per missed slot;
//! - never two runs of one (policy, table) at once: not while its operation is in use; a run
//!   recorded as running whose operation's lease ended died (a leader change, a crash) and is
//!   due again at once (the backup starts fresh; its stale intent is cleaned by retention);
//! - a paused policy runs nothing; a table is skipped unless it serves, is not being restored
//!   and its copy in this cluster is the ACTIVE one (after a DR switchover the cluster of the
//!   new active copy backs it up, with its own policy);
//! - no backup starts on a target while a retention run is in use there; a policy's retention
//!   run is due when one of its backups succeeded after its last retention run started (or
//!   that run died), and nothing at all is in use on its target (backups go first).

use tern_core::DrRole;

use crate::state::backup::{BackupOpKind, BackupPolicyRecord, BackupRunRecord, RunOutcome};
use crate::state::{MetaState, TableStatus};

/// What the runner should start now.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScheduleAction {
    Backup { policy: String, table: String },
    Retention { policy: String },
}

fn anchor_ms(p: &BackupPolicyRecord) -> u64 {
    p.start_minute.map_or(p.created_at_ms, |m| u64::from(m) * 60_000)
}

/// The newest slot of `p` at or before `now_ms`, if any.
pub fn last_slot_ms(p: &BackupPolicyRecord, now_ms: u64) -> Option<u64> {
    let anchor = anchor_ms(p);
    let interval = p.interval_secs.max(1) * 1000;
    (now_ms >= anchor).then(|| anchor + (now_ms - anchor) / interval * interval)
}

/// When (policy, table) is next due, given its last run: `now_ms` if due now.
pub fn next_due_ms(p: &BackupPolicyRecord, last: Option<&BackupRunRecord>, now_ms: u64) -> u64 {
    let since = last.map_or(p.created_at_ms, |r| r.started_ms.max(p.created_at_ms));
    let interval = p.interval_secs.max(1) * 1000;
    match last_slot_ms(p, now_ms) {
        Some(slot) if slot > since => now_ms,
        Some(slot) => slot + interval,
        None => anchor_ms(p) + interval,
    }
}

/// Does `policy` back up `table` in this cluster now (it serves, is not being restored, and its
/// copy here is the active one)?
pub fn table_backed_up_here(state: &MetaState, table: &str) -> Result<(), &'static str> {
    match state.table_by_name(table) {
        None => Err("no such table"),
        Some(t) if t.status != TableStatus::Serving => Err("dropped"),
        Some(t) if t.restoring.is_some() => Err("being restored"),
        Some(t) if t.role != DrRole::Active => Err("standby here (the active cluster backs it up)"),
        Some(_) => Ok(()),
    }
}

/// Everything due at `now_ms`, in a stable order.
pub fn due_runs(state: &MetaState, now_ms: u64) -> Vec<ScheduleAction> {
    let mut out = Vec::new();
    for p in state.backup_policies.values() {
        if p.paused {
            continue;
        }
        let target = p.target.key();
        let live = state.live_backup_ops(&target, now_ms);
        let runs = state.backup_runs.get(&p.name);
        let retention_live = live.iter().any(|o| o.op.kind == BackupOpKind::Retention);
        let mut backups_due = false;
        if !retention_live {
            for table in &p.tables {
                if table_backed_up_here(state, table).is_err() {
                    continue;
                }
                let running = live.iter().any(|o| {
                    o.op.kind == BackupOpKind::Backup
                        && o.op.policy.as_deref() == Some(p.name.as_str())
                        && o.op.table.as_deref() == Some(table.as_str())
                });
                if running {
                    continue;
                }
                let last = runs.and_then(|r| r.tables.get(table));
                let died = last.is_some_and(|r| r.outcome == RunOutcome::Running);
                if died || next_due_ms(p, last, now_ms) == now_ms {
                    backups_due = true;
                    out.push(ScheduleAction::Backup { policy: p.name.clone(), table: table.clone() });
                }
            }
        }
        if backups_due || !live.is_empty() {
            continue;
        }
        let retention = runs.and_then(|r| r.retention.as_ref());
        let retention_died = retention.is_some_and(|r| r.outcome == RunOutcome::Running);
        let new_backup = runs.is_some_and(|r| {
            r.tables.values().any(|t| {
                t.outcome == RunOutcome::Succeeded
                    && retention.is_none_or(|ret| t.ended_ms.unwrap_or(0) > ret.started_ms)
            })
        });
        if retention_died || new_backup {
            out.push(ScheduleAction::Retention { policy: p.name.clone() });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
#[path = "backup_schedule_tests.rs"]
mod tests;
