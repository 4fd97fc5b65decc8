//! What a replica server refuses because of DR roles and the DR lease: client writes to a
//! standby copy (`STANDBY`), and client writes to an active copy whose DR lease ran out
//! (`NO_DR_LEASE`), when the cluster runs one. Pure: the server (and a simulated server) feeds
//! in each beacon answer's roles with the time it sent that beacon, and asks with the time of
//! each write.
//!
//! The lease is counted from when the beacon that brought it was **sent** (this server's
//! monotonic clock), for what the meta leader had left when it answered: so it ends here no
//! later than at the meta leader, which counts from when it sent its own renewal to the DR
//! voters (docs/meta-proxy.md, "The DR lease").

use std::collections::BTreeMap;

use tern_core::{DrRole, Error};

use crate::DrRules;

/// One table's role as a beacon answer carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRoleInfo {
    /// The table's id in this cluster.
    pub table: u32,
    pub name: String,
    /// A role the server could not read is given as standby (refusing is the safe side).
    pub role: DrRole,
    pub epoch: u64,
    /// What the meta leader had left of the table's DR lease when it answered (0: none).
    pub dr_lease_ms: u64,
}

/// The roles and leases a replica server knows, from its last beacon answer.
#[derive(Clone, Debug, Default)]
pub struct WriteGate {
    /// table id → (name, epoch).
    standby: BTreeMap<u32, (String, u64)>,
    /// table id → (name, epoch, lease end in monotonic ms).
    active: BTreeMap<u32, (String, u64, u64)>,
    /// Whether the cluster runs a DR lease (the meta said so in its last answer).
    lease: bool,
    /// Whether a beacon answer arrived since the server started: until then it does not know
    /// whether the cluster runs a lease, and refuses.
    heard: bool,
    rules: DrRules,
}

impl WriteGate {
    pub fn new(rules: DrRules) -> WriteGate {
        WriteGate { rules, ..WriteGate::default() }
    }

    /// The meta server's table roles (every table, from the answer to the beacon sent at
    /// `sent_at_ms`). `lease`: the cluster runs a DR lease.
    pub fn set(&mut self, roles: &[TableRoleInfo], sent_at_ms: u64, lease: bool) {
        let mut standby = BTreeMap::new();
        let mut active = BTreeMap::new();
        for r in roles {
            if r.role != DrRole::Active {
                standby.insert(r.table, (r.name.clone(), r.epoch));
                continue;
            }
            let end = if r.dr_lease_ms == 0 { 0 } else { sent_at_ms.saturating_add(r.dr_lease_ms) };
            // A lease, once given, runs out by itself: a later answer may extend it, never
            // shorten it (each bound holds on its own), unless the epoch moved.
            let end = match self.active.get(&r.table) {
                Some((_, epoch, old)) if *epoch == r.epoch => end.max(*old),
                _ => end,
            };
            active.insert(r.table, (r.name.clone(), r.epoch, end));
        }
        self.standby = standby;
        self.active = active;
        self.lease = lease;
        self.heard = true;
    }

    /// `Some((name, epoch))` when `table` is a standby in this cluster.
    pub fn standby(&self, table: u32) -> Option<(String, u64)> {
        self.standby.get(&table).cloned()
    }

    /// Why a client write to `table` must be refused at monotonic time `now_ms`, if it must:
    /// the table is a standby, or the cluster runs a DR lease and this table's ran out (or was
    /// never heard of: a table created after the last beacon answer waits for the next one), or
    /// no beacon answer arrived since the server started (it cannot tell).
    pub fn refuse_client_write(&self, table: u32, now_ms: u64) -> Option<Error> {
        if !self.heard {
            // A restarted server's replicas can serve once the configurations and node lease of
            // a beacon answer are in, possibly before its roles: not knowing is refusing.
            return Some(Error::Unavailable(format!(
                "table #{table}: no answer from the meta server since this server started (its DR role and lease are not known yet)"
            )));
        }
        if let Some((name, epoch)) = self.standby.get(&table) {
            return Some(Error::Standby { table: name.clone(), epoch: *epoch });
        }
        if !self.lease || self.rules.bugs().lease_not_checked {
            return None;
        }
        match self.active.get(&table) {
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
    use tern_core::ErrorCode;

    use super::*;

    fn role(table: u32, role: DrRole, epoch: u64, dr_lease_ms: u64) -> TableRoleInfo {
        TableRoleInfo { table, name: format!("t{table}"), role, epoch, dr_lease_ms }
    }

    #[test]
    fn the_lease_counts_from_the_beacons_send_time_and_only_grows_within_an_epoch() {
        let mut g = WriteGate::default();
        // Sent at 1000; the meta had 4000 ms left when it answered.
        g.set(&[role(1, DrRole::Active, 0, 4_000)], 1_000, true);
        assert_eq!(g.refuse_client_write(1, 4_999), None);
        let e = g.refuse_client_write(1, 5_000).unwrap();
        assert_eq!(e.code(), ErrorCode::NoDrLease);
        assert!(e.to_string().contains("ran out 0 ms ago"), "{e}");
        // A later answer with nothing left does not take back what was given.
        g.set(&[role(1, DrRole::Active, 0, 0)], 2_000, true);
        assert_eq!(g.refuse_client_write(1, 4_999), None);
        // A new epoch starts afresh.
        g.set(&[role(1, DrRole::Active, 3, 0)], 2_100, true);
        assert!(g.refuse_client_write(1, 2_200).is_some());
    }

    /// Regression (simulator, `seeds_dr` seeds 900126, 900425, 900853 before this rule): a
    /// replica server that restarted took client writes as soon as its replica was primary
    /// again, before the roles of a beacon answer told it the cluster runs a DR lease (the
    /// cluster had lost it).
    #[test]
    fn nothing_is_let_through_before_the_first_beacon_answer() {
        let mut g = WriteGate::default();
        let e = g.refuse_client_write(1, 10).unwrap();
        assert!(e.is_retryable() && e.to_string().contains("no answer from the meta server"), "{e}");
        g.set(&[], 0, false);
        assert_eq!(g.refuse_client_write(1, 10), None, "no voters: no lease");
    }

    #[test]
    fn without_a_lease_only_standbys_are_refused_and_unknown_tables_wait_with_one() {
        let mut g = WriteGate::default();
        g.set(&[role(1, DrRole::Active, 0, 0), role(2, DrRole::Standby, 1, 0)], 0, false);
        assert_eq!(g.refuse_client_write(1, 10), None);
        assert_eq!(g.refuse_client_write(9, 10), None);
        assert_eq!(g.refuse_client_write(2, 10).unwrap().code(), ErrorCode::Standby);
        assert_eq!(g.standby(2), Some(("t2".to_string(), 1)));
        g.set(&[role(1, DrRole::Active, 0, 0)], 0, true);
        let e = g.refuse_client_write(9, 10).unwrap();
        assert_eq!(e.code(), ErrorCode::NoDrLease);
        assert!(e.is_retryable());
    }
}
