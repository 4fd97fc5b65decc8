//! The DR lease in two-cluster runs (`SimConfig::two_clusters_dr`; issue #24, items 4 and 8):
//! the table is active in one cluster and standby in the other, DR voters grant each cluster's
//! meta server the lease through which its replica servers take client writes, and simulated
//! proxies watch both clusters and fail the table over (waiting for the old copy's lease) and
//! fence a returning old copy. Faults cut the active cluster off from the voters while its
//! clients still reach it: the split brain the lease is for.
//!
//! Every decision is `tern-drlease`'s, the code the servers run: the holder's majority and expiry
//! ([`tern_drlease::Holder`], in `meta.rs`), the voters' grants, floors and promises
//! ([`tern_drlease::Voter`]), the promoter's wait ([`tern_drlease::DrRules::lease_expiry`]),
//! routing, outages, the failover decision, finishing a promotion and fencing
//! (`tern_drlease::failover`, in `proxy.rs`), role changes and self-fencing
//! (`tern_drlease::roles`), and the replica servers' write gate ([`tern_drlease::WriteGate`]).
//! What is the simulator's own is the transport (renewals, promises, route questions and role
//! changes are network messages, subject to every fault of the run), the order in which a
//! proxy's watcher takes its steps (the proxy's async runtime cannot run here; it is mirrored
//! in `proxy.rs`, step by step), and the DR faults (`faults.rs`).
//!
//! The check ([`split_brain`]): at no instant of true (simulated global) time do two copies take
//! client writes: a client write that a copy's write gate let through and that committed must
//! have been let through while that copy was the last one made active.

mod faults;
mod meta;
mod proxy;
pub mod split_brain;

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tern_core::{DrRole, Error, ErrorCode, Gpid, NodeId};
use tern_drlease::{DrRules, LeaseSeen, TableRoleInfo, WriteGate};
use tern_replica::RequestId;

pub use self::meta::MetaDr;
use self::proxy::SimProxy;
use crate::clock::NodeClock;
use crate::config::SimConfig;
use crate::meta::SimMeta;
use crate::net::{Addr, Msg};
use crate::node::SimNode;
use crate::world_ctx::{Ctx, Ev};

/// The table's name in both clusters (its id differs: `TableId(cluster + 1)`).
pub const TABLE: &str = "t";

/// The DR lease of a two-cluster run.
#[derive(Clone, Debug)]
pub struct DrConfig {
    /// DR voters that are proxies (they watch both clusters, fail over and fence)...
    pub proxies: usize,
    /// ...and witnesses (they watch, to learn floors, and change no role).
    pub witnesses: usize,
    /// The lease each voter grants (`--dr-lease`).
    pub lease_ms: u64,
    /// How often a meta server renews it (`--dr-renew-interval`).
    pub renew_ms: u64,
    /// How often a proxy looks at both clusters (`--watch-interval`).
    pub watch_ms: u64,
    /// How long the active copy must not serve before a proxy promotes (`--auto-failover
    /// T,after=`). Shorter than the lease, so a promoter that does not wait is caught.
    pub failover_after_ms: u64,
    /// Mean time between DR fault steps (cut the active cluster off from the voters, cut one
    /// way, isolate a voter).
    pub step_ms: u64,
    /// Deliberately broken DR rules, to prove the check finds them.
    pub bugs: DrBugs,
}

impl DrConfig {
    pub fn standard() -> DrConfig {
        DrConfig {
            proxies: 2,
            witnesses: 1,
            lease_ms: 3_000,
            renew_ms: 1_000,
            watch_ms: 500,
            failover_after_ms: 2_000,
            step_ms: 4_000,
            bugs: DrBugs::default(),
        }
    }
}

/// Bugs planted in the shared DR rules (`tern_drlease::DrRules`, feature `planted-bugs`).
#[derive(Clone, Debug, Default)]
pub struct DrBugs {
    /// Replica servers take client writes without the DR lease (`WriteGate`).
    pub lease_not_checked: bool,
    /// A promoter does not wait for the old copy's lease (`DrRules::lease_expiry`).
    pub promote_without_waiting: bool,
}

impl SimConfig {
    /// Two clusters with a two-way link (`two_clusters`), the table active in the first and
    /// standby in the second, the DR lease through two proxies and a witness, automatic failover
    /// and DR faults (see `docs/simulation.md`, "The DR lease").
    pub fn two_clusters_dr(seed: u64) -> SimConfig {
        let mut cfg = SimConfig::two_clusters(seed);
        cfg.dr = Some(DrConfig::standard());
        cfg
    }
}

