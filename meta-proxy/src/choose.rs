//! Which cluster serves a table: the one whose copy is `active` at the highest epoch. Pure, so
//! that every proxy given the same views picks the same cluster.

use tern_client::admin::TableRoute;
use tern_core::{DrRole, Error, Result};

/// One cluster's view of a table: its route, or why there is none.
#[derive(Clone, Debug)]
pub enum View {
    Route(TableRoute),
    /// The table does not exist there.
    NoTable,
    /// The cluster did not answer.
    Unreachable(String),
}

/// The index of the cluster to route `table` to. Refuses when no reachable copy is active, and
/// when two are active at the same (highest) epoch: a split brain is not resolved by guessing.
pub fn choose(table: &str, views: &[(String, View)]) -> Result<usize> {
    let mut best: Option<(usize, u64)> = None;
    let mut tie: Option<usize> = None;
    for (i, (_, v)) in views.iter().enumerate() {
        let View::Route(r) = v else { continue };
        let t = &r.table;
        if t.role != DrRole::Active {
            continue;
        }
        match best {
            Some((_, e)) if t.epoch < e => {}
            Some((_, e)) if t.epoch == e => tie = Some(i),
            _ => {
                best = Some((i, t.epoch));
                tie = None;
            }
        }
    }
    match (best, tie) {
        (Some((i, epoch)), Some(j)) => Err(Error::Unavailable(format!(
            "table {table} is active in both {} and {} at epoch {epoch}: refusing to pick one (set one standby)",
            views[i].0, views[j].0
        ))),
        (Some((i, _)), None) => Ok(i),
        (None, _) if views.iter().all(|(_, v)| matches!(v, View::NoTable)) => {
            Err(Error::TableNotFound(table.to_string()))
        }
        (None, _) => {
            let why: Vec<String> = views
                .iter()
                .map(|(name, v)| match v {
                    View::Route(r) => format!("{name}: {} at epoch {}", r.table.role, r.table.epoch),
                    View::NoTable => format!("{name}: no such table"),
                    View::Unreachable(e) => format!("{name}: unreachable ({e})"),
                })
                .collect();
            Err(Error::Unavailable(format!(
                "no reachable cluster has table {table} active: {}",
                why.join("; ")
            )))
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
