//! The backup model over the in-memory store (and a fault-injecting wrapper): incremental
//! upload, resume, verify, retention, bandwidth limit and progress.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tern_backup::model::{
    BackupId, BackupRequest, LocalFile, PartitionCheckpoint, Problem, RetentionInput, RetentionPolicy,
    TableSchema, UploadProgress, Uploader, VerifyMode, apply_retention, describe, file_key, list_backups,
    load_manifest, plan_retention, read_contents, verify,
};
use tern_backup::testing::pattern;
use tern_backup::{
    Fault, FaultyObjectStore, MemObjectStore, MultipartConfig, ObjectStore, Op, RateLimiter, RetryPolicy,
};

fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).single().expect("valid time") + Duration::hours(hours)
}

/// A two-partition checkpoint of files named in `files` (partition, name, contents seed, len).
fn request(dir: &Path, hours: i64, files: &[(u32, &str, u8, usize)]) -> anyhow::Result<BackupRequest> {
    let mut partitions: Vec<PartitionCheckpoint> = (0..2)
        .map(|index| PartitionCheckpoint {
            index,
            decree: 100 + hours as u64,
            timetags: None,
            files: Vec::new(),
        })
        .collect();
    for &(p, name, seed, len) in files {
        let path = dir.join(format!("p{p}-{name}-{seed}"));
        std::fs::write(&path, pattern(len, seed))?;
        partitions[p as usize].files.push(LocalFile { name: name.to_string(), path });
    }
    Ok(BackupRequest {
        id: BackupId::new(at(hours), "users", hours as u32)?,
        cluster: "eu-1".into(),
        table: TableSchema { name: "users".into(), partition_count: 2, default_ttl_secs: None },
        partitions,
        tool_version: "test".into(),
        created_at: at(hours),
    })
}

fn file_puts(store: &FaultyObjectStore) -> u64 {
    // Each run also puts its intent and its manifest.
    store.calls(Op::Put)
}

#[tokio::test]
async fn a_second_backup_uploads_only_new_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(FaultyObjectStore::new(Arc::new(MemObjectStore::new())));
    let uploader = Uploader::new(store.clone());

    let first =
        request(dir.path(), 1, &[(0, "1.sst", 1, 5000), (0, "2.sst", 2, 7000), (1, "3.sst", 3, 100)])?;
    let s = uploader.run(&first).await?;
    assert_eq!((s.files_uploaded, s.files_skipped), (3, 0));
    assert_eq!(file_puts(&store), 3 + 2);

    store.reset_calls();
    // Same 1.sst and 3.sst, new 4.sst; 2.sst compacted away.
    let second =
        request(dir.path(), 2, &[(0, "1.sst", 1, 5000), (0, "4.sst", 4, 9000), (1, "3.sst", 3, 100)])?;
    let s = uploader.run(&second).await?;
    assert_eq!((s.files_uploaded, s.files_skipped), (1, 2));
    assert_eq!((s.bytes_uploaded, s.bytes_skipped), (9000, 5100));
    assert_eq!(file_puts(&store), 1 + 2, "only the new file and the two metadata objects");

    assert_eq!(list_backups(&*store).await?, vec![first.id.clone(), second.id.clone()]);
    let d = describe(&*store, &second.id).await?;
    assert_eq!((d.file_count, d.distinct_files, d.total_bytes), (3, 3, 14_100));
    assert_eq!(d.manifest.partitions[0].decree, 102);
    assert!(
        store.list("backups/").await?.iter().all(|m| m.key.ends_with("manifest.json")),
        "intents removed"
    );
    Ok(())
}

