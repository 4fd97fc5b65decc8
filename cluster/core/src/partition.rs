//! A partition's configuration and what replicas report about themselves: the vocabulary
//! shared by replicas, the configuration manager (in the meta server) and clients.

use std::fmt;

use crate::ids::{Ballot, Decree, Gpid, NodeId};

/// Who serves a partition, at which ballot. Every change raises the ballot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionConfig {
    pub gpid: Gpid,
    pub ballot: Ballot,
    /// `None` while the partition has no serving primary (every replica lost).
    pub primary: Option<NodeId>,
    pub secondaries: Vec<NodeId>,
}

impl PartitionConfig {
    /// Primary first, then secondaries.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.primary.iter().copied().chain(self.secondaries.iter().copied())
    }

    pub fn is_member(&self, node: NodeId) -> bool {
        self.primary == Some(node) || self.secondaries.contains(&node)
    }

    pub fn is_primary(&self, node: NodeId) -> bool {
        self.primary == Some(node)
    }

    pub fn is_secondary(&self, node: NodeId) -> bool {
        self.secondaries.contains(&node)
    }
}

impl fmt::Display for PartitionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@b{} primary=", self.gpid, self.ballot)?;
        match self.primary {
            Some(p) => write!(f, "{p}")?,
            None => f.write_str("none")?,
        }
        f.write_str(" secondaries=[")?;
        for (i, s) in self.secondaries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{s}")?;
        }
        f.write_str("]")
    }
}

/// The role a replica is playing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReplicaStatus {
    /// Serves reads and writes, replicates to secondaries.
    Primary,
    /// Logs and applies what the primary sends; may be promoted.
    Secondary,
    /// Catching up from the primary to become a secondary (a "potential secondary").
    Learner,
    /// Holds data but plays no role (e.g. after a restart, or removed from the configuration).
    Inactive,
    /// Failed (e.g. its log could not be written); must not be used.
    Error,
}

impl ReplicaStatus {
    pub fn name(self) -> &'static str {
        match self {
            ReplicaStatus::Primary => "primary",
            ReplicaStatus::Secondary => "secondary",
            ReplicaStatus::Learner => "learner",
            ReplicaStatus::Inactive => "inactive",
            ReplicaStatus::Error => "error",
        }
    }
}

/// What a replica server says about one of its replicas in every beacon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaReport {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub status: ReplicaStatus,
    /// Highest decree known committed.
    pub committed: Decree,
    /// Highest decree in its log (its "log length", for recovery).
    pub last_prepared: Decree,
}

/// A change a primary asks the configuration manager for, at its current ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    /// Remove a secondary the primary cannot replicate to.
    RemoveSecondary(NodeId),
    /// Make a caught-up learner a secondary.
    AddSecondary(NodeId),
}
