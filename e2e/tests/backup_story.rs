//! The backup user story on `tern up` (issue #25, "done when"), with the real binary: `tern up`
//! starts a local S3 server (s3s-fs) with a bucket and writes `backup.env`; records are written
//! (many hash keys, some with TTLs); `tern backup now` with only that env file for a target;
//! the AWS CLI lists the backup; the table is dropped and restored under a new name at twice the
//! partition count, and every record comes back with its value and whether it has a TTL;
//! `tern backup verify` is clean; one object damaged through the S3 API makes `verify` exit 3
//! naming it and a restore into another table fail naming it; `tern down` leaves no process, the
//! S3 server included. A drop guard runs `tern down` if the test fails half-way.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tern_backup::model::{BackupId, file_key, load_manifest};
use tern_backup::{ObjectStore, PutBody, S3Config, S3ObjectStore, S3Target, Transfer};
use tern_client::{ClientOptions, TernClient};
use tern_core::read::{ReadOp, ReadResult, Ttl};
use tern_e2e::binary::tern_bin;
use tern_e2e::mixed::dump;
use tern_e2e::process::{CliOutput, DownOnDrop, alive};
use tern_e2e::workload::set_op;
use tern_topology::local::{ProcessRole, State};

const PARTITIONS: u32 = 4;
const HASH_KEYS: u64 = 600;
const SORT_KEYS: u64 = 5;

/// The variables of `<dir>/backup.env` (what `set -a; . backup.env` exports).
fn env_file(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("backup.env")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not VAR=value: {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `tern ARGS` with `env` added to a clean backup environment (no ambient AWS settings).
async fn tern(args: &[&str], env: &[(String, String)]) -> CliOutput {
    let mut cmd = tokio::process::Command::new(tern_bin());
    cmd.args(args).kill_on_drop(true);
    for k in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "TERN_BACKUP_TARGET",
        "TERN_BACKUP_ENDPOINT",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("tern {} did not finish within 300 s", args.join(" ")))
        .unwrap();
    let out = CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("e2e: tern {} -> exit {}\n{}{}", args.join(" "), out.code, out.stdout, out.stderr);
    out
}

fn var<'a>(env: &'a [(String, String)], k: &str) -> &'a str {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("{k} in {env:?}"))
}

