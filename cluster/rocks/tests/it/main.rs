//! Integration tests of the RocksDB store: the shared conformance suite and model test, plus
//! what only a real RocksDB can show (crash in a child process, compaction, on-disk format).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod harness;
mod rocks_specific;

use harness::RocksHarness;

mod conformance {
    use super::RocksHarness;
    tern_storage::partition_store_conformance!(RocksHarness::new(), model_cases = 128);
}
