//! Backups to S3-compatible object storage (DESIGN §7, issue 25; guide: `docs/backup.md`).
//!
//! Owns: the [`ObjectStore`] seam with its back ends — S3 (`aws-sdk-s3`, feature `s3`), a local
//! directory, memory, and a fault-injecting wrapper for tests; retries and the bandwidth limit;
//! and the backup data model ([`model`]: content-addressed files, manifests, upload, verify,
//! retention), and the coordinator that takes a backup of a cluster's table ([`take`]) through
//! a seam the admin client implements.
//!
//! Must not depend on RocksDB or any server crate: the CLI and the replica servers use it.
//! Without the `s3` feature it has no AWS SDK in its dependency tree either.

mod error;
mod fsutil;
pub mod local_s3;
pub mod model;
pub mod ratelimit;
pub mod retry;
#[cfg(feature = "s3")]
pub mod s3;
pub mod store;
pub mod take;
pub mod target;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
pub use ratelimit::{RateLimiter, SharedLimit};
pub use retry::{RetryPolicy, retry};
#[cfg(feature = "s3")]
pub use s3::{S3Config, S3ObjectStore, S3Target, StaticCredentials};
pub use store::{
    ByteRange, Fault, FaultKind, FaultyObjectStore, ListPage, LocalObjectStore, MemObjectStore,
    MultipartConfig, ObjectMeta, ObjectStore, Op, PutBody, PutReceipt, Transfer,
};
pub use take::{
    BackupCluster, ClusterTable, PartitionJob, PartitionProgress, TakeOptions, TakeProgress, TakeSummary,
    take_backup,
};
pub use target::{TargetKind, TargetSpec, open_target};
