//! What `tern dr reconcile` did after an unplanned failover, kept next to the failover records
//! (`dr.rs`): one summary per (table, failover epoch), the newest
//! `ReconcileSummary::KEPT_PER_TABLE` per table. A summary is written when the reconcile measures
//! the tail (unfinished: the baseline a re-run goes on from) and again when it finishes.

use super::{MetaState, Response};

impl MetaState {
    pub(super) fn record_reconcile(&mut self, s: &tern_core::ReconcileSummary) -> Response {
        if s.table.is_empty() {
            return Response::Refused("a reconcile summary names no table".into());
        }
        let kept = self.reconciles.entry(s.table.clone()).or_default();
        kept.retain(|k| k.epoch != s.epoch);
        kept.push(s.clone());
        kept.sort_by_key(|k| k.epoch);
        let extra = kept.len().saturating_sub(tern_core::ReconcileSummary::KEPT_PER_TABLE);
        kept.drain(..extra);
        Response::Done
    }
}

#[cfg(test)]
mod tests {
    use tern_core::ReconcileSummary;

    use super::*;
    use crate::state::Command;

    fn summary(epoch: u64, finished: bool) -> ReconcileSummary {
        ReconcileSummary {
            table: "t".into(),
            epoch,
            finished_at_ms: finished.then_some(5),
            ..ReconcileSummary::default()
        }
    }

    #[test]
    fn one_summary_per_failover_epoch_replaced_by_the_next_and_the_newest_kept() {
        let mut s = MetaState::default();
        assert_eq!(s.apply(&Command::RecordReconcile { summary: summary(2, false) }), Response::Done);
        s.apply(&Command::RecordReconcile { summary: summary(2, true) });
        assert_eq!(s.reconciles["t"], vec![summary(2, true)]);
        for e in 3..20 {
            s.apply(&Command::RecordReconcile { summary: summary(e, true) });
        }
        let kept = &s.reconciles["t"];
        assert_eq!(kept.len(), ReconcileSummary::KEPT_PER_TABLE);
        assert_eq!(kept.last().map(|k| k.epoch), Some(19));
        let unnamed = ReconcileSummary::default();
        assert!(matches!(s.apply(&Command::RecordReconcile { summary: unnamed }), Response::Refused(_)));
    }

    #[test]
    fn state_without_reconciles_reads_and_writes_back_without_them() {
        let s = MetaState::default();
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert!(!json.contains("reconciles"), "{json}");
    }
}
