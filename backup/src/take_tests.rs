use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::model::{LocalFile, PartitionCheckpoint, TimetagRange, list_backups, load_manifest, pending_key};
use crate::store::MemObjectStore;

/// A cluster whose "primaries" upload from local files into the same store, with scripted
/// failures: a retryable one moves the partition's primary (as a failover does).
struct FakeCluster {
    store: Arc<dyn ObjectStore>,
    files: Vec<Vec<(String, PathBuf)>>,
    primaries: Mutex<Vec<Option<String>>>,
    /// Partition → attempts left that fail (retryable, moving the primary).
    flaky: Mutex<BTreeMap<u32, u32>>,
    /// A partition failing with a permanent error.
    broken: Option<u32>,
    calls: Mutex<Vec<(u32, String)>>,
    resolved: AtomicU32,
}

impl FakeCluster {
    fn new(dir: &std::path::Path, store: Arc<dyn ObjectStore>, partitions: u32) -> FakeCluster {
        let files = (0..partitions)
            .map(|p| {
                ["000001.sst", "shared.sst", "MANIFEST-000005"]
                    .iter()
                    .map(|name| {
                        let path = dir.join(format!("{p}-{name}"));
                        // `shared.sst` has the same bytes in every partition: stored once.
                        let bytes = match *name {
                            "shared.sst" => vec![7u8; 3000],
                            "000001.sst" => vec![p as u8; 1000 + p as usize],
                            _ => vec![100 + p as u8; 500],
                        };
                        std::fs::write(&path, bytes).expect("write a test file");
                        (name.to_string(), path)
                    })
                    .collect()
            })
            .collect();
        FakeCluster {
            store,
            files,
            primaries: Mutex::new((0..partitions).map(|p| Some(format!("node-{p}"))).collect()),
            flaky: Mutex::new(BTreeMap::new()),
            broken: None,
            calls: Mutex::new(Vec::new()),
            resolved: AtomicU32::new(0),
        }
    }

    fn calls_of(&self, p: u32) -> Vec<String> {
        lock(&self.calls).iter().filter(|(i, _)| *i == p).map(|(_, a)| a.clone()).collect()
    }
}

#[async_trait]
impl BackupCluster for FakeCluster {
    async fn table(&self, table: &str) -> Result<ClusterTable> {
        self.resolved.fetch_add(1, Ordering::Relaxed);
        let primaries = lock(&self.primaries).clone();
        Ok(ClusterTable {
            cluster: "eu-1".into(),
            schema: TableSchema {
                name: table.into(),
                partition_count: primaries.len() as u32,
                default_ttl_secs: None,
            },
            primaries,
        })
    }

    async fn backup_partition(
        &self,
        primary: &str,
        job: &PartitionJob,
        progress: &(dyn Fn(PartitionProgress) + Send + Sync),
    ) -> Result<PartitionUpload> {
        let i = job.index;
        lock(&self.calls).push((i, primary.to_string()));
        if self.broken == Some(i) {
            return Err(Error::invalid("target", "permanently broken"));
        }
        if let Some(left) = lock(&self.flaky).get_mut(&i).filter(|n| **n > 0) {
            *left -= 1;
            lock(&self.primaries)[i as usize] = Some(format!("{primary}-new"));
            return Err(Error::Cluster {
                doing: format!("back up partition {i}"),
                detail: format!("{primary} is not its primary"),
                retryable: true,
            });
        }
        let checkpoint = PartitionCheckpoint {
            index: i,
            decree: 100 + u64::from(i),
            timetags: Some(TimetagRange { min: 1, max: 2 }),
            files: self.files[i as usize]
                .iter()
                .map(|(name, path)| LocalFile { name: name.clone(), path: path.clone() })
                .collect(),
        };
        let up = Uploader::new(self.store.clone());
        let u = up.upload_partition(&checkpoint).await?;
        let bytes = u.bytes_uploaded + u.bytes_skipped;
        let files = u.files_uploaded + u.files_skipped;
        progress(PartitionProgress {
            files_total: files,
            files_done: files,
            bytes_total: bytes,
            bytes_done: bytes,
        });
        Ok(u)
    }
}

fn opts() -> TakeOptions {
    TakeOptions { concurrency: 2, max_attempts: 3, tool_version: "test".into(), ..TakeOptions::default() }
}

