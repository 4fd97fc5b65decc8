//! Backups to S3-compatible object storage.
//!
//! Filled by the backup issue. Owns: the `ObjectStore` trait with S3 (aws-sdk-s3), local-file,
//! in-memory and fault-injecting implementations; backup policies; manifests; content-addressed
//! incremental upload of checkpoint files; retention; restore with checksum verification.
//!
//! The trait module must not pull in the AWS SDK (implementations live behind their own types).
