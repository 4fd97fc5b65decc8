#![allow(clippy::unwrap_used)]

use super::*;
use crate::testkit::*;

fn status(obs: &Observed) -> TableReport {
    let s = assess(obs, None, &StatusOptions::default());
    assert_eq!(s.tables.len(), 1, "{s:?}");
    assert_eq!(s.health, s.tables[0].health, "the report is as bad as its worst table");
    s.tables[0].clone()
}

fn said(t: &TableReport, health: Health, words: &str) {
    assert!(
        t.findings.iter().any(|f| f.health == health && f.what.contains(words)),
        "no {health:?} finding with {words:?}: {:#?}",
        t.findings
    );
    assert_eq!(t.health, t.findings.iter().map(|f| f.health).max().unwrap());
}

#[test]
fn a_shipping_pair_with_a_held_lease_is_healthy_and_reports_its_rpo() {
    let t = status(&healthy_pair());
    assert_eq!(t.health, Health::Healthy, "{:#?}", t.findings);
    assert_eq!(t.active.as_deref(), Some("dc1"));
    assert_eq!(t.epoch, Some(1));
    assert_eq!(t.standbys.len(), 1);
    let s = &t.standbys[0];
    assert_eq!(s.rpo_ms, Some(500), "worst partition: 0.2 s behind, measured 0.3 s ago");
    assert_eq!((s.decrees_behind, s.bytes_behind, s.measured_ms_ago), (2, 200, Some(300)));
    assert_eq!(Health::Healthy.exit_code(), 0);
}

#[test]
fn an_unreachable_active_cluster_is_unsafe_and_a_lost_standby_degraded() {
    let mut obs = healthy_pair();
    obs.clusters[0].unreachable = Some("connection refused".into());
    obs.clusters[0].tables.clear();
    let t = status(&obs);
    said(&t, Health::Unsafe, "no reachable copy is active");
    said(&t, Health::Degraded, "dc1 is unreachable (connection refused)");
    assert_eq!(t.health.exit_code(), 4);

    let mut obs = healthy_pair();
    obs.clusters[1].unreachable = Some("timed out".into());
    obs.clusters[1].tables.clear();
    let t = status(&obs);
    assert_eq!(t.health, Health::Degraded);
    said(&t, Health::Degraded, "dc2 is unreachable");
}

#[test]
fn two_actives_at_one_epoch_are_a_split_brain_and_an_older_one_waits_to_be_fenced() {
    let mut obs = healthy_pair();
    obs.clusters[1].tables = vec![table(DrRole::Active, 1)];
    let t = status(&obs);
    said(&t, Health::Unsafe, "split brain: copies in dc1 and dc2 are all active at epoch 1");
    assert_eq!(t.active, None);

    obs.clusters[1].tables = vec![table(DrRole::Active, 2)];
    obs.clusters[1].links = vec![link("dc1", LinkStatus::Shipping, &[(0.0, 100), (0.0, 100)])];
    let t = status(&obs);
    assert_eq!(t.active.as_deref(), Some("dc2"), "the highest epoch routes");
    said(&t, Health::Degraded, "dc1 is still active at epoch 1, below epoch 2");
    assert_eq!(t.standbys.len(), 1, "the old active copy is the new standby");
    assert_eq!(t.standbys[0].cluster, "dc1");
}

#[test]
fn an_active_copy_without_its_lease_is_unsafe_and_a_waived_or_unused_lease_degraded() {
    let mut obs = healthy_pair();
    obs.clusters[0].lease = Ok(lease(0));
    said(&status(&obs), Health::Unsafe, "refuses client writes (expired)");

    let mut l = lease(5_000);
    l.waiver = Some(("voters down".into(), 0));
    obs.clusters[0].lease = Ok(l);
    said(&status(&obs), Health::Degraded, "waived (voters down)");

    obs.clusters[0].lease = Ok(DrLeaseState { used: false, ..lease(0) });
    said(&status(&obs), Health::Degraded, "no DR voters");

    obs.clusters[0].lease = Err("UNAVAILABLE".into());
    said(&status(&obs), Health::Degraded, "unknown: UNAVAILABLE");
}

#[test]
fn a_standby_link_that_is_missing_paused_unknown_failing_or_far_behind_degrades() {
    let mut obs = healthy_pair();
    obs.clusters[0].links.clear();
    let t = status(&obs);
    said(&t, Health::Degraded, "no link from dc1 to dc2");
    assert_eq!(t.standbys[0].rpo_ms, None, "no link: the RPO is unknown, never 0");

    let mut obs = healthy_pair();
    obs.clusters[0].links[0].link.status = LinkStatus::Paused;
    said(&status(&obs), Health::Degraded, "paused");

    let mut obs = healthy_pair();
    obs.clusters[0].links[0].partitions[1].lag_unknown = Some("the shipper is not running".into());
    let t = status(&obs);
    said(&t, Health::Degraded, "unknown: partition 1: the shipper is not running");
    assert_eq!(t.standbys[0].rpo_ms, None);

    let mut obs = healthy_pair();
    obs.clusters[0].links[0].partitions[0].seconds_behind = 30.0;
    said(&status(&obs), Health::Degraded, "dc2 is 30.3 s behind dc1");

    let mut obs = healthy_pair();
    obs.clusters[0].links[0].partitions[0].last_error =
        Some("CLOCK_AHEAD: its timetag is 3600000 ms ahead, more than the maximum clock offset".into());
    let t = status(&obs);
    said(&t, Health::Degraded, "1 partition(s) failing");
    said(&t, Health::Degraded, "clock offset: dc2 refuses dc1's writes");
}

