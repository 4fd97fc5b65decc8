//! What `tern dr reconcile` did after an unplanned failover: the old active side's unshipped
//! tail, shipped into the promoted copy under last-writer-wins, and what became of it. Kept in
//! the promoted cluster's meta state next to the failover record it answers (keyed by table and
//! the failover's epoch) and shown by `tern dr status` ("last reconcile"). A record without
//! `finished_at_ms` is a reconcile under way: its baseline lets a re-run go on where it stopped.
//!
//! Versioned (`version`): a reader refuses a version it does not know rather than guess.

use serde::{Deserialize, Serialize};

use crate::ConflictKind;

/// The version this build writes.
pub const RECONCILE_SUMMARY_VERSION: u32 = 1;

/// At most this many conflicts are listed in a summary; the counts are complete.
pub const RECONCILE_LISTED_CONFLICTS: usize = 100;

/// One reconcile of a table after the failover at `epoch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileSummary {
    pub version: u32,
    pub table: String,
    /// The old active side (the failover's `from`): where the tail comes from.
    pub from: String,
    /// The promoted side (the failover's `to`): where the tail goes.
    pub to: String,
    /// The failover's epoch (the record this answers).
    pub epoch: u64,
    /// The link `from -> to` that ships the tail.
    pub link: u64,
    /// Wall clock (ms) when the tail was measured, and when the reconcile finished (`None`: under
    /// way).
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    /// Per partition of the old copy: the tail, as decrees of the old side's log (inclusive).
    pub partitions: Vec<ReconcilePartition>,
    /// The link's conflict totals when the tail was measured (both kinds, of which
    /// overwritten, journal entries dropped): what the reconcile added is counted from them.
    pub base_conflicts: u64,
    pub base_overwritten: u64,
    pub base_dropped: u64,
    /// Puts of the tail the link shipped, at least (as its primaries counted them, summed
    /// across primary changes the reconcile saw).
    pub shipped_puts: u64,
    /// Tail writes that lost to a newer write of the promoted copy (complete count).
    pub lost: u64,
    /// Writes of the promoted copy that tail writes replaced (complete count).
    pub overwritten: u64,
    /// Of the conflicts, journal entries dropped before the meta server heard of them (counted,
    /// not listed).
    pub dropped: u64,
    /// The conflicts of the tail, at most [`RECONCILE_LISTED_CONFLICTS`], from the link's journal.
    pub conflicts: Vec<ReconcileConflict>,
    /// The link shipping the table back (`to -> from`), and whether it was added with a full sync.
    pub reverse_link: Option<u64>,
    pub reverse_full_sync: bool,
}

/// One partition's tail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcilePartition {
    pub partition: u32,
    /// Decrees the old side committed that the link had not confirmed: (first, last); `None`:
    /// nothing.
    pub decrees: Option<(u64, u64)>,
}

impl ReconcilePartition {
    pub fn decree_count(&self) -> u64 {
        self.decrees.map_or(0, |(a, b)| b.saturating_sub(a) + 1)
    }
}

/// A conflict of the tail: which write won, by timetag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileConflict {
    pub hash_key: Vec<u8>,
    pub sort_key: Vec<u8>,
    /// The tail write's timetag.
    pub tail_timetag: u64,
    /// The promoted copy's record it met.
    pub other_timetag: u64,
    /// `ShippedLost`: the tail write lost (the other is the winner); `RemoteOverwritten`: it
    /// replaced the promoted copy's record (the tail write is the winner).
    pub kind: ConflictKind,
}

impl ReconcileConflict {
    /// The winner's timetag.
    pub fn winner(&self) -> u64 {
        match self.kind {
            ConflictKind::ShippedLost => self.other_timetag,
            ConflictKind::RemoteOverwritten => self.tail_timetag,
        }
    }
}

impl ReconcileSummary {
    /// Decrees of the tail in total.
    pub fn tail_decrees(&self) -> u64 {
        self.partitions.iter().map(ReconcilePartition::decree_count).sum()
    }

    /// Tail writes applied to the promoted copy: shipped and not lost.
    pub fn applied(&self) -> u64 {
        self.shipped_puts.saturating_sub(self.lost)
    }

    pub fn finished(&self) -> bool {
        self.finished_at_ms.is_some()
    }

    /// The summary as kept (JSON), with the version this build writes.
    pub fn to_json(&self) -> Vec<u8> {
        let v = ReconcileSummary { version: RECONCILE_SUMMARY_VERSION, ..self.clone() };
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Reads a kept summary; refuses a version this build does not know.
    pub fn from_json(bytes: &[u8]) -> Result<ReconcileSummary, String> {
        let s: ReconcileSummary = serde_json::from_slice(bytes)
            .map_err(|e| format!("a reconcile summary that does not parse: {e}"))?;
        if s.version != RECONCILE_SUMMARY_VERSION {
            return Err(format!(
                "a reconcile summary of version {} (this build reads {RECONCILE_SUMMARY_VERSION})",
                s.version
            ));
        }
        Ok(s)
    }

    /// How many are kept per table (the newest).
    pub const KEPT_PER_TABLE: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_round_trips_and_counts_its_tail() {
        let s = ReconcileSummary {
            table: "t".into(),
            partitions: vec![
                ReconcilePartition { partition: 0, decrees: Some((5, 7)) },
                ReconcilePartition { partition: 1, decrees: None },
            ],
            shipped_puts: 9,
            lost: 2,
            ..ReconcileSummary::default()
        };
        assert_eq!(s.tail_decrees(), 3);
        assert_eq!(s.applied(), 7);
        let back = ReconcileSummary::from_json(&s.to_json()).unwrap_or_default();
        assert_eq!(back, ReconcileSummary { version: RECONCILE_SUMMARY_VERSION, ..s });
        let future = br#"{"version":99}"#;
        assert!(ReconcileSummary::from_json(future).unwrap_err().contains("version 99"));
    }

    #[test]
    fn the_winner_is_the_other_write_when_the_tail_lost() {
        let c = ReconcileConflict {
            hash_key: b"k".to_vec(),
            sort_key: Vec::new(),
            tail_timetag: 10,
            other_timetag: 20,
            kind: ConflictKind::ShippedLost,
        };
        assert_eq!(c.winner(), 20);
        assert_eq!(ReconcileConflict { kind: ConflictKind::RemoteOverwritten, ..c }.winner(), 10);
    }
}
