use chrono::TimeZone;
use tern_core::{Ballot, Gpid};

use super::*;

fn id(secs: i64, table: &str, r: u32) -> BackupId {
    BackupId::new(chrono::Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap(), table, r).unwrap()
}

#[test]
fn the_newest_backup_of_the_table_is_chosen_and_a_named_one_must_be_of_it() {
    let ids = vec![id(10, "users", 1), id(30, "orders", 2), id(20, "users", 3)];
    assert_eq!(choose_backup("users", None, &ids, "s3://b/p").unwrap(), ids[2]);
    assert_eq!(choose_backup("users", Some(&ids[0]), &ids, "s3://b/p").unwrap(), ids[0]);
    let e = choose_backup("users", Some(&ids[1]), &ids, "s3://b/p").unwrap_err();
    assert!(matches!(e, SeedRefusal::OtherTable { .. }), "{e}");
    assert!(e.to_string().contains("is of table orders, not users"), "{e}");
    let e = choose_backup("carts", None, &ids, "s3://b/p").unwrap_err();
    assert_eq!(e, SeedRefusal::NoBackup { table: "carts".into(), target: "s3://b/p".into() });
    assert!(e.to_string().contains("--full-sync"), "{e}");
}

fn config(p: u32, members: &[u64]) -> PartitionConfig {
    PartitionConfig {
        gpid: Gpid::new(1, p),
        ballot: Ballot(3),
        primary: Some(NodeId(members[0])),
        secondaries: members[1..].iter().map(|n| NodeId(*n)).collect(),
    }
}

fn log(node: u64, p: u32, range: Option<(u64, u64)>, applied: u64, heard: bool) -> ReplicaLog {
    ReplicaLog { node: NodeId(node), partition: p, range, applied, link_confirmed: heard.then_some(0) }
}

#[test]
fn a_log_that_starts_after_the_backup_decree_refuses_naming_the_partition() {
    let configs = vec![config(0, &[1, 2]), config(1, &[2, 3])];
    let decrees = [100, 50];
    let mut logs = vec![
        log(1, 0, Some((90, 200)), 200, false),
        log(2, 0, Some((101, 200)), 200, false), // exactly the decree after: covers
        log(2, 1, Some((40, 80)), 80, false),
        log(3, 1, Some((52, 80)), 80, false), // 51 is gone
    ];
    let e = check_coverage("t", &decrees, &configs, &logs, false).unwrap_err();
    assert_eq!(
        e,
        SeedRefusal::LogGone { table: "t".into(), partition: 1, node: NodeId(3), log_start: 52, decree: 50 }
    );
    let text = e.to_string();
    assert!(
        text.contains("partition 1") && text.contains("starts at decree 52") && text.contains("decree 50")
    );
    assert!(text.contains("fresh backup") && text.contains("--full-sync"), "{text}");

    logs[3].range = Some((51, 80));
    assert_eq!(check_coverage("t", &decrees, &configs, &logs, false), Ok(Coverage::Covered));
}

#[test]
fn an_empty_log_covers_only_at_the_backup_decree_and_a_replica_behind_the_backup_refuses() {
    let configs = vec![config(0, &[1])];
    let covered = check_coverage("t", &[7], &configs, &[log(1, 0, None, 7, false)], false);
    assert_eq!(covered, Ok(Coverage::Covered));
    let gone = check_coverage("t", &[7], &configs, &[log(1, 0, None, 9, false)], false).unwrap_err();
    assert!(matches!(gone, SeedRefusal::LogGone { log_start: 10, decree: 7, .. }), "{gone}");
    let behind =
        check_coverage("t", &[7], &configs, &[log(1, 0, Some((1, 5)), 5, false)], false).unwrap_err();
    assert!(matches!(behind, SeedRefusal::BehindBackup { applied: 5, decree: 7, .. }), "{behind}");
    // A secondary behind is catching up: wait for it.
    let two = vec![config(0, &[1, 2])];
    let logs = [log(1, 0, Some((1, 9)), 9, false), log(2, 0, Some((1, 5)), 5, false)];
    let w = check_coverage("t", &[7], &two, &logs, false).unwrap();
    assert!(matches!(w, Coverage::Waiting { node: Some(NodeId(2)), .. }), "{w:?}");
}

