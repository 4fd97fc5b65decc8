//! The tables that are DR standbys in this cluster (from beacon answers): client writes to them
//! are refused (`STANDBY`) and reads are marked possibly stale.

use std::collections::BTreeMap;
use std::sync::RwLock;

use tern_core::DrRole;
use tern_proto::convert::PbEnum;
use tern_proto::pb;

#[derive(Debug, Default)]
pub struct Roles {
    /// table id → (name, epoch).
    standby: RwLock<BTreeMap<u32, (String, u64)>>,
}

impl Roles {
    /// The meta server's table roles (every table, from a beacon answer). A role that does not
    /// decode counts as standby: refusing client writes is the safe side.
    pub fn set(&self, roles: &[pb::TableRole]) {
        let active = |r: &pb::TableRole| DrRole::from_pb(r.role, "table_roles.role") == Ok(DrRole::Active);
        let standby = roles.iter().filter(|r| !active(r)).map(|r| (r.table, (r.name.clone(), r.epoch)));
        *self.standby.write().unwrap_or_else(|e| e.into_inner()) = standby.collect();
    }

    /// `Some((name, epoch))` when `table` is a standby in this cluster.
    pub fn standby(&self, table: u32) -> Option<(String, u64)> {
        self.standby.read().unwrap_or_else(|e| e.into_inner()).get(&table).cloned()
    }
}
