//! The one error type of Tern's libraries, with stable codes.
//!
//! Every variant maps to an [`ErrorCode`] whose name and number never change (clients retry by
//! code, not by message). Fatal errors (corruption, a broken invariant, failed I/O) are a
//! separate type, [`Fatal`], so code that handles API errors cannot swallow them by accident.

use crate::ids::{Ballot, Gpid};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from any Tern operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Input larger than a configured limit. `setting` names the config key that sets it.
    #[error("{what} is {size} bytes, over the limit of {max} bytes (setting `{setting}`)")]
    LimitExceeded { what: &'static str, size: u64, max: u64, setting: &'static str },
    /// Input that can never be valid, whatever the state.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An integer operation found a value that is not a decimal 64-bit integer.
    #[error("{what} is not a decimal 64-bit integer: {value:?}")]
    NotAnInteger { what: String, value: String },
    /// An integer operation would leave the 64-bit range.
    #[error("integer overflow: {0}")]
    IntegerOverflow(String),
    #[error("table {0:?} not found")]
    TableNotFound(String),
    /// The replica that got the request is not (or no longer) the partition's primary.
    #[error("replica of partition {gpid} is not its primary")]
    NotPrimary { gpid: Gpid },
    /// A message carried a ballot older than the receiver's.
    #[error("stale ballot for partition {gpid}: message has {got}, replica is at {current}")]
    StaleBallot { gpid: Gpid, got: Ballot, current: Ballot },
    /// The target cannot serve now (no lease, reconfiguring, unreachable); try again.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("timed out: {0}")]
    Timeout(String),
    /// Overloaded; back off and try again.
    #[error("busy: {0}")]
    Busy(String),
    /// The server gave up waiting for a write that it had already logged: it may still be
    /// applied. Retrying is safe only for idempotent writes.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The table's copy in this cluster is a disaster-recovery standby: it takes writes only
    /// by duplication from the active cluster. Write to the active one (a proxy knows which).
    #[error(
        "table {table:?} is a standby in this cluster (epoch {epoch}): it takes no client writes; write to its active cluster"
    )]
    Standby { table: String, epoch: u64 },
    /// A compare-and-set on a table's DR role found another epoch than expected.
    #[error("table {table:?} is at epoch {actual}, not {expected}: its role changed meanwhile")]
    EpochConflict { table: String, expected: u64, actual: u64 },
    #[error(transparent)]
    Fatal(#[from] Fatal),
    /// An error reported by another process: its stable code and its message.
    #[error("{message}")]
    Remote { code: ErrorCode, message: String },
    /// `cause`, met while doing `what` (phrased as what was being done: "add a link from table
    /// t to cluster dc2"). Keeps the cause's code.
    #[error("{what}: {cause}")]
    Context { what: String, cause: Box<Error> },
}

/// Errors after which the data or the process cannot be trusted to continue as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    /// Bytes read back from disk or network do not decode.
    #[error("corruption: {0}")]
    Corruption(String),
    /// A protocol or storage invariant does not hold (a bug, or tampered state).
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// An I/O operation failed. `context` says what was being done.
    #[error("I/O error while {context}: {message}")]
    Io { context: String, message: String },
}

impl Error {
    pub fn corruption(msg: impl Into<String>) -> Error {
        Error::Fatal(Fatal::Corruption(msg.into()))
    }

    pub fn invariant(msg: impl Into<String>) -> Error {
        Error::Fatal(Fatal::Invariant(msg.into()))
    }

    /// An I/O failure; `context` is phrased as what was being done ("open log segment 42").
    pub fn io(context: impl Into<String>, err: impl std::fmt::Display) -> Error {
        Error::Fatal(Fatal::Io { context: context.into(), message: err.to_string() })
    }

    /// This error, met while doing `what`.
    pub fn context(self, what: impl Into<String>) -> Error {
        Error::Context { what: what.into(), cause: Box::new(self) }
    }

