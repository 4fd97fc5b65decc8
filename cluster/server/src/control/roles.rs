//! Each table's DR role in this cluster and, for active tables, the DR lease (both from beacon
//! answers): client writes to a standby are refused (`STANDBY`) and its reads marked possibly
//! stale; client writes to an active table are refused (`NO_DR_LEASE`) once its DR lease ran
//! out, when the cluster runs one. The rule is `tern_drlease::WriteGate`, the one the simulator
//! runs; this module keeps it behind a lock and reads the beacon answer's protobuf.
//!
//! The lease is counted from when the beacon that brought it was **sent** (this server's
//! monotonic clock), for what the meta leader had left when it answered: so it ends here no
//! later than at the meta leader, which counts from when it sent its own renewal to the DR
//! voters (docs/meta-proxy.md, "The DR lease").

use std::collections::BTreeMap;
use std::sync::RwLock;

use tern_core::{DrRole, Error, Timetag};
use tern_drlease::{TableRoleInfo, WriteGate};
use tern_proto::convert::PbEnum;
use tern_proto::pb;

#[derive(Debug, Default)]
struct Known {
    /// Roles and DR leases: what client writes are refused.
    gate: WriteGate,
    /// Every table: id → (partition count, purge horizon).
    tables: BTreeMap<u32, (u32, Timetag)>,
    /// Tables being restored: id → (name, backup id). They serve no client reads or writes.
    restoring: BTreeMap<u32, (String, String)>,
}

#[derive(Debug, Default)]
pub struct Roles {
    known: RwLock<Known>,
}

impl Roles {
    /// The meta server's table roles (every table, from the answer to the beacon sent at
    /// `sent_at_ms`). A role that does not decode counts as standby: refusing client writes is
    /// the safe side. `lease`: the cluster runs a DR lease.
    pub fn set(&self, roles: &[pb::TableRole], sent_at_ms: u64, lease: bool) {
        let infos: Vec<TableRoleInfo> = roles
            .iter()
            .map(|r| TableRoleInfo {
                table: r.table,
                name: r.name.clone(),
                role: match DrRole::from_pb(r.role, "table_roles.role") {
                    Ok(DrRole::Active) => DrRole::Active,
                    _ => DrRole::Standby,
                },
                epoch: r.epoch,
                dr_lease_ms: r.dr_lease_ms,
            })
            .collect();
        let mut k = self.known.write().unwrap_or_else(|e| e.into_inner());
        k.gate.set(&infos, sent_at_ms, lease);
        k.tables =
            roles.iter().map(|r| (r.table, (r.partitions, Timetag::from_u64(r.purge_below)))).collect();
        k.restoring = roles
            .iter()
            .filter(|r| !r.restoring.is_empty())
            .map(|r| (r.table, (r.name.clone(), r.restoring.clone())))
            .collect();
    }

    /// `RESTORING` when `table` is being restored from a backup: client reads and writes wait
    /// until the restore is complete (docs/backup.md, "Restore").
    pub fn refuse_restoring(&self, table: u32) -> Option<Error> {
        let k = self.known.read().unwrap_or_else(|e| e.into_inner());
        k.restoring
            .get(&table)
            .map(|(name, backup)| Error::Restoring { table: name.clone(), backup: backup.clone() })
    }

    /// The backup `table` is being restored from, if it is; `None` also when the table is not
    /// known yet (no beacon answer named it).
    pub fn restoring_from(&self, table: u32) -> Option<String> {
        let k = self.known.read().unwrap_or_else(|e| e.into_inner());
        k.restoring.get(&table).map(|(_, b)| b.clone())
    }

    /// The partition count of `table` (what duplicated writes to it must be routed by), if known.
    pub fn partitions(&self, table: u32) -> Option<u32> {
        let k = self.known.read().unwrap_or_else(|e| e.into_inner());
        k.tables.get(&table).map(|t| t.0).filter(|n| *n > 0)
    }

    /// Every table's purge horizon (zero: none yet).
    pub fn purge_horizons(&self) -> Vec<(u32, Timetag)> {
        let k = self.known.read().unwrap_or_else(|e| e.into_inner());
        k.tables.iter().map(|(t, (_, h))| (*t, *h)).collect()
    }

    /// `Some((name, epoch))` when `table` is a standby in this cluster.
    pub fn standby(&self, table: u32) -> Option<(String, u64)> {
        self.known.read().unwrap_or_else(|e| e.into_inner()).gate.standby(table)
    }

    /// Why a client write to `table` must be refused at monotonic time `now_ms`, if it must
    /// (`WriteGate::refuse_client_write`).
    pub fn refuse_client_write(&self, table: u32, now_ms: u64) -> Option<Error> {
        self.known.read().unwrap_or_else(|e| e.into_inner()).gate.refuse_client_write(table, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(table: u32, role: DrRole, epoch: u64, dr_lease_ms: u64) -> pb::TableRole {
        pb::TableRole {
            table,
            name: format!("t{table}"),
            role: role.to_pb(),
            epoch,
            dr_lease_ms,
            partitions: 4,
            ..Default::default()
        }
    }

    /// The rule itself is tested in `tern_drlease::gate`; this is the protobuf around it.
    #[test]
    fn beacon_answers_feed_the_shared_gate_and_an_unknown_role_counts_as_standby() {
        let r = Roles::default();
        let mut odd = role(3, DrRole::Active, 0, 9_000);
        odd.role = 99;
        r.set(&[role(1, DrRole::Active, 0, 4_000), role(2, DrRole::Standby, 1, 0), odd], 1_000, true);
        assert_eq!(r.refuse_client_write(1, 4_999), None);
        let e = r.refuse_client_write(1, 5_000).unwrap();
        assert_eq!(e.code(), tern_core::ErrorCode::NoDrLease);
        assert!(e.to_string().contains("ran out 0 ms ago"), "{e}");
        assert_eq!(r.refuse_client_write(2, 10).unwrap().code(), tern_core::ErrorCode::Standby);
        assert_eq!(r.refuse_client_write(3, 10).unwrap().code(), tern_core::ErrorCode::Standby);
        assert_eq!(r.standby(2), Some(("t2".to_string(), 1)));
        assert_eq!(r.partitions(1), Some(4));
    }

    #[test]
    fn a_restoring_table_refuses_clients_naming_the_backup_until_a_beacon_says_it_is_done() {
        let r = Roles::default();
        let mut restoring = role(1, DrRole::Active, 0, 0);
        restoring.restoring = "B1".into();
        r.set(&[restoring, role(2, DrRole::Active, 0, 0)], 0, false);
        let e = r.refuse_restoring(1).unwrap();
        assert_eq!(e.code(), tern_core::ErrorCode::Restoring);
        assert!(e.to_string().contains("backup B1"), "{e}");
        assert_eq!(r.restoring_from(1).as_deref(), Some("B1"));
        assert!(r.refuse_restoring(2).is_none());
        r.set(&[role(1, DrRole::Active, 0, 0)], 0, false);
        assert!(r.refuse_restoring(1).is_none());
    }
}
