//! A simulated meta server's DR side: its copy's role and epoch, and the DR lease it holds
//! through the voters, as `tern-meta`'s `drlease` runtime keeps them: a renewal to every voter
//! each `renew_ms` (each grant counted from when its request was sent, [`Holder`]), fencing its
//! own copy when a voter says the table is active elsewhere at a higher epoch
//! ([`to_fence_superseded`]), role changes by compare-and-set ([`check_role_change`]), and the
//! lease in every beacon answer ([`Holder::beacon_lease_ms`]).

use std::collections::BTreeMap;

use tern_core::{DrRole, NodeId};
use tern_drlease::roles::{RoleChangeRefused, check_role_change, to_fence_superseded};
use tern_drlease::{Answer, Holder, LeaseSeen, TableRoleInfo};

use super::{CopyReport, DrMsg, TABLE};
use crate::meta::SimMeta;
use crate::net::{Addr, Msg};
use crate::world_ctx::Ctx;

/// A meta server's DR state (its Raft state and its leader's lease, in one process here).
#[derive(Debug)]
pub struct MetaDr {
    cluster: usize,
    /// The cluster's name, as proxies and voters know it.
    pub name: String,
    pub role: DrRole,
    pub epoch: u64,
    holder: Holder,
    voters: Vec<(String, Addr)>,
    renew_ms: u64,
    next_renew_ms: u64,
    /// Renewals in flight: id → (voter, sent at, the copies it named).
    pending: BTreeMap<u64, (String, u64, BTreeMap<String, u64>)>,
    next_id: u64,
}

impl MetaDr {
    pub fn new(
        cluster: usize,
        name: String,
        role: DrRole,
        epoch: u64,
        voters: Vec<(String, Addr)>,
        renew_ms: u64,
    ) -> MetaDr {
        MetaDr {
            cluster,
            name,
            role,
            epoch,
            holder: Holder::new(voters.iter().map(|(n, _)| n.clone())),
            voters,
            renew_ms,
            next_renew_ms: 0,
            pending: BTreeMap::new(),
            next_id: 1,
        }
    }

    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.voters.iter().map(|(n, _)| n.clone()).collect();
        n.sort();
        n
    }

    /// `SetTableRole` on the table (compare-and-set with `expect`): the servers' rule.
    fn set_role(
        &mut self,
        ctx: &mut Ctx<'_>,
        role: DrRole,
        epoch: u64,
        expect: Option<u64>,
        by: &str,
    ) -> Result<(), String> {
        match check_role_change(self.epoch, epoch, expect) {
            Err(RoleChangeRefused::EpochConflict { expected, actual }) => {
                return Err(format!("EPOCH_CONFLICT: at epoch {actual}, not {expected}"));
            }
            Err(RoleChangeRefused::Older { current }) => {
                return Err(format!("at epoch {current}: epochs only grow"));
            }
            Ok(()) => {}
        }
        ctx.trace(format!("{}: {TABLE} {} e{} -> {role} e{epoch} ({by})", self.name, self.role, self.epoch));
        match role {
            DrRole::Active => ctx.obs.dr.reigns.push((ctx.now_us, self.cluster, epoch)),
            DrRole::Standby if self.role == DrRole::Active => ctx.obs.dr.fenced += 1,
            DrRole::Standby => {}
        }
        self.role = role;
        self.epoch = epoch;
        Ok(())
    }
}

/// Whether the table exists (is serving) at this meta server.
fn created(meta: &SimMeta) -> bool {
    meta.cm.configs().next().is_some()
}

