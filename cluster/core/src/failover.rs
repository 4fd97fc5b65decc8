//! What an unplanned failover (`tern dr failover`) may have lost: per partition of the old
//! active copy, the decrees and timetags it had committed that the promoted copy had not
//! applied. Kept in the promoted cluster's meta state (keyed by table and epoch) and shown by
//! `tern dr status`. Every bound is either known or carries why not: an unknown loss is never
//! written as 0.

use serde::{Deserialize, Serialize};

/// One unplanned failover of a table and what it may have lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRecord {
    pub table: String,
    /// The cluster whose copy was active (the old side).
    pub from: String,
    /// The cluster whose copy was made active.
    pub to: String,
    /// The epoch the promoted copy became active at.
    pub epoch: u64,
    /// Wall clock of the promotion, ms since the Unix epoch.
    pub at_ms: u64,
    /// The old side answered, so the ranges are its own (exact); otherwise they are bounds
    /// from what the promoted side knew.
    pub exact: bool,
    /// No write of the old side can carry a timetag at or after this wall time (ms): its DR
    /// lease had certainly expired by then. `None`: unknown (promoted without waiting for it).
    pub writes_end_before_ms: Option<u64>,
    /// Per partition of the old copy.
    pub partitions: Vec<PartitionLoss>,
    /// From the start of the failover command to the promotion (ms).
    pub took_ms: u64,
    /// Why not even the partitions could be told (no link report of the old side, no incoming
    /// link on the promoted side): the loss is unknown, not none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

/// What one partition of the old copy may have lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLoss {
    pub partition: u32,
    /// Decrees committed by the old side and not applied by the promoted side: (first, last),
    /// inclusive; `Ok(None)`: none.
    pub decrees: Result<Option<(u64, u64)>, String>,
    /// Every write of the partition with a timetag at or below this is applied by the promoted
    /// side: later ones may be lost.
    pub applied_through_timetag: Result<u64, String>,
}

impl PartitionLoss {
    /// How many decrees at most; `None`: unknown.
    pub fn decree_count(&self) -> Option<u64> {
        match &self.decrees {
            Ok(None) => Some(0),
            Ok(Some((a, b))) => Some(b.saturating_sub(*a) + 1),
            Err(_) => None,
        }
    }
}

impl FailoverRecord {
    /// Decrees lost in total, if every partition's count is known.
    pub fn decrees_lost(&self) -> Option<u64> {
        if self.unknown.is_some() {
            return None;
        }
        self.partitions.iter().map(PartitionLoss::decree_count).sum()
    }

    /// The records a cluster keeps per table: the newest ones.
    pub const KEPT_PER_TABLE: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_count_is_never_zero() {
        let p = |d| PartitionLoss { partition: 0, decrees: d, applied_through_timetag: Ok(1) };
        assert_eq!(p(Ok(None)).decree_count(), Some(0));
        assert_eq!(p(Ok(Some((5, 7)))).decree_count(), Some(3));
        assert_eq!(p(Err("unreachable".into())).decree_count(), None);
        let r = FailoverRecord {
            table: "t".into(),
            from: "a".into(),
            to: "b".into(),
            epoch: 2,
            at_ms: 0,
            exact: false,
            writes_end_before_ms: None,
            partitions: vec![p(Ok(Some((5, 7)))), p(Err("x".into()))],
            took_ms: 0,
            unknown: None,
        };
        assert_eq!(r.decrees_lost(), None);
        let told = FailoverRecord { partitions: vec![p(Ok(Some((5, 7)))), p(Ok(None))], ..r };
        assert_eq!(told.decrees_lost(), Some(3));
        assert_eq!(FailoverRecord { unknown: Some("no link".into()), ..told }.decrees_lost(), None);
    }
}
