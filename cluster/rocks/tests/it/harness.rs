use std::path::Path;
use std::sync::Arc;

use tern_core::ManualClock;
use tern_rocks::{RocksBackend, RocksConfig, RocksPartitionStore};
use tern_storage::testing::{StoreHarness, T0_MS};

pub struct RocksHarness {
    pub backend: RocksBackend,
    pub clock: Arc<ManualClock>,
}

impl RocksHarness {
    pub fn new() -> RocksHarness {
        let clock = Arc::new(ManualClock::new(T0_MS));
        let config = RocksConfig { block_cache_bytes: 8 << 20, ..RocksConfig::default() };
        RocksHarness { backend: RocksBackend::new(config, clock.clone()), clock }
    }
}

impl StoreHarness for RocksHarness {
    type Store = RocksPartitionStore;

    fn open(&self, dir: &Path) -> RocksPartitionStore {
        self.backend.open(dir).expect("open RocksDB store")
    }

    fn open_from_checkpoint(&self, checkpoint: &Path, dir: &Path) -> RocksPartitionStore {
        self.backend.open_from_checkpoint(checkpoint, dir).expect("open from checkpoint")
    }

    /// RocksDB cannot be crashed and reopened in one process (its lock file stays held); see
    /// `rocks_specific::crash_keeps_only_flushed_state`, which crashes a child process.
    fn crash(&self, _store: RocksPartitionStore) -> bool {
        false
    }

    fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }
}
