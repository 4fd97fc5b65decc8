//! Telling a status a server sent from one the local channel made up.
//!
//! A server's status carries its Tern code and `tern_proto::status::from_status` maps it. When
//! the connection breaks during a call (the server was killed, say), tonic makes up a status
//! itself: gRPC `UNKNOWN`, "transport error", with the transport error as its source.
//! `from_status` alone would read that `UNKNOWN` as a broken invariant (fatal, never retried);
//! it is a transport failure: retryable, and the request may or may not have been applied.

use tern_core::{Error, ErrorCode};
use tern_proto::status::from_status;
use tonic::Status;

/// The error `status` stands for.
pub(crate) fn error_of(status: &Status) -> Error {
    let mut source = std::error::Error::source(status);
    let mut chain = Vec::new();
    let mut from_transport = false;
    while let Some(e) = source {
        from_transport |= e.is::<tonic::transport::Error>();
        chain.push(e.to_string());
        source = e.source();
    }
    if from_transport && status.code() == tonic::Code::Unknown {
        return Error::Remote {
            code: ErrorCode::Transport,
            message: format!("the connection failed during the call: {}", chain.join(": ")),
        };
    }
    from_status(status)
}
