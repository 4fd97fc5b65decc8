//! An in-memory object store, for tests and the simulator.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{
    ByteRange, ListPage, MultipartConfig, ObjectMeta, ObjectStore, PartReader, PutBody, PutReceipt, Transfer,
    resolve_range, validate_key, validate_prefix,
};
use crate::error::{Error, Result};

/// Objects in a `BTreeMap`. A `put` becomes visible only when its whole body has been read.
#[derive(Debug)]
pub struct MemObjectStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
    multipart: MultipartConfig,
    page_size: usize,
}

impl Default for MemObjectStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemObjectStore {
    pub fn new() -> Self {
        MemObjectStore {
            objects: Mutex::new(BTreeMap::new()),
            multipart: MultipartConfig::default(),
            page_size: 1000,
        }
    }

    /// Sets when puts go multipart (they read, throttle and report in parts of this size).
    pub fn with_multipart(mut self, multipart: MultipartConfig) -> Self {
        self.multipart = multipart;
        self
    }

    /// Sets the number of keys per listing page (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Replaces an object's bytes without any check: for tests that damage a backup.
    pub fn overwrite_raw(&self, key: &str, body: Bytes) {
        self.lock().insert(key.to_string(), body);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts).
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ObjectStore for MemObjectStore {
    fn location(&self, key: &str) -> String {
        format!("mem://{key}")
    }

    fn read_chunk_bytes(&self) -> u64 {
        self.multipart.part_size_bytes
    }

    async fn put(&self, key: &str, body: PutBody, transfer: &Transfer) -> Result<PutReceipt> {
        validate_key(key)?;
        self.multipart.validate()?;
        let mut reader = PartReader::open(body, self.multipart.part_size_bytes).await?;
        let multipart = reader.size_bytes() > self.multipart.threshold_bytes;
        let parts = if multipart { reader.part_count() } else { 1 };
        let mut all = BytesMut::with_capacity(reader.size_bytes() as usize);
        while let Some(part) = reader.next_part().await? {
            transfer.throttle(part.len() as u64).await;
            all.extend_from_slice(&part);
            transfer.report(part.len() as u64);
        }
        let size_bytes = all.len() as u64;
        self.lock().insert(key.to_string(), all.freeze());
        Ok(PutReceipt { size_bytes, parts: u32::try_from(parts).unwrap_or(u32::MAX), etag: None })
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Bytes> {
        validate_key(key)?;
        let body =
            self.lock().get(key).cloned().ok_or_else(|| Error::NotFound { object: self.location(key) })?;
        let (start, end) = resolve_range(|| self.location(key), range, body.len() as u64)?;
        Ok(body.slice(start as usize..end as usize))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let size = self.lock().get(key).map(|b| b.len() as u64);
        match size {
            Some(size_bytes) => Ok(ObjectMeta { key: key.to_string(), size_bytes, etag: None }),
            None => Err(Error::NotFound { object: self.location(key) }),
        }
    }

    async fn list_page(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        validate_prefix(prefix)?;
        let objects = self.lock();
        let start = match &continuation {
            Some(after) => Bound::Excluded(after.clone()),
            None => Bound::Included(prefix.to_string()),
        };
        let page: Vec<ObjectMeta> = objects
            .range((start, Bound::Unbounded))
            .skip_while(|(k, _)| !k.starts_with(prefix) && k.as_str() < prefix)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(self.page_size + 1)
            .map(|(k, v)| ObjectMeta { key: k.clone(), size_bytes: v.len() as u64, etag: None })
            .collect();
        Ok(ListPage::of(page, self.page_size))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.lock().remove(key);
        Ok(())
    }
}
