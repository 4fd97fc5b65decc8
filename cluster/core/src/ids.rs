//! Identifiers and the two counters of PacificA: `Ballot` (configuration version) and
//! `Decree` (position in a partition's log).

use std::fmt;

/// A table's id inside one cluster. Assigned by the meta server, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub u32);

/// A partition's index inside its table: `0..partition_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionIndex(pub u32);

/// Global partition id: (table, partition). Written `3.7` like Pegasus's gpid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gpid {
    pub table: TableId,
    pub partition: PartitionIndex,
}

impl Gpid {
    pub const fn new(table: u32, partition: u32) -> Self {
        Gpid { table: TableId(table), partition: PartitionIndex(partition) }
    }
}

/// Configuration version of one partition. Every configuration change (new primary, member
/// removed or added) raises it; messages carrying an older ballot are rejected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot(pub u64);

impl Ballot {
    pub const ZERO: Ballot = Ballot(0);
    pub fn next(self) -> Ballot {
        Ballot(self.0 + 1)
    }
}

/// Position of a mutation in a partition's log. The first mutation is decree 1; decree 0
/// means "nothing" (an empty store has applied decree 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decree(pub u64);

impl Decree {
    pub const ZERO: Decree = Decree(0);
    pub fn next(self) -> Decree {
        Decree(self.0 + 1)
    }
}

/// Identity of a replica server. It is tied to the server's data directory (generated once and
/// stored there), not to its address: a server whose disk was wiped is a new node, so it can
/// never be mistaken for a member that still holds its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// A network address `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeAddr(pub String);

/// A cluster's id, 1..=127: it travels in every timetag so that last-writer-wins ties break
/// deterministically and duplicated writes are never shipped back to their origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(u8);

impl ClusterId {
    pub const MAX: u8 = 127;

    /// `id` must be in 1..=127 (7 bits, 0 reserved for "unknown").
    pub fn new(id: u8) -> Result<ClusterId, crate::Error> {
        if (1..=Self::MAX).contains(&id) {
            Ok(ClusterId(id))
        } else {
            Err(crate::Error::InvalidArgument(format!("cluster id {id} is out of range: it must be 1..=127")))
        }
    }

    /// For decoding a timetag, where 0 is possible in records written before a cluster id was
    /// known (and in tests).
    pub(crate) const fn from_bits(bits: u8) -> ClusterId {
        ClusterId(bits & 0x7f)
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_inner!(TableId, PartitionIndex, Ballot, Decree, NodeAddr, ClusterId);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for Gpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpid_displays_like_pegasus() {
        assert_eq!(Gpid::new(3, 7).to_string(), "3.7");
    }

    #[test]
    fn cluster_id_range_is_checked() {
        assert!(ClusterId::new(0).is_err());
        assert!(ClusterId::new(128).is_err());
        assert_eq!(ClusterId::new(127).unwrap().get(), 127);
        let msg = ClusterId::new(200).unwrap_err().to_string();
        assert!(msg.contains("200") && msg.contains("1..=127"), "{msg}");
    }
}
