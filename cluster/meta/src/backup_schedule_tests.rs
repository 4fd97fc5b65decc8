use proptest::prelude::*;

use super::*;
use crate::state::backup::{BackupRunRecord, NewBackupOp, PolicyTarget};
use crate::state::dr::RoleChange;
use crate::state::{Command, Response};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

fn state(interval_secs: u64, start_minute: Option<u32>, created_at_ms: u64) -> MetaState {
    let mut s = MetaState::default();
    s.apply(&Command::CreateTable { name: "users".into(), partitions: 1, replicas: 1 });
    s.apply(&Command::CreateTable { name: "orders".into(), partitions: 1, replicas: 1 });
    let policy = BackupPolicyRecord {
        name: "p".into(),
        tables: vec!["users".into(), "orders".into()],
        target: PolicyTarget { url: "s3://b/t".into(), endpoint: None, region: None },
        interval_secs,
        start_minute,
        keep_last: Some(1),
        max_age_secs: None,
        limit_bytes_per_sec: None,
        paused: false,
        created_at_ms,
    };
    assert_eq!(s.apply(&Command::AddBackupPolicy { policy }), Response::Done);
    s
}

fn backup(table: &str) -> ScheduleAction {
    ScheduleAction::Backup { policy: "p".into(), table: table.into() }
}

fn retention() -> ScheduleAction {
    ScheduleAction::Retention { policy: "p".into() }
}

/// What the runner does: begin the operation, record the run as running.
fn start(s: &mut MetaState, a: &ScheduleAction, now_ms: u64, lease_ms: u64) -> u64 {
    let (kind, table) = match a {
        ScheduleAction::Backup { table, .. } => (BackupOpKind::Backup, Some(table.clone())),
        ScheduleAction::Retention { .. } => (BackupOpKind::Retention, None),
    };
    let op = NewBackupOp {
        kind,
        target: s.backup_policies["p"].target.key(),
        table: table.clone(),
        backup_id: None,
        policy: Some("p".into()),
        holder: "meta 1".into(),
        lease_ms,
    };
    let Response::BackupOp(o) = s.apply(&Command::BeginBackupOp { op, now_ms }) else {
        panic!("{a:?} refused")
    };
    let run = BackupRunRecord {
        started_ms: now_ms,
        ended_ms: None,
        backup_id: None,
        outcome: RunOutcome::Running,
        summary: String::new(),
    };
    s.apply(&Command::RecordBackupRun { policy: "p".into(), table, run });
    o.id
}

fn finish(s: &mut MetaState, a: &ScheduleAction, op: u64, started_ms: u64, now_ms: u64, ok: bool) {
    let table = match a {
        ScheduleAction::Backup { table, .. } => Some(table.clone()),
        ScheduleAction::Retention { .. } => None,
    };
    let run = BackupRunRecord {
        started_ms,
        ended_ms: Some(now_ms),
        backup_id: None,
        outcome: if ok { RunOutcome::Succeeded } else { RunOutcome::Failed("x".into()) },
        summary: String::new(),
    };
    s.apply(&Command::RecordBackupRun { policy: "p".into(), table, run });
    s.apply(&Command::EndBackupOp { id: op });
}

