//! Multipart uploads: up to [`PARTS_IN_FLIGHT`] parts sent at once, each retried on its own; a
//! failed upload is aborted, a dropped one aborted in the background.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::S3ObjectStore;
use super::errors::classify;
use crate::error::{Error, Result};
use crate::store::{ObjectStore, PartReader, PutReceipt, Transfer};

/// Parts of one object sent at once. Each holds its body (a part, 8 MiB by default) in memory
/// until S3 acknowledges it. One part at a time sent a large file at a fraction of a plain
/// PUT's rate.
pub const PARTS_IN_FLIGHT: usize = 4;

impl S3ObjectStore {
    pub(super) async fn put_multipart(
        &self,
        key: &str,
        full: &str,
        mut reader: PartReader,
        transfer: &Transfer,
    ) -> Result<PutReceipt> {
        let bucket = &self.config.target.bucket;
        let ctx = self.ctx(key, "start multipart upload of");
        let created = self
            .with_retry("create multipart upload", || async {
                self.client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(full)
                    .send()
                    .await
                    .map_err(|e| classify(e, &ctx))
            })
            .await?;
        let upload_id = created.upload_id.ok_or_else(|| Error::Transient {
            endpoint: self.endpoint.clone(),
            doing: format!("start multipart upload of {}", self.location(key)),
            detail: "the response had no upload id".to_string(),
        })?;
        let mut guard = AbortOnDrop {
            client: self.client.clone(),
            bucket: bucket.clone(),
            key: full.to_string(),
            upload_id: Some(upload_id.clone()),
        };
        let result = self.send_parts(key, full, &upload_id, &mut reader, transfer).await;
        match result {
            Ok(receipt) => {
                guard.upload_id = None;
                Ok(receipt)
            }
            Err(e) => {
                self.abort(full, &upload_id).await;
                guard.upload_id = None;
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        reader: &mut PartReader,
        transfer: &Transfer,
    ) -> Result<PutReceipt> {
        let bucket = &self.config.target.bucket;
        let ctx = self.ctx(key, "upload a part of");
        let ctx = &ctx;
        let mut parts = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        let mut number = 0i32;
        let mut read_all = false;
        loop {
            // Read ahead while fewer than PARTS_IN_FLIGHT parts are being sent; each holds its
            // body in memory until acknowledged.
            while !read_all && in_flight.len() < PARTS_IN_FLIGHT {
                let Some(body) = reader.next_part().await? else {
                    read_all = true;
                    break;
                };
                number += 1;
                let part_number = number;
                let len = body.len() as u64;
                transfer.throttle(len).await;
                in_flight.push(async move {
                    let out = self
                        .with_retry("upload part", || async {
                            self.client
                                .upload_part()
                                .bucket(bucket)
                                .key(full)
                                .upload_id(upload_id)
                                .part_number(part_number)
                                .body(ByteStream::from(body.clone()))
                                .send()
                                .await
                                .map_err(|e| classify(e, ctx))
                        })
                        .await?;
                    transfer.report(len);
                    Ok::<_, Error>(
                        CompletedPart::builder().part_number(part_number).set_e_tag(out.e_tag).build(),
                    )
                });
            }
            // A failed part fails the upload (the caller aborts it), dropping the others.
            match in_flight.next().await {
                Some(part) => parts.push(part?),
                None => break,
            }
        }
        parts.sort_by_key(|p| p.part_number());
        let ctx = self.ctx(key, "complete multipart upload of");
        let completed = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        let out = self
            .with_retry("complete multipart upload", || async {
                self.client
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(full)
                    .upload_id(upload_id)
                    .multipart_upload(completed.clone())
                    .send()
                    .await
                    .map_err(|e| classify(e, &ctx))
            })
            .await?;
        Ok(PutReceipt {
            size_bytes: reader.size_bytes(),
            parts: u32::try_from(number).unwrap_or(0),
            etag: out.e_tag,
        })
    }

    async fn abort(&self, full: &str, upload_id: &str) {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.config.target.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(
                key = full,
                upload_id,
                error = %aws_sdk_s3::error::DisplayErrorContext(&e),
                "could not abort a failed multipart upload; a lifecycle rule will remove its parts"
            );
        }
    }
}

/// Aborts a multipart upload whose future was dropped, in the background (best effort).
struct AbortOnDrop {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let request =
            self.client.abort_multipart_upload().bucket(&self.bucket).key(&self.key).upload_id(upload_id);
        handle.spawn(async move {
            let _ = request.send().await;
        });
    }
}
