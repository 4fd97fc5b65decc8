//! Integration tests of the RocksDB store: the shared conformance suite and model test, plus
//! what only a real RocksDB can show (crash in a child process, compaction, on-disk format).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod harness;
mod rocks_specific;

use proptest::prelude::*;
use tern_storage::testing::model;

use harness::RocksHarness;

mod conformance {
    use super::RocksHarness;
    tern_storage::partition_store_conformance!(RocksHarness::new());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    /// `RocksPartitionStore` behaves like the `BTreeMap` model under random sequences of every
    /// operation, with TTLs driven by an injected clock, reopens and checkpoint restores.
    #[test]
    fn rocks_store_matches_the_model(actions in model::actions()) {
        let dir = tempfile::tempdir().unwrap();
        model::run(&RocksHarness::new(), dir.path(), &actions);
    }
}