#[test]
fn failures_are_retried_only_when_retryable_and_within_bounds() {
    assert_eq!(after_failure(1, 3, true), AfterFailure::Retry);
    assert_eq!(after_failure(2, 3, true), AfterFailure::Retry);
    assert_eq!(after_failure(3, 3, true), AfterFailure::GiveUp);
    assert_eq!(after_failure(1, 3, false), AfterFailure::GiveUp);
    assert_eq!(backoff(1), Duration::from_millis(250));
    assert_eq!(backoff(2), Duration::from_millis(500));
    assert_eq!(backoff(30), Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn every_partition_is_taken_and_the_manifest_committed_last() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(MemObjectStore::new());
    let cluster = FakeCluster::new(dir.path(), store.clone(), 3);
    let last = Mutex::new(TakeProgress::default());
    // One partition at a time: two at once may both upload the shared file (both HEADs miss).
    let o = TakeOptions { concurrency: 1, ..opts() };
    let s = take_backup(&cluster, store.clone(), &TargetSpec::new("/unused"), "users", &o, &|p| {
        *lock(&last) = *p
    })
    .await?;
    let id = s.manifest.backup_id.clone();
    assert_eq!(list_backups(&*store).await?, vec![id.clone()]);
    let m = load_manifest(&*store, &id).await?;
    assert_eq!(m.partitions.iter().map(|p| p.decree).collect::<Vec<_>>(), vec![100, 101, 102]);
    assert_eq!(m.cluster, "eu-1");
    // 3 distinct files per partition, `shared.sst` stored once.
    assert_eq!(s.files_uploaded, 7);
    assert_eq!(s.files_skipped, 2);
    assert_eq!(s.retries, 0);
    assert!(store.head(&pending_key(&id)).await.is_err(), "the intent is gone");
    let p = *lock(&last);
    assert_eq!((p.partitions_done, p.partitions_total), (3, 3));
    assert_eq!(p.bytes_done, p.bytes_total);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_moved_primary_is_re_resolved_and_the_partition_run_on_the_new_one() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(MemObjectStore::new());
    let cluster = FakeCluster::new(dir.path(), store.clone(), 3);
    lock(&cluster.flaky).insert(1, 2);
    let s =
        take_backup(&cluster, store.clone(), &TargetSpec::new("/unused"), "users", &opts(), &|_| {}).await?;
    assert_eq!(cluster.calls_of(1), vec!["node-1", "node-1-new", "node-1-new-new"]);
    assert_eq!(cluster.calls_of(0), vec!["node-0"]);
    assert_eq!(s.retries, 1, "one partition was retried");
    assert!(cluster.resolved.load(Ordering::Relaxed) >= 3, "resolved at the start and after each failure");
    assert_eq!(list_backups(&*store).await?, vec![s.manifest.backup_id]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_partition_failing_past_its_attempts_leaves_no_manifest_and_a_resume_takes_only_it()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(MemObjectStore::new());
    let mut cluster = FakeCluster::new(dir.path(), store.clone(), 3);
    lock(&cluster.flaky).insert(2, 10);
    let mut o = opts();
    o.concurrency = 1;
    let e = take_backup(&cluster, store.clone(), &TargetSpec::new("/unused"), "users", &o, &|_| {})
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("partition 2") && e.contains("attempt 3 of 3"), "{e}");
    assert_eq!(cluster.calls_of(2).len(), 3);
    assert!(list_backups(&*store).await?.is_empty(), "no manifest, no backup");

    // The intent kept partitions 0 and 1: a resume runs only partition 2.
    let pending = store.list("backups/").await?;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let id: BackupId = pending[0].key.split('/').nth(1).unwrap_or_default().parse()?;
    lock(&cluster.flaky).clear();
    lock(&cluster.calls).clear();
    cluster.broken = None;
    o.resume = Some(id.clone());
    let s = take_backup(&cluster, store.clone(), &TargetSpec::new("/unused"), "users", &o, &|_| {}).await?;
    assert_eq!(s.manifest.backup_id, id);
    assert_eq!(s.resumed_partitions, 2);
    assert_eq!(lock(&cluster.calls).iter().map(|c| c.0).collect::<Vec<_>>(), vec![2]);
    assert_eq!(list_backups(&*store).await?, vec![id]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_not_retried() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(MemObjectStore::new());
    let mut cluster = FakeCluster::new(dir.path(), store.clone(), 2);
    cluster.broken = Some(0);
    let e = take_backup(&cluster, store.clone(), &TargetSpec::new("/unused"), "users", &opts(), &|_| {})
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("partition 0") && e.contains("permanently broken"), "{e}");
    assert_eq!(cluster.calls_of(0).len(), 1);
    assert!(list_backups(&*store).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn resuming_needs_a_stored_intent_of_the_same_table() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(MemObjectStore::new());
    let cluster = FakeCluster::new(dir.path(), store.clone(), 1);
    let mut o = opts();
    o.resume = Some("20261207T193000Z-users-00000001".parse()?);
    let e = take_backup(&cluster, store.clone(), &TargetSpec::new("/unused"), "users", &o, &|_| {})
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("--resume") && e.contains("no running backup"), "{e}");
    let e = take_backup(&cluster, store.clone(), &TargetSpec::new("/unused"), "orders", &o, &|_| {})
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("is of table users"), "{e}");
    Ok(())
}
