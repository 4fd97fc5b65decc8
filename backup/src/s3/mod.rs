//! The S3 back end (`aws-sdk-s3`), for AWS and S3-compatible servers.
//!
//! Every request is retried by [`crate::retry`] under the config's [`RetryPolicy`] (the SDK's
//! own retries are off). Multipart uploads send parts one at a time, each retried on its own;
//! a failed upload is aborted, a dropped one aborted in the background.

mod config;
mod errors;
mod multipart;

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

pub use config::{S3Config, S3Target, StaticCredentials};
use errors::{Context, classify};

use crate::error::{Error, Result};
use crate::fsutil::AtomicFile;
use crate::retry::{RetryPolicy, retry};
use crate::store::{
    ByteRange, ListPage, ObjectMeta, ObjectStore, PartReader, PutBody, PutReceipt, Transfer, validate_key,
    validate_prefix,
};

/// Objects in an S3 bucket under a prefix.
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: Client,
    config: S3Config,
    endpoint: String,
}

impl S3ObjectStore {
    /// Builds the client (reading the environment and profile if credentials or region are
    /// not explicit). Makes no request; see [`S3ObjectStore::check`].
    pub async fn new(config: S3Config) -> Result<Self> {
        let client = config.client().await?;
        let endpoint = config.endpoint_name();
        Ok(S3ObjectStore { client, config, endpoint })
    }

    /// Checks that the bucket exists and the credentials may use it, with a clear error if
    /// not (a `HEAD` of a missing object cannot tell a missing bucket from a missing key).
    pub async fn check(&self) -> Result<()> {
        let bucket = &self.config.target.bucket;
        let ctx = self.bucket_ctx("check bucket");
        self.with_retry("head bucket", || async {
            self.client.head_bucket().bucket(bucket).send().await.map(|_| ()).map_err(|e| {
                match classify(e, &ctx) {
                    Error::NotFound { .. } => {
                        Error::NoSuchBucket { bucket: bucket.clone(), endpoint: self.endpoint.clone() }
                    }
                    other => other,
                }
            })
        })
        .await
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// The SDK client, for tests and tools that need a call the trait does not have.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn full_key(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(format!("{}{key}", self.config.target.prefix))
    }

    fn ctx(&self, key: &str, doing: &'static str) -> Context<'_> {
        Context {
            endpoint: &self.endpoint,
            bucket: &self.config.target.bucket,
            object: self.location(key),
            doing,
        }
    }

    fn bucket_ctx(&self, doing: &'static str) -> Context<'_> {
        Context {
            endpoint: &self.endpoint,
            bucket: &self.config.target.bucket,
            object: format!("bucket {} at {}", self.config.target.bucket, self.endpoint),
            doing,
        }
    }

    async fn with_retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        retry(&self.config.retry, what, op).await
    }

    async fn put_single(&self, key: &str, full: &str, body: Bytes) -> Result<PutReceipt> {
        let ctx = self.ctx(key, "put");
        let size_bytes = body.len() as u64;
        let out = self
            .with_retry("put object", || async {
                self.client
                    .put_object()
                    .bucket(&self.config.target.bucket)
                    .key(full)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .map_err(|e| classify(e, &ctx))
            })
            .await?;
        Ok(PutReceipt { size_bytes, parts: 1, etag: out.e_tag })
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}{key} at {}", self.config.target.bucket, self.config.target.prefix, self.endpoint)
    }

    fn read_chunk_bytes(&self) -> u64 {
        self.config.multipart.part_size_bytes
    }

