//! Test support (feature `testing`): the object-store conformance suite and real
//! S3-compatible servers to run it against. Used by this crate's tests and the end-to-end
//! tests; `tern up` shares the part it needs through [`crate::local_s3`].

pub mod conformance;
pub mod servers;

pub use conformance::{LocalFactory, MemFactory, S3Factory, StoreFactory, pattern, run_conformance};
pub use servers::{S3Server, S3ServerKind, s3s_fs_binary};
