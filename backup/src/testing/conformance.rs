//! The object-store conformance suite: one set of cases every [`ObjectStore`] must pass.
//!
//! Run it with a [`StoreFactory`] that makes a fresh, empty store per case:
//! `run_conformance(&MemFactory).await?`. Each case names itself in the error it returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use async_trait::async_trait;
use bytes::Bytes;

use super::servers::S3Server;
use crate::ratelimit::RateLimiter;
use crate::s3::S3ObjectStore;
use crate::store::{
    ByteRange, LocalObjectStore, MemObjectStore, MultipartConfig, ObjectStore, PutBody, Transfer,
};

/// Multipart settings every case uses: S3's minimum part size, so real servers accept them.
pub const SUITE_MULTIPART: MultipartConfig =
    MultipartConfig { threshold_bytes: 5 * 1024 * 1024, part_size_bytes: 5 * 1024 * 1024 };

/// Keys per listing page in the suite: small, so a few dozen keys span several pages.
pub const SUITE_PAGE_SIZE: usize = 7;

/// Makes fresh, empty stores.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// A new empty store with these settings.
    async fn make(
        &self,
        multipart: MultipartConfig,
        page_size: usize,
    ) -> anyhow::Result<Arc<dyn ObjectStore>>;
}

/// Makes [`MemObjectStore`]s.
#[derive(Debug, Default)]
pub struct MemFactory;

#[async_trait]
impl StoreFactory for MemFactory {
    async fn make(&self, mp: MultipartConfig, page: usize) -> anyhow::Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(MemObjectStore::new().with_multipart(mp).with_page_size(page)))
    }
}

/// Makes [`LocalObjectStore`]s in temporary directories it keeps until dropped.
#[derive(Debug, Default)]
pub struct LocalFactory {
    dirs: Mutex<Vec<tempfile::TempDir>>,
}

#[async_trait]
impl StoreFactory for LocalFactory {
    async fn make(&self, mp: MultipartConfig, page: usize) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let dir = tempfile::tempdir()?;
        let store = LocalObjectStore::open(dir.path()).await?.with_multipart(mp).with_page_size(page);
        self.dirs.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
        Ok(Arc::new(store))
    }
}

/// Makes [`S3ObjectStore`]s on a real server, each in a new bucket under a prefix.
#[derive(Debug)]
pub struct S3Factory<'a> {
    pub server: &'a S3Server,
    next: AtomicU64,
}

impl<'a> S3Factory<'a> {
    pub fn new(server: &'a S3Server) -> Self {
        S3Factory { server, next: AtomicU64::new(0) }
    }
}

#[async_trait]
impl StoreFactory for S3Factory<'_> {
    async fn make(&self, mp: MultipartConfig, page: usize) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let bucket = format!("suite-{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.server.create_bucket(&bucket).await?;
        let mut config = self.server.config(&bucket, "some/prefix")?;
        config.multipart = mp;
        config.list_page_size = u32::try_from(page)?;
        let store = S3ObjectStore::new(config).await?;
        store.check().await?;
        Ok(Arc::new(store))
    }
}

type Case = for<'a> fn(
    &'a dyn StoreFactory,
) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Every case, by name.
pub fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("put_get_roundtrip", |f| Box::pin(put_get_roundtrip(f))),
        ("multipart_above_threshold", |f| Box::pin(multipart_above_threshold(f))),
        ("ranged_gets", |f| Box::pin(ranged_gets(f))),
        ("list_prefix_and_pages", |f| Box::pin(list_prefix_and_pages(f))),
        ("delete_is_idempotent", |f| Box::pin(delete_is_idempotent(f))),
        ("missing_objects_are_not_found", |f| Box::pin(missing_objects_are_not_found(f))),
        ("get_to_file_and_progress", |f| Box::pin(get_to_file_and_progress(f))),
        ("bad_keys_are_rejected", |f| Box::pin(bad_keys_are_rejected(f))),
        ("dropped_put_leaves_nothing", |f| Box::pin(dropped_put_leaves_nothing(f))),
    ]
}

/// Runs every case against stores from `factory`; the error names the failing case.
pub async fn run_conformance(factory: &dyn StoreFactory) -> anyhow::Result<()> {
    for (name, case) in cases() {
        case(factory).await.with_context(|| format!("conformance case {name}"))?;
    }
    Ok(())
}

async fn fresh(f: &dyn StoreFactory) -> anyhow::Result<Arc<dyn ObjectStore>> {
    f.make(SUITE_MULTIPART, SUITE_PAGE_SIZE).await
}

/// Deterministic bytes that differ at every offset pattern (catches misplaced ranges).
pub fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

