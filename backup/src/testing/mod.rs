//! Test support (feature `testing`): the object-store conformance suite and real
//! S3-compatible servers to run it against. Used by this crate's tests and, later, by the
//! end-to-end tests and `tern up`.

pub mod conformance;
pub mod servers;

pub use conformance::{LocalFactory, MemFactory, S3Factory, StoreFactory, pattern, run_conformance};
pub use servers::{S3Server, S3ServerKind, s3s_fs_binary};
