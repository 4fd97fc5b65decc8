//! The reports of `tern dr drill` runs this cluster took part in (as the `from` or `to` side):
//! the report itself is JSON the meta server does not read (`tern_runbook::DrillReport`,
//! versioned by that crate), indexed by start time and sides; the newest [`KEPT_DRILLS`] are
//! kept. `tern dr status` shows the newest as "last drill".

use serde::{Deserialize, Serialize};

use super::{MetaState, Response};

/// How many drill reports a cluster keeps.
pub const KEPT_DRILLS: usize = 8;
/// The largest report kept (a drill's report is a few KiB; this bounds the meta state).
pub const MAX_REPORT_BYTES: usize = 256 << 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillEntry {
    /// Wall clock at the drill's start, ms since the epoch.
    pub started_ms: u64,
    pub from: String,
    pub to: String,
    pub passed: bool,
    pub report_json: String,
}

impl MetaState {
    pub(super) fn record_drill(&mut self, d: &DrillEntry) -> Response {
        if d.from.is_empty() || d.to.is_empty() {
            return Response::Refused("a drill report names no clusters".into());
        }
        if d.report_json.len() > MAX_REPORT_BYTES {
            return Response::Refused(format!(
                "a drill report of {} bytes is over the {MAX_REPORT_BYTES} kept",
                d.report_json.len()
            ));
        }
        // The same drill recorded again (a retried call) replaces itself.
        self.drills.retain(|k| (k.started_ms, &k.from, &k.to) != (d.started_ms, &d.from, &d.to));
        self.drills.push(d.clone());
        self.drills.sort_by_key(|k| k.started_ms);
        let extra = self.drills.len().saturating_sub(KEPT_DRILLS);
        self.drills.drain(..extra);
        Response::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Command;

    fn drill(started_ms: u64) -> DrillEntry {
        DrillEntry {
            started_ms,
            from: "dc1".into(),
            to: "dc2".into(),
            passed: true,
            report_json: "{}".into(),
        }
    }

    #[test]
    fn the_newest_drills_are_kept_and_a_retried_record_replaces_itself() {
        let mut s = MetaState::default();
        assert_eq!(s.apply(&Command::RecordDrill { drill: drill(5) }), Response::Done);
        s.apply(&Command::RecordDrill { drill: drill(5) });
        assert_eq!(s.drills.len(), 1);
        for t in 6..30 {
            s.apply(&Command::RecordDrill { drill: drill(t) });
        }
        assert_eq!(s.drills.len(), KEPT_DRILLS);
        assert_eq!(s.drills.last().map(|d| d.started_ms), Some(29));
        assert_eq!(s.drills.first().map(|d| d.started_ms), Some(29 + 1 - KEPT_DRILLS as u64));
        let mut nameless = drill(40);
        nameless.from.clear();
        assert!(matches!(s.apply(&Command::RecordDrill { drill: nameless }), Response::Refused(_)));
        let mut huge = drill(41);
        huge.report_json = "x".repeat(MAX_REPORT_BYTES + 1);
        assert!(matches!(s.apply(&Command::RecordDrill { drill: huge }), Response::Refused(_)));
    }

    #[test]
    fn state_without_drills_reads_and_writes_back_without_them() {
        let json = serde_json::to_string(&MetaState::default()).unwrap_or_default();
        assert!(!json.contains("drills"), "{json}");
    }
}