#[test]
fn runs_fall_on_slots_aligned_to_the_start_time_once_per_slot() {
    // Daily at 02:30, created on day 10 at 05:00: nothing until day 11, 02:30.
    let created = 10 * DAY + 5 * HOUR;
    let mut s = state(24 * 3600, Some(150), created);
    assert!(due_runs(&s, created + HOUR).is_empty());
    assert_eq!(next_due_ms(&s.backup_policies["p"], None, created + HOUR), 11 * DAY + 150 * MIN);
    assert!(due_runs(&s, 11 * DAY + 150 * MIN - 1).is_empty());
    let at = 11 * DAY + 150 * MIN;
    assert_eq!(due_runs(&s, at), vec![backup("orders"), backup("users")]);
    let ops: Vec<_> =
        [backup("orders"), backup("users")].iter().map(|a| (a.clone(), start(&mut s, a, at, HOUR))).collect();
    assert!(due_runs(&s, at + MIN).is_empty(), "running: not again, and no retention meanwhile");
    for (a, op) in &ops {
        finish(&mut s, a, *op, at, at + 2 * MIN, true);
    }
    assert_eq!(due_runs(&s, at + 3 * MIN), vec![retention()]);
    let r = start(&mut s, &retention(), at + 3 * MIN, HOUR);
    assert!(due_runs(&s, at + 4 * MIN).is_empty());
    finish(&mut s, &retention(), r, at + 3 * MIN, at + 4 * MIN, true);
    assert!(due_runs(&s, at + 5 * MIN).is_empty(), "retention ran after the last backup");
    // Three days later (missed slots): one run per table, not three.
    assert_eq!(due_runs(&s, at + 3 * DAY + HOUR), vec![backup("orders"), backup("users")]);
}

#[test]
fn a_run_whose_lease_ended_is_due_again_and_retention_waits_for_the_target() {
    let mut s = state(3600, None, 0);
    let at = 5 * HOUR;
    let op = start(&mut s, &backup("users"), at, MIN);
    assert_eq!(due_runs(&s, at + MIN - 1), vec![backup("orders")]);
    // The runner died (a leader change): once its lease is over, the run is due again.
    assert_eq!(due_runs(&s, at + MIN), vec![backup("orders"), backup("users")]);
    let _ = op;
    // A live retention run elsewhere on the same target (another policy) holds backups back.
    let mut other = s.backup_policies["p"].clone();
    other.name = "q".into();
    s.apply(&Command::AddBackupPolicy { policy: other });
    let op = NewBackupOp {
        kind: BackupOpKind::Retention,
        target: s.backup_policies["p"].target.key(),
        table: None,
        backup_id: None,
        policy: Some("q".into()),
        holder: "meta 1".into(),
        lease_ms: HOUR,
    };
    s.apply(&Command::SetBackupPolicyPaused { name: "q".into(), paused: true });
    assert!(matches!(s.apply(&Command::BeginBackupOp { op, now_ms: at + MIN }), Response::BackupOp(_)));
    assert!(due_runs(&s, at + 2 * MIN).is_empty());
}

#[test]
fn paused_policies_and_tables_not_active_here_do_not_run() {
    let mut s = state(3600, None, 0);
    s.apply(&Command::SetBackupPolicyPaused { name: "p".into(), paused: true });
    assert!(due_runs(&s, 10 * HOUR).is_empty());
    s.apply(&Command::SetBackupPolicyPaused { name: "p".into(), paused: false });
    // After a DR switchover the copy here is a standby: the active cluster backs it up.
    s.apply(&Command::SetTableRole {
        change: RoleChange { table: "users".into(), role: DrRole::Standby, epoch: 1, expect_epoch: None },
    });
    assert_eq!(due_runs(&s, 10 * HOUR), vec![backup("orders")]);
    assert_eq!(table_backed_up_here(&s, "users"), Err("standby here (the active cluster backs it up)"));
    s.apply(&Command::DropTable { name: "orders".into(), at_ms: 1 });
    assert!(due_runs(&s, 10 * HOUR).is_empty());
}

#[test]
fn a_failed_backup_waits_for_the_next_slot_and_triggers_no_retention() {
    let mut s = state(3600, None, 0);
    let at = 2 * HOUR;
    for a in [backup("orders"), backup("users")] {
        let op = start(&mut s, &a, at, HOUR);
        finish(&mut s, &a, op, at, at + MIN, false);
    }
    assert!(due_runs(&s, at + 2 * MIN).is_empty());
    assert_eq!(due_runs(&s, 3 * HOUR), vec![backup("orders"), backup("users")]);
}