/// What the DR lease of a run did (the scenario the check needs must have happened).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrStats {
    /// Cuts of the active cluster from every DR voter (its clients still reach it).
    pub cuts: u64,
    /// Copies made active by a proxy.
    pub promotions: u64,
    /// Promotions that took effect while the previously active cluster was cut off from the
    /// voters.
    pub promotions_while_cut: u64,
    /// Copies made standby (by a proxy, or by their own meta server on a voter's word).
    pub fenced: u64,
    /// Client writes the replica servers refused: no DR lease, or a standby copy.
    pub refused_no_lease: u64,
    pub refused_standby: u64,
    /// Client writes the write gate let through, and of those that committed, how many a
    /// cluster took while it was cut off from the voters.
    pub admitted: u64,
    pub committed_in_cut: u64,
    /// Committed client writes taken while another copy was the active one (violations), and
    /// how many of them a cluster took while it was cut off from the voters.
    pub split_brain_writes: u64,
    pub split_brain_in_cut: u64,
}

/// What the run observed of the DR lease, for the check (in `Observations`).
#[derive(Debug, Default)]
pub struct DrObs {
    /// Copies made active, in true time: (global µs, cluster, epoch). Before the first, the
    /// first cluster's copy is the active one.
    pub reigns: Vec<(u64, usize, u64)>,
    /// Client writes the write gate let through: (node, request) → (global µs, cluster).
    pub admitted: BTreeMap<(NodeId, RequestId), (u64, usize)>,
    /// Of those, the ones that committed: (global µs they were let through, cluster).
    pub committed: Vec<(u64, usize)>,
    /// Of those, the ones taken while another copy was the active one.
    pub split_brain: Vec<(u64, usize)>,
    /// Cuts of a cluster from every DR voter: (cluster, from µs, to µs).
    pub cuts: Vec<(usize, u64, u64)>,
    pub fenced: u64,
    pub refused_no_lease: u64,
    pub refused_standby: u64,
    pub admitted_count: u64,
    pub split_brain_writes: u64,
}

/// Messages of the DR lease.
#[derive(Clone, Debug)]
pub enum DrMsg {
    /// A meta server renews its lease with a voter, for its active copies (table → epoch).
    Renew {
        id: u64,
        cluster: String,
        voters: Vec<String>,
        active: BTreeMap<String, u64>,
    },
    Renewed {
        id: u64,
        voter: String,
        granted: Result<u64, String>,
        superseded: BTreeMap<String, u64>,
    },
    /// A promoter asks a voter to grant no lease to a copy of `table` below `epoch`.
    Promise {
        id: u64,
        table: String,
        cluster: String,
        epoch: u64,
        voters: Vec<String>,
    },
    Promised {
        id: u64,
        voter: String,
        promised: Result<(), String>,
        since_grant_ms: u64,
        lease_ms: u64,
    },
    /// A proxy asks a meta server about the table (`describe_table`).
    Describe {
        id: u64,
    },
    Described {
        id: u64,
        copy: CopyReport,
    },
    /// A proxy changes the copy's role, compare-and-set on its epoch (`SetTableRole`).
    SetRole {
        id: u64,
        role: DrRole,
        epoch: u64,
        expect: u64,
    },
    RoleSet {
        id: u64,
        result: Result<(), String>,
    },
    /// What a beacon answer carries of DR roles and the lease, to the server that sent the
    /// beacon at `sent_at_ms`.
    Roles {
        sent_at_ms: u64,
        roles: Vec<TableRoleInfo>,
        lease: bool,
    },
}

impl DrMsg {
    pub fn kind(&self) -> String {
        match self {
            DrMsg::Renew { id, active, .. } => format!("dr-renew #{id} {active:?}"),
            DrMsg::Renewed { id, granted, superseded, .. } => match granted {
                Ok(ms) => format!("dr-granted #{id} {ms}ms superseded={superseded:?}"),
                Err(e) => format!("dr-refused #{id} {e}"),
            },
            DrMsg::Promise { id, epoch, cluster, .. } => {
                format!("dr-promise #{id} below e{epoch} ({cluster})")
            }
            DrMsg::Promised { id, promised, since_grant_ms, .. } => match promised {
                Ok(()) => format!("dr-promised #{id} since-grant={since_grant_ms}ms"),
                Err(e) => format!("dr-promise-refused #{id} {e}"),
            },
            DrMsg::Describe { id } => format!("dr-describe #{id}"),
            DrMsg::Described { id, copy } => format!("dr-described #{id} {copy:?}"),
            DrMsg::SetRole { id, role, epoch, expect } => {
                format!("dr-set-role #{id} {role} e{epoch} if e{expect}")
            }
            DrMsg::RoleSet { id, result } => format!("dr-role-set #{id} {result:?}"),
            DrMsg::Roles { roles, .. } => {
                let r: Vec<String> = roles
                    .iter()
                    .map(|r| format!("{} {} e{} {}ms", r.name, r.role, r.epoch, r.dr_lease_ms))
                    .collect();
                format!("dr-roles [{}]", r.join(", "))
            }
        }
    }
}

