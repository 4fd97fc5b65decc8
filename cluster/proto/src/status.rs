//! Tern errors ⇄ gRPC status. The only place this mapping exists.
//!
//! A status carries the stable Tern code (`ErrorCode` number) in the `tern-code` metadata entry
//! and the error's message; the receiving side rebuilds an [`Error::Remote`] with that code, so
//! clients classify retries by code, never by message. A status without a Tern code (from the
//! transport itself) is classified by its gRPC code.

use tern_core::{Error, ErrorCode};
use tonic::{Code, Status};

pub const CODE_KEY: &str = "tern-code";
/// A non-leader meta server names the leader's address here.
pub const LEADER_KEY: &str = "tern-leader";

fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::LimitExceeded | ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::NotAnInteger => Code::FailedPrecondition,
        ErrorCode::IntegerOverflow => Code::OutOfRange,
        ErrorCode::TableNotFound => Code::NotFound,
        ErrorCode::NotPrimary | ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::StaleBallot => Code::Aborted,
        ErrorCode::Timeout => Code::DeadlineExceeded,
        ErrorCode::OutcomeUnknown | ErrorCode::Transport => Code::Unavailable,
        ErrorCode::Busy => Code::ResourceExhausted,
        ErrorCode::Corruption => Code::DataLoss,
        ErrorCode::InvariantViolated | ErrorCode::Io => Code::Internal,
        ErrorCode::Standby => Code::FailedPrecondition,
        ErrorCode::EpochConflict => Code::Aborted,
        ErrorCode::ClockAhead => Code::FailedPrecondition,
        ErrorCode::NoDrLease => Code::Unavailable,
        ErrorCode::Restoring => Code::FailedPrecondition,
    }
}

/// The status to return for `e`.
pub fn to_status(e: &Error) -> Status {
    let code = e.code();
    let mut s = Status::new(grpc_code(code), e.to_string());
    if let Ok(v) = (code as u16).to_string().parse() {
        s.metadata_mut().insert(CODE_KEY, v);
    }
    s
}