proptest! {
    /// Driven through time with runs of random lengths, some dying (leases ending): never two
    /// runs of one (policy, table) at once, at most one run per slot unless a run died, and a
    /// slot reached while idle is always run.
    #[test]
    fn runs_never_overlap_and_each_slot_runs_at_most_once(
        interval_min in 1u64..180,
        start_minute in proptest::option::of(0u32..1440),
        steps in proptest::collection::vec((1u64..400, 1u64..300, any::<bool>(), any::<bool>()), 1..60),
        paused_at in proptest::option::of(0usize..60),
    ) {
        let mut s = state(interval_min * 60, start_minute, 3 * DAY);
        let mut now = 3 * DAY;
        // (action, op, started, ends at, dies)
        let mut running: Vec<(ScheduleAction, u64, u64, u64, bool)> = Vec::new();
        let mut started_slots: Vec<(String, u64, bool)> = Vec::new();
        for (i, (advance_min, len_min, fails, dies)) in steps.into_iter().enumerate() {
            if paused_at == Some(i) {
                s.apply(&Command::SetBackupPolicyPaused { name: "p".into(), paused: true });
            }
            now += advance_min * MIN / 3;
            running.retain(|(a, op, started, ends, died)| {
                if *ends > now { return true; }
                if !*died { finish(&mut s, a, *op, *started, *ends, !fails); }
                false
            });
            let due = due_runs(&s, now);
            let p = s.backup_policies["p"].clone();
            for a in &due {
                prop_assert!(!p.paused, "a paused policy ran");
                if let ScheduleAction::Backup { table, .. } = a {
                    let alive = running.iter().any(|(b, _, _, ends, died)| b == a && (!*died || now < *ends));
                    prop_assert!(!alive, "two runs of {table} at once");
                    let slot = last_slot_ms(&p, now).unwrap();
                    let last = started_slots.iter().rev().find(|(t, _, _)| t == table);
                    if let Some((_, prev_slot, prev_died)) = last {
                        prop_assert!(*prev_died || slot > *prev_slot, "slot {slot} of {table} ran twice");
                    }
                    prop_assert!(slot > p.created_at_ms || last.is_some_and(|l| l.2), "ran before its first slot");
                    // A run that dies keeps no lease past its end.
                    let lease = if dies { len_min * MIN } else { 1000 * DAY };
                    let op = start(&mut s, a, now, lease);
                    running.push((a.clone(), op, now, now + len_min * MIN, dies));
                    started_slots.push((table.clone(), slot, dies));
                } else {
                    prop_assert!(running.is_empty() || running.iter().all(|r| r.4 && r.3 <= now));
                    let op = start(&mut s, a, now, 1000 * DAY);
                    running.push((a.clone(), op, now, now + len_min * MIN, false));
                }
            }
            // Liveness: idle, not paused, a new slot reached → both tables are due.
            let p = s.backup_policies["p"].clone();
            let idle = s.live_backup_ops(&p.target.key(), now).is_empty();
            let slot = last_slot_ms(&p, now).unwrap();
            if idle && !p.paused && slot > p.created_at_ms {
                for table in ["orders", "users"] {
                    let covered = started_slots.iter().any(|(t, sl, _)| t == table && *sl == slot);
                    prop_assert!(covered || due.contains(&backup(table)), "slot {slot} of {table} missed");
                }
            }
        }
    }
}

#[test]
fn slots_without_a_start_time_are_aligned_to_the_policys_creation() {
    let s = state(3600, None, 7 * MIN);
    let p = &s.backup_policies["p"];
    assert_eq!(last_slot_ms(p, 7 * MIN), Some(7 * MIN));
    assert_eq!(next_due_ms(p, None, 7 * MIN), 67 * MIN, "not at once: one interval after it was added");
    assert_eq!(last_slot_ms(p, 5 * HOUR + 59 * MIN), Some(5 * HOUR + 7 * MIN));
    let s = state(3600, None, 0);
    let p = &s.backup_policies["p"];
    let run = BackupRunRecord {
        started_ms: 5 * HOUR,
        ended_ms: None,
        backup_id: None,
        outcome: RunOutcome::Succeeded,
        summary: String::new(),
    };
    assert_eq!(next_due_ms(p, Some(&run), 5 * HOUR + MIN), 6 * HOUR);
}