#[tokio::test]
async fn an_interrupted_upload_is_no_backup_and_a_rerun_sends_only_what_is_missing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(FaultyObjectStore::new(Arc::new(MemObjectStore::new())));
    let req =
        request(dir.path(), 1, &[(0, "a", 1, 100), (0, "b", 2, 200), (1, "c", 3, 300), (1, "d", 4, 400)])?;
    // Puts: the intent, then files; the third file fails for good.
    store.inject(Fault::fail(false).on(Op::Put).on_key("files/").nth(3));
    let uploader = Uploader::new(store.clone()).with_retry(RetryPolicy::NONE);
    let err = uploader.run(&req).await.expect_err("interrupted");
    assert!(err.to_string().contains("files/"), "{err}");
    assert!(list_backups(&*store).await?.is_empty(), "a backup without a manifest does not exist");
    assert!(load_manifest(&*store, &req.id).await.err().is_some_and(|e| e.is_not_found()));

    store.heal();
    store.reset_calls();
    let s = uploader.run(&req).await?;
    assert_eq!((s.files_uploaded, s.files_skipped), (2, 2));
    assert_eq!(file_puts(&store), 2 + 2);
    assert_eq!(list_backups(&*store).await?, vec![req.id.clone()]);
    assert!(verify(&*store, &req.id, VerifyMode::Deep, None).await?.is_ok());

    // Running it once more changes nothing.
    store.reset_calls();
    let s = uploader.run(&req).await?;
    assert_eq!(s.files_uploaded, 0);
    assert_eq!(file_puts(&store), 0);
    Ok(())
}

#[tokio::test]
async fn retryable_faults_during_upload_are_retried() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(FaultyObjectStore::new(Arc::new(MemObjectStore::new())));
    store.inject(Fault::fail(true).on(Op::Put).on_key("files/").times(2));
    store.inject(Fault::fail(true).on(Op::Head).nth(2));
    let req = request(dir.path(), 1, &[(0, "a", 1, 100), (1, "b", 2, 200)])?;
    let uploader = Uploader::new(store.clone()).with_retry(RetryPolicy {
        max_attempts: 4,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(5),
    });
    uploader.run(&req).await?;
    assert!(verify(&*store, &req.id, VerifyMode::Deep, None).await?.is_ok());
    Ok(())
}

#[tokio::test]
async fn verify_names_missing_truncated_and_corrupt_objects() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mem = Arc::new(
        MemObjectStore::new()
            .with_multipart(MultipartConfig { threshold_bytes: 1000, part_size_bytes: 1000 }),
    );
    let req = request(dir.path(), 1, &[(0, "a.sst", 1, 2500), (0, "b.sst", 2, 300), (1, "c.sst", 3, 3000)])?;
    let m = Uploader::new(mem.clone()).run(&req).await?.manifest;
    let report = verify(&*mem, &req.id, VerifyMode::Deep, None).await?;
    assert!(report.is_ok(), "{:?}", report.damaged);
    assert_eq!(report.objects_checked, 3);
    assert_eq!(report.bytes_checked, 5800);

    let key = |name: &str| -> String {
        let f = m.files().find(|f| f.name == name).expect("file in manifest");
        file_key(&f.sha256)
    };
    // Missing, truncated (size differs), same size but one byte flipped.
    mem.delete(&key("a.sst")).await?;
    let b = mem.get(&key("b.sst"), None).await?;
    mem.overwrite_raw(&key("b.sst"), b.slice(..100));
    let mut c = mem.get(&key("c.sst"), None).await?.to_vec();
    c[2500] ^= 1;
    mem.overwrite_raw(&key("c.sst"), c.into());

    let shallow = verify(&*mem, &req.id, VerifyMode::Sizes, None).await?;
    assert_eq!(shallow.damaged.len(), 2, "sizes catch missing and truncated: {:?}", shallow.damaged);
    let deep = verify(&*mem, &req.id, VerifyMode::Deep, None).await?;
    assert_eq!(deep.damaged.len(), 3, "{:?}", deep.damaged);
    let text: Vec<String> = deep.damaged.iter().map(|d| d.to_string()).collect();
    for (name, problem) in
        [("a.sst", "missing"), ("b.sst", "100 bytes instead of 300"), ("c.sst", "content hashes to")]
    {
        let line = text
            .iter()
            .find(|t| t.contains(&key(name)))
            .unwrap_or_else(|| panic!("{name} not reported: {text:?}"));
        assert!(line.contains(problem) && line.contains(name), "{line}");
    }
    assert!(deep.damaged.iter().any(|d| d.problem == Problem::Missing));

    // A damaged manifest is an error naming it.
    mem.overwrite_raw(&format!("backups/{}/manifest.json", req.id), "{".into());
    let err = verify(&*mem, &req.id, VerifyMode::Sizes, None).await.expect_err("corrupt manifest");
    assert_eq!(err.code(), "CORRUPT");
    assert!(err.to_string().contains("manifest.json"), "{err}");
    Ok(())
}

