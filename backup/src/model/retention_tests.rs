use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::model::manifest::{FileEntry, MANIFEST_FORMAT_VERSION, PartitionManifest, TableSchema};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("valid time")
}

fn sum(n: u8) -> Checksum {
    Checksum::of(&[n])
}

/// A one-partition backup of `table`, `hours` after t0, referencing files `files`.
fn backup(table: &str, hours: i64, files: &[u8]) -> Manifest {
    let created_at = t0() + Duration::hours(hours);
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        backup_id: BackupId::new(created_at, table, hours as u32).expect("valid id"),
        cluster: "c".into(),
        table: TableSchema { name: table.into(), partition_count: 1, default_ttl_secs: None },
        partitions: vec![PartitionManifest {
            index: 0,
            decree: 1,
            timetags: None,
            files: files
                .iter()
                .map(|&f| FileEntry { name: format!("{f}.sst"), size_bytes: 1, sha256: sum(f) })
                .collect(),
        }],
        tool_version: "test".into(),
        created_at,
    }
}

fn ids(ms: &[&Manifest]) -> Vec<BackupId> {
    let mut v: Vec<_> = ms.iter().map(|m| m.backup_id.clone()).collect();
    v.sort();
    v
}

#[test]
fn a_scoped_run_deletes_only_its_tables_backups_and_keeps_files_others_use() {
    // Policy of table t (keep 1) on a target shared with table u's backups.
    let t1 = backup("t", 1, &[1, 2]);
    let t2 = backup("t", 2, &[2, 3]);
    let u1 = backup("u", 1, &[1, 4]);
    let u2 = backup("u", 2, &[5]);
    let manifests = [t1.clone(), t2.clone(), u1, u2];
    let stored: BTreeSet<_> = (1..=6).map(sum).collect(); // 6 is an orphan
    let input = RetentionInput { manifests: &manifests, stored_files: &stored, ..Default::default() };
    let policy = RetentionPolicy { keep_last: Some(1), max_age: None };
    let plan = plan_scoped_retention(&input, &policy, t0() + Duration::days(1), &|m| m.table.name == "t");
    assert_eq!(plan.delete_manifests, ids(&[&t1]), "u's older backup is not this policy's to delete");
    // File 1 is t1's but u1 still uses it; 6 is used by nobody.
    assert_eq!(plan.delete_files, vec![sum(6)]);
    // A restore reading t1 keeps it.
    let in_use: BTreeSet<_> = [t1.backup_id.clone()].into();
    let input = RetentionInput { in_use: &in_use, ..input };
    let plan = plan_scoped_retention(&input, &policy, t0() + Duration::days(1), &|m| m.table.name == "t");
    assert!(plan.delete_manifests.is_empty());
    let _ = t2;
}

#[test]
fn keep_last_deletes_older_backups_and_their_unshared_files() {
    let b1 = backup("t", 1, &[1, 2]);
    let b2 = backup("t", 2, &[2, 3]);
    let b3 = backup("t", 3, &[3, 4]);
    let manifests = [b1.clone(), b2.clone(), b3.clone()];
    let stored: BTreeSet<_> = (1..=5).map(sum).collect(); // 5 is an orphan
    let input = RetentionInput { manifests: &manifests, stored_files: &stored, ..Default::default() };
    let policy = RetentionPolicy { keep_last: Some(2), max_age: None };
    let plan = plan_retention(&input, &policy, t0() + Duration::days(1));
    assert_eq!(plan.delete_manifests, ids(&[&b1]));
    assert_eq!(
        plan.delete_files,
        vec![sum(1), sum(5)].into_iter().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>()
    );
}

#[test]
fn max_age_keeps_young_backups_and_always_the_newest() {
    let b1 = backup("t", 1, &[1]);
    let b2 = backup("t", 30, &[2]);
    let other = backup("u", 1, &[3]);
    let manifests = [b1.clone(), b2.clone(), other.clone()];
    let stored: BTreeSet<_> = (1..=3).map(sum).collect();
    let input = RetentionInput { manifests: &manifests, stored_files: &stored, ..Default::default() };
    let policy = RetentionPolicy { keep_last: None, max_age: Some(Duration::hours(24)) };
    // Now is 100 h after t0: everything is older than a day, but each table keeps its newest.
    let plan = plan_retention(&input, &policy, t0() + Duration::hours(100));
    assert_eq!(plan.delete_manifests, ids(&[&b1]));
    assert_eq!(plan.delete_files, vec![sum(1)]);

    // Both rules: kept if either keeps it.
    let policy = RetentionPolicy { keep_last: Some(1), max_age: Some(Duration::hours(80)) };
    let plan = plan_retention(&input, &policy, t0() + Duration::hours(60));
    assert!(plan.delete_manifests.is_empty(), "{plan:?}");
}

