//! The partition hash: `crc64(hash_key) % partition_count`.
//!
//! CRC-64/XZ (the ECMA-182 polynomial, reflected). It is part of the data format: changing it
//! would move every key to another partition, so it is pinned by a golden test.

use crc::{CRC_64_XZ, Crc};

use crate::ids::PartitionIndex;

const CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_XZ);

pub fn hash_key_hash(hash_key: &[u8]) -> u64 {
    CRC64.checksum(hash_key)
}

/// The partition that owns `hash_key`. `partition_count` must be positive.
pub fn partition_of(hash_key: &[u8], partition_count: u32) -> PartitionIndex {
    assert!(partition_count > 0, "a table has at least one partition");
    PartitionIndex((hash_key_hash(hash_key) % u64::from(partition_count)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_hashes() {
        // The CRC-64/XZ check value.
        assert_eq!(hash_key_hash(b"123456789"), 0x995d_c9bb_df19_39fa);
        assert_eq!(partition_of(b"123456789", 8), PartitionIndex(2));
        assert_eq!(partition_of(b"", 8), PartitionIndex(0));
    }

    #[test]
    fn spreads_keys() {
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[partition_of(format!("user{i}").as_bytes(), 8).0 as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }
}
