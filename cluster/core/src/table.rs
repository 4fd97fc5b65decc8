//! What a table may be: its name, partition count and replica count. The meta servers check a
//! new table against these rules, and topology validation checks a topology file against the
//! same ones, so a file that validates is not refused by the meta servers for its shape.

use crate::error::{Error, Result};

/// Partition counts a table may have (any count in the range; the hash spreads keys over it).
pub const PARTITIONS: std::ops::RangeInclusive<u32> = 1..=4096;

/// Replica counts a table may have (at most as many as the cluster has replica servers alive).
pub const REPLICAS: std::ops::RangeInclusive<u32> = 1..=9;

/// A table name: 1 to 64 characters among ASCII letters, digits, `_`, `.`, `-`.
pub fn check_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "table name {name:?} is not valid: use 1 to 64 characters among letters, digits, '_', '.', '-'"
        )))
    }
}

pub fn check_partitions(partitions: u32) -> Result<()> {
    if PARTITIONS.contains(&partitions) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "partition count {partitions} is out of range {}..={}",
            PARTITIONS.start(),
            PARTITIONS.end()
        )))
    }
}

pub fn check_replicas(replicas: u32) -> Result<()> {
    if REPLICAS.contains(&replicas) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "replica count {replicas} is out of range {}..={}",
            REPLICAS.start(),
            REPLICAS.end()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_counts_and_their_messages() {
        assert!(check_table_name("user_events.v2-a").is_ok());
        for bad in ["", "a b", "ü", &"x".repeat(65)] {
            let e = check_table_name(bad).unwrap_err().to_string();
            assert!(e.contains("is not valid: use 1 to 64 characters"), "{e}");
        }
        assert!(check_partitions(1).is_ok() && check_partitions(4096).is_ok());
        assert!(
            check_partitions(0)
                .unwrap_err()
                .to_string()
                .contains("partition count 0 is out of range 1..=4096")
        );
        assert!(check_replicas(9).is_ok());
        assert!(
            check_replicas(10).unwrap_err().to_string().contains("replica count 10 is out of range 1..=9")
        );
    }
}
