//! The backup manifest: what a backup holds, persisted as JSON (format version 1).
//!
//! Versioning: [`Manifest::decode`] reads the `format_version` field first and refuses
//! versions it does not know, naming them. A change to the fields is a new version with a
//! decoder for the old one (a migration to the current type), never an edit of version 1; the
//! golden test pins version 1's bytes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::checksum::Checksum;
use super::layout::{BackupId, validate_table};
use crate::error::{Error, Result};
use crate::store::validate_key;

/// The format this code writes.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// A backup of one table: every partition's checkpoint at a recorded decree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub backup_id: BackupId,
    /// The cluster the table was backed up from.
    pub cluster: String,
    pub table: TableSchema,
    /// One per partition, by index `0..partition_count`.
    pub partitions: Vec<PartitionManifest>,
    /// The version of the tool that wrote it.
    pub tool_version: String,
    pub created_at: DateTime<Utc>,
}

/// What a restore needs to recreate the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    pub name: String,
    pub partition_count: u32,
    /// The table's default TTL, if it has one.
    pub default_ttl_secs: Option<u64>,
}

/// One partition's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionManifest {
    pub index: u32,
    /// The decree the checkpoint was taken at: the log from here on is what a seeded peer
    /// needs shipped.
    pub decree: u64,
    /// The smallest and largest timetag in the checkpoint (`None` if it is empty).
    pub timetags: Option<TimetagRange>,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimetagRange {
    pub min: u64,
    pub max: u64,
}

/// One file of a checkpoint; its bytes are the object `files/<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// The path inside the checkpoint directory (a relative path, `/`-separated).
    pub name: String,
    pub size_bytes: u64,
    pub sha256: Checksum,
}

impl PartitionManifest {
    /// A partition not uploaded yet, as a backup's intent lists it: no files (a RocksDB
    /// checkpoint always has some). Never in a committed manifest.
    pub fn placeholder(index: u32) -> Self {
        PartitionManifest { index, decree: 0, timetags: None, files: Vec::new() }
    }

    pub fn is_placeholder(&self) -> bool {
        self.files.is_empty()
    }
}

impl Manifest {
    /// Every distinct file the backup references, with its size.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.partitions.iter().flat_map(|p| p.files.iter())
    }

    /// The distinct checksums the backup references.
    pub fn checksums(&self) -> BTreeSet<Checksum> {
        self.files().map(|f| f.sha256).collect()
    }

    /// Total bytes of the checkpoints (counting a file shared by partitions once per use).
    pub fn total_bytes(&self) -> u64 {
        self.files().map(|f| f.size_bytes).sum()
    }

    /// Checks the invariants a restore relies on; the error names what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |detail: String| Err(Error::invalid(format!("manifest of backup {}", self.backup_id), detail));
        if self.format_version != MANIFEST_FORMAT_VERSION {
            return bad(format!("format version {} is not {MANIFEST_FORMAT_VERSION}", self.format_version));
        }
        validate_table(&self.table.name)?;
        if self.backup_id.table() != self.table.name {
            return bad(format!(
                "the id names table {:?} but the manifest is of table {:?}",
                self.backup_id.table(),
                self.table.name
            ));
        }
        if self.table.partition_count == 0 || self.partitions.len() != self.table.partition_count as usize {
            return bad(format!(
                "{} partitions listed for a partition count of {}",
                self.partitions.len(),
                self.table.partition_count
            ));
        }
        for (i, p) in self.partitions.iter().enumerate() {
            if p.index as usize != i {
                return bad(format!("partition at position {i} has index {}", p.index));
            }
            if let Some(t) = p.timetags.filter(|t| t.min > t.max) {
                return bad(format!("partition {i}: timetag range {} > {}", t.min, t.max));
            }
            let mut names = BTreeSet::new();
            for f in &p.files {
                // Restore writes these paths under a directory: no escaping it.
                validate_key(&f.name).map_err(|e| {
                    Error::invalid(
                        format!("manifest of backup {}", self.backup_id),
                        format!("partition {i}: file name {:?}: {e}", f.name),
                    )
                })?;
                if !names.insert(f.name.as_str()) {
                    return bad(format!("partition {i}: file {:?} listed twice", f.name));
                }
            }
        }
        Ok(())
    }

    /// Pretty JSON, the bytes stored at `backups/<id>/manifest.json`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let mut out = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::invalid(format!("manifest of backup {}", self.backup_id), e.to_string()))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Parses and validates a manifest read from `object` (named in errors).
    pub fn decode(bytes: &[u8], object: &str) -> Result<Manifest> {
        let corrupt = |detail: String| Error::Corrupt { object: object.to_string(), detail };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| corrupt("no format_version field".to_string()))?;
        let manifest: Manifest = match version {
            1 => serde_json::from_value(value)
                .map_err(|e| corrupt(format!("not a version 1 manifest: {e}")))?,
            v => {
                return Err(corrupt(format!(
                    "manifest format version {v} is not one this tool reads (it reads \
                     {MANIFEST_FORMAT_VERSION}); upgrade the tool"
                )));
            }
        };
        manifest.validate().map_err(|e| corrupt(format!("invalid manifest: {e}")))?;
        Ok(manifest)
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
