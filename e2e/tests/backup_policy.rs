//! Backup policies end to end (docs/backup.md "Policies and scheduling"): a cluster and a real
//! S3-compatible server (s3s-fs); a policy added with `tern backup policy add` is run by the
//! meta leader on its schedule (a scheduled backup appears in `tern backup list`), retention
//! (keep the newest 1) deletes the older backup's manifest and the files only it used while the
//! kept backup's files all stay (verify passes), pause stops the runs, remove removes it.
//!
//! The meta server runs with the hidden test-only `--backup-min-interval 2s`, so a policy may
//! run every few seconds; the servers take the S3 keys from their environment, as documented.
//! Needs `s3s-fs`: `scripts/install-test-deps.sh`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use tern_backup::S3ObjectStore;
use tern_backup::model::{BackupId, list_backups, load_manifest, read_contents};
use tern_backup::testing::{S3Server, S3ServerKind};
use tern_e2e::wait::wait_until;
use tern_e2e::workload::write_batch;
use tern_e2e::{CliOutput, Cluster, ClusterOptions};

const BUCKET: &str = "tern-backups";
const PREFIX: &str = "policy";
const TABLE: &str = "users";
/// `S3Server`'s fixed keys: the servers get them from their environment (checked below).
const ACCESS_KEY: &str = "tern-test-access";
const SECRET_KEY: &str = "tern-test-secret-key";
const EVERY: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_backups_run_keep_the_newest_and_stop_when_paused_or_removed() {
    scenario().await;
}

async fn tern(cluster: &Cluster, args: &[&str]) -> CliOutput {
    cluster.cli(args).await
}

async fn backups(store: &S3ObjectStore) -> Vec<BackupId> {
    list_backups(store).await.unwrap()
}

/// The policy as `describe --output json` shows it.
async fn describe(cluster: &Cluster, meta: &str) -> serde_json::Value {
    tern(cluster, &["backup", "policy", "describe", "p", "--meta", meta, "--output", "json"])
        .await
        .ok()
        .json()
}

