//! `tern dup add --seed-from-backup` end to end (issue #25 item 7; docs/backup.md, "Seeding a
//! duplication peer"): two real clusters and a real S3-compatible server (s3s-fs). The source
//! table is loaded and backed up; writers keep writing while the peer is seeded (the remote
//! table created from the backup at twice the partition count, the link shipping from each
//! partition's backup decree on). The peer must converge with the source (full scans, values
//! compared), and the scenario must be the one claimed: the restore carried the pre-backup
//! records (the link never ran a full sync and shipped far fewer puts than the table holds),
//! and the link records the backup it was seeded from. A re-run finds nothing left to do; the
//! clear refusals (no backup of the table, a remote table that exists, a backup of another
//! table) change nothing.
//!
//! Needs `s3s-fs`: `scripts/install-test-deps.sh`. The refusal when the source's log no longer
//! reaches back to the backup is unit-tested (`tern_restore::seed::plan`): log garbage
//! collection removes whole 64 MiB segments, which a test cannot make happen deterministically
//! in reasonable time.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tern_backup::S3ObjectStore;
use tern_backup::model::{BackupId, load_manifest};
use tern_backup::testing::{S3Server, S3ServerKind};
use tern_e2e::mixed::{dump, wait_identical};
use tern_e2e::process::run_cli;
use tern_e2e::workload::{set_op, write_batch};
use tern_e2e::{CliOutput, Cluster, ClusterOptions};

const BUCKET: &str = "tern-backups";
const PREFIX: &str = "seed";
const TABLE: &str = "t";
const PARTITIONS: u32 = 4;
const PRELOAD: usize = 3000;

fn target_args(server: &S3Server) -> Vec<String> {
    vec![
        "--target".into(),
        format!("s3://{BUCKET}/{PREFIX}"),
        "--endpoint".into(),
        server.endpoint().into(),
        "--region".into(),
        "us-east-1".into(),
        "--access-key-id".into(),
        server.access_key_id.clone(),
        "--secret-access-key".into(),
        server.secret_access_key.clone(),
    ]
}

/// `tern ARGS` with a longer budget than `Cluster::cli` (a seed restores a table).
async fn tern(args: &[String]) -> CliOutput {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_cli(&args, Duration::from_secs(180)).await
}

