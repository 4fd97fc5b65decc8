use super::*;
use crate::state::Command;

fn state() -> MetaState {
    let mut s = MetaState::default();
    s.apply(&Command::CreateTable { name: "users".into(), partitions: 2, replicas: 1 });
    s.apply(&Command::CreateTable { name: "orders".into(), partitions: 2, replicas: 1 });
    s
}

fn policy(name: &str) -> BackupPolicyRecord {
    BackupPolicyRecord {
        name: name.into(),
        tables: vec!["users".into()],
        target: PolicyTarget {
            url: "s3://b/tern".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: None,
        },
        interval_secs: 3600,
        start_minute: Some(90),
        keep_last: Some(7),
        max_age_secs: None,
        limit_bytes_per_sec: None,
        paused: false,
        created_at_ms: 1_000,
    }
}

fn refused(r: Response, needle: &str) {
    assert!(matches!(&r, Response::Refused(m) if m.contains(needle)), "{r:?} does not say {needle:?}");
}

fn op(kind: BackupOpKind, target: &str) -> NewBackupOp {
    NewBackupOp {
        kind,
        target: target.into(),
        table: Some("users".into()),
        backup_id: None,
        policy: None,
        holder: "meta 1".into(),
        lease_ms: 100,
    }
}

#[test]
fn policies_are_validated_with_errors_that_name_what_is_wrong() {
    let mut s = state();
    assert_eq!(s.apply(&Command::AddBackupPolicy { policy: policy("p") }), Response::Done);
    refused(s.apply(&Command::AddBackupPolicy { policy: policy("p") }), "\"p\" exists already");
    let unknown = BackupPolicyRecord { tables: vec!["nope".into()], ..policy("q") };
    refused(s.apply(&Command::AddBackupPolicy { policy: unknown }), "no table \"nope\"");
    let empty = BackupPolicyRecord { keep_last: None, max_age_secs: None, ..policy("q") };
    refused(s.apply(&Command::AddBackupPolicy { policy: empty }), "retention is empty");
    let no_tables = BackupPolicyRecord { tables: vec![], ..policy("q") };
    refused(s.apply(&Command::AddBackupPolicy { policy: no_tables }), "names no table");
    let late = BackupPolicyRecord { start_minute: Some(24 * 60), ..policy("q") };
    refused(s.apply(&Command::AddBackupPolicy { policy: late }), "23:59");
    assert_eq!(s.backup_policies.len(), 1);
}

#[test]
fn alter_pause_resume_and_remove_change_only_their_policy() {
    let mut s = state();
    s.apply(&Command::AddBackupPolicy { policy: policy("p") });
    let run = BackupRunRecord {
        started_ms: 5,
        ended_ms: Some(6),
        backup_id: Some("B".into()),
        outcome: RunOutcome::Succeeded,
        summary: String::new(),
    };
    let record =
        |t: &str| Command::RecordBackupRun { policy: "p".into(), table: Some(t.into()), run: run.clone() };
    s.apply(&record("users"));
    let altered = BackupPolicyRecord {
        tables: vec!["orders".into()],
        created_at_ms: 99,
        interval_secs: 60,
        ..policy("p")
    };
    assert_eq!(s.apply(&Command::AlterBackupPolicy { policy: altered }), Response::Done);
    let p = &s.backup_policies["p"];
    assert_eq!((p.interval_secs, p.created_at_ms, p.tables.clone()), (60, 1_000, vec!["orders".to_string()]));
    assert!(s.backup_runs["p"].tables.is_empty(), "runs of a table it no longer names are forgotten");
    refused(s.apply(&Command::AlterBackupPolicy { policy: policy("q") }), "no backup policy \"q\"");
    s.apply(&Command::SetBackupPolicyPaused { name: "p".into(), paused: true });
    assert!(s.backup_policies["p"].paused);
    s.apply(&Command::SetBackupPolicyPaused { name: "p".into(), paused: false });
    assert!(!s.backup_policies["p"].paused);
    refused(s.apply(&Command::SetBackupPolicyPaused { name: "q".into(), paused: true }), "\"q\"");
    s.apply(&record("orders"));
    assert_eq!(s.apply(&Command::RemoveBackupPolicy { name: "p".into() }), Response::Done);
    assert!(s.backup_policies.is_empty() && s.backup_runs.is_empty());
    refused(s.apply(&Command::RemoveBackupPolicy { name: "p".into() }), "no backup policy");
    refused(s.apply(&record("orders")), "no backup policy");
}

