//! The tables that are DR standbys in this cluster (from beacon answers): client writes to them
//! are refused (`STANDBY`) and reads are marked possibly stale.

use std::collections::BTreeMap;
use std::sync::RwLock;

use tern_core::{DrRole, Timetag};
use tern_proto::convert::PbEnum;
use tern_proto::pb;

#[derive(Debug, Default)]
pub struct Roles {
    /// table id → (name, epoch).
    standby: RwLock<BTreeMap<u32, (String, u64)>>,
    /// table id → (partition count, purge horizon).
    tables: RwLock<BTreeMap<u32, (u32, Timetag)>>,
}

impl Roles {
    /// The meta server's table roles (every table, from a beacon answer). A role that does not
    /// decode counts as standby: refusing client writes is the safe side.
    pub fn set(&self, roles: &[pb::TableRole]) {
        let active = |r: &pb::TableRole| DrRole::from_pb(r.role, "table_roles.role") == Ok(DrRole::Active);
        let standby = roles.iter().filter(|r| !active(r)).map(|r| (r.table, (r.name.clone(), r.epoch)));
        *self.standby.write().unwrap_or_else(|e| e.into_inner()) = standby.collect();
        let tables = roles.iter().map(|r| (r.table, (r.partitions, Timetag::from_u64(r.purge_below))));
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = tables.collect();
    }

    /// The partition count of `table` (what duplicated writes to it must be routed by), if known.
    pub fn partitions(&self, table: u32) -> Option<u32> {
        self.tables.read().unwrap_or_else(|e| e.into_inner()).get(&table).map(|t| t.0).filter(|n| *n > 0)
    }

    /// Every table's purge horizon (zero: none yet).
    pub fn purge_horizons(&self) -> Vec<(u32, Timetag)> {
        self.tables.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(t, (_, h))| (*t, *h)).collect()
    }

    /// `Some((name, epoch))` when `table` is a standby in this cluster.
    pub fn standby(&self, table: u32) -> Option<(String, u64)> {
        self.standby.read().unwrap_or_else(|e| e.into_inner()).get(&table).cloned()
    }
}
