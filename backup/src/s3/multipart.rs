//! Multipart uploads: parts sent one at a time, each retried on its own; a failed upload is
//! aborted, a dropped one aborted in the background.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::S3ObjectStore;
use super::errors::classify;
use crate::error::{Error, Result};
use crate::store::{ObjectStore, PartReader, PutReceipt, Transfer};

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
        let mut parts = Vec::new();
        let mut number = 0i32;
        while let Some(body) = reader.next_part().await? {
            number += 1;
            let len = body.len() as u64;
            transfer.throttle(len).await;
            let out = self
                .with_retry("upload part", || async {
                    self.client
                        .upload_part()
                        .bucket(bucket)
                        .key(full)
                        .upload_id(upload_id)
                        .part_number(number)
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .map_err(|e| classify(e, &ctx))
                })
                .await?;
            transfer.report(len);
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build());
        }
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