/// `aws --endpoint-url … s3 ls --recursive s3://tern-backups/` with the env file's keys.
async fn aws_ls(env: &[(String, String)]) -> String {
    let out = tokio::process::Command::new("aws")
        .args([
            "--endpoint-url",
            var(env, "TERN_BACKUP_ENDPOINT"),
            "s3",
            "ls",
            "--recursive",
            "s3://tern-backups/",
        ])
        .env("AWS_ACCESS_KEY_ID", var(env, "AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", var(env, "AWS_SECRET_ACCESS_KEY"))
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

/// Record `(h, s)`: its value, and its TTL (every seventh hash key has one, a day ahead).
fn record(h: u64, s: u64) -> (String, String, String, u32) {
    let ttl = if h % 7 == 3 { 86_400 } else { 0 };
    (
        format!("user:{h:05}"),
        format!("field-{s}"),
        format!("value-{h}-{s}-{}", "v".repeat((h % 5) as usize * 20)),
        ttl,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_backup_list_drop_restore_verify_and_damage_are_one_user_story() {
    let s3s_fs = tern_backup::local_s3::find_s3s_fs().unwrap_or_else(|| {
        panic!("s3s-fs is not installed (tern up would fall back to a directory): run scripts/install-test-deps.sh")
    });
    eprintln!("e2e: s3s-fs at {}", s3s_fs.display());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("local");
    let d = dir.to_str().unwrap();
    let _down = DownOnDrop(dir.clone());

    // 1. tern up: one cluster, an S3 server, a bucket, backup.env.
    let parts = PARTITIONS.to_string();
    let out = tern(
        &["up", "--detach", "--dir", d, "--clusters", "1", "--partitions", &parts, "--wait", "120s"],
        &[],
    )
    .await
    .ok();
    let state = State::read(&dir).unwrap();
    let s3_addr = state.s3.clone().expect("tern up started an S3 server");
    let endpoint = format!("http://{s3_addr}");
    assert!(out.stdout.contains(&format!("--endpoint {endpoint}")), "the banner: {out:?}");
    assert!(
        out.stdout.contains(&format!("aws --endpoint-url {endpoint} s3 ls --recursive s3://tern-backups/"))
    );
    let env = env_file(&dir);
    assert_eq!(var(&env, "TERN_BACKUP_TARGET"), "s3://tern-backups/local");
    assert_eq!(var(&env, "TERN_BACKUP_ENDPOINT"), endpoint);
    let meta = state.clusters[0].meta_addrs().join(",");
    let ps = tern(&["--output", "json", "ps", "--dir", d], &[]).await.ok().json();
    let s3 = ps.as_array().unwrap().iter().find(|p| p["role"] == "s3").unwrap_or_else(|| panic!("{ps}"));
    assert_eq!((s3["alive"].as_bool(), s3["addr"].as_str()), (Some(true), Some(s3_addr.as_str())));
    assert!(Path::new(s3["log"].as_str().unwrap()).starts_with(dir.join("logs")), "{s3}");

    // 2. Records over many hash keys, some with a TTL, through the client library.
    let client = Arc::new(TernClient::new(ClientOptions::new(state.clusters[0].meta_addrs())).unwrap());
    let mut expected = BTreeMap::new();
    let mut ttl_keys = BTreeMap::new();
    let mut writes = tokio::task::JoinSet::new();
    for h in 0..HASH_KEYS {
        let client = client.clone();
        writes.spawn(async move {
            let mut done = vec![];
            for s in 0..SORT_KEYS {
                let (hk, sk, v, ttl) = record(h, s);
                client.write("demo", set_op(hk.clone(), sk.clone(), v.clone(), ttl)).await.unwrap();
                done.push((hk, sk, v, ttl));
            }
            done
        });
        while writes.len() >= 32 {
            for (hk, sk, v, ttl) in writes.join_next().await.unwrap().unwrap() {
                ttl_keys.insert((hk.clone().into_bytes(), sk.clone().into_bytes()), ttl > 0);
                expected.insert((hk.into_bytes(), sk.into_bytes()), v.into_bytes());
            }
        }
    }
    while let Some(done) = writes.join_next().await {
        for (hk, sk, v, ttl) in done.unwrap() {
            ttl_keys.insert((hk.clone().into_bytes(), sk.clone().into_bytes()), ttl > 0);
            expected.insert((hk.into_bytes(), sk.into_bytes()), v.into_bytes());
        }
    }
    assert_eq!(expected.len() as u64, HASH_KEYS * SORT_KEYS);
    assert_eq!(dump(&client, "demo").await.unwrap(), expected, "the table before the backup");

    // 3. A backup, its target from backup.env alone.
    let now =
        tern(&["backup", "now", "--table", "demo", "--meta", &meta, "--output", "json"], &env).await.ok();
    let id: BackupId = now.json()["backup_id"].as_str().unwrap().parse().unwrap();

    // 4. The AWS CLI lists it as plain objects.
    let listing = aws_ls(&env).await;
    assert!(listing.contains(&format!("local/backups/{id}/manifest.json")), "{listing}");
    assert!(listing.contains("local/files/"), "{listing}");

    // 5. Drop the table; restore it under a new name at twice the partitions.
    tern(&["table", "drop", "demo", "--yes", "--meta", &meta], &[]).await.ok();
    let double = (2 * PARTITIONS).to_string();
    let restored = tern(
        &["backup", "restore", id.as_str(), "--table", "demo2", "--partitions", &double, "--meta", &meta],
        &env,
    )
    .await
    .ok();
    assert!(restored.stdout.contains(&format!("restored backup {id} into table demo2")), "{restored:?}");
    let route = client.route("demo2", true).await.unwrap();
    assert_eq!(route.partitions, 2 * PARTITIONS, "the restored table's partitions");

    // 6. Every record back: values, and which ones have a TTL.
    assert_eq!(dump(&client, "demo2").await.unwrap(), expected, "every record restored");
    let mut ttls = tokio::task::JoinSet::new();
    for ((h, s), has_ttl) in ttl_keys.iter() {
        let (client, h, s, has_ttl) = (client.clone(), h.clone(), s.clone(), *has_ttl);
        ttls.spawn(async move {
            let got =
                client.read("demo2", ReadOp::Ttl { hash_key: h.clone(), sort_key: s.clone() }).await.unwrap();
            let ok = match got {
                ReadResult::Ttl(Some(Ttl::Remaining(secs))) => has_ttl && secs <= 86_400,
                ReadResult::Ttl(Some(Ttl::Persistent)) => !has_ttl,
                _ => false,
            };
            (ok, String::from_utf8_lossy(&h).into_owned(), got)
        });
        while ttls.len() >= 32 {
            let (ok, h, got) = ttls.join_next().await.unwrap().unwrap();
            assert!(ok, "the TTL of {h}: {got:?}");
        }
    }
    while let Some(r) = ttls.join_next().await {
        let (ok, h, got) = r.unwrap();
        assert!(ok, "the TTL of {h}: {got:?}");
    }

    // 7. verify is clean; then one object damaged through the S3 API.
    let clean = tern(&["backup", "verify", id.as_str(), "--deep"], &env).await;
    assert_eq!(clean.code, 0, "{clean:?}");
    let target = S3Target::parse(var(&env, "TERN_BACKUP_TARGET")).unwrap();
    let mut config = S3Config::for_endpoint(
        target,
        &endpoint,
        var(&env, "AWS_ACCESS_KEY_ID"),
        var(&env, "AWS_SECRET_ACCESS_KEY"),
    );
    config.region = Some("us-east-1".into());
    let store = S3ObjectStore::new(config).await.unwrap();
    let manifest = load_manifest(&store, &id).await.unwrap();
    let victim =
        manifest.partitions.iter().flat_map(|p| &p.files).max_by_key(|f| f.size_bytes).unwrap().clone();
    let key = file_key(&victim.sha256);
    let mut bad = store.get(&key, None).await.unwrap().to_vec();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    store.put(&key, PutBody::Bytes(Bytes::from(bad)), &Transfer::none()).await.unwrap();
    let damaged = tern(&["backup", "verify", id.as_str(), "--deep"], &env).await;
    assert_eq!(damaged.code, 3, "damage exits 3: {damaged:?}");
    assert!(damaged.stdout.contains(&key), "the damaged object is named: {damaged:?}");
    let failed = tern(&["backup", "restore", id.as_str(), "--table", "demo3", "--meta", &meta], &env).await;
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(failed.stderr.contains(&key), "the restore names the damaged object: {failed:?}");

    // 8. down: no process left, the S3 server included.
    let pids: Vec<u32> = state.processes.iter().map(|p| p.pid).collect();
    assert!(state.processes.iter().any(|p| p.role == ProcessRole::S3), "{:?}", state.processes);
    let out = tern(&["down", "--dir", d], &[]).await.ok();
    assert!(out.stdout.contains(&format!("stopped {} processes", pids.len())), "{out:?}");
    let running: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(running.is_empty(), "tern down returns once every process is gone: {running:?} run");
    assert!(tokio::net::TcpStream::connect(&s3_addr).await.is_err(), "the S3 server still listens");
}
