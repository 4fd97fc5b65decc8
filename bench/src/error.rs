//! Errors of a benchmark run (before or around it), and of one operation inside it.

/// Why a run could not start or finish. Operation failures during a run are not errors of the
/// run: they are counted by code in the report ([`OpError`]).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag or combination of flags that cannot work.
    #[error("invalid benchmark configuration: {0}")]
    Config(String),
    /// The table to load does not exist in the cluster.
    #[error("table {table:?} does not exist (create it with `tern table create {table}`)")]
    TableNotFound { table: String },
    /// The target did not answer the check made before the run.
    #[error("{target} did not answer: {detail}")]
    Unreachable { target: &'static str, detail: String },
    /// The echo server process could not be started.
    #[error("echo server: {0}")]
    EchoServer(String),
    /// Every operation of the run failed.
    #[error("every operation failed ({0})")]
    AllFailed(String),
}

/// A failed operation, by stable code: Tern's error codes (`TIMEOUT`, `NOT_PRIMARY`, ...) for
/// the Tern target, gRPC status names (`UNAVAILABLE`, ...) for the others, `TIMEOUT` when the
/// bench's own per-operation deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpError {
    pub code: &'static str,
}

impl OpError {
    pub const TIMEOUT: OpError = OpError { code: "TIMEOUT" };

    pub fn new(code: &'static str) -> OpError {
        OpError { code }
    }

    pub fn from_status(status: &tonic::Status) -> OpError {
        OpError::new(crate::grpc_code_name(status.code()))
    }
}

/// How long one gRPC operation of the echo and etcd targets may take before it counts as
/// `TIMEOUT` (as Tern's client deadline).
const OP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a gRPC `call` answered; a failure by its status's code, or `TIMEOUT` after
/// [`OP_TIMEOUT`].
pub(crate) async fn with_timeout<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, OpError> {
    match tokio::time::timeout(OP_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => Err(OpError::from_status(&status)),
        Err(_) => Err(OpError::TIMEOUT),
    }
}
