//! Tern's wire protocol: the generated protobuf/tonic code of `proto/tern.proto` (module [`pb`]),
//! the one place where Tern errors map to gRPC status and back ([`status`]), and conversions
//! between the generated messages and Tern's own types ([`convert`]).
//!
//! Must not depend on: rocksdb, the AWS SDK, or any Tern runtime crate.

pub mod convert;
pub mod status;

/// For `Message::encoded_len` and friends on the generated types.
pub use prost;

/// Generated code.
#[allow(clippy::all, missing_debug_implementations, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("tern.v1");
}
