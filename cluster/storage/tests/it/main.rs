//! Integration tests of tern-storage: the conformance suite and the model test on the in-memory
//! store.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use tern_core::ManualClock;
use tern_storage::testing::{StoreHarness, T0_MS, model};
use tern_storage::{MemDisk, MemPartitionStore};

struct MemHarness {
    disk: MemDisk,
    clock: Arc<ManualClock>,
}

impl MemHarness {
    fn new() -> MemHarness {
        MemHarness { disk: MemDisk::new(), clock: Arc::new(ManualClock::new(T0_MS)) }
    }
}

impl StoreHarness for MemHarness {
    type Store = MemPartitionStore;

    fn open(&self, dir: &Path) -> MemPartitionStore {
        MemPartitionStore::open(&self.disk, dir, self.clock.clone())
    }

    fn open_from_checkpoint(&self, checkpoint: &Path, dir: &Path) -> MemPartitionStore {
        MemPartitionStore::open_from_checkpoint(&self.disk, checkpoint, dir, self.clock.clone())
            .expect("open from checkpoint")
    }

    fn crash(&self, store: MemPartitionStore) -> bool {
        store.crash();
        true
    }

    fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }
}

mod conformance {
    use super::MemHarness;
    tern_storage::partition_store_conformance!(MemHarness::new());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn mem_store_matches_the_model(actions in model::actions()) {
        let dir = tempfile::tempdir().unwrap();
        model::run(&MemHarness::new(), dir.path(), &actions);
    }
}
