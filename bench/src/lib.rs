//! Load generation for `tern bench`, and criterion benchmarks of Tern's hot paths (`benches/`,
//! see `docs/benchmarks.md`).
//!
//! Owns: YCSB-like workloads ([`workload`]), the closed- and open-loop engine that drives them
//! against a [`Target`] and measures latency with HDR histograms ([`runner`]), the report in
//! text and JSON ([`report`]), and the three targets that share that engine: a Tern cluster
//! through `tern-client` ([`tern`]), a trivial gRPC echo service as the RPC ceiling ([`echo`]),
//! and etcd v3 for comparison ([`etcd`], a hand-written subset of its KV API).
//!
//! Must not depend on: RocksDB or any server-side crate in its normal dependencies (the
//! criterion benches use `tern-rocks` as a dev-dependency only), nor on criterion.

pub mod echo;
pub mod error;
pub mod etcd;
pub mod lag;
pub mod report;
pub mod runner;
pub mod tern;
pub mod workload;

pub use error::{BenchError, OpError};
pub use lag::{LagProbe, LagReport};
pub use report::Report;
pub use runner::{Progress, ReadOutcome, RunConfig, Runner, Target};
pub use workload::{Distribution, OpKind, Workload};

/// Maps a gRPC status code to a stable upper-case name for error counts, e.g. `UNAVAILABLE`.
pub(crate) fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
