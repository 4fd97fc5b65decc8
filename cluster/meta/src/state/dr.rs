//! A table's disaster-recovery role in this cluster: `active` (takes client writes) or
//! `standby` (takes writes only by duplication; reads may lag), and an epoch that only grows.
//! A proxy routes each table to the cluster whose copy is active at the highest epoch; role
//! changes are compare-and-set on the epoch, so two deciders cannot both win (issue #6).

use serde::{Deserialize, Serialize};
pub use tern_core::DrRole;
use tern_drlease::roles::{RoleChangeRefused, check_role_change};

use super::{MetaState, Response, TableStatus};

/// An operator's waiver of the DR lease (`tern cluster dr-lease --waive REASON`): while it
/// stands, this cluster's active tables take client writes without the lease. Replicated, so
/// every meta leader honours it until it is withdrawn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrLeaseWaiver {
    pub reason: String,
    /// Wall clock when it was set, ms since the Unix epoch (shown, never compared).
    pub at_ms: u64,
}

/// What `SetTableRole` carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChange {
    pub table: String,
    pub role: DrRole,
    /// The new epoch: never below the current one.
    pub epoch: u64,
    /// Compare-and-set: the current epoch must be this.
    pub expect_epoch: Option<u64>,
}

impl MetaState {
    pub(super) fn set_table_role(&mut self, c: &RoleChange) -> Response {
        let Some(t) =
            self.tables.values_mut().find(|t| t.name == c.table && t.status == TableStatus::Serving)
        else {
            return Response::Refused(format!("no serving table {:?}", c.table));
        };
        // The rule is shared with the simulator (`tern_drlease::roles`).
        match check_role_change(t.epoch, c.epoch, c.expect_epoch) {
            Ok(()) => {}
            Err(RoleChangeRefused::EpochConflict { expected, actual }) => {
                return Response::EpochConflict { expected, actual };
            }
            Err(RoleChangeRefused::Older { current }) => {
                return Response::Refused(format!(
                    "table {:?} is at epoch {current}: epochs only grow, {} is older",
                    c.table, c.epoch
                ));
            }
        }
        t.role = c.role;
        t.epoch = c.epoch;
        Response::Table(t.clone())
    }
}

impl MetaState {
    /// Keeps an unplanned failover's record: one per (table, epoch), the newest
    /// `KEPT_PER_TABLE` per table, ordered by epoch.
    pub(super) fn record_failover(&mut self, r: &tern_core::FailoverRecord) -> Response {
        let kept = self.failovers.entry(r.table.clone()).or_default();
        kept.retain(|k| k.epoch != r.epoch);
        kept.push(r.clone());
        kept.sort_by_key(|k| k.epoch);
        let extra = kept.len().saturating_sub(tern_core::FailoverRecord::KEPT_PER_TABLE);
        kept.drain(..extra);
        Response::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Command;

    fn state() -> MetaState {
        let mut s = MetaState::default();
        s.apply(&Command::CreateTable { name: "t".into(), partitions: 1, replicas: 1 });
        s
    }

    fn set(s: &mut MetaState, role: DrRole, epoch: u64, expect_epoch: Option<u64>) -> Response {
        s.apply(&Command::SetTableRole {
            change: RoleChange { table: "t".into(), role, epoch, expect_epoch },
        })
    }

    #[test]
    fn a_new_table_is_active_at_epoch_0_and_epochs_only_grow() {
        let mut s = state();
        let t = s.table_by_name("t").unwrap();
        assert_eq!((t.role, t.epoch), (DrRole::Active, 0));
        assert!(
            matches!(set(&mut s, DrRole::Standby, 2, None), Response::Table(t) if t.role == DrRole::Standby && t.epoch == 2)
        );
        assert!(
            matches!(set(&mut s, DrRole::Active, 1, None), Response::Refused(m) if m.contains("epochs only grow"))
        );
        assert!(
            matches!(set(&mut s, DrRole::Active, 2, None), Response::Table(t) if t.role == DrRole::Active)
        );
    }

    #[test]
    fn compare_and_set_refuses_another_epoch_and_changes_nothing() {
        let mut s = state();
        set(&mut s, DrRole::Standby, 3, Some(0));
        assert_eq!(
            set(&mut s, DrRole::Active, 4, Some(2)),
            Response::EpochConflict { expected: 2, actual: 3 }
        );
        let t = s.table_by_name("t").unwrap();
        assert_eq!((t.role, t.epoch), (DrRole::Standby, 3));
        assert!(matches!(set(&mut s, DrRole::Active, 4, Some(3)), Response::Table(t) if t.epoch == 4));
    }

    #[test]
    fn an_unknown_table_is_refused() {
        let mut s = state();
        let r = s.apply(&Command::SetTableRole {
            change: RoleChange { table: "x".into(), role: DrRole::Standby, epoch: 1, expect_epoch: None },
        });
        assert!(matches!(r, Response::Refused(m) if m.contains("\"x\"")));
    }

    #[test]
    fn failover_records_are_kept_per_table_and_epoch_and_bounded() {
        let mut s = state();
        let rec = |epoch| tern_core::FailoverRecord {
            table: "t".into(),
            from: "a".into(),
            to: "b".into(),
            epoch,
            at_ms: epoch,
            exact: false,
            writes_end_before_ms: None,
            partitions: Vec::new(),
            took_ms: 0,
            unknown: None,
        };
        for e in (1..=12).rev() {
            assert_eq!(s.apply(&Command::RecordFailover { record: rec(e) }), Response::Done);
        }
        s.apply(&Command::RecordFailover { record: rec(12) });
        let kept: Vec<u64> = s.failovers["t"].iter().map(|r| r.epoch).collect();
        assert_eq!(kept, (5..=12).collect::<Vec<_>>());
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<MetaState>(&json).unwrap(), s);
    }
}
