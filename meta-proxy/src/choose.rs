//! Which cluster serves a table: the one whose copy is `active` at the highest epoch. Pure, so
//! that every proxy given the same views picks the same cluster: the rule is
//! `tern_drlease::failover::choose`, shared with the simulator's proxies; this module gives it
//! the client's routes.

use tern_client::admin::TableRoute;
pub use tern_drlease::failover::choose;
use tern_drlease::{Seen, Watched};

/// One cluster's view of a table: its route, or why there is none.
#[derive(Clone, Debug)]
pub enum View {
    Route(TableRoute),
    /// The table does not exist there.
    NoTable,
    /// The cluster did not answer.
    Unreachable(String),
}

impl Watched for View {
    fn seen(&self) -> Seen<'_> {
        match self {
            View::Route(r) => Seen::Copy {
                role: r.table.role,
                epoch: r.table.epoch,
                partitions: r.table.partitions,
                with_primary: r.with_primary().min(u32::MAX as usize) as u32,
            },
            View::NoTable => Seen::NoTable,
            View::Unreachable(e) => Seen::Unreachable(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use tern_client::admin::TableInfo;
    use tern_core::{ErrorCode, TableId, TableStatus};

    use super::*;

    fn route(role: &str, epoch: u64) -> View {
        let table = TableInfo {
            id: TableId(1),
            name: "t".into(),
            partitions: 0,
            replicas: 1,
            status: TableStatus::Serving,
            role: role.parse().unwrap(),
            epoch,
            restoring: None,
        };
        View::Route(TableRoute { table, partitions: vec![], addresses: Default::default(), dr_lease: None })
    }

    fn views(v: Vec<View>) -> Vec<(String, View)> {
        v.into_iter().enumerate().map(|(i, v)| (format!("dc{}", i + 1), v)).collect()
    }

    #[test]
    fn the_active_copy_at_the_highest_epoch_wins() {
        assert_eq!(choose("t", &views(vec![route("active", 1), route("standby", 1)])).unwrap(), 0);
        assert_eq!(choose("t", &views(vec![route("active", 1), route("active", 2)])).unwrap(), 1);
        assert_eq!(choose("t", &views(vec![route("standby", 5), route("active", 2)])).unwrap(), 1);
        let v = views(vec![View::Unreachable("down".into()), route("active", 0)]);
        assert_eq!(choose("t", &v).unwrap(), 1);
    }

    #[test]
    fn no_active_copy_or_two_at_one_epoch_is_refused_with_the_reason() {
        let e = choose("t", &views(vec![route("active", 3), route("active", 3)])).unwrap_err();
        assert!(e.to_string().contains("active in both dc1 and dc2 at epoch 3"), "{e}");
        let e =
            choose("t", &views(vec![route("standby", 3), View::Unreachable("refused".into())])).unwrap_err();
        assert!(e.to_string().contains("dc1: standby at epoch 3; dc2: unreachable (refused)"), "{e}");
        let e = choose("t", &views(vec![View::NoTable, View::NoTable])).unwrap_err();
        assert_eq!(e.code(), ErrorCode::TableNotFound);
    }
}
