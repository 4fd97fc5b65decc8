//! The S3 back end against real S3-compatible servers (s3s-fs and moto), started here on
//! 127.0.0.1 and killed when the test ends, also on failure.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use tern_backup::testing::{S3Factory, S3Server, S3ServerKind, pattern, run_conformance};
use tern_backup::{
    MultipartConfig, ObjectStore, RetryPolicy, S3Config, S3ObjectStore, S3Target, StaticCredentials, Transfer,
};

#[tokio::test]
async fn s3s_fs_passes_the_conformance_suite() -> anyhow::Result<()> {
    let server = S3Server::start(S3ServerKind::S3sFs).await?;
    run_conformance(&S3Factory::new(&server)).await
}

#[tokio::test]
async fn moto_passes_the_conformance_suite() -> anyhow::Result<()> {
    let server = S3Server::start(S3ServerKind::Moto).await?;
    run_conformance(&S3Factory::new(&server)).await
}

#[tokio::test]
async fn s3s_fs_errors_are_classified_and_named() -> anyhow::Result<()> {
    let server = S3Server::start(S3ServerKind::S3sFs).await?;
    missing_bucket_is_a_clear_permanent_error(&server).await?;
    wrong_credentials(&server).await
}

#[tokio::test]
async fn moto_errors_are_classified_and_named() -> anyhow::Result<()> {
    let server = S3Server::start(S3ServerKind::Moto).await?;
    missing_bucket_is_a_clear_permanent_error(&server).await?;
    wrong_credentials(&server).await
}

async fn missing_bucket_is_a_clear_permanent_error(server: &S3Server) -> anyhow::Result<()> {
    let mut config = server.config("no-such-bucket", "p")?;
    config.retry = RetryPolicy::NONE;
    let store = S3ObjectStore::new(config).await?;
    let err = store.check().await.expect_err("missing bucket");
    ensure!(err.code() == "NO_SUCH_BUCKET" && !err.retryable(), "check: {err}");
    let text = err.to_string();
    ensure!(text.contains("no-such-bucket") && text.contains(server.endpoint()), "{text}");

    let err = store.list("").await.expect_err("list of a missing bucket");
    ensure!(err.code() == "NO_SUCH_BUCKET", "list: {err}");
    // moto says NoSuchBucket to a get; s3s-fs 0.14 says NoSuchKey.
    let err = store.get("k", None).await.expect_err("get from a missing bucket");
    let want = match server.kind() {
        S3ServerKind::Moto => "NO_SUCH_BUCKET",
        S3ServerKind::S3sFs => "NOT_FOUND",
    };
    ensure!(err.code() == want && !err.retryable(), "get: {err}");

    // moto refuses a put into a missing bucket; s3s-fs 0.14 accepts it (it creates the
    // bucket's directory). Hence `check()` before a store is used.
    let put = store.put("k", "v".into(), &Transfer::none()).await;
    match server.kind() {
        S3ServerKind::Moto => {
            let err = put.err().context("put into a missing bucket")?;
            ensure!(err.code() == "NO_SUCH_BUCKET" && !err.retryable(), "put: {err}");
        }
        S3ServerKind::S3sFs => {
            put.context("s3s-fs accepts a put into a missing bucket")?;
        }
    }
    Ok(())
}

