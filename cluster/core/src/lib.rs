//! Tern's shared vocabulary.
//!
//! Owns: identifiers (`TableId`, `PartitionIndex`, `Gpid`, `Ballot`, `Decree`, `NodeId`), the
//! storage key codec, the stored-value header, timetags and the hybrid logical clock, the
//! partition hash, the `Mutation` type that is logged and replicated, the read requests of the
//! data model, size limits, the one error enum with stable codes, and the states that cross
//! process boundaries in administration (DR role, link status and mode, table status: [`admin`]).
//!
//! Must not depend on: tokio, tonic, rocksdb, the AWS SDK, or anything that does I/O. Time
//! comes in through parameters (`Clock` is a trait implemented elsewhere).

pub mod admin;
pub mod clock;
pub mod codec;
pub mod error;
pub mod failover;
pub mod hash;
pub mod hlc;
pub mod ids;
pub mod key;
pub mod limits;
pub mod mutation;
pub mod partition;
pub mod read;
pub mod reconcile;
pub mod resolved;
pub mod table;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timetag;
pub mod units;
pub mod value;

pub use admin::{
    ConflictKind, CopyState, DrRole, FailoverOutcome, LinkAction, LinkChange, LinkMode, LinkStatus,
    TableStatus,
};
pub use clock::{Clock, ManualClock};
pub use error::{Error, ErrorCode, Fatal, Result};
pub use failover::{FailoverRecord, PartitionLoss};
pub use hash::partition_of;
pub use hlc::Hlc;
pub use ids::{Ballot, ClusterId, Decree, Gpid, NodeAddr, NodeId, PartitionIndex, TableId};
pub use limits::Limits;
pub use mutation::{CheckAndMutate, CheckAndSet, CheckType, Mutation, WriteOp};
pub use partition::{ConfigChange, PartitionConfig, ReplicaReport, ReplicaStatus};
pub use reconcile::{ReconcileConflict, ReconcilePartition, ReconcileSummary};
pub use resolved::{RecordState, ResolvedOutcome};
pub use timetag::Timetag;
pub use value::ValueHeader;