/// What a meta server says of its copy of the table.
#[derive(Clone, Debug)]
pub enum CopyReport {
    Copy {
        role: DrRole,
        epoch: u64,
        partitions: u32,
        with_primary: u32,
        /// Its DR lease as its routes carry it.
        lease: LeaseSeen,
        /// Its duplication link has started in every partition (what stands for a measured lag:
        /// the simulated proxies' RPO budget is unlimited).
        link_started: bool,
    },
    NoTable,
}

/// Scheduled work of the DR processes.
#[derive(Clone, Debug)]
pub enum DrEv {
    /// A proxy or witness looks at both clusters (and fails over).
    Tick(u8),
    /// The next DR fault (carried out by the world: it owns the network).
    FaultStep,
}

/// A simulated replica server's DR state: the shared write gate.
#[derive(Debug)]
pub struct NodeDr {
    gate: WriteGate,
    rules: DrRules,
}

impl NodeDr {
    /// A crash: the roles and leases it knew are gone (it refuses until its next beacon answer).
    pub fn reset(&mut self) {
        self.gate = WriteGate::new(self.rules.clone());
    }
}

/// The DR voters and proxies of a run.
#[allow(missing_debug_implementations)]
pub struct DrWorld {
    cfg: DrConfig,
    procs: Vec<SimProxy>,
    fault_phase_end_us: u64,
}

/// The shared rules with the run's planted bugs.
fn rules(cfg: &DrConfig) -> DrRules {
    #[cfg(feature = "planted-bugs")]
    {
        DrRules {
            bugs: tern_drlease::PlantedDrBugs {
                lease_not_checked: cfg.bugs.lease_not_checked,
                promote_without_waiting: cfg.bugs.promote_without_waiting,
            },
        }
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = cfg;
        DrRules::default()
    }
}

fn cluster_name(c: usize) -> String {
    format!("dc{}", c + 1)
}

/// Gives the metas and nodes of a run with the DR lease their DR state and makes its voters;
/// `None` for other runs (nothing is drawn from `rng` then).
pub fn equip(
    cfg: &SimConfig,
    rng: &mut ChaCha8Rng,
    nodes: &mut [SimNode],
    metas: &mut [SimMeta],
) -> Option<DrWorld> {
    let d = cfg.dr.as_ref().filter(|_| cfg.dup.is_some())?;
    let rules = rules(d);
    let voters: Vec<(String, Addr)> = (0..d.proxies + d.witnesses)
        .map(|i| {
            let name = if i < d.proxies { format!("p{}", i + 1) } else { format!("w{}", i - d.proxies + 1) };
            (name, Addr::Dr(i as u8))
        })
        .collect();
    for m in metas.iter_mut() {
        let c = usize::from(m.idx);
        // The first cluster's copy is active at epoch 0, the other standby at epoch 1 (as
        // `tern up` leaves them).
        let (role, epoch) = if c == 0 { (DrRole::Active, 0) } else { (DrRole::Standby, 1) };
        m.dr = Some(MetaDr::new(c, cluster_name(c), role, epoch, voters.clone(), d.renew_ms));
    }
    for n in nodes.iter_mut() {
        n.dr = Some(NodeDr { gate: WriteGate::new(rules.clone()), rules: rules.clone() });
    }
    let clusters: Vec<(String, Addr)> =
        metas.iter().map(|m| (cluster_name(usize::from(m.idx)), m.addr())).collect();
    // The DR processes' clocks: drawn from the run's generator after everything a run without
    // them draws.
    let f = &cfg.faults;
    let procs = voters
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let clock = NodeClock::new(
                rng.random_range(-f.offset_ms..=f.offset_ms),
                rng.random_range(-f.drift_ppm..=f.drift_ppm),
            );
            SimProxy::new(i as u8, name.clone(), i >= d.proxies, clock, &voters, &clusters, d, rules.clone())
        })
        .collect();
    Some(DrWorld { cfg: d.clone(), procs, fault_phase_end_us: cfg.fault_phase_ms * 1_000 })
}

