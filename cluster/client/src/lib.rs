//! The Rust client library.
//!
//! Filled by the running-cluster issue (#4) and the meta-proxy issue (#6). Owns: the routing
//! table cache (from meta servers or proxies), hashing hash keys to partitions, sending to
//! primaries, retries by `ErrorCode` class with bounded backoff, connection pooling, and scans
//! across partitions.
//!
//! Must not depend on: rocksdb or any server-side crate.