#[test]
fn retention_excludes_backups_and_restores_on_its_target_until_its_lease_ends() {
    let mut s = state();
    let begin = |s: &mut MetaState, kind, target: &str, now_ms| {
        s.apply(&Command::BeginBackupOp { op: op(kind, target), now_ms })
    };
    let Response::BackupOp(b1) = begin(&mut s, BackupOpKind::Backup, "T", 0) else { panic!() };
    // Backups and restores overlap each other; retention waits for them.
    assert!(matches!(begin(&mut s, BackupOpKind::Backup, "T", 0), Response::BackupOp(_)));
    assert!(matches!(begin(&mut s, BackupOpKind::Restore, "T", 0), Response::BackupOp(_)));
    refused(begin(&mut s, BackupOpKind::Retention, "T", 10), "in use on this target");
    // Another target is independent.
    assert!(matches!(begin(&mut s, BackupOpKind::Retention, "U", 10), Response::BackupOp(_)));
    refused(begin(&mut s, BackupOpKind::Backup, "U", 10), "Retention run");
    refused(begin(&mut s, BackupOpKind::Restore, "U", 10), "Retention run");
    // Renewing keeps b1 in use past its first lease; the others expire at 100.
    assert!(matches!(
        s.apply(&Command::RenewBackupOp { id: b1.id, backup_id: Some("B1".into()), now_ms: 90 }),
        Response::BackupOp(o) if o.lease_until_ms == 190 && o.op.backup_id.as_deref() == Some("B1")
    ));
    refused(begin(&mut s, BackupOpKind::Retention, "T", 150), "in use");
    assert_eq!(s.live_backup_ops("T", 150).len(), 1);
    s.apply(&Command::EndBackupOp { id: b1.id });
    let Response::BackupOp(r) = begin(&mut s, BackupOpKind::Retention, "T", 150) else { panic!() };
    // A crashed runner blocks nobody after its lease: its renewal is refused.
    assert!(matches!(begin(&mut s, BackupOpKind::Backup, "T", 250), Response::BackupOp(_)));
    refused(s.apply(&Command::RenewBackupOp { id: r.id, backup_id: None, now_ms: 260 }), "lease ended");
    assert!(!s.backup_ops.contains_key(&r.id), "expired operations are forgotten");
}

/// Backup policies (issue #25) are new: state without them reads as "none" and is written as
/// before (`golden_tests.rs` pins that); with them, their JSON is pinned here.
#[test]
fn backup_policy_state_and_commands_are_pinned() {
    let mut s = MetaState::default();
    s.apply(&Command::CreateTable { name: "users".into(), partitions: 2, replicas: 1 });
    let cmds = [
        (
            Command::AddBackupPolicy { policy: policy("p") },
            r#"{"AddBackupPolicy":{"policy":{"name":"p","tables":["users"],"target":{"url":"s3://b/tern","endpoint":"http://127.0.0.1:9000"},"interval_secs":3600,"start_minute":90,"keep_last":7,"paused":false,"created_at_ms":1000}}}"#,
        ),
        (
            Command::SetBackupPolicyPaused { name: "p".into(), paused: true },
            r#"{"SetBackupPolicyPaused":{"name":"p","paused":true}}"#,
        ),
        (
            Command::BeginBackupOp { op: op(BackupOpKind::Backup, "T"), now_ms: 7 },
            r#"{"BeginBackupOp":{"op":{"kind":"Backup","target":"T","table":"users","holder":"meta 1","lease_ms":100},"now_ms":7}}"#,
        ),
        (
            Command::RenewBackupOp { id: 1, backup_id: Some("B".into()), now_ms: 8 },
            r#"{"RenewBackupOp":{"id":1,"backup_id":"B","now_ms":8}}"#,
        ),
        (
            Command::RecordBackupRun {
                policy: "p".into(),
                table: Some("users".into()),
                run: BackupRunRecord {
                    started_ms: 7,
                    ended_ms: Some(9),
                    backup_id: Some("B".into()),
                    outcome: RunOutcome::Failed("no bucket".into()),
                    summary: String::new(),
                },
            },
            r#"{"RecordBackupRun":{"policy":"p","table":"users","run":{"started_ms":7,"ended_ms":9,"backup_id":"B","outcome":{"Failed":"no bucket"}}}}"#,
        ),
        (Command::EndBackupOp { id: 2 }, r#"{"EndBackupOp":{"id":2}}"#),
        (Command::RemoveBackupPolicy { name: "q".into() }, r#"{"RemoveBackupPolicy":{"name":"q"}}"#),
    ];
    for (cmd, golden) in cmds {
        assert_eq!(serde_json::to_string(&cmd).unwrap(), golden);
        assert_eq!(serde_json::from_str::<Command>(golden).unwrap(), cmd);
        s.apply(&cmd);
    }
    let json = serde_json::to_string(&s).unwrap();
    let tail = r#""backup_policies":{"p":{"name":"p","tables":["users"],"target":{"url":"s3://b/tern","endpoint":"http://127.0.0.1:9000"},"interval_secs":3600,"start_minute":90,"keep_last":7,"paused":true,"created_at_ms":1000}},"backup_runs":{"p":{"tables":{"users":{"started_ms":7,"ended_ms":9,"backup_id":"B","outcome":{"Failed":"no bucket"}}}}},"backup_ops":{"1":{"id":1,"op":{"kind":"Backup","target":"T","table":"users","backup_id":"B","holder":"meta 1","lease_ms":100},"started_ms":7,"lease_until_ms":108}},"next_backup_op":1}"#;
    assert!(json.ends_with(tail), "{json}");
    assert_eq!(serde_json::from_str::<MetaState>(&json).unwrap(), s);
}

#[test]
fn target_keys_ignore_a_trailing_slash_and_tell_endpoints_apart() {
    assert_eq!(target_key("s3://b/p/", Some("http://h:1/")), target_key("s3://b/p", Some("http://h:1")));
    assert_ne!(target_key("s3://b/p", Some("http://h:1")), target_key("s3://b/p", None));
}
