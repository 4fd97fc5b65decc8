//! Tern's wire protocol: the `.proto` files and their generated tonic/prost code, for every RPC
//! of every process (client `Kv` service, replica peer service, meta service, proxy routing).
//!
//! Filled by the running-cluster issue (#4). Owns: message and service definitions, and the one
//! place that maps `tern_core::ErrorCode` to gRPC status. Must not depend on: rocksdb, the AWS
//! SDK, or any Tern runtime crate (runtimes depend on it, not the other way round).
