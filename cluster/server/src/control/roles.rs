//! The tables that are DR standbys in this cluster (from beacon answers): client writes to them
//! are refused (`STANDBY`) and reads are marked possibly stale.

use std::collections::BTreeMap;
use std::sync::RwLock;

use tern_proto::pb;

#[derive(Debug, Default)]
pub struct Roles {
    /// table id → (name, epoch).
    standby: RwLock<BTreeMap<u32, (String, u64)>>,
}

impl Roles {
    /// The meta server's table roles (every table, from a beacon answer).
    pub fn set(&self, roles: &[pb::TableRole]) {
        let standby =
            roles.iter().filter(|r| r.role == "standby").map(|r| (r.table, (r.name.clone(), r.epoch)));
        *self.standby.write().unwrap_or_else(|e| e.into_inner()) = standby.collect();
    }

    /// `Some((name, epoch))` when `table` is a standby in this cluster.
    pub fn standby(&self, table: u32) -> Option<(String, u64)> {
        self.standby.read().unwrap_or_else(|e| e.into_inner()).get(&table).cloned()
    }
}
