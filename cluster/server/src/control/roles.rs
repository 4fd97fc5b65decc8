//! Each table's DR role in this cluster and, for active tables, the DR lease (both from beacon
//! answers): client writes to a standby are refused (`STANDBY`) and its reads marked possibly
//! stale; client writes to an active table are refused (`NO_DR_LEASE`) once its DR lease ran
//! out, when the cluster runs one.
//!
//! The lease is counted from when the beacon that brought it was **sent** (this server's
//! monotonic clock), for what the meta leader had left when it answered: so it ends here no
//! later than at the meta leader, which counts from when it sent its own renewal to the DR
//! voters (docs/meta-proxy.md, "The DR lease").

use std::collections::BTreeMap;
use std::sync::RwLock;

use tern_core::{DrRole, Error, Timetag};
use tern_proto::convert::PbEnum;
use tern_proto::pb;

#[derive(Debug, Default)]
struct Known {
    /// table id → (name, epoch).
    standby: BTreeMap<u32, (String, u64)>,
    /// table id → (name, epoch, lease end in monotonic ms).
    active: BTreeMap<u32, (String, u64, u64)>,
    /// Whether the cluster runs a DR lease (the meta said so in its last answer).
    lease: bool,
    /// Every table: id → (partition count, purge horizon).
    tables: BTreeMap<u32, (u32, Timetag)>,
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
        let mut k = self.known.write().unwrap_or_else(|e| e.into_inner());
        let mut standby = BTreeMap::new();
        let mut active = BTreeMap::new();
        for r in roles {
            if DrRole::from_pb(r.role, "table_roles.role") != Ok(DrRole::Active) {
                standby.insert(r.table, (r.name.clone(), r.epoch));
                continue;
            }
            let end = if r.dr_lease_ms == 0 { 0 } else { sent_at_ms.saturating_add(r.dr_lease_ms) };
            // A lease, once given, runs out by itself: a later answer may extend it, never
            // shorten it (each bound holds on its own), unless the epoch moved.
            let end = match k.active.get(&r.table) {
                Some((_, epoch, old)) if *epoch == r.epoch => end.max(*old),
                _ => end,
            };
            active.insert(r.table, (r.name.clone(), r.epoch, end));
        }
        let tables = roles.iter().map(|r| (r.table, (r.partitions, Timetag::from_u64(r.purge_below))));
        *k = Known { standby, active, lease, tables: tables.collect() };
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
        self.known.read().unwrap_or_else(|e| e.into_inner()).standby.get(&table).cloned()
    }

    /// Why a client write to `table` must be refused at monotonic time `now_ms`, if it must:
    /// the table is a standby, or the cluster runs a DR lease and this table's ran out (or was
    /// never heard of: a table created after the last beacon answer waits for the next one).
    pub fn refuse_client_write(&self, table: u32, now_ms: u64) -> Option<Error> {
        let k = self.known.read().unwrap_or_else(|e| e.into_inner());
        if let Some((name, epoch)) = k.standby.get(&table) {
            return Some(Error::Standby { table: name.clone(), epoch: *epoch });
        }
        if !k.lease {
            return None;
        }
        match k.active.get(&table) {
            Some((_, _, end)) if now_ms < *end => None,
            Some((name, epoch, end)) => Some(Error::NoDrLease {
                table: name.clone(),
                epoch: *epoch,
                why: if *end == 0 {
                    "the meta leader has none for it: see `tern cluster dr-lease`".into()
                } else {
                    format!("it ran out {} ms ago", now_ms - end)
                },
            }),
            None => Some(Error::NoDrLease {
                table: format!("#{table}"),
                epoch: 0,
                why: "this server has not heard of the table's lease yet".into(),
            }),
        }
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
            ..Default::default()
        }
    }

    #[test]
    fn the_lease_counts_from_the_beacons_send_time_and_only_grows_within_an_epoch() {
        let r = Roles::default();
        // Sent at 1000; the meta had 4000 ms left when it answered.
        r.set(&[role(1, DrRole::Active, 0, 4_000)], 1_000, true);
        assert_eq!(r.refuse_client_write(1, 4_999), None);
        let e = r.refuse_client_write(1, 5_000).unwrap();
        assert_eq!(e.code(), tern_core::ErrorCode::NoDrLease);
        assert!(e.to_string().contains("ran out 0 ms ago"), "{e}");
        // A later answer with nothing left does not take back what was given.
        r.set(&[role(1, DrRole::Active, 0, 0)], 2_000, true);
        assert_eq!(r.refuse_client_write(1, 4_999), None);
        // A new epoch starts afresh.
        r.set(&[role(1, DrRole::Active, 3, 0)], 2_100, true);
        assert!(r.refuse_client_write(1, 2_200).is_some());
    }

    #[test]
    fn without_a_lease_only_standbys_are_refused_and_unknown_tables_wait_with_one() {
        let r = Roles::default();
        r.set(&[role(1, DrRole::Active, 0, 0), role(2, DrRole::Standby, 1, 0)], 0, false);
        assert_eq!(r.refuse_client_write(1, 10), None);
        assert_eq!(r.refuse_client_write(9, 10), None);
        assert_eq!(r.refuse_client_write(2, 10).unwrap().code(), tern_core::ErrorCode::Standby);
        r.set(&[role(1, DrRole::Active, 0, 0)], 0, true);
        let e = r.refuse_client_write(9, 10).unwrap();
        assert_eq!(e.code(), tern_core::ErrorCode::NoDrLease);
        assert!(e.is_retryable());
    }
}
