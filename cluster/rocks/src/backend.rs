//! Opening RocksDB partition stores that share a block cache and a configuration.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options};
use tern_core::{Clock, Result};

use crate::compaction::{Horizon, TtlFilterFactory};
use crate::store::RocksPartitionStore;

/// The x86-64 and aarch64 huge page size RocksDB asks the kernel for (`MAP_HUGETLB`).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// RocksDB settings for every store of one node.
#[derive(Clone, Debug)]
pub struct RocksConfig {
    /// Block cache shared by every partition on the node.
    pub block_cache_bytes: usize,
    /// Memtable size per partition before it is flushed.
    pub write_buffer_bytes: usize,
    /// Take the data memtables' memory from the kernel's reserved huge pages (2 MiB) when any
    /// are free (`vm.nr_hugepages`); RocksDB falls back to ordinary memory, block by block, when
    /// none are. A memtable insert walks a skip list through random nodes, each a TLB miss with
    /// 4 KiB pages: huge pages cut CPU per write by 7-11 % (docs/benchmarks.md, eleventh pass).
    /// (In the `tern` binary the ordinary memory comes from mimalloc, whose arenas get
    /// transparent huge pages where the kernel allows them: most of that gain without reserved
    /// pages; see the `tern-alloc` crate.)
    pub memtable_huge_pages: bool,
    /// Background flush and compaction jobs per store.
    pub max_background_jobs: i32,
}

impl Default for RocksConfig {
    fn default() -> RocksConfig {
        RocksConfig {
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 32 << 20,
            memtable_huge_pages: true,
            max_background_jobs: 2,
        }
    }
}

/// Opens [`RocksPartitionStore`]s. Cheap to clone; clones share the block cache.
#[derive(Clone)]
pub struct RocksBackend {
    config: RocksConfig,
    cache: Cache,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RocksBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksBackend").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RocksBackend {
    /// `clock` decides expiry for reads of every store this backend opens.
    pub fn new(config: RocksConfig, clock: Arc<dyn Clock>) -> RocksBackend {
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        RocksBackend { config, cache, clock }
    }

    pub fn config(&self) -> &RocksConfig {
        &self.config
    }

    /// Opens the store in `dir`, creating an empty one if `dir` holds none.
    pub fn open(&self, dir: &Path) -> Result<RocksPartitionStore> {
        RocksPartitionStore::open(self, dir)
    }

    /// Creates the store in `dir` (which must not exist) from the checkpoint in `checkpoint`,
    /// then opens it. Safe to re-run after an interruption.
    pub fn open_from_checkpoint(&self, checkpoint: &Path, dir: &Path) -> Result<RocksPartitionStore> {
        crate::store::restore_checkpoint(checkpoint, dir)?;
        self.open(dir)
    }

    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    pub(crate) fn db_options(&self) -> Options {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        // Data and meta flush together: a crash never leaves a decree without its data.
        o.set_atomic_flush(true);
        o.set_max_background_jobs(self.config.max_background_jobs);
        o.set_keep_log_file_num(3);
        // Flushes and compactions write their files back 1 MiB at a time as they go
        // (`sync_file_range`), not all at the file's closing fsync: a burst of tens of MiB
        // queued on the disk held every replica log's group fsync behind it for 100+ ms.
        o.set_bytes_per_sync(1 << 20);
        // One writer per store (its replica's task), so nothing is lost by writing memtables
        // from one thread; and in-place updates of the meta column family need it.
        o.set_allow_concurrent_memtable_write(false);
        o
    }

    pub(crate) fn data_options(&self, horizon: Horizon) -> Options {
        let mut block = BlockBasedOptions::default();
        block.set_block_cache(&self.cache);
        block.set_bloom_filter(10.0, false);
        block.set_cache_index_and_filter_blocks(true);
        let mut o = Options::default();
        o.set_block_based_table_factory(&block);
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_write_buffer_size(self.config.write_buffer_bytes);
        if self.config.memtable_huge_pages {
            o.set_memtable_huge_page_size(HUGE_PAGE_BYTES);
        }
        o.set_compaction_filter_factory(TtlFilterFactory::new(horizon));
        o
    }

    /// The meta column family holds three fixed-size keys (the applied mark) rewritten by every
    /// batch. Updated in place, its memtable stays a few entries long: appended, it filled its
    /// buffer every few seconds and, flushes being atomic, flushed the data column family with
    /// it at a tenth of its buffer (many small files). Safe here because the family is only
    /// read by point lookups (no iterator or snapshot needs an older version), updates never
    /// touch an immutable memtable, and an atomic flush switches both families' memtables at
    /// one point of the single write path, so a flushed decree still names exactly the flushed
    /// data.
    pub(crate) fn meta_options(&self) -> Options {
        let mut o = Options::default();
        o.set_write_buffer_size(1 << 20);
        o.set_inplace_update_support(true);
        o
    }
}
