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
    /// A write from another cluster carries a timetag further ahead of this server's clock
    /// than the maximum clock offset: one of the two clocks is wrong. It is refused, and this
    /// server's clock does not move (a peer clock hours ahead must not drag every partition's
    /// hybrid logical clock with it).
    #[error(
        "partition {gpid} refuses a write from cluster {from_cluster}: its timetag is {ahead_ms} ms ahead of this server's clock, more than the maximum clock offset of {max_ms} ms (one of the two clocks is wrong)"
    )]
    ClockAhead { gpid: Gpid, from_cluster: u8, ahead_ms: u64, max_ms: u64 },
    /// The table is active in this cluster, but the cluster does not hold the DR lease that
    /// lets an active copy take client writes: it has not renewed it through a majority of its
    /// DR voters (proxies, or a witness) recently enough, or they said another copy is active
    /// at a higher epoch. A proxy may meanwhile promote a standby elsewhere, so the write was
    /// refused before it was logged. Retry: through a proxy the route may lead to the new
    /// active copy; the lease may also come back.
    #[error(
        "table {table:?} (active at epoch {epoch}) takes no client writes here: this cluster does not hold the DR lease ({why}); retry through a proxy"
    )]
    NoDrLease { table: String, epoch: u64, why: String },
    /// The table is being restored from a backup (`tern backup restore`): it serves neither
    /// reads nor writes until the restore completes, so nobody sees half a table. Re-run the
    /// restore to finish it, or drop the table to abandon it.
    #[error(
        "table {table:?} is being restored from backup {backup}: it serves no reads or writes until the restore completes (re-run `tern backup restore {backup} --table {table}` to finish it, or drop the table to abandon it)"
    )]
    Restoring { table: String, backup: String },
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
            Error::ClockAhead { .. } => ErrorCode::ClockAhead,
            Error::NoDrLease { .. } => ErrorCode::NoDrLease,
            Error::Restoring { .. } => ErrorCode::Restoring,
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
    ClockAhead = 18, "CLOCK_AHEAD", false;
    NoDrLease = 19, "NO_DR_LEASE", true;
    Restoring = 20, "RESTORING", false;
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

    /// Every code as deployed clients and servers know it: number, name, and whether a client
    /// retries it. The wire format is a contract: a renumbered or renamed code must fail here,
    /// so never edit a row (a retry class may change, deliberately, with its row). A new code
    /// adds a row at the end.
    const WIRE_CODES: &[(ErrorCode, u16, &str, bool)] = &[
        (ErrorCode::LimitExceeded, 1, "LIMIT_EXCEEDED", false),
        (ErrorCode::InvalidArgument, 2, "INVALID_ARGUMENT", false),
        (ErrorCode::NotAnInteger, 3, "NOT_AN_INTEGER", false),
        (ErrorCode::IntegerOverflow, 4, "INTEGER_OVERFLOW", false),
        (ErrorCode::TableNotFound, 5, "TABLE_NOT_FOUND", false),
        (ErrorCode::NotPrimary, 6, "NOT_PRIMARY", true),
        (ErrorCode::StaleBallot, 7, "STALE_BALLOT", true),
        (ErrorCode::Unavailable, 8, "UNAVAILABLE", true),
        (ErrorCode::Timeout, 9, "TIMEOUT", true),
        (ErrorCode::Busy, 10, "BUSY", true),
        (ErrorCode::Corruption, 11, "CORRUPTION", false),
        (ErrorCode::InvariantViolated, 12, "INVARIANT_VIOLATED", false),
        (ErrorCode::Io, 13, "IO_ERROR", false),
        (ErrorCode::OutcomeUnknown, 14, "OUTCOME_UNKNOWN", true),
        (ErrorCode::Transport, 15, "TRANSPORT", true),
        (ErrorCode::Standby, 16, "STANDBY", false),
        (ErrorCode::EpochConflict, 17, "EPOCH_CONFLICT", false),
        (ErrorCode::ClockAhead, 18, "CLOCK_AHEAD", false),
        (ErrorCode::NoDrLease, 19, "NO_DR_LEASE", true),
        (ErrorCode::Restoring, 20, "RESTORING", false),
    ];

    #[test]
    fn every_code_number_and_name_is_pinned() {
        let pinned: Vec<ErrorCode> = WIRE_CODES.iter().map(|&(c, ..)| c).collect();
        assert_eq!(pinned, ErrorCode::ALL, "every code has exactly one row, in wire order");
        for &(code, number, name, retryable) in WIRE_CODES {
            assert_eq!(code as u16, number, "{name} was renumbered");
            assert_eq!(code.as_str(), name, "code {number} was renamed");
            assert_eq!(code.to_string(), name);
            assert_eq!(ErrorCode::from_u16(number), Some(code), "{name}");
            assert_eq!(code.is_retryable(), retryable, "{name} changed retry class");
        }
        assert_eq!(ErrorCode::from_u16(21), None, "a number nobody assigned");
    }

    /// Each variant maps to its code (and through it to its retry class) in one place,
    /// `Error::code`; a variant moved to another code changes what clients do.
    #[test]
    fn every_error_variant_has_its_code() {
        let gpid = Gpid::new(1, 2);
        let s = || "x".to_string();
        let cases = [
            (
                Error::LimitExceeded { what: "value", size: 2, max: 1, setting: "max-value-bytes" },
                ErrorCode::LimitExceeded,
            ),
            (Error::InvalidArgument(s()), ErrorCode::InvalidArgument),
            (Error::NotAnInteger { what: s(), value: s() }, ErrorCode::NotAnInteger),
            (Error::IntegerOverflow(s()), ErrorCode::IntegerOverflow),
            (Error::TableNotFound(s()), ErrorCode::TableNotFound),
            (Error::NotPrimary { gpid }, ErrorCode::NotPrimary),
            (Error::StaleBallot { gpid, got: Ballot(1), current: Ballot(2) }, ErrorCode::StaleBallot),
            (Error::Unavailable(s()), ErrorCode::Unavailable),
            (Error::Timeout(s()), ErrorCode::Timeout),
            (Error::Busy(s()), ErrorCode::Busy),
            (Error::corruption("bad crc"), ErrorCode::Corruption),
            (Error::invariant("broken"), ErrorCode::InvariantViolated),
            (Error::io("open log segment 42", "denied"), ErrorCode::Io),
            (Error::OutcomeUnknown(s()), ErrorCode::OutcomeUnknown),
            (Error::Standby { table: s(), epoch: 3 }, ErrorCode::Standby),
            (Error::EpochConflict { table: s(), expected: 1, actual: 2 }, ErrorCode::EpochConflict),
            (
                Error::ClockAhead { gpid, from_cluster: 2, ahead_ms: 3_600_000, max_ms: 500 },
                ErrorCode::ClockAhead,
            ),
            (Error::NoDrLease { table: s(), epoch: 2, why: s() }, ErrorCode::NoDrLease),
            (Error::Restoring { table: s(), backup: s() }, ErrorCode::Restoring),
        ];
        for (e, code) in &cases {
            assert_eq!(e.code(), *code, "{e}");
            assert_eq!(e.is_retryable(), code.is_retryable(), "{e}");
            assert_eq!(
                e.is_fatal(),
                matches!(code, ErrorCode::Corruption | ErrorCode::InvariantViolated | ErrorCode::Io),
                "{e}"
            );
        }
        // Every code but TRANSPORT has a local variant (TRANSPORT is made by the client's
        // transport, as `Remote`); every code survives as `Remote`.
        for &code in ErrorCode::ALL {
            let local = cases.iter().any(|(_, c)| *c == code);
            assert_eq!(local, code != ErrorCode::Transport, "{code}");
            let remote = Error::Remote { code, message: s() };
            assert_eq!(remote.code(), code);
        }
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