/// The error a status stands for.
pub fn from_status(s: &Status) -> Error {
    let tern = s
        .metadata()
        .get(CODE_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(ErrorCode::from_u16);
    let code = tern.unwrap_or(match s.code() {
        Code::InvalidArgument => ErrorCode::InvalidArgument,
        Code::NotFound => ErrorCode::TableNotFound,
        Code::DeadlineExceeded | Code::Cancelled => ErrorCode::Timeout,
        Code::ResourceExhausted => ErrorCode::Busy,
        Code::DataLoss => ErrorCode::Corruption,
        Code::Internal | Code::Unknown | Code::Unimplemented => ErrorCode::InvariantViolated,
        // A status without a Tern code and UNAVAILABLE comes from the transport (connection
        // refused or reset): the request may or may not have arrived. So may any other kind
        // Tern never sends unmarked (from something between client and server): whether it was
        // applied is unknown, and a non-idempotent write must not be retried on it.
        _ => ErrorCode::Transport,
    });
    let message =
        if tern.is_some() { s.message().to_string() } else { format!("{}: {}", s.code(), s.message()) };
    Error::Remote { code, message }
}

/// The leader address a non-leader meta server pointed to, if any.
pub fn leader_hint(s: &Status) -> Option<String> {
    s.metadata().get(LEADER_KEY).and_then(|v| v.to_str().ok()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_survive_the_round_trip() {
        for &code in ErrorCode::ALL {
            let e = Error::Remote { code, message: format!("because {code}") };
            let back = from_status(&to_status(&e));
            assert_eq!(back.code(), code);
            assert_eq!(back.to_string(), format!("because {code}"));
            assert_eq!(back.is_retryable(), code.is_retryable());
        }
        let e = Error::LimitExceeded { what: "value", size: 9, max: 1, setting: "max-value-bytes" };
        let s = to_status(&e);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(from_status(&s).to_string().contains("max-value-bytes"));
    }

    /// Every code's gRPC status. Proxies, load balancers and clients in other languages see only
    /// the gRPC code, so moving a code to another status changes what they do: a change here
    /// must be deliberate. A new code adds a row.
    const GRPC_CODES: &[(ErrorCode, Code)] = &[
        (ErrorCode::LimitExceeded, Code::InvalidArgument),
        (ErrorCode::InvalidArgument, Code::InvalidArgument),
        (ErrorCode::NotAnInteger, Code::FailedPrecondition),
        (ErrorCode::IntegerOverflow, Code::OutOfRange),
        (ErrorCode::TableNotFound, Code::NotFound),
        (ErrorCode::NotPrimary, Code::Unavailable),
        (ErrorCode::StaleBallot, Code::Aborted),
        (ErrorCode::Unavailable, Code::Unavailable),
        (ErrorCode::Timeout, Code::DeadlineExceeded),
        (ErrorCode::Busy, Code::ResourceExhausted),
        (ErrorCode::Corruption, Code::DataLoss),
        (ErrorCode::InvariantViolated, Code::Internal),
        (ErrorCode::Io, Code::Internal),
        (ErrorCode::OutcomeUnknown, Code::Unavailable),
        (ErrorCode::Transport, Code::Unavailable),
        (ErrorCode::Standby, Code::FailedPrecondition),
        (ErrorCode::EpochConflict, Code::Aborted),
        (ErrorCode::ClockAhead, Code::FailedPrecondition),
        (ErrorCode::NoDrLease, Code::Unavailable),
        (ErrorCode::Restoring, Code::FailedPrecondition),
    ];

    #[test]
    fn every_code_has_its_grpc_status_and_carries_its_number() {
        let pinned: Vec<ErrorCode> = GRPC_CODES.iter().map(|&(c, _)| c).collect();
        assert_eq!(pinned, ErrorCode::ALL, "every code has exactly one row, in wire order");
        for &(code, grpc) in GRPC_CODES {
            let s = to_status(&Error::Remote { code, message: "m".into() });
            assert_eq!(s.code(), grpc, "{code}");
            let number = s.metadata().get(CODE_KEY).and_then(|v| v.to_str().ok());
            assert_eq!(number, Some((code as u16).to_string().as_str()), "{code} carries its number");
        }
    }

    /// A status without a Tern code (from tonic itself, or from something between client and
    /// server) is classified by its gRPC code alone. The guess decides retries (an UNAVAILABLE
    /// from the transport may have been delivered: `TRANSPORT`, which a non-idempotent write
    /// does not retry, not `UNAVAILABLE`, which it does), so it is pinned, every gRPC code.
    #[test]
    fn a_status_without_a_tern_code_is_classified_by_its_grpc_code() {
        let cases = [
            (Code::InvalidArgument, ErrorCode::InvalidArgument),
            (Code::NotFound, ErrorCode::TableNotFound),
            (Code::DeadlineExceeded, ErrorCode::Timeout),
            (Code::Cancelled, ErrorCode::Timeout),
            (Code::ResourceExhausted, ErrorCode::Busy),
            (Code::DataLoss, ErrorCode::Corruption),
            (Code::Internal, ErrorCode::InvariantViolated),
            (Code::Unknown, ErrorCode::InvariantViolated),
            (Code::Unimplemented, ErrorCode::InvariantViolated),
            (Code::Unavailable, ErrorCode::Transport),
            (Code::Ok, ErrorCode::Transport),
            (Code::AlreadyExists, ErrorCode::Transport),
            (Code::PermissionDenied, ErrorCode::Transport),
            (Code::FailedPrecondition, ErrorCode::Transport),
            (Code::Aborted, ErrorCode::Transport),
            (Code::OutOfRange, ErrorCode::Transport),
            (Code::Unauthenticated, ErrorCode::Transport),
        ];
        for (grpc, code) in cases {
            let e = from_status(&Status::new(grpc, "why"));
            assert_eq!(e.code(), code, "{grpc:?}");
            assert!(e.to_string().contains("why"), "{grpc:?}: {e}");
        }
    }

    #[test]
    fn transport_failures_are_retryable() {
        let e = from_status(&Status::unavailable("connection refused"));
        assert!(e.is_retryable(), "{e}");
        assert_eq!(e.code(), ErrorCode::Transport);
        assert!(!from_status(&Status::invalid_argument("bad")).is_retryable());
    }
}
