//! An object store in a local directory: one file per key, `/` mapped to subdirectories.
//!
//! Puts are atomic and durable: the body goes to a temporary file under `<root>/.tern-tmp/`,
//! which is fsync'ed, renamed to its key and the directory fsync'ed. Listing walks the tree
//! below the prefix's directory, so it suits tests, development and small deployments, not
//! millions of objects. Unlike S3, a key cannot also be the "directory" of other keys (`a` and
//! `a/b`); the backup layout never needs that.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{
    ByteRange, ListPage, MultipartConfig, ObjectMeta, ObjectStore, PartReader, PutBody, PutReceipt, Transfer,
    resolve_range, validate_key, validate_prefix,
};
use crate::error::{Error, Result};
use crate::fsutil::{self, AtomicFile};

/// Where temporary files live, under the root. Keys may not start with it.
const TMP_DIR: &str = ".tern-tmp";

/// Objects as files under a root directory (which must exist, like a bucket).
#[derive(Debug)]
pub struct LocalObjectStore {
    root: PathBuf,
    multipart: MultipartConfig,
    page_size: usize,
}

impl LocalObjectStore {
    /// Opens a store rooted at `root`, an existing directory ([`Error::NoSuchBucket`] if not).
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        match tokio::fs::metadata(&root).await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::invalid(
                    "local store root",
                    format!("{} is not a directory", root.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoSuchBucket {
                    bucket: root.display().to_string(),
                    endpoint: "the local file system".to_string(),
                });
            }
            Err(e) => return Err(Error::io("open local store root", root, e)),
        }
        Ok(LocalObjectStore { root, multipart: MultipartConfig::default(), page_size: 1000 })
    }

    /// Sets the part size puts read, throttle and report in (and the multipart threshold
    /// reported in receipts).
    pub fn with_multipart(mut self, multipart: MultipartConfig) -> Self {
        self.multipart = multipart;
        self
    }

    /// Sets the number of keys per listing page (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        if key == TMP_DIR || key.starts_with(&format!("{TMP_DIR}/")) {
            return Err(Error::invalid(
                "object key",
                format!("{key:?}: {TMP_DIR}/ is reserved by the local store"),
            ));
        }
        Ok(self.root.join(key))
    }

    fn not_found_or_io(&self, key: &str, doing: &'static str, path: &Path, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { object: self.location(key) }
        } else {
            Error::io(doing, path, e)
        }
    }
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    fn location(&self, key: &str) -> String {
        format!("file://{}", self.root.join(key).display())
    }

    fn read_chunk_bytes(&self) -> u64 {
        self.multipart.part_size_bytes
    }

    async fn put(&self, key: &str, body: PutBody, transfer: &Transfer) -> Result<PutReceipt> {
        let path = self.path_of(key)?;
        self.multipart.validate()?;
        let mut reader = PartReader::open(body, self.multipart.part_size_bytes).await?;
        let multipart = reader.size_bytes() > self.multipart.threshold_bytes;
        let parts = if multipart { reader.part_count() } else { 1 };

        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
            return Err(Error::invalid(
                "object key",
                format!(
                    "{key:?} is also the directory of other keys ({}); a file-system store \
                     cannot hold both",
                    self.location(&format!("{key}/"))
                ),
            ));
        }
        let tmp_dir = self.root.join(TMP_DIR);
        fsutil::create_dirs_durably(&tmp_dir).await?;
        let tmp = tmp_dir.join(format!("{:016x}", rand::rng().random::<u64>()));
        let mut out = AtomicFile::create_in(&tmp, &path).await?;
        let mut size_bytes = 0;
        while let Some(part) = reader.next_part().await? {
            transfer.throttle(part.len() as u64).await;
            out.write_all(&part).await?;
            size_bytes += part.len() as u64;
            transfer.report(part.len() as u64);
        }
        out.commit().await?;
        Ok(PutReceipt { size_bytes, parts: u32::try_from(parts).unwrap_or(u32::MAX), etag: None })
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Bytes> {
        let path = self.path_of(key)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.not_found_or_io(key, "open object", &path, e))?;
        let meta = file.metadata().await.map_err(|e| Error::io("stat object", &path, e))?;
        if !meta.is_file() {
            // A "directory" of other keys is not an object.
            return Err(Error::NotFound { object: self.location(key) });
        }
        let size = meta.len();
        let (start, end) = resolve_range(|| self.location(key), range, size)?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| Error::io("seek in object", &path, e))?;
        let mut buf = BytesMut::zeroed((end - start) as usize);
        file.read_exact(&mut buf).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Corrupt {
                    object: self.location(key),
                    detail: format!("shorter than its size {size} while being read"),
                }
            } else {
                Error::io("read object", &path, e)
            }
        })?;
        Ok(buf.freeze())
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| self.not_found_or_io(key, "stat object", &path, e))?;
        if !meta.is_file() {
            return Err(Error::NotFound { object: self.location(key) });
        }
        Ok(ObjectMeta { key: key.to_string(), size_bytes: meta.len(), etag: None })
    }

    async fn list_page(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        validate_prefix(prefix)?;
        // Walk only below the deepest directory the prefix names.
        let base = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let root = self.root.clone();
        let start_dir = if base.is_empty() { root.clone() } else { root.join(base) };
        let prefix_owned = prefix.to_string();
        let mut keys = tokio::task::spawn_blocking(move || walk(&root, start_dir, &prefix_owned))
            .await
            .map_err(|e| Error::io("list", self.root.clone(), std::io::Error::other(e)))??;
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        let page: Vec<ObjectMeta> = keys
            .into_iter()
            .filter(|m| continuation.as_ref().is_none_or(|after| m.key > *after))
            .take(self.page_size + 1)
            .collect();
        Ok(ListPage::of(page, self.page_size))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            // Absent, or only the "directory" of other keys: no such object.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory) => {
                return Ok(());
            }
            Err(e) => return Err(Error::io("delete object", &path, e)),
        }
        // Empty directories are left in place: removing them would race with a concurrent put.
        if let Some(parent) = path.parent() {
            fsutil::fsync_dir(parent).await?;
        }
        Ok(())
    }
}

/// Every regular file below `dir` whose key (path relative to `root`) starts with `prefix`.
fn walk(root: &Path, dir: PathBuf, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("list directory", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list directory", &dir, e))?;
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(root) else { continue };
            let Some(key) = rel.to_str().map(|k| k.replace(std::path::MAIN_SEPARATOR, "/")) else {
                continue;
            };
            if key == TMP_DIR {
                continue;
            }
            let file_type = entry.file_type().map_err(|e| Error::io("stat", &path, e))?;
            if file_type.is_dir() {
                // Descend only where keys with the prefix can be.
                let as_prefix = format!("{key}/");
                if as_prefix.starts_with(prefix) || prefix.starts_with(&as_prefix) {
                    stack.push(path);
                }
            } else if file_type.is_file() && key.starts_with(prefix) {
                let size_bytes = entry.metadata().map_err(|e| Error::io("stat", &path, e))?.len();
                out.push(ObjectMeta { key, size_bytes, etag: None });
            }
        }
    }
    Ok(out)
}
