//! The openraft type configuration of a group replicating a [`Replicated`] state, and small
//! conversions shared by the storage modules.

use std::cmp::Ordering;
use std::fmt;
use std::io::Cursor;
use std::marker::PhantomData;

use openraft::{AnyError, BasicNode, ErrorSubject, ErrorVerb, RaftTypeConfig, StorageError, StorageIOError};

use super::Replicated;

/// openraft's type configuration for a group replicating `S`: node ids are `u64`, a node is its
/// `host:port` Raft address ([`BasicNode`]), log entries carry `S::Command`, and snapshots are
/// `S::snapshot()` bytes held in memory.
pub struct Types<S>(PhantomData<fn() -> S>);

impl<S> fmt::Debug for Types<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Types")
    }
}

impl<S> Clone for Types<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Types<S> {}

impl<S> Default for Types<S> {
    fn default() -> Self {
        Types(PhantomData)
    }
}

impl<S> PartialEq for Types<S> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<S> Eq for Types<S> {}

impl<S> PartialOrd for Types<S> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<S> Ord for Types<S> {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

impl<S: Replicated> RaftTypeConfig for Types<S> {
    type D = S::Command;
    type R = S::Response;
    type NodeId = u64;
    type Node = BasicNode;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// A log id of this crate's groups.
pub type LogId = openraft::LogId<u64>;
/// A log entry of a group replicating `S`.
pub type Entry<S> = openraft::Entry<Types<S>>;
/// openraft's storage error with this crate's node id.
pub type StorageErr = StorageError<u64>;

/// Wraps a Tern error as an openraft storage error about `subject`.
pub(crate) fn storage_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: &tern_core::Error) -> StorageErr {
    StorageIOError::new(subject, verb, AnyError::new(e)).into()
}
