//! The RocksDB partition store: the only crate that links RocksDB.
//!
//! Owns: [`RocksPartitionStore`] (one RocksDB instance per partition replica) and
//! [`RocksBackend`], which opens stores that share one block cache and one configuration.
//!
//! Layout of one store: column family `default` holds records (storage key → value header +
//! user bytes); column family `meta` holds the format version, the last applied decree, and the
//! largest applied timetag and ballot. RocksDB's WAL is off: the replication log is the write-ahead log.
//! Both families flush atomically, so what a crash leaves is always a consistent
//! (data, decree) pair, and `durable_decree` reads that pair from persisted files only.

mod backend;
mod compaction;
mod store;

pub use backend::{RocksBackend, RocksConfig};
pub use store::RocksPartitionStore;