/// Every `renew_ms`: fence what the voters' last answers say was replaced, then renew.
pub(super) fn tick(meta: &mut SimMeta, ctx: &mut Ctx<'_>) {
    let (me, now, created) = (meta.addr(), meta.clock.local_ms(ctx.now_us), created(meta));
    let Some(dr) = meta.dr.as_mut() else { return };
    if now < dr.next_renew_ms {
        return;
    }
    dr.next_renew_ms = now + dr.renew_ms;
    let active = (created && dr.role == DrRole::Active).then_some((TABLE, dr.epoch));
    for (table, epoch, expect) in to_fence_superseded(&dr.holder.superseded(), active) {
        let by = format!("fenced itself: a DR voter says {table} is active elsewhere at epoch {epoch}");
        let _ = dr.set_role(ctx, DrRole::Standby, epoch, Some(expect), &by);
    }
    let asked: BTreeMap<String, u64> = if created && dr.role == DrRole::Active {
        BTreeMap::from([(TABLE.to_string(), dr.epoch)])
    } else {
        BTreeMap::new()
    };
    let names = dr.names();
    for (voter, addr) in dr.voters.clone() {
        let id = dr.next_id;
        dr.next_id += 1;
        dr.pending.insert(id, (voter, now, asked.clone()));
        let msg = DrMsg::Renew { id, cluster: dr.name.clone(), voters: names.clone(), active: asked.clone() };
        ctx.send(me, addr, Msg::Dr(msg));
    }
    // Answers that never came: the request failed (its grant, if any, counts from its send time
    // anyway).
    let stale: Vec<u64> =
        dr.pending.iter().filter(|(_, (_, at, _))| now > at + 10_000).map(|(id, _)| *id).collect();
    for id in stale {
        if let Some((voter, at, asked)) = dr.pending.remove(&id) {
            dr.holder.on_answer(&voter, at, now, &asked, Answer::Failed("no answer".into()));
        }
    }
}

pub(super) fn on_message(meta: &mut SimMeta, ctx: &mut Ctx<'_>, from: Addr, m: DrMsg) {
    let (me, now) = (meta.addr(), meta.clock.local_ms(ctx.now_us));
    let report = describe(meta);
    let Some(dr) = meta.dr.as_mut() else { return };
    match m {
        DrMsg::Renewed { id, voter, granted, superseded } => {
            let Some((asked_of, sent_at, asked)) = dr.pending.remove(&id) else { return };
            let answer = match granted {
                _ if voter != asked_of => {
                    Answer::Failed(format!("the voter configured as {asked_of} calls itself {voter}"))
                }
                Ok(lease_ms) => Answer::Granted { lease_ms, superseded },
                Err(why) => Answer::Failed(format!("refused: {why}")),
            };
            dr.holder.on_answer(&asked_of, sent_at, now, &asked, answer);
        }
        DrMsg::Describe { id } => ctx.send(me, from, Msg::Dr(DrMsg::Described { id, copy: report })),
        DrMsg::SetRole { id, role, epoch, expect } => {
            let result = if matches!(report, CopyReport::NoTable) {
                Err(format!("no serving table {TABLE:?}"))
            } else {
                dr.set_role(ctx, role, epoch, Some(expect), &format!("asked by {from:?}"))
            };
            ctx.send(me, from, Msg::Dr(DrMsg::RoleSet { id, result }));
        }
        _ => {}
    }
}

/// What this meta server says of its copy (a proxy's `describe_table`).
fn describe(meta: &SimMeta) -> CopyReport {
    let Some(dr) = meta.dr.as_ref().filter(|_| created(meta)) else { return CopyReport::NoTable };
    CopyReport::Copy {
        role: dr.role,
        epoch: dr.epoch,
        partitions: meta.cm.configs().count() as u32,
        with_primary: meta.cm.configs().filter(|c| c.primary.is_some()).count() as u32,
        lease: LeaseSeen { used: true, voters: dr.names(), waived: false },
        link_started: meta.link.as_ref().is_some_and(|l| l.all_started()),
    }
}

/// The beacon answer's roles: what is left of the lease now, counted by the server from when
/// it sent the beacon.
pub(super) fn beacon_answered(meta: &mut SimMeta, ctx: &mut Ctx<'_>, node: NodeId, sent_at_ms: u64) {
    let (me, now, table, created) =
        (meta.addr(), meta.clock.local_ms(ctx.now_us), meta.table(), created(meta));
    let Some(dr) = meta.dr.as_ref() else { return };
    let roles = if created {
        vec![TableRoleInfo {
            table: table.0,
            name: TABLE.to_string(),
            role: dr.role,
            epoch: dr.epoch,
            dr_lease_ms: dr.holder.beacon_lease_ms(true, dr.role, TABLE, dr.epoch, now),
        }]
    } else {
        Vec::new()
    };
    ctx.send(me, Addr::Node(node), Msg::Dr(DrMsg::Roles { sent_at_ms, roles, lease: true }));
}
