//! The topology state version (issue #26): a counter `tern apply -f FILE` compares and bumps
//! before it changes anything, so two applies planned against the same state cannot both win.
//! `BumpTopologyVersion { expect }` is a compare-and-set applied in Raft log order: of two
//! bumps expecting the same value, exactly one succeeds; the other is refused and the apply
//! that sent it is told to re-plan (docs/topology.md, "The version rule").

use super::{MetaState, Response};

impl MetaState {
    /// Increments `topology_version` if it equals `expect`; refuses (changing nothing) if not.
    pub(super) fn bump_topology_version(&mut self, expect: u64) -> Response {
        if self.topology_version != expect {
            return Response::Refused(format!(
                "cluster {:?} is at topology version {}, not the expected {expect}",
                self.cluster_name, self.topology_version
            ));
        }
        self.topology_version += 1;
        Response::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Command;

    fn bump(s: &mut MetaState, expect: u64) -> Response {
        s.apply(&Command::BumpTopologyVersion { expect })
    }

    #[test]
    fn a_bump_expecting_the_current_version_increments_it() {
        let mut s = MetaState::default();
        assert_eq!(s.topology_version, 0);
        assert_eq!(bump(&mut s, 0), Response::Done);
        assert_eq!(bump(&mut s, 1), Response::Done);
        assert_eq!(s.topology_version, 2);
    }

    #[test]
    fn of_two_bumps_expecting_the_same_version_the_second_is_refused_and_changes_nothing() {
        let mut s = MetaState { cluster_name: "dc1".into(), ..MetaState::default() };
        assert_eq!(bump(&mut s, 0), Response::Done);
        let before = s.clone();
        let r = bump(&mut s, 0);
        assert!(
            matches!(&r, Response::Refused(m) if m.contains("\"dc1\" is at topology version 1, not the expected 0")),
            "{r:?}"
        );
        assert_eq!(s, before);
        assert!(matches!(bump(&mut s, 7), Response::Refused(_)));
        assert_eq!(s.topology_version, 1);
    }

    #[test]
    fn the_version_survives_a_snapshot_and_older_state_reads_as_zero() {
        let mut s = MetaState::default();
        let empty = serde_json::to_string(&s).unwrap();
        assert!(!empty.contains("topology_version"), "{empty}");
        bump(&mut s, 0);
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<MetaState>(&json).unwrap().topology_version, 1);
        assert_eq!(serde_json::from_str::<MetaState>(&empty).unwrap().topology_version, 0);
        assert_eq!(
            serde_json::to_string(&Command::BumpTopologyVersion { expect: 3 }).unwrap(),
            r#"{"BumpTopologyVersion":{"expect":3}}"#
        );
    }
}