async fn put_get_roundtrip(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    let body = pattern(100_000, 1);
    let r = s.put("a/b/c", body.clone().into(), &Transfer::none()).await?;
    ensure!(r.size_bytes == 100_000 && r.parts == 1, "receipt {r:?}");
    ensure!(s.get("a/b/c", None).await? == body, "get returned other bytes");
    ensure!(s.head("a/b/c").await?.size_bytes == 100_000, "head size");

    // Overwrite replaces.
    s.put("a/b/c", "short".into(), &Transfer::none()).await?;
    ensure!(s.get("a/b/c", None).await?.as_ref() == b"short", "overwrite");

    // Empty objects exist.
    s.put("empty", Bytes::new().into(), &Transfer::none()).await?;
    ensure!(s.head("empty").await?.size_bytes == 0, "empty head");
    ensure!(s.get("empty", None).await?.is_empty(), "empty get");

    // A file body.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("f");
    std::fs::write(&path, pattern(4096, 2))?;
    s.put("from-file", PutBody::File(path), &Transfer::none()).await?;
    ensure!(s.get("from-file", None).await? == pattern(4096, 2), "file body");
    Ok(())
}

async fn multipart_above_threshold(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    let len = 2 * SUITE_MULTIPART.part_size_bytes as usize + 123_457;
    let body = pattern(len, 3);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big");
    std::fs::write(&path, &body)?;
    let r = s.put("big/file", PutBody::File(path), &Transfer::none()).await?;
    ensure!(r.parts == 3, "expected 3 parts, receipt {r:?}");
    ensure!(r.size_bytes == len as u64, "receipt {r:?}");
    ensure!(s.head("big/file").await?.size_bytes == len as u64, "head size");
    ensure!(s.get("big/file", None).await? == body, "multipart body differs");

    // Exactly at the threshold: one request.
    let at = pattern(SUITE_MULTIPART.threshold_bytes as usize, 4);
    let r = s.put("big/at", at.clone().into(), &Transfer::none()).await?;
    ensure!(r.parts == 1, "at the threshold: {r:?}");
    ensure!(s.get("big/at", None).await? == at, "body at threshold");
    Ok(())
}

async fn ranged_gets(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    let body = pattern(10_000, 5);
    s.put("r", body.clone().into(), &Transfer::none()).await?;
    let got = s.get("r", Some(ByteRange::new(1000, 500))).await?;
    ensure!(got == body.slice(1000..1500), "middle range");
    let got = s.get("r", Some(ByteRange::new(0, 1))).await?;
    ensure!(got == body.slice(0..1), "first byte");
    let got = s.get("r", Some(ByteRange::new(9_990, 100))).await?;
    ensure!(got == body.slice(9_990..), "tail range is truncated at the end");
    let err =
        s.get("r", Some(ByteRange::new(10_000, 10))).await.err().context("a range past the end must fail")?;
    ensure!(err.code() == "INVALID_RANGE" && !err.retryable(), "past end: {err}");
    ensure!(err.to_string().contains('r'), "names the object: {err}");
    let err = s.get("r", Some(ByteRange::new(0, 0))).await.err().context("empty range")?;
    ensure!(err.code() == "INVALID_ARGUMENT", "empty range: {err}");
    let err = s.get("nope", Some(ByteRange::new(0, 10))).await.err().context("range of a missing object")?;
    ensure!(err.is_not_found(), "range of missing: {err}");
    Ok(())
}

async fn list_prefix_and_pages(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    let mut want = Vec::new();
    for i in 0..25 {
        let key = format!("l/{i:03}");
        s.put(&key, Bytes::from(vec![0u8; i]).into(), &Transfer::none()).await?;
        want.push(key);
    }
    // Keys on both sides of the prefix's range. (No key is also a "directory" of other keys,
    // like `l` next to `l/000`: file-system back ends, s3s-fs among them, cannot hold both,
    // and the backup layout never needs it.)
    for other in ["l.txt", "lx/1", "m/1", "k"] {
        s.put(other, "x".into(), &Transfer::none()).await?;
    }
    let listed = s.list("l/").await?;
    let keys: Vec<_> = listed.iter().map(|m| m.key.clone()).collect();
    ensure!(keys == want, "list l/ gave {keys:?}");
    ensure!(listed.iter().enumerate().all(|(i, m)| m.size_bytes == i as u64), "sizes in listing");

    // Pages: at most the page size each, chained by continuation, covering everything once.
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut cont = None;
    loop {
        let page = s.list_page("l/", cont).await?;
        ensure!(page.objects.len() <= SUITE_PAGE_SIZE, "page of {}", page.objects.len());
        pages += 1;
        seen.extend(page.objects.into_iter().map(|m| m.key));
        match page.next {
            Some(n) => cont = Some(n),
            None => break,
        }
        ensure!(pages < 100, "listing does not end");
    }
    ensure!(seen == want, "paged listing gave {seen:?}");
    ensure!(pages >= 25_usize.div_ceil(SUITE_PAGE_SIZE), "only {pages} pages");

    let sub: Vec<_> = s.list("l/01").await?.into_iter().map(|m| m.key).collect();
    ensure!(sub.len() == 10 && sub[0] == "l/010", "mid-segment prefix: {sub:?}");
    let all = s.list("").await?;
    ensure!(all.len() == 29, "list all gave {}", all.len());
    ensure!(all.windows(2).all(|w| w[0].key < w[1].key), "listing not in byte order");
    ensure!(s.list("nothing/").await?.is_empty(), "empty prefix listing");
    Ok(())
}