    /// The error under any context.
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { cause, .. } => cause.root(),
            e => e,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::NotAnInteger { .. } => ErrorCode::NotAnInteger,
            Error::IntegerOverflow(_) => ErrorCode::IntegerOverflow,
            Error::TableNotFound(_) => ErrorCode::TableNotFound,
            Error::NotPrimary { .. } => ErrorCode::NotPrimary,
            Error::StaleBallot { .. } => ErrorCode::StaleBallot,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Timeout(_) => ErrorCode::Timeout,
            Error::Busy(_) => ErrorCode::Busy,
            Error::OutcomeUnknown(_) => ErrorCode::OutcomeUnknown,
            Error::Standby { .. } => ErrorCode::Standby,
            Error::EpochConflict { .. } => ErrorCode::EpochConflict,
            Error::Fatal(Fatal::Corruption(_)) => ErrorCode::Corruption,
            Error::Fatal(Fatal::Invariant(_)) => ErrorCode::InvariantViolated,
            Error::Fatal(Fatal::Io { .. }) => ErrorCode::Io,
            Error::Remote { code, .. } => *code,
            Error::Context { cause, .. } => cause.code(),
        }
    }

    /// Whether the same request may succeed if sent again (possibly elsewhere, after a routing
    /// refresh). Clients decide retries on this alone.
    pub fn is_retryable(&self) -> bool {
        self.code().is_retryable()
    }

    pub fn is_fatal(&self) -> bool {
        matches!(self.root(), Error::Fatal(_))
    }
}

macro_rules! error_codes {
    ($($variant:ident = $num:literal, $name:literal, $retry:literal;)*) => {
        /// Stable error codes. Numbers and names are part of the wire protocol: never reuse or
        /// renumber one; add new codes at the end.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode {
            $($variant = $num,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable name, e.g. `NOT_PRIMARY`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            pub fn is_retryable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retry,)*
                }
            }

            pub fn from_u16(n: u16) -> Option<ErrorCode> {
                match n {
                    $($num => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    LimitExceeded = 1, "LIMIT_EXCEEDED", false;
    InvalidArgument = 2, "INVALID_ARGUMENT", false;
    NotAnInteger = 3, "NOT_AN_INTEGER", false;
    IntegerOverflow = 4, "INTEGER_OVERFLOW", false;
    TableNotFound = 5, "TABLE_NOT_FOUND", false;
    NotPrimary = 6, "NOT_PRIMARY", true;
    StaleBallot = 7, "STALE_BALLOT", true;
    Unavailable = 8, "UNAVAILABLE", true;
    Timeout = 9, "TIMEOUT", true;
    Busy = 10, "BUSY", true;
    Corruption = 11, "CORRUPTION", false;
    InvariantViolated = 12, "INVARIANT_VIOLATED", false;
    Io = 13, "IO_ERROR", false;
    OutcomeUnknown = 14, "OUTCOME_UNKNOWN", true;
    Transport = 15, "TRANSPORT", true;
    Standby = 16, "STANDBY", false;
    EpochConflict = 17, "EPOCH_CONFLICT", false;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut nums = HashSet::new();
        let mut names = HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(nums.insert(c as u16), "duplicate number {}", c as u16);
            assert!(names.insert(c.as_str()), "duplicate name {c}");
            assert_eq!(ErrorCode::from_u16(c as u16), Some(c));
        }
        assert_eq!(ErrorCode::from_u16(0), None);
    }

    /// The wire numbers are a contract with every deployed client: pin them.
    #[test]
    fn code_numbers_are_pinned() {
        assert_eq!(ErrorCode::NotPrimary as u16, 6);
        assert_eq!(ErrorCode::StaleBallot as u16, 7);
        assert_eq!(ErrorCode::Corruption as u16, 11);
        assert_eq!(ErrorCode::Io as u16, 13);
    }

    #[test]
    fn retryable_by_class() {
        let gpid = Gpid::new(1, 2);
        assert!(Error::NotPrimary { gpid }.is_retryable());
        assert!(Error::Timeout("x".into()).is_retryable());
        assert!(!Error::InvalidArgument("x".into()).is_retryable());
        assert!(!Error::corruption("bad crc").is_retryable());
        assert!(Error::corruption("bad crc").is_fatal());
    }

    #[test]
    fn context_says_what_was_done_and_keeps_the_code() {
        let e = Error::TableNotFound("t".into()).context("add a link from table t");
        assert_eq!(e.to_string(), r#"add a link from table t: table "t" not found"#);
        assert_eq!(e.code(), ErrorCode::TableNotFound);
        assert!(Error::corruption("x").context("read").is_fatal());
        assert_eq!(e.root(), &Error::TableNotFound("t".into()));
    }

    #[test]
    fn limit_message_names_limit_and_size() {
        let e = Error::LimitExceeded {
            what: "value",
            size: 2_000_000,
            max: 1_048_576,
            setting: "max-value-bytes",
        };
        let s = e.to_string();
        assert!(s.contains("2000000") && s.contains("1048576") && s.contains("max-value-bytes"));
    }
}