#[tokio::test]
async fn retention_keeps_everything_the_kept_backups_need() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(MemObjectStore::new());
    let uploader = Uploader::new(store.clone());
    let mut ids = Vec::new();
    // Each backup shares one file with the previous and adds one.
    for h in 1..=4i64 {
        let seed = h as u8;
        let req = request(dir.path(), h, &[(0, "old.sst", seed, 1000), (1, "new.sst", seed + 1, 1000)])?;
        uploader.run(&req).await?;
        ids.push(req.id);
    }
    // A dead backup's intent and an orphan file from it.
    let dead = request(dir.path(), 5, &[(0, "x.sst", 99, 10)])?;
    let (dead_manifest, _) = Uploader::manifest_of(&dead).await?;
    store
        .put(
            &format!("backups/{}/pending.json", dead.id),
            dead_manifest.encode()?.into(),
            &Default::default(),
        )
        .await?;
    store
        .put(
            &file_key(&dead_manifest.partitions[0].files[0].sha256),
            pattern(10, 99).into(),
            &Default::default(),
        )
        .await?;

    let contents = read_contents(&*store).await?;
    assert_eq!(contents.manifests.len(), 4);
    assert_eq!(contents.pending.len(), 1);
    let in_use = BTreeSet::new();
    let input = RetentionInput {
        manifests: &contents.manifests,
        pending: &contents.pending,
        stored_files: &contents.stored_files,
        in_use: &in_use,
    };
    let policy = RetentionPolicy { keep_last: Some(2), max_age: None };
    let plan = plan_retention(&input, &policy, at(100));
    assert_eq!(plan.delete_manifests, ids[..2].to_vec());
    assert_eq!(plan.delete_pending, vec![dead.id.clone()]);
    // Files of backups 1 and 2 not shared with 3: seeds 1 and 2 and the orphan.
    assert_eq!(plan.delete_files.len(), 3, "{plan:?}");
    apply_retention(&*store, &plan).await?;

    assert_eq!(list_backups(&*store).await?, ids[2..].to_vec());
    for id in &ids[2..] {
        let r = verify(&*store, id, VerifyMode::Deep, None).await?;
        assert!(r.is_ok(), "{id}: {:?}", r.damaged);
    }
    assert_eq!(store.list("files/").await?.len(), 3);
    assert!(store.list("backups/").await?.iter().all(|m| !m.key.ends_with("pending.json")));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_bandwidth_limit_holds_and_progress_adds_up() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(
        MemObjectStore::new()
            .with_multipart(MultipartConfig { threshold_bytes: 64 << 10, part_size_bytes: 64 << 10 }),
    );
    let files: Vec<(u32, String, u8)> =
        (0..10u8).map(|i| (u32::from(i % 2), format!("{i}.sst"), i)).collect();
    let spec: Vec<(u32, &str, u8, usize)> =
        files.iter().map(|(p, n, s)| (*p, n.as_str(), *s, 1 << 20)).collect();
    let req = request(dir.path(), 1, &spec)?;

    let seen: Arc<Mutex<Vec<UploadProgress>>> = Arc::default();
    let sink = seen.clone();
    let rate = 1u64 << 20;
    let uploader = Uploader::new(store.clone())
        .with_limit(Arc::new(RateLimiter::new(rate, 64 << 10)))
        .with_progress(Arc::new(move |p: &UploadProgress| {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(*p);
        }));
    let start = tokio::time::Instant::now();
    let s = uploader.run(&req).await?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(s.bytes_uploaded, 10 << 20);
    // 10 MiB at 1 MiB/s (tokio's paused clock: exact, no wall-clock flakiness).
    assert!((9.0..=11.0).contains(&secs), "10 MiB at 1 MiB/s took {secs} s");

    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let last = seen.last().copied().expect("progress was reported");
    assert_eq!((last.files_done, last.files_total), (10, 10));
    assert_eq!((last.bytes_done, last.bytes_total, last.bytes_uploaded), (10 << 20, 10 << 20, 10 << 20));
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done), "progress goes forward");
    let measured = last.rate_bytes_per_sec;
    assert!((0.9 * rate as f64..=1.1 * rate as f64).contains(&measured), "reported rate {measured}");
    Ok(())
}