impl DrWorld {
    /// The first events: every process's first tick, and the first DR fault step.
    pub fn start(&self) -> Vec<(u64, DrEv)> {
        let mut evs: Vec<(u64, DrEv)> =
            (0..self.procs.len()).map(|i| (i as u64 * 11, DrEv::Tick(i as u8))).collect();
        evs.push((self.cfg.step_ms * 1_000 * 2, DrEv::FaultStep));
        evs
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_>, to: u8, from: Addr, msg: Msg) {
        if let (Some(p), Msg::Dr(m)) = (self.procs.get_mut(usize::from(to)), msg) {
            p.on_message(ctx, from, m);
        }
    }

    pub fn on_event(&mut self, ctx: &mut Ctx<'_>, ev: DrEv) {
        if let DrEv::Tick(i) = ev
            && let Some(p) = self.procs.get_mut(usize::from(i))
        {
            p.on_tick(ctx);
        }
    }

    /// The run's DR statistics, at its end.
    pub fn stats(&self, obs: &crate::observe::Observations) -> DrStats {
        let d = &obs.dr;
        let cut =
            |c: usize, at: u64| d.cuts.iter().any(|(x, from, to)| *x == c && (*from..*to).contains(&at));
        let mut owner = 0;
        let mut promotions_while_cut = 0;
        for (at, c, _) in &d.reigns {
            if *c != owner && cut(owner, *at) {
                promotions_while_cut += 1;
            }
            owner = *c;
        }
        DrStats {
            cuts: d.cuts.len() as u64,
            promotions: d.reigns.len() as u64,
            promotions_while_cut,
            fenced: d.fenced,
            refused_no_lease: d.refused_no_lease,
            refused_standby: d.refused_standby,
            admitted: d.admitted_count,
            committed_in_cut: d.committed.iter().filter(|(at, c)| cut(*c, *at)).count() as u64,
            split_brain_writes: d.split_brain_writes,
            split_brain_in_cut: d.split_brain.iter().filter(|(at, c)| cut(*c, *at)).count() as u64,
        }
    }
}

// ---- hooks of the simulated meta server and replica servers ----

/// A meta server's tick: renew the lease (and fence what the voters say was replaced).
pub fn on_meta_tick(meta: &mut SimMeta, ctx: &mut Ctx<'_>) {
    if meta.dr.is_some() {
        meta::tick(meta, ctx);
    }
}

/// A DR message to a meta server.
pub fn on_meta_message(meta: &mut SimMeta, ctx: &mut Ctx<'_>, from: Addr, m: DrMsg) {
    if meta.dr.is_some() {
        meta::on_message(meta, ctx, from, m);
    }
}

/// A meta server answered the beacon `node` sent at `sent_at_ms`: the answer also carries the
/// table's role and what is left of its DR lease.
pub fn on_beacon_answered(meta: &mut SimMeta, ctx: &mut Ctx<'_>, node: NodeId, sent_at_ms: u64) {
    if meta.dr.is_some() {
        meta::beacon_answered(meta, ctx, node, sent_at_ms);
    }
}

/// A client write reaches a replica server: the shared write gate lets it through (recorded for
/// the check as request `req`) or says why not.
pub fn gate_client_write(node: &SimNode, ctx: &mut Ctx<'_>, gpid: Gpid, req: RequestId) -> Option<Error> {
    let dr = node.dr.as_ref()?;
    let now = node.now_ms(ctx);
    match dr.gate.refuse_client_write(gpid.table.0, now) {
        Some(e) => {
            match e.code() {
                ErrorCode::NoDrLease => ctx.obs.dr.refused_no_lease += 1,
                _ => ctx.obs.dr.refused_standby += 1,
            }
            Some(e)
        }
        None => {
            ctx.obs.dr.admitted_count += 1;
            ctx.obs.dr.admitted.insert((node.id, req), (ctx.now_us, node.cluster));
            None
        }
    }
}

/// A DR message to a replica server (its beacon answer's roles).
pub fn on_node_message(node: &mut SimNode, m: DrMsg) {
    if let (Some(dr), DrMsg::Roles { sent_at_ms, roles, lease }) = (node.dr.as_mut(), m) {
        dr.gate.set(&roles, sent_at_ms, lease);
    }
}

/// A write committed at `node` for request `req`: if it was a client write the gate let
/// through, check it against the copies made active meanwhile.
pub fn on_write_done(ctx: &mut Ctx<'_>, node: NodeId, req: RequestId) {
    if let Some((at, cluster)) = ctx.obs.dr.admitted.remove(&(node, req)) {
        split_brain::on_committed(ctx.obs, node, at, cluster);
    }
}

/// Schedules `ev` for DR process `i` after `local_ms` of its clock.
fn after(ctx: &mut Ctx<'_>, clock: &NodeClock, local_ms: u64, ev: DrEv) {
    ctx.after(clock.global_us_for(local_ms), Ev::Dr(ev));
}