async fn delete_is_idempotent(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    s.put("d/x", "x".into(), &Transfer::none()).await?;
    s.put("d/y", "y".into(), &Transfer::none()).await?;
    s.delete("d/x").await?;
    ensure!(s.head("d/x").await.err().is_some_and(|e| e.is_not_found()), "deleted");
    s.delete("d/x").await?;
    s.delete("never/was").await?;
    let keys: Vec<_> = s.list("d/").await?.into_iter().map(|m| m.key).collect();
    ensure!(keys == ["d/y"], "after delete: {keys:?}");
    Ok(())
}

async fn missing_objects_are_not_found(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    for err in [s.get("missing/key", None).await.err(), s.head("missing/key").await.err()] {
        let err = err.context("a missing object must be an error")?;
        ensure!(err.is_not_found() && !err.retryable(), "{err}");
        ensure!(err.to_string().contains("missing/key"), "names the key: {err}");
    }
    let dir = tempfile::tempdir()?;
    let err = s
        .get_to_file("missing/key", &dir.path().join("out"), &Transfer::none())
        .await
        .err()
        .context("download of a missing object")?;
    ensure!(err.is_not_found(), "{err}");
    ensure!(!dir.path().join("out").exists(), "no file left behind");
    Ok(())
}

async fn get_to_file_and_progress(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    let len = SUITE_MULTIPART.part_size_bytes as usize + 777;
    let body = pattern(len, 6);
    let put_bytes = Arc::new(AtomicU64::new(0));
    let counter = put_bytes.clone();
    let transfer = Transfer {
        limiter: Some(Arc::new(RateLimiter::new(1 << 40, 1 << 40))),
        progress: Some(Arc::new(move |n| {
            counter.fetch_add(n, Ordering::SeqCst);
        })),
    };
    s.put("g/f", body.clone().into(), &transfer).await?;
    ensure!(put_bytes.load(Ordering::SeqCst) == len as u64, "put progress");

    let dir = tempfile::tempdir()?;
    let out = dir.path().join("sub/dir/out");
    let got_bytes = Arc::new(AtomicU64::new(0));
    let counter = got_bytes.clone();
    let transfer = Transfer {
        limiter: None,
        progress: Some(Arc::new(move |n| {
            counter.fetch_add(n, Ordering::SeqCst);
        })),
    };
    let meta = s.get_to_file("g/f", &out, &transfer).await?;
    ensure!(meta.size_bytes == len as u64, "meta {meta:?}");
    ensure!(std::fs::read(&out)? == body, "downloaded bytes differ");
    ensure!(got_bytes.load(Ordering::SeqCst) == len as u64, "get progress");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub/dir"))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    ensure!(leftovers.len() == 1, "temporary files left: {leftovers:?}");
    Ok(())
}

async fn bad_keys_are_rejected(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    for key in ["", "/abs", "a//b", "../up", "a/../b", "trailing/"] {
        let err = s
            .put(key, "x".into(), &Transfer::none())
            .await
            .err()
            .with_context(|| format!("key {key:?} must be rejected"))?;
        ensure!(err.code() == "INVALID_ARGUMENT" && !err.retryable(), "{key:?}: {err}");
    }
    ensure!(s.list("").await?.is_empty(), "a rejected put stored something");
    Ok(())
}

async fn dropped_put_leaves_nothing(f: &dyn StoreFactory) -> anyhow::Result<()> {
    let s = fresh(f).await?;
    let body = pattern(2 * SUITE_MULTIPART.part_size_bytes as usize + 10, 7);
    // The first part passes at once, the rest would take minutes: the put cannot finish
    // before the timeout drops it.
    let transfer = Transfer {
        limiter: Some(Arc::new(RateLimiter::new(64 * 1024, SUITE_MULTIPART.part_size_bytes))),
        progress: None,
    };
    let put = s.put("dropped", body.into(), &transfer);
    if tokio::time::timeout(Duration::from_millis(500), put).await.is_ok() {
        bail!("the throttled put finished; the test did not drop it");
    }
    ensure!(s.head("dropped").await.err().is_some_and(|e| e.is_not_found()), "a dropped put is visible");
    ensure!(s.list("").await?.is_empty(), "a dropped put left objects");
    Ok(())
}