#[test]
fn a_table_in_one_cluster_only_is_healthy_with_a_note_and_the_filter_picks_tables() {
    let mut obs = healthy_pair();
    obs.clusters[1].tables.clear();
    let t = status(&obs);
    assert_eq!(t.health, Health::Healthy);
    said(&t, Health::Healthy, "no standby copy");
    assert!(assess(&healthy_pair(), Some("nope"), &StatusOptions::default()).tables.is_empty());
    let mut obs = healthy_pair();
    obs.clusters[0].unreachable = Some("refused".into());
    let s = assess(&obs, Some("nope"), &StatusOptions::default());
    assert_eq!(s.health, Health::Unsafe, "it may be in the cluster that did not answer: {s:?}");
    assert_eq!(assess(&healthy_pair(), Some(T), &StatusOptions::default()).tables.len(), 1);
}

#[test]
fn clusters_that_do_not_answer_are_never_healthy_even_without_tables() {
    let mut obs = healthy_pair();
    for c in &mut obs.clusters {
        c.unreachable = Some("refused".into());
        c.tables.clear();
    }
    let s = assess(&obs, None, &StatusOptions::default());
    assert!(s.tables.is_empty());
    assert_eq!(s.health, Health::Unsafe, "nothing seen");
    obs.clusters[0].unreachable = None;
    assert_eq!(assess(&obs, None, &StatusOptions::default()).health, Health::Degraded);
}

#[test]
fn the_report_serializes_with_named_states() {
    let s = assess(&healthy_pair(), None, &StatusOptions::default());
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["health"], "healthy");
    assert_eq!(v["tables"][0]["copies"][0]["state"], "present");
    assert_eq!(v["tables"][0]["copies"][0]["role"], "active");
    assert_eq!(v["tables"][0]["standbys"][0]["rpo_ms"], 500);
}

fn policy(
    table: &str,
    outcome: tern_client::admin::backup_policy::PolicyRunOutcome,
    ended_ms: u64,
) -> tern_client::admin::backup_policy::PolicyStatus {
    use tern_client::admin::backup_policy::{BackupPolicy, PolicyRun, PolicyStatus, PolicyTargetInfo};
    PolicyStatus {
        policy: BackupPolicy {
            name: "hourly".into(),
            tables: vec![table.into()],
            target: PolicyTargetInfo { url: "s3://b/dc1".into(), endpoint: None, region: None },
            interval_secs: 3_600,
            start_minute: None,
            keep_last: Some(3),
            max_age_secs: None,
            limit_bytes_per_sec: None,
            paused: false,
            created_at_ms: 0,
        },
        runs: vec![PolicyRun {
            table: Some(table.into()),
            outcome,
            started_ms: Some(ended_ms.saturating_sub(10)),
            ended_ms: Some(ended_ms),
            backup_id: Some("20261208T000000Z-t-0000abcd".into()),
            summary: String::new(),
            next_due_ms: None,
            skipped: None,
        }],
        retention: None,
    }
}

#[test]
fn backups_of_the_active_cluster_are_reported_and_a_failed_or_late_one_degrades() {
    use tern_client::admin::backup_policy::PolicyRunOutcome;
    let mut obs = healthy_pair();
    let table = obs.clusters[0].tables[0].name.clone();
    // No policy: no row and no finding.
    let t = status(&obs);
    assert!(t.backups.is_empty());
    assert_eq!(t.health, Health::Healthy);

    // A recent backup: reported with its age, still healthy.
    obs.at_ms = 10_000_000;
    obs.clusters[0].backup_policies = vec![policy(&table, PolicyRunOutcome::Succeeded, 9_000_000)];
    let t = status(&obs);
    assert_eq!(t.health, Health::Healthy, "{:#?}", t.findings);
    assert_eq!(t.backups.len(), 1);
    assert_eq!(t.backups[0].newest_age_ms, Some(1_000_000));
    assert_eq!(t.backups[0].cluster, "dc1");

    // Older than two intervals: late.
    obs.at_ms = 9_000_000 + 7_300_000;
    let t = status(&obs);
    said(&t, Health::Degraded, "late");

    // The last run failed: degraded, naming the error.
    obs.clusters[0].backup_policies =
        vec![policy(&table, PolicyRunOutcome::Failed("no such bucket".into()), 9_000_000)];
    let t = status(&obs);
    said(&t, Health::Degraded, "no such bucket");
    assert_eq!(t.backups[0].newest_backup, None);

    // A policy that skips the table here (a standby copy) is not a row.
    let mut p = policy(&table, PolicyRunOutcome::Never, 0);
    p.runs[0].skipped = Some("standby here".into());
    obs.clusters[0].backup_policies = vec![p];
    assert!(status(&obs).backups.is_empty());
}