/// One partition's checkpoint of `n` files of distinct contents.
fn partition(dir: &Path, index: u32, n: u8) -> anyhow::Result<PartitionCheckpoint> {
    let mut files = Vec::new();
    for i in 0..n {
        let path = dir.join(format!("part{index}-{i}.sst"));
        std::fs::write(&path, pattern(4000 + usize::from(i), i.wrapping_add(index as u8 * 16)))?;
        files.push(LocalFile { name: format!("{i:06}.sst"), path });
    }
    Ok(PartitionCheckpoint { index, decree: 40 + u64::from(index), timetags: None, files })
}

fn manifest_of(
    parts: Vec<tern_backup::model::PartitionManifest>,
) -> anyhow::Result<tern_backup::model::Manifest> {
    Ok(tern_backup::model::Manifest {
        format_version: tern_backup::model::MANIFEST_FORMAT_VERSION,
        backup_id: BackupId::new(at(5), "users", 7)?,
        cluster: "eu-1".into(),
        table: TableSchema {
            name: "users".into(),
            partition_count: parts.len() as u32,
            default_ttl_secs: None,
        },
        partitions: parts,
        tool_version: "test".into(),
        created_at: at(5),
    })
}

#[tokio::test]
async fn an_interrupted_partition_upload_leaves_no_manifest_and_a_rerun_puts_only_missing_files()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(FaultyObjectStore::new(Arc::new(MemObjectStore::new())));
    let uploader = Uploader::new(store.clone()).with_retry(RetryPolicy::NONE);
    let p0 = partition(dir.path(), 0, 5)?;
    let intent = manifest_of(vec![
        tern_backup::model::PartitionManifest::placeholder(0),
        tern_backup::model::PartitionManifest::placeholder(1),
    ])?;
    uploader.begin(&intent).await?;
    assert_eq!(store.calls(Op::Put), 1, "the intent");
    store.reset_calls();

    // The third file's put fails for good: the partition's upload fails mid-way.
    store.inject(Fault::fail(false).on(Op::Put).on_key("files/").nth(3));
    assert!(uploader.upload_partition(&p0).await.is_err());
    assert_eq!(store.calls(Op::Put), 3, "two files stored, the third refused");
    assert!(list_backups(&*store).await?.is_empty(), "no manifest: no backup");

    store.reset_calls();
    let done = uploader.upload_partition(&p0).await?;
    assert_eq!(store.calls(Op::Put), 3, "only the three missing files are put again");
    assert_eq!((done.files_uploaded, done.files_skipped), (3, 2));
    assert_eq!(done.partition.decree, 40);
    assert_eq!(done.partition.files.len(), 5);

    let p1 = uploader.upload_partition(&partition(dir.path(), 1, 2)?).await?;
    let manifest = manifest_of(vec![done.partition, p1.partition])?;
    store.reset_calls();
    uploader.commit(&manifest).await?;
    assert_eq!(store.calls(Op::Put), 1, "the manifest only");
    assert_eq!(list_backups(&*store).await?, vec![manifest.backup_id.clone()]);
    assert!(store.list("backups/").await?.iter().all(|m| m.key.ends_with("manifest.json")), "intent deleted");
    // Committing again is idempotent; starting it again is refused.
    uploader.commit(&manifest).await?;
    assert!(uploader.begin(&intent).await.is_err());
    Ok(())
}

#[tokio::test]
async fn commit_refuses_a_manifest_whose_files_are_not_all_stored() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(MemObjectStore::new());
    let uploader = Uploader::new(store.clone()).with_retry(RetryPolicy::NONE);
    let p0 = uploader.upload_partition(&partition(dir.path(), 0, 3)?).await?;
    let gone = file_key(&p0.partition.files[1].sha256);
    store.delete(&gone).await?;
    let manifest = manifest_of(vec![p0.partition])?;
    let e = uploader.commit(&manifest).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains(&gone), "{e}");
    assert!(list_backups(&*store).await?.is_empty());
    Ok(())
}
