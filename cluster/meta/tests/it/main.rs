//! Integration tests of the meta server: one binary (link time), one module per subject.
#![allow(clippy::unwrap_used)]

mod dup;
mod raft;
