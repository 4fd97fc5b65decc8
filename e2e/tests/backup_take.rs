//! `tern backup` through the real binary against a real S3-compatible server (s3s-fs, which
//! checks credentials): a backup taken under a concurrent write load has a manifest with
//! every partition at a decree, the AWS CLI lists it, a second backup after a few writes
//! uploads fewer files (skipping those stored), verify is clean and then names an object
//! damaged behind its back (exit 3); a missing bucket, wrong keys, an unreachable endpoint and
//! bad flags are clear errors with a non-zero exit.
//!
//! Needs `s3s-fs` and the AWS CLI: `scripts/install-test-deps.sh`.
#![allow(clippy::unwrap_used)]

use tern_backup::model::{BackupId, file_key, list_backups, load_manifest};
use tern_backup::testing::{S3Server, S3ServerKind};
use tern_backup::{ObjectStore, PutBody, S3ObjectStore, Transfer};
use tern_e2e::cluster::SETTLE;
use tern_e2e::workload::write_batch;
use tern_e2e::{CliOutput, Cluster, ClusterOptions, Writers};

const BUCKET: &str = "tern-backups";
const PREFIX: &str = "e2e";
const TABLE: &str = "users";
const PARTITIONS: u32 = 4;

/// `tern backup VERB --target s3://BUCKET/PREFIX --endpoint … --region … --access-key-id …
/// --secret-access-key …` with the given keys, then `extra`.
fn backup_args(server: &S3Server, verb: &str, bucket: &str, secret: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "backup".into(),
        verb.into(),
        "--target".into(),
        format!("s3://{bucket}/{PREFIX}"),
        "--endpoint".into(),
        server.endpoint().into(),
        "--region".into(),
        "us-east-1".into(),
        "--access-key-id".into(),
        server.access_key_id.clone(),
        "--secret-access-key".into(),
        secret.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn tern(cluster: &Cluster, args: &[String]) -> CliOutput {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cluster.cli(&args).await
}

async fn store(server: &S3Server) -> S3ObjectStore {
    S3ObjectStore::new(server.config(BUCKET, PREFIX).unwrap()).await.unwrap()
}

/// `aws --endpoint-url … s3 ls --recursive s3://BUCKET/PREFIX/` with the server's keys.
async fn aws_ls(server: &S3Server) -> String {
    let out = tokio::process::Command::new("aws")
        .args(["--endpoint-url", server.endpoint(), "s3", "ls", "--recursive"])
        .arg(format!("s3://{BUCKET}/{PREFIX}/"))
        .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_access_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("run the AWS CLI (`aws`): {e}; install it with scripts/install-test-deps.sh")
        });
    assert!(out.status.success(), "aws s3 ls failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count(j: &serde_json::Value, field: &str) -> u64 {
    j[field].as_u64().unwrap_or_else(|| panic!("{field} in {j}"))
}

