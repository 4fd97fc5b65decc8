//! Embedded mode: the data model on a single-partition RocksDB store in a local directory, with
//! no servers. It is how `tern kv --data-dir` works until clusters exist, and it applies writes
//! exactly as a replica does: admission limits, a decree, an HLC timetag, then the store.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tern_core::mutation::WriteOutcome;
use tern_core::{Clock, ClusterId, Hlc, Limits, Mutation, WriteOp};
use tern_rocks::{RocksBackend, RocksConfig, RocksPartitionStore};
use tern_storage::{PartitionStore, SystemClock};

/// The largest step a peer's clock may be ahead before it is reported (unused by one node,
/// but part of every HLC).
const MAX_CLOCK_OFFSET_MS: u64 = 500;

pub struct Embedded {
    store: RocksPartitionStore,
    hlc: Hlc,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

impl Embedded {
    pub fn open(dir: &Path) -> anyhow::Result<Embedded> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let config = RocksConfig { block_cache_bytes: 32 << 20, ..RocksConfig::default() };
        let backend = RocksBackend::new(config, clock.clone());
        let store = backend
            .open(&dir.join("partition-0"))
            .with_context(|| format!("open the embedded store in {}", dir.display()))?;
        let cluster = ClusterId::new(1).expect("1 is a valid cluster id");
        let mut hlc = Hlc::new(cluster, clock.now_ms(), MAX_CLOCK_OFFSET_MS);
        // Timetags must grow with decrees, also across runs with a clock that went back.
        hlc.observe(store.last_applied_timetag(), clock.now_ms());
        Ok(Embedded { store, hlc, clock, limits: Limits::default() })
    }

    pub fn store(&self) -> &RocksPartitionStore {
        &self.store
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies one write and makes it durable before returning. A refused op is an error.
    pub fn write(&mut self, op: WriteOp) -> anyhow::Result<WriteOutcome> {
        self.limits.check_op(&op)?;
        let decree = self.store.last_applied_decree().next();
        let timetag = self.hlc.now(self.clock.now_ms());
        let mut outcomes = self.store.apply(decree, timetag, &Mutation::new(vec![op]))?;
        // No replication log here: flush so that "OK" means fsync'ed.
        self.store.flush()?;
        match outcomes.pop() {
            Some(WriteOutcome::Failed(e)) => Err(e.into()),
            Some(o) => Ok(o),
            None => anyhow::bail!("the store returned no outcome for decree {decree}"),
        }
    }
}
