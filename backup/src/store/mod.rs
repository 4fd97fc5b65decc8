//! The object-store seam: what backups need from S3-compatible storage, and nothing more.
//!
//! The trait is object safe (`Arc<dyn ObjectStore>`): the back end is picked at run time from a
//! target URL (`s3://…`, a local directory), and wrappers ([`crate::FaultyObjectStore`]) stack
//! on any store. The cost, one boxed future per call, is nothing next to a network round trip.
//!
//! # Cancellation
//! Dropping any future returned here is safe: it never leaves a partial object visible under
//! its key. A `put` writes to a temporary name (local), keeps the body in memory until the end
//! (memory) or uses an S3 multipart upload that is only visible once completed; a dropped
//! multipart upload is aborted in the background (best effort; a bucket lifecycle rule
//! `AbortIncompleteMultipartUpload` cleans up after a killed process). `get_to_file` writes a
//! temporary file next to the destination and renames it only when complete.
//!
//! # Keys
//! Keys are `/`-separated relative paths (see [`validate_key`]); a store may add its own prefix
//! (S3 `s3://bucket/prefix`). Listing returns keys in byte order.

mod body;
mod faulty;
mod local;
mod mem;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub(crate) use body::PartReader;
pub use body::PutBody;
pub use faulty::{Fault, FaultKind, FaultyObjectStore, Op};
pub use local::LocalObjectStore;
pub use mem::MemObjectStore;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::ratelimit::RateLimiter;

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the store's prefix.
    pub key: String,
    pub size_bytes: u64,
    /// The server's entity tag, where the back end has one (S3: an MD5 for single-part
    /// uploads, an opaque value for multipart ones). Backups do not rely on it: their checksum
    /// is the content address in the key.
    pub etag: Option<String>,
}

/// A half-open byte range `[offset, offset + len)`; `len` must be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
}

impl ByteRange {
    pub fn new(offset: u64, len: u64) -> Self {
        ByteRange { offset, len }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// Pass to the next `list_page` call; `None` on the last page.
    pub next: Option<String>,
}

impl ListPage {
    /// A page from up to `page_size + 1` objects in key order: one more than fits means there
    /// is a next page, which starts after the last object kept.
    pub(crate) fn of(mut objects: Vec<ObjectMeta>, page_size: usize) -> ListPage {
        let next = if objects.len() > page_size {
            objects.truncate(page_size);
            objects.last().map(|m| m.key.clone())
        } else {
            None
        };
        ListPage { objects, next }
    }
}

/// What a `put` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReceipt {
    pub size_bytes: u64,
    /// 1 for a single request; the number of parts for a multipart upload.
    pub parts: u32,
    pub etag: Option<String>,
}

/// When a `put` goes multipart, and in what pieces. Also the chunk size in which every store
/// reads bodies, throttles and reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartConfig {
    /// Bodies larger than this are uploaded in parts.
    pub threshold_bytes: u64,
    /// Size of each part but the last.
    pub part_size_bytes: u64,
}

impl MultipartConfig {
    /// S3 refuses parts smaller than this (except the last).
    pub const S3_MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

    pub fn validate(&self) -> Result<()> {
        if self.part_size_bytes == 0 || self.threshold_bytes == 0 {
            return Err(Error::invalid(
                "multipart config",
                format!("threshold and part size must be positive: {self:?}"),
            ));
        }
        Ok(())
    }
}

impl Default for MultipartConfig {
    fn default() -> Self {
        MultipartConfig { threshold_bytes: 8 * 1024 * 1024, part_size_bytes: 8 * 1024 * 1024 }
    }
}

/// Bandwidth limit and progress reporting for one transfer. Stores call
/// [`Transfer::throttle`] before sending or receiving each chunk and [`Transfer::report`]
/// after it.
#[derive(Clone, Default)]
pub struct Transfer {
    pub limiter: Option<Arc<RateLimiter>>,
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl fmt::Debug for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transfer")
            .field("limiter", &self.limiter)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Transfer {
    /// No limit, no progress.
    pub fn none() -> Self {
        Transfer::default()
    }

    /// Waits until `bytes` may be moved under the bandwidth limit.
    pub async fn throttle(&self, bytes: u64) {
        if let Some(limiter) = &self.limiter {
            limiter.acquire(bytes).await;
        }
    }

    /// Reports `bytes` moved.
    pub fn report(&self, bytes: u64) {
        if let Some(progress) = &self.progress {
            progress(bytes);
        }
    }
}

/// An S3-like object store. See the module docs for cancellation and keys.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Names an object for messages: `s3://bucket/prefix/key`, `file:///dir/key`, `mem://key`.
    fn location(&self, key: &str) -> String;