/// No replica server keeps a backup checkpoint once the backup is over.
fn assert_no_local_checkpoints(cluster: &Cluster) {
    for p in cluster.replicas() {
        let dir = cluster.process(p).data_dir.join("backups");
        let left: Vec<_> =
            std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "backup checkpoints left on {p:?}: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_under_load_are_complete_incremental_listed_and_verified() {
    let server = S3Server::start(S3ServerKind::S3sFs).await.unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    let cluster = Cluster::start(ClusterOptions { metas: 1, replicas: 3, ..Default::default() }).await;
    cluster.create_table(TABLE, PARTITIONS, 3).await;
    let client = cluster.client();
    let seeded = write_batch(&client, TABLE, "seed", 2000).await;
    seeded.assert_no_fatal_errors();
    let meta = cluster.meta_arg();
    let secret = server.secret_access_key.clone();

    // 0. A secondary refuses to back up its partition, naming the partition and the primary.
    let route = cluster.route(TABLE).await.unwrap();
    let config = &route.partitions[0];
    let addr_of =
        |node: u64| route.addresses.iter().find(|a| a.node == node).map(|a| a.addr.clone()).unwrap();
    let secondary = addr_of(config.secondaries[0]);
    let mut rpc =
        tern_proto::pb::replica_backup_client::ReplicaBackupClient::connect(format!("http://{secondary}"))
            .await
            .unwrap();
    let refused = rpc
        .backup_partition(tern_proto::pb::BackupPartitionRequest {
            gpid: config.gpid,
            backup_id: "20261207T193000Z-users-00000001".into(),
            target: Some(tern_proto::pb::BackupTarget {
                url: format!("s3://{BUCKET}/{PREFIX}"),
                endpoint: server.endpoint().into(),
                region: "us-east-1".into(),
                access_key_id: server.access_key_id.clone(),
                secret_access_key: server.secret_access_key.clone(),
            }),
            limit_bytes_per_sec: 0,
        })
        .await;
    let message = match refused {
        Ok(resp) => match resp.into_inner().message().await {
            Err(status) => status.message().to_string(),
            Ok(m) => panic!("a secondary backed up its partition: {m:?}"),
        },
        Err(status) => status.message().to_string(),
    };
    let gpid = config.gpid.unwrap();
    let primary = addr_of(config.primary);
    assert!(
        message.contains("not its primary")
            && message.contains(&format!("{}.{}", gpid.table, gpid.partition))
            && message.contains(&primary),
        "{message}"
    );

    // 1. A backup while writers keep writing.
    let writers = Writers::start(client.clone(), TABLE, PARTITIONS, 4, "load");
    writers.wait_acks(&cluster, 0, 200, SETTLE).await;
    let out = tern(
        &cluster,
        &backup_args(
            &server,
            "now",
            BUCKET,
            &secret,
            &["--table", TABLE, "--meta", &meta, "--output", "json"],
        ),
    )
    .await
    .ok();
    let acks_during = writers.total_acks();
    let ledger = writers.stop().await;
    ledger.assert_no_fatal_errors();
    assert!(acks_during > 200, "writes went on during the backup");
    let first = out.json();
    let id1: BackupId = first["backup_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(first["table"], TABLE);
    assert_eq!(count(&first, "partitions"), u64::from(PARTITIONS));
    assert!(count(&first, "files_uploaded") > 0, "{first}");
    let decrees: Vec<u64> =
        first["decrees"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
    assert_eq!(decrees.len(), PARTITIONS as usize);
    assert!(decrees.iter().all(|d| *d > 0), "every partition at a decree with the seed writes: {decrees:?}");
    assert_no_local_checkpoints(&cluster);

    // The manifest is there, with every partition and its files.
    let s = store(&server).await;
    assert_eq!(list_backups(&s).await.unwrap(), vec![id1.clone()]);
    let m1 = load_manifest(&s, &id1).await.unwrap();
    assert_eq!(m1.partitions.len(), PARTITIONS as usize);
    for p in &m1.partitions {
        assert!(p.decree > 0 && !p.files.is_empty(), "partition {}: {p:?}", p.index);
        assert!(p.files.iter().any(|f| f.name == "CURRENT"), "a RocksDB checkpoint: {p:?}");
    }
    assert_eq!(m1.cluster, "e2e");
    assert!(
        s.list("backups/").await.unwrap().iter().all(|o| o.key.ends_with("manifest.json")),
        "no intent left"
    );

    // 2. The AWS CLI sees plain objects.
    let listing = aws_ls(&server).await;
    assert!(listing.contains(&format!("{PREFIX}/backups/{id1}/manifest.json")), "{listing}");
    assert!(listing.contains(&format!("{PREFIX}/files/")), "{listing}");

    // 3. A few writes, a second backup: the files already stored are skipped.
    write_batch(&client, TABLE, "more", 40).await.assert_no_fatal_errors();
    let second = tern(
        &cluster,
        &backup_args(
            &server,
            "now",
            BUCKET,
            &secret,
            &["--table", TABLE, "--meta", &meta, "--output", "json"],
        ),
    )
    .await
    .ok()
    .json();
    eprintln!("first backup: {first}\nsecond backup: {second}");
    let id2: BackupId = second["backup_id"].as_str().unwrap().parse().unwrap();
    assert!(count(&second, "files_skipped") > 0, "an incremental backup skips stored files: {second}");
    assert!(
        count(&second, "files_uploaded") < count(&first, "files_uploaded"),
        "fewer uploads than the first backup: {first} then {second}"
    );
    assert_no_local_checkpoints(&cluster);

    // list, describe.
    let listed = tern(&cluster, &backup_args(&server, "list", BUCKET, &secret, &["--output", "json"]))
        .await
        .ok()
        .json();
    let ids: Vec<&str> =
        listed["backups"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![id1.as_str(), id2.as_str()]);
    let described =
        tern(&cluster, &backup_args(&server, "describe", BUCKET, &secret, &[id2.as_str()])).await.ok();
    assert!(described.stdout.contains(&format!("partition {}", PARTITIONS - 1)), "{described:?}");

    // 4. verify: clean, then one object damaged behind the backup's back.
    let clean =
        tern(&cluster, &backup_args(&server, "verify", BUCKET, &secret, &[id2.as_str(), "--deep"])).await;
    assert_eq!(clean.code, 0, "{clean:?}");
    assert!(clean.stdout.contains("intact"), "{clean:?}");
    let m2 = load_manifest(&s, &id2).await.unwrap();
    let victim = m2.partitions[1].files.iter().max_by_key(|f| f.size_bytes).unwrap();
    let key = file_key(&victim.sha256);
    s.put(&key, PutBody::Bytes(b"not the file".to_vec().into()), &Transfer::none()).await.unwrap();
    for deep in [false, true] {
        let mut extra = vec![id2.as_str()];
        if deep {
            extra.push("--deep");
        }
        let damaged = tern(&cluster, &backup_args(&server, "verify", BUCKET, &secret, &extra)).await;
        assert_eq!(damaged.code, 3, "damage exits 3 (deep: {deep}): {damaged:?}");
        assert!(damaged.stdout.contains(&key), "the damaged object is named: {damaged:?}");
        assert!(damaged.stdout.contains(&victim.name), "and the file using it: {damaged:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_wrong_keys_an_unreachable_endpoint_and_bad_flags_are_clear_errors() {
    let server = S3Server::start(S3ServerKind::S3sFs).await.unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    // The target is opened and checked before the cluster is asked anything: no cluster needed.
    let cluster = Cluster::start(ClusterOptions { metas: 1, replicas: 1, ..Default::default() }).await;
    let meta = cluster.meta_arg();
    let secret = server.secret_access_key.clone();
    let now = ["--table", TABLE, "--meta", meta.as_str()];

    let missing = tern(&cluster, &backup_args(&server, "now", "no-such-bucket", &secret, &now)).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing.stderr.contains("no-such-bucket") && missing.stderr.contains("does not exist"),
        "{missing:?}"
    );

    for verb in ["now", "list"] {
        let extra: &[&str] = if verb == "now" { &now } else { &[] };
        let denied = tern(&cluster, &backup_args(&server, verb, BUCKET, "wrong-secret", extra)).await;
        assert_eq!(denied.code, 1, "{verb}: {denied:?}");
        assert!(denied.stderr.contains("access denied"), "{verb}: {denied:?}");
    }

    let closed = tern_e2e::ports::free_port();
    let mut args = backup_args(&server, "list", BUCKET, &secret, &[]);
    let at = args.iter().position(|a| a == "--endpoint").unwrap() + 1;
    args[at] = format!("http://127.0.0.1:{closed}");
    let unreachable = tern(&cluster, &args).await;
    assert_eq!(unreachable.code, 1, "{unreachable:?}");
    assert!(unreachable.stderr.contains("unreachable"), "{unreachable:?}");

    // A table that does not exist: named, and no backup is left behind.
    let no_table = tern(
        &cluster,
        &backup_args(&server, "now", BUCKET, &secret, &["--table", "nope", "--meta", meta.as_str()]),
    )
    .await;
    assert_eq!(no_table.code, 1, "{no_table:?}");
    assert!(no_table.stderr.contains("nope"), "{no_table:?}");
    assert!(store(&server).await.list("").await.unwrap().is_empty(), "nothing written for a missing table");

    // Bad flags name the flag.
    let relative = tern(
        &cluster,
        &["backup", "list", "--target", "relative/dir"].iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(relative.code, 1, "{relative:?}");
    assert!(relative.stderr.contains("--target"), "{relative:?}");
    let zero = tern(
        &cluster,
        &backup_args(&server, "now", BUCKET, &secret, &["--table", TABLE, "--limit-mbps", "0"]),
    )
    .await;
    assert_eq!(zero.code, 2, "{zero:?}");
    assert!(zero.stderr.contains("--limit-mbps"), "{zero:?}");
    let bad_id = tern(&cluster, &backup_args(&server, "verify", BUCKET, &secret, &["not-an-id"])).await;
    assert_eq!(bad_id.code, 1, "{bad_id:?}");
    assert!(bad_id.stderr.contains("not-an-id"), "{bad_id:?}");
    // `tern backup policy` without a verb lists its verbs (e2e_backup_policy runs them).
    let verbs = tern(&cluster, &["backup".to_string(), "policy".to_string()]).await;
    assert_eq!(verbs.code, 2, "{verbs:?}");
    assert!(verbs.stderr.contains("pause") && verbs.stderr.contains("remove"), "{verbs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_whose_primary_died_is_taken_again_on_its_new_primary() {
    let server = S3Server::start(S3ServerKind::S3sFs).await.unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    // A long grace: the meta server keeps routing to the dead primary for a while, so the
    // backup's first attempt at its partition surely hits it.
    let mut cluster =
        Cluster::start(ClusterOptions { metas: 1, replicas: 3, grace: "8s".into(), ..Default::default() })
            .await;
    cluster.create_table(TABLE, PARTITIONS, 3).await;
    write_batch(&cluster.client(), TABLE, "seed", 500).await.assert_no_fatal_errors();
    let victim = cluster.primary_of(TABLE, 0).await.unwrap();
    cluster.kill9(victim);

    let meta = cluster.meta_arg();
    let secret = server.secret_access_key.clone();
    let args = ["--table", TABLE, "--meta", meta.as_str(), "--attempts", "12", "--output", "json"];
    let out = tern(&cluster, &backup_args(&server, "now", BUCKET, &secret, &args)).await.ok().json();
    eprintln!("backup with a dead primary: {out}");
    assert!(count(&out, "retries") >= 1, "partition 0 was re-run: {out}");
    let id: BackupId = out["backup_id"].as_str().unwrap().parse().unwrap();
    let m = load_manifest(&store(&server).await, &id).await.unwrap();
    assert!(m.partitions.iter().all(|p| p.decree > 0 && !p.files.is_empty()), "{m:?}");
    let now_primary = cluster.primary_of(TABLE, 0).await;
    assert!(now_primary.is_some() && now_primary != Some(victim), "a new primary: {now_primary:?}");
    let verified = tern(&cluster, &backup_args(&server, "verify", BUCKET, &secret, &[id.as_str()])).await;
    assert_eq!(verified.code, 0, "{verified:?}");
}
