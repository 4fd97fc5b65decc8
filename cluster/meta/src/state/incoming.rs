//! Incoming duplication links (links of other clusters that ship into this cluster's tables) and
//! each table's purge horizon, in the replicated state.
//!
//! Which incoming links exist is replicated (a new meta leader must not let tombstones go before
//! it has heard from every one of them again); how far each has been applied is not (it moves
//! with every batch; the leader keeps it in memory, `leader/horizon.rs`). The horizon the leader
//! publishes is replicated and only grows: replicas may already have dropped what was below it.
//! The decision itself is `tern_duplication::DupRules::purge_horizon`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{MetaState, Response};

/// One table's purge horizon and incoming links.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableHorizon {
    /// The purge horizon (a timetag) published to the table's replicas; only grows.
    pub purge_below: u64,
    /// Incoming links, by [`incoming_key`].
    pub incoming: BTreeMap<String, IncomingRecord>,
}

/// An incoming link: another cluster's table that ships into this table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingRecord {
    pub from_cluster: u8,
    pub source_table: u32,
    /// The sending table's partition count: every one of them must be heard from.
    pub partitions: u32,
}

/// The key of an incoming link (JSON object keys must be strings).
pub fn incoming_key(from_cluster: u8, source_table: u32) -> String {
    format!("{from_cluster}.{source_table}")
}

impl MetaState {
    pub fn horizon(&self, table: u32) -> Option<&TableHorizon> {
        self.horizons.get(&table)
    }

    pub(super) fn register_incoming(&mut self, table: u32, link: IncomingRecord) -> Response {
        if !self.tables.contains_key(&table) {
            return Response::Refused(format!("no table {table} to register an incoming link on"));
        }
        let h = self.horizons.entry(table).or_default();
        h.incoming.insert(incoming_key(link.from_cluster, link.source_table), link);
        Response::Done
    }

    pub(super) fn forget_incoming(&mut self, table: u32, from_cluster: u8, source_table: u32) -> Response {
        if let Some(h) = self.horizons.get_mut(&table) {
            h.incoming.remove(&incoming_key(from_cluster, source_table));
        }
        Response::Done
    }

    pub(super) fn raise_purge_horizon(&mut self, table: u32, below: u64) -> Response {
        if !self.tables.contains_key(&table) {
            return Response::Refused(format!("no table {table} to raise the purge horizon of"));
        }
        let h = self.horizons.entry(table).or_default();
        h.purge_below = h.purge_below.max(below);
        Response::Done
    }
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::*;

    #[test]
    fn incoming_links_are_registered_and_the_horizon_only_grows() {
        let mut s = MetaState::default();
        s.apply(&Command::CreateTable { name: "t".into(), partitions: 4, replicas: 3 });
        let link = IncomingRecord { from_cluster: 2, source_table: 7, partitions: 8 };
        assert_eq!(s.apply(&Command::RegisterIncoming { table: 1, link }), Response::Done);
        assert_eq!(s.horizon(1).unwrap().incoming.values().next(), Some(&link));
        s.apply(&Command::RaisePurgeHorizon { table: 1, below: 500 });
        s.apply(&Command::RaisePurgeHorizon { table: 1, below: 300 });
        assert_eq!(s.horizon(1).unwrap().purge_below, 500, "never goes back");
        s.apply(&Command::ForgetIncoming { table: 1, from_cluster: 2, source_table: 7 });
        assert!(s.horizon(1).unwrap().incoming.is_empty());
        assert!(matches!(s.apply(&Command::RegisterIncoming { table: 9, link }), Response::Refused(_)));
        s.apply(&Command::PurgeTable { id: 1 });
        assert!(s.horizon(1).is_none(), "a purged table's horizon goes with it");
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<MetaState>(&json).unwrap(), s);
    }
}