/// s3s-fs checks the access key and signature; moto's server accepts any credentials (it only
/// checks them in its opt-in IAM mode). The test pins what each does, so a change is noticed.
async fn wrong_credentials(server: &S3Server) -> anyhow::Result<()> {
    server.create_bucket("creds").await?;
    let mut config = server.config("creds", "")?;
    config.retry = RetryPolicy::NONE;
    for creds in [
        ("wrong-access-key", server.secret_access_key.as_str()),
        (server.access_key_id.as_str(), "wrong-secret"),
    ] {
        config.credentials = Some(StaticCredentials {
            access_key_id: creds.0.to_string(),
            secret_access_key: creds.1.to_string(),
            session_token: None,
        });
        let store = S3ObjectStore::new(config.clone()).await?;
        let put = store.put("k", "v".into(), &Transfer::none()).await;
        if server.enforces_credentials() {
            let err = put.err().with_context(|| format!("{creds:?} must be refused"))?;
            ensure!(err.code() == "ACCESS_DENIED" && !err.retryable(), "put: {err}");
            ensure!(err.to_string().contains(server.endpoint()), "names the endpoint: {err}");
            let err = store.check().await.err().context("check with wrong credentials")?;
            ensure!(err.code() == "ACCESS_DENIED", "check: {err}");
        } else {
            put.with_context(|| format!("{:?} accepts any credentials", server.kind()))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn unreachable_endpoint_is_retryable_and_named() -> anyhow::Result<()> {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut config = S3Config::for_endpoint(S3Target::parse("s3://bucket/p")?, &endpoint, "k", "s");
    config.retry = RetryPolicy::NONE;
    config.connect_timeout = Duration::from_secs(2);
    let store = S3ObjectStore::new(config).await?;
    for err in [
        store.check().await.err(),
        store.put("k", "v".into(), &Transfer::none()).await.err(),
        store.head("k").await.err(),
    ] {
        let err = err.context("an unreachable endpoint must fail")?;
        ensure!(err.code() == "UNREACHABLE" && err.retryable(), "{err}");
        ensure!(err.to_string().contains(&endpoint), "names the endpoint: {err}");
    }
    Ok(())
}

#[tokio::test]
async fn s3_config_refuses_parts_below_the_s3_minimum() -> anyhow::Result<()> {
    let mut config = S3Config::for_endpoint(S3Target::parse("s3://bucket")?, "http://127.0.0.1:1", "k", "s");
    config.multipart = MultipartConfig { threshold_bytes: 1024, part_size_bytes: 1024 };
    let err = S3ObjectStore::new(config).await.expect_err("tiny parts");
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    Ok(())
}

/// The layout is plain S3 objects: the AWS CLI lists and fetches what the store wrote,
/// including a multipart object.
#[tokio::test]
async fn aws_cli_lists_and_fetches_what_the_s3_store_wrote() -> anyhow::Result<()> {
    let server = S3Server::start(S3ServerKind::S3sFs).await?;
    server.create_bucket("cli").await?;
    let mut config = server.config("cli", "tern/prod")?;
    config.multipart = MultipartConfig { threshold_bytes: 5 << 20, part_size_bytes: 5 << 20 };
    let store = S3ObjectStore::new(config).await?;
    let small = pattern(1000, 9);
    let big = pattern((11 << 20) + 5, 10);
    store.put("files/small", small.clone().into(), &Transfer::none()).await?;
    let receipt = store.put("files/big", big.clone().into(), &Transfer::none()).await?;
    ensure!(receipt.parts == 3, "{receipt:?}");

    let aws = |args: &[&str]| {
        let mut c = tokio::process::Command::new("aws");
        c.arg("--endpoint-url")
            .arg(server.endpoint())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &server.secret_access_key)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .kill_on_drop(true);
        c
    };
    let run = |mut c: tokio::process::Command| async move {
        let out = tokio::time::timeout(Duration::from_secs(60), c.output())
            .await
            .context("aws CLI timed out")?
            .context("run the aws CLI (scripts/install-test-deps.sh installs it)")?;
        ensure!(out.status.success(), "aws CLI failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let listing = run(aws(&["s3", "ls", "--recursive", "s3://cli/tern/prod/"])).await?;
    ensure!(
        listing.contains("tern/prod/files/small") && listing.contains("tern/prod/files/big"),
        "aws s3 ls shows:\n{listing}"
    );
    ensure!(listing.contains(&big.len().to_string()), "sizes in:\n{listing}");

    let dir = tempfile::tempdir()?;
    for (key, body) in [("small", &small), ("big", &big)] {
        let dest = dir.path().join(key);
        let dest_arg = dest.to_string_lossy().into_owned();
        let src = format!("s3://cli/tern/prod/files/{key}");
        run(aws(&["s3", "cp", "--only-show-errors", &src, &dest_arg])).await?;
        ensure!(std::fs::read(&dest)? == body.as_ref(), "aws s3 cp of {key} differs");
    }
    Ok(())
}

/// The backup model over a real server: a backup, an incremental second one, deep verify,
/// and the objects where docs/backup.md says they are.
#[tokio::test]
async fn backups_on_s3s_fs_are_incremental_and_verify() -> anyhow::Result<()> {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};
    use tern_backup::model::{
        BackupId, BackupRequest, LocalFile, PartitionCheckpoint, TableSchema, Uploader, VerifyMode,
        list_backups, verify,
    };

    let server = S3Server::start(S3ServerKind::S3sFs).await?;
    server.create_bucket("backups").await?;
    let store = S3ObjectStore::new(server.config("backups", "cluster-a")?).await?;
    store.check().await?;
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    let dir = tempfile::tempdir()?;
    let mut ids = Vec::new();
    let mut uploaded = Vec::new();
    for (i, names) in [["1.sst", "2.sst"], ["1.sst", "3.sst"]].iter().enumerate() {
        let created_at = Utc.with_ymd_and_hms(2026, 12, 7, 10 + i as u32, 0, 0).single().context("time")?;
        let files = names
            .iter()
            .map(|n| {
                let path = dir.path().join(n);
                std::fs::write(&path, pattern(50_000, n.as_bytes()[0]))?;
                Ok(LocalFile { name: n.to_string(), path })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let req = BackupRequest {
            id: BackupId::new(created_at, "events", i as u32)?,
            cluster: "a".into(),
            table: TableSchema { name: "events".into(), partition_count: 1, default_ttl_secs: None },
            partitions: vec![PartitionCheckpoint { index: 0, decree: 7, timetags: None, files }],
            tool_version: "test".into(),
            created_at,
        };
        let summary = Uploader::new(store.clone()).run(&req).await?;
        uploaded.push(summary.files_uploaded);
        ids.push(req.id);
    }
    ensure!(uploaded == [2, 1], "second backup re-uploaded: {uploaded:?}");
    ensure!(list_backups(&*store).await? == ids, "listing");
    for id in &ids {
        let report = verify(&*store, id, VerifyMode::Deep, None).await?;
        ensure!(report.is_ok(), "{id}: {:?}", report.damaged);
    }
    let keys: Vec<_> = store.list("").await?.into_iter().map(|m| m.key).collect();
    ensure!(keys.iter().filter(|k| k.starts_with("files/")).count() == 3, "{keys:?}");
    ensure!(keys.iter().filter(|k| k.ends_with("/manifest.json")).count() == 2, "{keys:?}");
    ensure!(keys.len() == 5, "no intents left: {keys:?}");
    Ok(())
}
