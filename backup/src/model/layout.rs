//! Where a backup's objects live, relative to the store's prefix, and backup ids.
//!
//! ```text
//! files/<sha256-hex>              a checkpoint file, content-addressed, immutable
//! backups/<id>/pending.json       a running backup's intent (its file list), deleted at the end
//! backups/<id>/manifest.json      a complete backup, written last
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::checksum::Checksum;
use crate::error::{Error, Result};

pub const FILES_PREFIX: &str = "files/";
pub const BACKUPS_PREFIX: &str = "backups/";
const MANIFEST_NAME: &str = "manifest.json";
const PENDING_NAME: &str = "pending.json";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const TIME_LEN: usize = 16;
const RANDOM_LEN: usize = 8;

/// The key of a file with this checksum.
pub fn file_key(checksum: &Checksum) -> String {
    format!("{FILES_PREFIX}{checksum}")
}

/// The key of a complete backup's manifest.
pub fn manifest_key(id: &BackupId) -> String {
    format!("{BACKUPS_PREFIX}{id}/{MANIFEST_NAME}")
}

/// The key of a running backup's intent.
pub fn pending_key(id: &BackupId) -> String {
    format!("{BACKUPS_PREFIX}{id}/{PENDING_NAME}")
}

/// What a key under `backups/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupObject {
    Manifest(BackupId),
    Pending(BackupId),
}

/// Recognizes `backups/<id>/manifest.json` and `backups/<id>/pending.json`.
pub fn parse_backup_key(key: &str) -> Option<BackupObject> {
    let rest = key.strip_prefix(BACKUPS_PREFIX)?;
    let (id, name) = rest.split_once('/')?;
    let id = id.parse().ok()?;
    match name {
        MANIFEST_NAME => Some(BackupObject::Manifest(id)),
        PENDING_NAME => Some(BackupObject::Pending(id)),
        _ => None,
    }
}

/// Recognizes `files/<sha256-hex>`.
pub fn parse_file_key(key: &str) -> Option<Checksum> {
    key.strip_prefix(FILES_PREFIX)?.parse().ok()
}

/// `20261207T193000Z-<table>-<8 hex digits>`: ordered by creation time (to the second), then
/// table, then the random suffix that keeps two backups of a table in one second apart.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A new id. `random` comes from the caller (the runtime's RNG; fixed in tests).
    pub fn new(created_at: DateTime<Utc>, table: &str, random: u32) -> Result<Self> {
        validate_table(table)?;
        Ok(BackupId(format!("{}-{table}-{random:08x}", created_at.format(TIME_FORMAT))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the backup was started (to the second).
    pub fn created_at(&self) -> DateTime<Utc> {
        // Checked by the constructor and the parser.
        NaiveDateTime::parse_from_str(&self.0[..TIME_LEN], TIME_FORMAT)
            .map(|t| t.and_utc())
            .unwrap_or_default()
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.0[TIME_LEN + 1..self.0.len() - RANDOM_LEN - 1]
    }
}

/// Table names in ids and keys: 1 to 128 ASCII letters, digits, `_`, `.` and `-`.
pub fn validate_table(table: &str) -> Result<()> {
    let ok = (1..=128).contains(&table.len())
        && table.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && table != "."
        && table != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "table name",
            format!("{table:?}: use 1 to 128 ASCII letters, digits, '_', '.' or '-'"),
        ))
    }
}

impl FromStr for BackupId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid("backup id", format!("{s:?}: {why}"));
        let form = "expected <YYYYMMDDTHHMMSSZ>-<table>-<8 hex digits>";
        if !s.is_ascii() || s.len() < TIME_LEN + 1 + 1 + 1 + RANDOM_LEN {
            return Err(bad(form));
        }
        NaiveDateTime::parse_from_str(&s[..TIME_LEN], TIME_FORMAT).map_err(|_| bad(form))?;
        let random = &s[s.len() - RANDOM_LEN..];
        if s.as_bytes()[TIME_LEN] != b'-'
            || s.as_bytes()[s.len() - RANDOM_LEN - 1] != b'-'
            || !random.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(bad(form));
        }
        validate_table(&s[TIME_LEN + 1..s.len() - RANDOM_LEN - 1])?;
        Ok(BackupId(s.to_string()))
    }
}

impl TryFrom<String> for BackupId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ids_roundtrip_sort_by_time_and_reject_garbage() -> Result<()> {
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 19, 30, 0).single().expect("valid time");
        let id = BackupId::new(t, "user-events", 0xabc)?;
        assert_eq!(id.as_str(), "20261207T193000Z-user-events-00000abc");
        assert_eq!(id.table(), "user-events");
        assert_eq!(id.created_at(), t);
        assert_eq!(id.as_str().parse::<BackupId>()?, id);

        let later = BackupId::new(t + chrono::Duration::seconds(1), "aaa", 0)?;
        assert!(later > id, "ids sort by time first");

        for bad in [
            "",
            "20261207T193000Z-t",
            "2026-12-07-t-00000000",
            "20261207T193000Z-t-0000000g",
            "20261207T193000Z-t/x-00000000",
            "20261207T193000Z--00000000",
            "20261307T193000Z-t-00000000",
        ] {
            assert!(bad.parse::<BackupId>().is_err(), "{bad}");
        }
        assert!(BackupId::new(t, "bad/table", 1).is_err());
        Ok(())
    }

    #[test]
    fn keys_parse_back() -> Result<()> {
        let id: BackupId = "20261207T193000Z-t-00000001".parse()?;
        assert_eq!(parse_backup_key(&manifest_key(&id)), Some(BackupObject::Manifest(id.clone())));
        assert_eq!(parse_backup_key(&pending_key(&id)), Some(BackupObject::Pending(id.clone())));
        assert_eq!(parse_backup_key("backups/x/manifest.json"), None);
        assert_eq!(parse_backup_key(&format!("backups/{id}/other")), None);
        let c = Checksum::of(b"x");
        assert_eq!(parse_file_key(&file_key(&c)), Some(c));
        assert_eq!(parse_file_key("files/zz"), None);
        Ok(())
    }
}
