//! The backup data model: content-addressed files, manifests, upload, verify, retention.
//! Pure apart from the [`crate::ObjectStore`] it is given.

pub mod catalog;
pub mod checksum;
pub mod layout;
pub mod manifest;
pub mod retention;
pub mod upload;

pub use catalog::{
    BackupDescription, Damage, Problem, StoreContents, VerifyMode, VerifyReport, apply_retention, describe,
    list_backups, load_manifest, read_contents, verify,
};
pub use checksum::{Checksum, Hasher, hash_file};
pub use layout::{BackupId, file_key, manifest_key, pending_key};
pub use manifest::{
    FileEntry, MANIFEST_FORMAT_VERSION, Manifest, PartitionManifest, TableSchema, TimetagRange,
};
pub use retention::{RetentionInput, RetentionPlan, RetentionPolicy, plan_retention, plan_scoped_retention};
pub use upload::{
    BackupRequest, LocalFile, PartitionCheckpoint, PartitionUpload, ProgressSink, UploadProgress,
    UploadSummary, Uploader,
};