    /// Stores `body` under `key`, replacing any object there. Multipart above the store's
    /// threshold. The object appears whole or not at all.
    async fn put(&self, key: &str, body: PutBody, transfer: &Transfer) -> Result<PutReceipt>;

    /// Reads the object, or `range` of it (truncated at the end of the object; a range that
    /// starts at or past the end is [`Error::InvalidRange`]).
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Bytes>;

    /// Size (and ETag) of an object; [`Error::NotFound`] if absent.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// One page of the keys starting with `prefix`, in byte order, after `continuation`.
    async fn list_page(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage>;

    /// Deletes an object; deleting an absent object succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// The chunk size `get_to_file` reads in.
    fn read_chunk_bytes(&self) -> u64 {
        MultipartConfig::default().part_size_bytes
    }

    /// Every key starting with `prefix`, in byte order (all pages).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut all = Vec::new();
        let mut continuation = None;
        loop {
            let page = self.list_page(prefix, continuation).await?;
            all.extend(page.objects);
            match page.next {
                Some(next) => continuation = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// Downloads an object to `path` durably: a temporary file next to it, fsync'ed, renamed,
    /// and the directory fsync'ed. Reads in ranged chunks, throttled and reported.
    async fn get_to_file(&self, key: &str, path: &Path, transfer: &Transfer) -> Result<ObjectMeta> {
        let meta = self.head(key).await?;
        let chunk = self.read_chunk_bytes().max(1);
        let mut out = fsutil::AtomicFile::create(path).await?;
        let mut offset = 0;
        while offset < meta.size_bytes {
            let len = chunk.min(meta.size_bytes - offset);
            transfer.throttle(len).await;
            let data = self.get(key, Some(ByteRange::new(offset, len))).await?;
            if data.len() as u64 != len {
                return Err(Error::Corrupt {
                    object: self.location(key),
                    detail: format!(
                        "read {} bytes at offset {offset}, expected {len} (object is {} bytes)",
                        data.len(),
                        meta.size_bytes
                    ),
                });
            }
            out.write_all(&data).await?;
            transfer.report(len);
            offset += len;
        }
        out.commit().await?;
        Ok(meta)
    }
}

/// Checks a key: a non-empty relative path of at most 1024 bytes, `/`-separated, without
/// empty, `.` or `..` segments, backslashes or control characters.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid("object key", format!("{key:?}: {why}")));
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return bad("contains a control character or a backslash");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("has an empty path segment (leading, trailing or double '/')");
        }
        if segment == "." || segment == ".." {
            return bad("has a '.' or '..' segment");
        }
    }
    Ok(())
}

/// Checks a listing prefix: empty, or a key prefix that may end with `/`.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    validate_key(prefix.strip_suffix('/').unwrap_or(prefix))
        .map_err(|_| Error::invalid("list prefix", format!("{prefix:?} is not a key prefix")))
}

/// Where a range read of an object of `size` bytes starts and ends, or the error to give.
pub(crate) fn resolve_range(
    location: impl FnOnce() -> String,
    range: Option<ByteRange>,
    size: u64,
) -> Result<(u64, u64)> {
    let Some(range) = range else {
        return Ok((0, size));
    };
    if range.len == 0 {
        return Err(Error::invalid(
            "byte range",
            format!("empty range at {} of {}", range.offset, location()),
        ));
    }
    if range.offset >= size {
        return Err(Error::InvalidRange { object: location(), offset: range.offset, size });
    }
    Ok((range.offset, range.offset.saturating_add(range.len).min(size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_paths_without_tricks() {
        for ok in ["a", "files/abc", "backups/x/manifest.json", "a.b/c-d_e"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b", "a\\b", "a\nb"] {
            let err = validate_key(bad).expect_err(bad);
            assert_eq!(err.code(), "INVALID_ARGUMENT");
        }
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("files/").is_ok());
        assert!(validate_prefix("files/ab").is_ok());
        assert!(validate_prefix("/files").is_err());
    }

    #[test]
    fn ranges_truncate_at_the_end_and_reject_starts_past_it() {
        let loc = || "mem://k".to_string();
        assert_eq!(resolve_range(loc, None, 10).ok(), Some((0, 10)));
        assert_eq!(resolve_range(loc, Some(ByteRange::new(2, 3)), 10).ok(), Some((2, 5)));
        assert_eq!(resolve_range(loc, Some(ByteRange::new(8, 30)), 10).ok(), Some((8, 10)));
        let err = resolve_range(loc, Some(ByteRange::new(10, 1)), 10).expect_err("past end");
        assert_eq!(err.code(), "INVALID_RANGE");
        assert!(err.to_string().contains("mem://k"), "{err}");
        assert!(resolve_range(loc, Some(ByteRange::new(0, 0)), 10).is_err());
    }
}