#[test]
fn running_operations_keep_what_they_need() {
    let old = backup("t", 1, &[1, 2]);
    let new = backup("t", 5, &[3]);
    // A restore reads `old`; a backup in progress has already found file 4 stored (and
    // will reference file 3); a dead backup's intent references file 5.
    let running = backup("t", 6, &[3, 4]);
    let dead = backup("t", 2, &[5]);
    let manifests = [old.clone(), new.clone()];
    let pending = [running.clone(), dead.clone()];
    let stored: BTreeSet<_> = (1..=6).map(sum).collect();
    let in_use: BTreeSet<_> = [old.backup_id.clone(), running.backup_id.clone()].into();
    let input =
        RetentionInput { manifests: &manifests, pending: &pending, stored_files: &stored, in_use: &in_use };
    let policy = RetentionPolicy { keep_last: Some(1), max_age: None };
    let plan = plan_retention(&input, &policy, t0() + Duration::days(30));
    assert!(plan.delete_manifests.is_empty(), "old is being restored: {plan:?}");
    assert_eq!(plan.delete_pending, vec![dead.backup_id.clone()]);
    assert_eq!(
        plan.delete_files,
        vec![sum(5), sum(6)].into_iter().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>()
    );
}

#[test]
fn no_policy_keeps_every_backup() {
    let manifests = [backup("t", 1, &[1]), backup("t", 2, &[2])];
    let stored: BTreeSet<_> = (1..=2).map(sum).collect();
    let input = RetentionInput { manifests: &manifests, stored_files: &stored, ..Default::default() };
    let plan = plan_retention(&input, &RetentionPolicy::default(), t0() + Duration::days(999));
    assert!(plan.is_empty(), "{plan:?}");
}

/// Manifests, intents, stored orphan files, which manifests and intents are in use, keep_last,
/// max_age in hours, now in hours.
type Case =
    (Vec<Manifest>, Vec<Manifest>, BTreeSet<Checksum>, Vec<bool>, Vec<bool>, Option<u32>, Option<i64>, i64);

fn arb_case() -> impl Strategy<Value = Case> {
    let backup_spec = (0..3usize, 0..200i64, proptest::collection::vec(0u8..24, 0..6));
    (
        proptest::collection::vec(backup_spec.clone(), 0..12),
        proptest::collection::vec(backup_spec, 0..4),
        proptest::collection::btree_set(0u8..30, 0..30),
        proptest::collection::vec(any::<bool>(), 12),
        proptest::collection::vec(any::<bool>(), 4),
        proptest::option::of(0u32..5),
        proptest::option::of(0i64..150),
        0i64..400,
    )
        .prop_map(|(ms, ps, stored, use_m, use_p, keep, age, now)| {
            let tables = ["a", "b", "c"];
            let make = |specs: Vec<(usize, i64, Vec<u8>)>, offset: u32| -> Vec<Manifest> {
                let mut seen = BTreeSet::new();
                specs
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, (t, h, mut files))| {
                        files.sort();
                        files.dedup();
                        let mut m = backup(tables[t], h, &files);
                        m.backup_id = BackupId::new(m.created_at, tables[t], offset + i as u32).ok()?;
                        seen.insert(m.backup_id.clone()).then_some(m)
                    })
                    .collect()
            };
            let manifests = make(ms, 0);
            let pending = make(ps, 1000);
            let stored = stored.into_iter().map(sum).collect();
            (manifests, pending, stored, use_m, use_p, keep, age, now)
        })
}

proptest! {
    /// Whatever the policy, no kept manifest loses a file, no running operation loses what it
    /// needs, each table keeps its newest backup, and only stored files are deleted.
    #[test]
    fn no_kept_manifest_or_running_operation_ever_loses_a_file(
        (manifests, pending, stored, use_m, use_p, keep, age, now) in arb_case()
    ) {
        let mut in_use = BTreeSet::new();
        for (m, u) in manifests.iter().zip(&use_m) {
            if *u { in_use.insert(m.backup_id.clone()); }
        }
        for (p, u) in pending.iter().zip(&use_p) {
            if *u { in_use.insert(p.backup_id.clone()); }
        }
        // Stored: what the manifests reference plus random orphans.
        let mut stored_files = stored;
        stored_files.extend(manifests.iter().flat_map(|m| m.checksums()));
        let input = RetentionInput {
            manifests: &manifests,
            pending: &pending,
            stored_files: &stored_files,
            in_use: &in_use,
        };
        let policy = RetentionPolicy { keep_last: keep, max_age: age.map(Duration::hours) };
        let plan = plan_retention(&input, &policy, t0() + Duration::hours(now));

        let deleted_m: BTreeSet<_> = plan.delete_manifests.iter().collect();
        let deleted_f: BTreeSet<_> = plan.delete_files.iter().collect();
        for m in &manifests {
            if deleted_m.contains(&m.backup_id) {
                prop_assert!(!in_use.contains(&m.backup_id), "deleted an in-use backup");
                continue;
            }
            for c in m.checksums() {
                prop_assert!(!deleted_f.contains(&c), "kept {} lost {c}", m.backup_id);
            }
        }
        for p in &pending {
            if in_use.contains(&p.backup_id) {
                for c in p.checksums() {
                    prop_assert!(!deleted_f.contains(&c), "running {} lost {c}", p.backup_id);
                }
            }
        }
        for f in &plan.delete_files {
            prop_assert!(stored_files.contains(f));
        }
        // Each table keeps its newest backup.
        let mut newest: BTreeMap<&str, &BackupId> = BTreeMap::new();
        for m in &manifests {
            let e = newest.entry(m.table.name.as_str()).or_insert(&m.backup_id);
            if m.backup_id > **e { *e = &m.backup_id; }
        }
        for id in newest.values() {
            prop_assert!(!deleted_m.contains(id), "deleted the newest backup {id}");
        }
    }
}
