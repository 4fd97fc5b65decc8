//! The crate's one error type, classified retryable or permanent.
//!
//! Every variant names what it was about: the object (`s3://bucket/key`, `file:///dir/key`,
//! `mem://key`), the bucket or the endpoint. Callers retry by [`Error::retryable`], never by
//! matching messages; [`Error::code`] is a stable name for logs, metrics and exit statuses.

use std::path::PathBuf;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to an object store or handling a backup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("object {object} not found")]
    NotFound { object: String },

    /// The bucket (or the local store's root directory) does not exist.
    #[error("bucket {bucket} does not exist (at {endpoint})")]
    NoSuchBucket { bucket: String, endpoint: String },

    /// Credentials missing, unknown or not allowed to do this.
    #[error("access denied to {target} at {endpoint}: {detail}")]
    AccessDenied { target: String, endpoint: String, detail: String },

    /// The endpoint could not be reached (connection refused, DNS, timeout). Retryable.
    #[error("endpoint {endpoint} unreachable while {doing}: {detail}")]
    Unreachable { endpoint: String, doing: String, detail: String },

    /// The server asked us to slow down (HTTP 503 SlowDown, 429). Retryable.
    #[error("throttled by {endpoint} while {doing}: {detail}")]
    Throttled { endpoint: String, doing: String, detail: String },

    /// A server-side or transport failure that may succeed on retry (HTTP 5xx, reset
    /// connection, malformed response). Retryable.
    #[error("transient failure at {endpoint} while {doing}: {detail}")]
    Transient { endpoint: String, doing: String, detail: String },

    /// Data is damaged: wrong size, wrong checksum, unparsable manifest.
    #[error("{object} is corrupt: {detail}")]
    Corrupt { object: String, detail: String },

    /// A ranged read starting at or past the end of the object.
    #[error("range starting at byte {offset} is past the end of {object} ({size} bytes)")]
    InvalidRange { object: String, offset: u64, size: u64 },

    /// The caller passed something unusable (a bad key, URL, id or setting).
    #[error("invalid {what}: {detail}")]
    Invalid { what: String, detail: String },

    /// Local file-system I/O failed.
    #[error("{doing} {path}: {source}")]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The server refused the request for a reason not listed above.
    #[error("{endpoint} refused {doing} ({code}, HTTP {status}): {detail}")]
    Service { endpoint: String, doing: String, code: String, status: u16, detail: String },

    /// The cluster a backup is taken from failed a step (resolving a table, a primary's
    /// checkpoint or upload). Retryable when the cause is (a primary that moved, a server
    /// unreachable): the coordinator then re-resolves and runs the partition again.
    #[error("{doing}: {detail}")]
    Cluster { doing: String, detail: String, retryable: bool },

    /// A fault injected by [`crate::FaultyObjectStore`].
    #[error("injected {} fault on {op} {key}", if *.retryable { "retryable" } else { "permanent" })]
    Injected { op: &'static str, key: String, retryable: bool },
}

impl Error {
    /// Whether doing the same thing again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Throttled { .. } | Error::Transient { .. } => true,
            Error::Injected { retryable, .. } | Error::Cluster { retryable, .. } => *retryable,
            Error::Io { source, .. } => {
                matches!(source.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut)
            }
            Error::NotFound { .. }
            | Error::NoSuchBucket { .. }
            | Error::AccessDenied { .. }
            | Error::Corrupt { .. }
            | Error::InvalidRange { .. }
            | Error::Invalid { .. }
            | Error::Service { .. } => false,
        }
    }

    /// A stable name for the kind of error (logs, metrics, exit statuses).
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "NOT_FOUND",
            Error::NoSuchBucket { .. } => "NO_SUCH_BUCKET",
            Error::AccessDenied { .. } => "ACCESS_DENIED",
            Error::Unreachable { .. } => "UNREACHABLE",
            Error::Throttled { .. } => "THROTTLED",
            Error::Transient { .. } => "TRANSIENT",
            Error::Corrupt { .. } => "CORRUPT",
            Error::InvalidRange { .. } => "INVALID_RANGE",
            Error::Invalid { .. } => "INVALID_ARGUMENT",
            Error::Io { .. } => "IO",
            Error::Service { .. } => "SERVICE",
            Error::Injected { .. } => "INJECTED",
            Error::Cluster { .. } => "CLUSTER",
        }
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    pub fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), detail: detail.into() }
    }

    pub(crate) fn io(doing: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { doing, path: path.into(), source }
    }
}