    async fn put(&self, key: &str, body: PutBody, transfer: &Transfer) -> Result<PutReceipt> {
        let full = self.full_key(key)?;
        let multipart = self.config.multipart;
        let mut reader = PartReader::open(body, multipart.part_size_bytes).await?;
        if reader.size_bytes() > multipart.threshold_bytes {
            return self.put_multipart(key, &full, reader, transfer).await;
        }
        let size = reader.size_bytes();
        let body = reader.read_all().await?;
        transfer.throttle(size).await;
        let receipt = self.put_single(key, &full, body).await?;
        transfer.report(size);
        Ok(receipt)
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Bytes> {
        let full = self.full_key(key)?;
        if range.is_some_and(|r| r.len == 0) {
            return Err(Error::invalid("byte range", format!("empty range of {}", self.location(key))));
        }
        let ctx = self.ctx(key, "get");
        let header =
            range.map(|r| format!("bytes={}-{}", r.offset, r.offset.saturating_add(r.len).saturating_sub(1)));
        let result = self
            .with_retry("get object", || async {
                let out = self
                    .client
                    .get_object()
                    .bucket(&self.config.target.bucket)
                    .key(&full)
                    .set_range(header.clone())
                    .send()
                    .await
                    .map_err(|e| classify(e, &ctx))?;
                let expected = out.content_length.and_then(|l| u64::try_from(l).ok());
                let body = out.body.collect().await.map_err(|e| Error::Transient {
                    endpoint: self.endpoint.clone(),
                    doing: format!("read the body of {}", self.location(key)),
                    detail: e.to_string(),
                })?;
                let body = body.into_bytes();
                if let Some(expected) = expected.filter(|&l| l != body.len() as u64) {
                    return Err(Error::Transient {
                        endpoint: self.endpoint.clone(),
                        doing: format!("read the body of {}", self.location(key)),
                        detail: format!("got {} bytes of {expected}", body.len()),
                    });
                }
                Ok(body)
            })
            .await;
        match (result, range) {
            // S3 answers 416 InvalidRange (classified as a service error) for ranges past the end.
            (Err(Error::Service { code, .. }), Some(r)) if code == "InvalidRange" => {
                let size = self.head(key).await?.size_bytes;
                Err(Error::InvalidRange { object: self.location(key), offset: r.offset, size })
            }
            (Err(Error::Service { status: 416, .. }), Some(r)) => {
                let size = self.head(key).await?.size_bytes;
                Err(Error::InvalidRange { object: self.location(key), offset: r.offset, size })
            }
            (result, _) => result,
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let full = self.full_key(key)?;
        let ctx = self.ctx(key, "head");
        let out = self
            .with_retry("head object", || async {
                self.client
                    .head_object()
                    .bucket(&self.config.target.bucket)
                    .key(&full)
                    .send()
                    .await
                    .map_err(|e| classify(e, &ctx))
            })
            .await?;
        Ok(ObjectMeta {
            key: key.to_string(),
            size_bytes: out.content_length.and_then(|l| u64::try_from(l).ok()).unwrap_or(0),
            etag: out.e_tag,
        })
    }

    async fn list_page(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        validate_prefix(prefix)?;
        let full_prefix = format!("{}{prefix}", self.config.target.prefix);
        let ctx = Context {
            object: format!("s3://{}/{full_prefix}* at {}", self.config.target.bucket, self.endpoint),
            ..self.bucket_ctx("list")
        };
        let out = self
            .with_retry("list objects", || async {
                self.client
                    .list_objects_v2()
                    .bucket(&self.config.target.bucket)
                    .prefix(&full_prefix)
                    .set_continuation_token(continuation.clone())
                    .max_keys(i32::try_from(self.config.list_page_size).unwrap_or(1000))
                    .send()
                    .await
                    .map_err(|e| classify(e, &ctx))
            })
            .await?;
        let store_prefix = &self.config.target.prefix;
        let objects = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| {
                let key = o.key?.strip_prefix(store_prefix.as_str())?.to_string();
                Some(ObjectMeta {
                    key,
                    size_bytes: o.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    etag: o.e_tag,
                })
            })
            .collect();
        let next = if out.is_truncated == Some(true) { out.next_continuation_token } else { None };
        Ok(ListPage { objects, next })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        let ctx = self.ctx(key, "delete");
        let result = self
            .with_retry("delete object", || async {
                self.client
                    .delete_object()
                    .bucket(&self.config.target.bucket)
                    .key(&full)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify(e, &ctx))
            })
            .await;
        match result {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// One streaming GET (not ranged chunks), throttled and reported as it arrives.
    async fn get_to_file(&self, key: &str, path: &Path, transfer: &Transfer) -> Result<ObjectMeta> {
        let full = self.full_key(key)?;
        let ctx = self.ctx(key, "get");
        let policy: RetryPolicy = self.config.retry;
        retry(&policy, "download object", || async {
            let out = self
                .client
                .get_object()
                .bucket(&self.config.target.bucket)
                .key(&full)
                .send()
                .await
                .map_err(|e| classify(e, &ctx))?;
            let expected = out.content_length.and_then(|l| u64::try_from(l).ok()).unwrap_or(0);
            let etag = out.e_tag.clone();
            let mut body = out.body;
            let mut file = AtomicFile::create(path).await?;
            let mut written = 0u64;
            while let Some(chunk) = body.try_next().await.map_err(|e| Error::Transient {
                endpoint: self.endpoint.clone(),
                doing: format!("download {}", self.location(key)),
                detail: e.to_string(),
            })? {
                transfer.throttle(chunk.len() as u64).await;
                file.write_all(&chunk).await?;
                written += chunk.len() as u64;
                transfer.report(chunk.len() as u64);
            }
            if written != expected {
                return Err(Error::Transient {
                    endpoint: self.endpoint.clone(),
                    doing: format!("download {}", self.location(key)),
                    detail: format!("got {written} bytes of {expected}"),
                });
            }
            file.commit().await?;
            Ok(ObjectMeta { key: key.to_string(), size_bytes: written, etag })
        })
        .await
    }
}
