//! The Rust client library, and the meta-server connection that servers share with it.
//!
//! Owns: a pool of gRPC channels ([`Pool`]), talking to whichever meta server leads
//! ([`MetaClient`]: follows leader hints, tries the next address on failure), the routing-table
//! cache, hashing hash keys to partitions, sending to primaries and retrying by error class with
//! bounded backoff ([`TernClient`]); the typed admin client of tables, DR roles, nodes,
//! duplication links and proxies ([`admin`]).
//!
//! Must not depend on: rocksdb or any server-side crate.

pub mod admin;
mod batch;
mod client;
mod meta;
mod pipeline;
mod pool;
mod transport;
pub mod voter;

pub use admin::{AdminClient, ProxyAdminClient};
pub use client::{ClientOptions, Route, ShipHeader, TableScanCursor, TernClient};
pub use meta::MetaClient;
pub use pool::Pool;