/// `tern --output json dup add --meta A --table T --to B --to-meta B' --seed-from-backup [ID] <target> EXTRA`.
fn seed_args(
    a: &Cluster,
    b: &Cluster,
    server: &S3Server,
    backup: Option<&str>,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> =
        ["--output", "json", "dup", "add", "--meta"].iter().map(|s| s.to_string()).collect();
    args.extend([a.meta_arg(), "--table".into(), TABLE.into(), "--to".into(), "dst".into()]);
    args.extend(["--to-meta".into(), b.meta_arg(), "--seed-from-backup".into()]);
    args.extend(backup.map(String::from));
    args.extend(target_args(server));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_seeded_from_a_backup_under_load_converges_with_only_later_writes_shipped() {
    let server = S3Server::start(S3ServerKind::S3sFs).await.unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    let (a, b) = tokio::join!(
        Cluster::start(ClusterOptions::named("src", 21)),
        Cluster::start(ClusterOptions::named("dst", 22))
    );
    a.create_table(TABLE, PARTITIONS, 3).await;
    let (ca, cb) = (a.client(), b.client());

    // Before any backup: refused, naming the table, nothing created.
    let none = tern(&seed_args(&a, &b, &server, None, &[])).await;
    assert_ne!(none.code, 0, "{none:?}");
    assert!(none.stderr.contains("no backup of table t"), "{none:?}");
    assert!(b.route(TABLE).await.is_err(), "a refused seed created the remote table");

    // The table loaded, then backed up.
    let pre = write_batch(&ca, TABLE, "pre", PRELOAD).await;
    pre.assert_no_fatal_errors();
    assert_eq!(pre.acked.len(), PRELOAD);
    let mut backup_now: Vec<String> = ["--output", "json", "backup", "now", "--table", TABLE, "--meta"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    backup_now.push(a.meta_arg());
    backup_now.extend(target_args(&server));
    let taken = tern(&backup_now).await.ok().json();
    let id = taken["backup_id"].as_str().unwrap().to_string();
    let decrees: Vec<u64> =
        taken["decrees"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
    // Every partition's timetag range is recorded, from the checkpoint's records.
    let store = S3ObjectStore::new(server.config(BUCKET, PREFIX).unwrap()).await.unwrap();
    let manifest = load_manifest(&store, &id.parse::<BackupId>().unwrap()).await.unwrap();
    for p in &manifest.partitions {
        let range = p.timetags.unwrap_or_else(|| panic!("partition {} without a timetag range", p.index));
        assert!(range.min > 0 && range.min <= range.max, "partition {}: {range:?}", p.index);
    }

    // A dry run checks and lists the steps, and changes nothing.
    let dry = tern(&seed_args(&a, &b, &server, None, &["--dry-run"])).await.ok().json();
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["backup"], id.as_str(), "the newest backup of the table: {dry}");
    assert_eq!(
        dry["steps"],
        serde_json::json!([
            "check-log",
            "create-remote-table",
            "add-link",
            "confirm-hold",
            "restore",
            "start-shipping"
        ])
    );
    assert!(b.route(TABLE).await.is_err() && a.dup_links().await.is_empty(), "a dry run changed something");

    // A writer keeps writing through the whole seed, paced (at most 20 writes a second) so
    // that what ships is clearly fewer records than the preload the restore carries.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop) = (ca.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut attempted, mut acked) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let op = set_op(format!("during-{attempted:06}"), "s", format!("v{attempted}"), 0);
                attempted += 1;
                if client.write(TABLE, op).await.is_ok() {
                    acked += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (attempted, acked)
        })
    };
    let seeded =
        tern(&seed_args(&a, &b, &server, Some(&id), &["--remote-partitions", "8"])).await.ok().json();
    // Some more writes after the seed, then the writer stops.
    let key_after = "after-seed";
    a.kv(TABLE, &["set", key_after, "s", "1"]).await.ok();
    stop.store(true, Ordering::Relaxed);
    let (attempted, acked) = writer.await.unwrap();
    assert!(acked > 0 && acked + 20 >= attempted, "the writer wrote during the seed: {acked} of {attempted}");

    assert_eq!(seeded["backup"], id.as_str(), "{seeded}");
    assert_eq!(seeded["decrees"], serde_json::json!(decrees), "shipping starts after the backup's decrees");
    let restore = &seeded["restore"];
    assert_eq!(restore["partitions"], 8, "{seeded}");
    assert!(
        restore["records"].as_u64().unwrap() >= PRELOAD as u64,
        "the restore carried the preload: {seeded}"
    );

    // The peer converges with the source: every record, values compared.
    let n = wait_identical(&ca, &cb, TABLE, TABLE, Duration::from_secs(120)).await;
    assert!(n as u64 > PRELOAD as u64 + acked, "{n} records");

    // The scenario claimed: the link was seeded from the backup, never ran a full sync, started
    // at the backup's decrees, and shipped only what was written since (far fewer puts than
    // the table holds; the preload came with the restore).
    let links = a.dup_links().await;
    assert_eq!(links.len(), 1, "{links:?}");
    let link = links[0].link.clone().unwrap();
    assert_eq!(link.seed_backup, id, "{link:?}");
    assert!(link.started.iter().all(|s| *s));
    assert!(link.confirmed.iter().zip(&decrees).all(|(c, d)| c >= d), "{link:?} vs {decrees:?}");
    let parts = &links[0].partitions;
    let synced: u64 = parts.iter().map(|p| p.sync_records).sum();
    assert!(parts.iter().all(|p| !p.syncing) && synced == 0, "no full sync: {parts:?}");
    let shipped: u64 = parts.iter().map(|p| p.shipped_puts).sum();
    assert!(shipped > 0, "the writes made since the backup crossed the link: {parts:?}");
    assert!(
        shipped < PRELOAD as u64 && shipped <= 2 * (attempted + 1),
        "shipped {shipped} puts for a table of {n} records ({attempted} written during the seed): the preload must have come with the restore"
    );
    let pre_in_b = dump(&cb, TABLE).await.unwrap().keys().filter(|(h, _)| h.starts_with(b"pre-")).count();
    assert_eq!(pre_in_b, PRELOAD);

    // A re-run finds nothing left to do.
    let again = tern(&seed_args(&a, &b, &server, Some(&id), &[])).await.ok().json();
    assert_eq!(again["steps"], serde_json::json!([]), "{again}");

    // A remote table that exists (not restoring from this backup) is refused by name; so is a
    // backup of another table.
    b.create_table("other", 2, 3).await;
    let out = tern(&seed_args(&a, &b, &server, Some(&id), &["--remote-table", "other"])).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("remote table other exists"), "{out:?}");
    let wrong = id.replacen("-t-", "-x-", 1);
    let out = tern(&seed_args(&a, &b, &server, Some(&wrong), &["--remote-table", "fresh"])).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("is of table x, not t"), "{out:?}");
    assert_eq!(a.dup_links().await.len(), 1, "a refused seed added a link");
}
