use chrono::TimeZone;

use super::*;

pub(crate) fn sample() -> Manifest {
    let created_at = Utc.with_ymd_and_hms(2026, 12, 7, 19, 30, 0).single().expect("valid time");
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        backup_id: BackupId::new(created_at, "users", 0x1234abcd).expect("valid id"),
        cluster: "eu-1".to_string(),
        table: TableSchema { name: "users".to_string(), partition_count: 2, default_ttl_secs: Some(86400) },
        partitions: vec![
            PartitionManifest {
                index: 0,
                decree: 42,
                timetags: Some(TimetagRange { min: 7, max: 99 }),
                files: vec![FileEntry {
                    name: "000012.sst".to_string(),
                    size_bytes: 3,
                    sha256: Checksum::of(b"abc"),
                }],
            },
            PartitionManifest { index: 1, decree: 0, timetags: None, files: vec![] },
        ],
        tool_version: "0.1.0".to_string(),
        created_at,
    }
}

/// Version 1's bytes, pinned: changing them needs a new format version.
const GOLDEN_V1: &str = include_str!("../../tests/golden/manifest-v1.json");

#[test]
fn golden_v1_bytes_are_stable() -> Result<()> {
    let m = sample();
    assert_eq!(String::from_utf8_lossy(&m.encode()?), GOLDEN_V1);
    assert_eq!(Manifest::decode(GOLDEN_V1.as_bytes(), "golden")?, m);
    Ok(())
}

#[test]
fn decode_names_the_object_and_the_problem() {
    let cases = [
        ("not json".to_string(), "not JSON"),
        ("{}".to_string(), "no format_version"),
        (GOLDEN_V1.replace("\"format_version\": 1", "\"format_version\": 2"), "version 2"),
        (GOLDEN_V1.replace("\"cluster\"", "\"clutser\""), "unknown field"),
        (GOLDEN_V1.replace("\"partition_count\": 2", "\"partition_count\": 3"), "partition count"),
        (GOLDEN_V1.replace("000012.sst", "../escape"), "file name"),
    ];
    for (text, needle) in cases {
        let err = Manifest::decode(text.as_bytes(), "s3://b/backups/x/manifest.json").expect_err(needle);
        let msg = err.to_string();
        assert_eq!(err.code(), "CORRUPT", "{msg}");
        assert!(msg.contains("s3://b/backups/x/manifest.json"), "{msg}");
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
}

#[test]
fn validate_catches_mismatched_ids_and_duplicates() {
    let mut m = sample();
    m.table.name = "other".into();
    assert!(m.validate().is_err());
    let mut m = sample();
    let dup = m.partitions[0].files[0].clone();
    m.partitions[0].files.push(dup);
    assert!(m.validate().expect_err("dup").to_string().contains("twice"));
    let mut m = sample();
    m.partitions.swap(0, 1);
    assert!(m.validate().is_err());
}