async fn scenario() {
    let server = S3Server::start(S3ServerKind::S3sFs).await.unwrap();
    assert_eq!((server.access_key_id.as_str(), server.secret_access_key.as_str()), (ACCESS_KEY, SECRET_KEY));
    server.create_bucket(BUCKET).await.unwrap();
    let store = S3ObjectStore::new(server.config(BUCKET, PREFIX).unwrap()).await.unwrap();
    let cluster = Cluster::start(ClusterOptions {
        metas: 1,
        replicas: 3,
        meta_args: vec!["--backup-min-interval".into(), "2s".into(), "--backup-tick".into(), "300ms".into()],
        // Credentials come from the servers' environment, never from a policy.
        env: [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec(),
        ..Default::default()
    })
    .await;
    cluster.create_table(TABLE, 4, 3).await;
    let client = cluster.client();
    write_batch(&client, TABLE, "first", 500).await.assert_no_fatal_errors();
    let meta = cluster.meta_arg();
    let target = format!("s3://{BUCKET}/{PREFIX}");
    let add = |extra: &'static [&'static str]| {
        let mut args =
            vec!["backup", "policy", "add", "p", "--target", &target, "--endpoint", server.endpoint()];
        args.extend(["--region", "us-east-1", "--meta", &meta]);
        args.extend_from_slice(extra);
        args
    };

    // Refusals name what is wrong.
    let r = tern(&cluster, &add(&["--table", "nope", "--every", "4s", "--keep-last", "1"])).await;
    assert!(r.code != 0 && r.stderr.contains("no table \"nope\""), "{r:?}");
    let r = tern(&cluster, &add(&["--table", TABLE, "--every", "1s", "--keep-last", "1"])).await;
    assert!(r.code != 0 && r.stderr.contains("under the minimum of 2s"), "{r:?}");
    let r = tern(&cluster, &add(&["--table", TABLE, "--every", "4s"])).await;
    assert!(r.code != 0 && r.stderr.contains("--keep-last and/or --max-age"), "{r:?}");

    // 1. The policy runs on its own: a scheduled backup appears in `tern backup list`.
    tern(&cluster, &add(&["--table", TABLE, "--every", "4s", "--keep-last", "1"])).await.ok();
    let r = tern(&cluster, &add(&["--table", TABLE, "--every", "4s", "--keep-last", "1"])).await;
    assert!(r.code != 0 && r.stderr.contains("exists already"), "{r:?}");
    let keys = ["--region", "us-east-1", "--access-key-id", ACCESS_KEY, "--secret-access-key", SECRET_KEY];
    let list_args = |output: &'static str| {
        let mut args =
            vec!["backup", "list", "--target", &target, "--endpoint", server.endpoint(), "--meta", &meta];
        args.extend(keys);
        args.extend(["--output", output]);
        args
    };
    let first: String =
        wait_until("a scheduled backup in `tern backup list`", Duration::from_secs(90), || async {
            let out = tern(&cluster, &list_args("json")).await;
            let j = if out.code == 0 { out.json() } else { return Err(format!("{out:?}")) };
            match j["backups"].as_array().and_then(|b| b.first()) {
                Some(b) => Ok(b["id"].as_str().unwrap().to_string()),
                None => Err(j.to_string()),
            }
        })
        .await;
    let first: BackupId = first.parse().unwrap();
    let first_manifest = load_manifest(&store, &first).await.unwrap();
    assert!(first_manifest.tool_version.contains("policy p"), "{}", first_manifest.tool_version);

    // 2. New data, a newer scheduled backup, and retention (keep 1) deletes the first.
    write_batch(&client, TABLE, "second", 500).await.assert_no_fatal_errors();
    wait_until("retention to delete the first backup", Duration::from_secs(120), || async {
        let ids = backups(&store).await;
        if !ids.contains(&first) && !ids.is_empty() { Ok(()) } else { Err(format!("{ids:?}")) }
    })
    .await;

    // 3. Pause: once nothing runs, nothing starts again.
    tern(&cluster, &["backup", "policy", "pause", "p", "--meta", &meta]).await.ok();
    wait_until("the paused policy's runs to end", Duration::from_secs(60), || async {
        let d = describe(&cluster, &meta).await;
        let idle = d["ops"].as_array().is_some_and(|o| o.is_empty())
            && d["runs"].as_array().unwrap().iter().all(|r| r["outcome"]["state"] != "running");
        if idle && d["policy"]["paused"] == true { Ok(()) } else { Err(d.to_string()) }
    })
    .await;
    // `tern backup list --meta` shows the policy's last run of the table.
    let text = tern(&cluster, &list_args("text")).await.ok().stdout;
    assert!(text.contains("policy p table users: succeeded"), "{text}");
    let kept = backups(&store).await;
    // Every kept backup is whole; nothing stored is unreferenced; the first backup's own
    // files went with it.
    let contents = read_contents(&store).await.unwrap();
    let referenced: BTreeSet<_> = contents.manifests.iter().flat_map(|m| m.checksums()).collect();
    for id in &kept {
        let id = id.to_string();
        let mut args = vec!["backup", "verify", &id, "--target", &target, "--endpoint", server.endpoint()];
        args.extend(keys);
        let v = tern(&cluster, &args).await;
        assert_eq!(v.code, 0, "{v:?}");
    }
    let only_first: Vec<_> =
        first_manifest.checksums().into_iter().filter(|c| !referenced.contains(c)).collect();
    assert!(
        !only_first.is_empty(),
        "the first backup had files of its own (its checkpoint's MANIFEST at least)"
    );
    for c in &only_first {
        assert!(!contents.stored_files.contains(c), "{c} of the deleted backup is still stored");
    }
    let unreferenced: Vec<_> = contents.stored_files.difference(&referenced).collect();
    assert!(unreferenced.is_empty() || !contents.pending.is_empty(), "unreferenced files: {unreferenced:?}");
    // The window of three intervals is what "nothing starts" can be observed over.
    tokio::time::sleep(EVERY * 3).await;
    assert_eq!(backups(&store).await, kept, "a paused policy ran");

    // 4. Remove: gone from the list, describe names it.
    tern(&cluster, &["backup", "policy", "remove", "p", "--yes", "--meta", &meta]).await.ok();
    let list =
        tern(&cluster, &["backup", "policy", "list", "--meta", &meta, "--output", "json"]).await.ok().json();
    assert_eq!(list["policies"].as_array().map(Vec::len), Some(0), "{list}");
    let r = tern(&cluster, &["backup", "policy", "describe", "p", "--meta", &meta]).await;
    assert!(r.code != 0 && r.stderr.contains("no backup policy \"p\""), "{r:?}");
}