#[test]
fn coverage_waits_for_every_member_and_with_a_link_until_each_has_heard_it() {
    let configs = vec![config(0, &[1, 2])];
    let one = [log(1, 0, Some((1, 9)), 9, true)];
    let w = check_coverage("t", &[5], &configs, &one, false).unwrap();
    assert_eq!(
        w,
        Coverage::Waiting { partition: 0, node: Some(NodeId(2)), why: "no report from the replica" }
    );
    let both = [log(1, 0, Some((1, 9)), 9, true), log(2, 0, Some((3, 9)), 9, false)];
    assert_eq!(check_coverage("t", &[5], &configs, &both, false), Ok(Coverage::Covered));
    let w = check_coverage("t", &[5], &configs, &both, true).unwrap();
    assert!(matches!(w, Coverage::Waiting { node: Some(NodeId(2)), .. }), "{w:?}");
    let heard = [log(1, 0, Some((1, 9)), 9, true), log(2, 0, Some((3, 9)), 9, true)];
    assert_eq!(check_coverage("t", &[5], &configs, &heard, true), Ok(Coverage::Covered));
    let none = check_coverage("t", &[5, 5], &configs, &heard, false).unwrap();
    assert!(matches!(none, Coverage::Waiting { partition: 1, node: None, .. }), "{none:?}");
}

fn seeded(status: LinkStatus, backup: &str) -> ExistingLink {
    ExistingLink { id: 4, status, seed_backup: Some(backup.into()) }
}

#[test]
fn a_rerun_takes_only_the_steps_left_in_order() {
    use Step::*;
    let restoring = RemoteTable::Restoring { backup: "B".into() };
    let all = steps("t", "r", "B", None, &RemoteTable::Absent).unwrap();
    assert_eq!(all, vec![CheckLog, CreateRemoteTable, AddLink, ConfirmHold, Restore, StartShipping]);
    // Interrupted after the table was created, before the link.
    let s = steps("t", "r", "B", None, &restoring).unwrap();
    assert_eq!(s, vec![CheckLog, AddLink, ConfirmHold, Restore, StartShipping]);
    // Interrupted during the restore: the link holds the log; the restore resumes.
    let s = steps("t", "r", "B", Some(&seeded(LinkStatus::Paused, "B")), &restoring).unwrap();
    assert_eq!(s, vec![ConfirmHold, Restore, StartShipping]);
    // Interrupted after the restore, before shipping.
    let s = steps("t", "r", "B", Some(&seeded(LinkStatus::Paused, "B")), &RemoteTable::Serving).unwrap();
    assert_eq!(s, vec![ConfirmHold, StartShipping]);
    // Done already.
    assert_eq!(
        steps("t", "r", "B", Some(&seeded(LinkStatus::Shipping, "B")), &RemoteTable::Serving),
        Ok(vec![])
    );
}

#[test]
fn a_seed_refuses_a_serving_remote_table_another_restore_or_another_link() {
    let e = steps("t", "r", "B", None, &RemoteTable::Serving).unwrap_err();
    assert_eq!(e, SeedRefusal::RemoteServes { table: "r".into() });
    let other = RemoteTable::Restoring { backup: "A".into() };
    assert!(matches!(steps("t", "r", "B", None, &other), Err(SeedRefusal::RemoteRestoringOther { .. })));
    let plain = ExistingLink { id: 2, status: LinkStatus::Shipping, seed_backup: None };
    let e = steps("t", "r", "B", Some(&plain), &RemoteTable::Serving).unwrap_err();
    assert!(e.to_string().contains("already has link 2"), "{e}");
    let e = steps("t", "r", "B", Some(&seeded(LinkStatus::Paused, "A")), &RemoteTable::Serving).unwrap_err();
    assert!(e.to_string().contains("seeded from backup A"), "{e}");
    let e = steps("t", "r", "B", Some(&seeded(LinkStatus::Paused, "B")), &RemoteTable::Absent).unwrap_err();
    assert!(matches!(e, SeedRefusal::RemoteGone { link: 4, .. }), "{e}");
}
