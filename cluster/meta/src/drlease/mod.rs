//! The cluster's DR lease (issue #24, item 4; docs/meta-proxy.md, "The DR lease").
//!
//! A table's copy that is active in this cluster takes client writes only while the cluster
//! holds the DR lease for it. The meta leader renews it every `renew_interval` with each
//! configured DR voter (`tern proxy --dr-name`, `tern witness`) and holds it while a majority
//! of them granted it recently ([`holder`]: the shared, pure rules of crate `tern-drlease`,
//! which the simulator runs too); replica servers learn what is left of it
//! with every beacon answer and count it from when they sent the beacon. A voter that knows a
//! table is active at a higher epoch elsewhere withholds the lease for it and says so: this
//! cluster then fences its own copy (standby at that epoch), whatever table it is.
//!
//! Without voters there is no lease (and `tern meta` warns). An operator may waive the lease
//! (`tern cluster dr-lease --waive REASON`): replicated state, so every meta leader honours it.

pub use tern_drlease::holder;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tern_client::Pool;
use tern_core::{DrRole, Error};
use tern_proto::pb;

use tern_drlease::roles::to_fence_superseded;

use self::holder::{Answer, Holder};
use crate::MetaSm;
use crate::raft::RaftGroup;
use crate::state::dr::RoleChange;
use crate::state::{Command, MetaState, Response, TableStatus};

/// Which voters renew this cluster's DR lease, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrLeaseOptions {
    /// Each voter's name and address (`tern meta --dr-voters NAME=ADDR,...`). Empty: no lease.
    pub voters: Vec<(String, String)>,
    /// How often the meta leader renews the lease with every voter.
    pub renew_interval: Duration,
}

impl Default for DrLeaseOptions {
    fn default() -> DrLeaseOptions {
        DrLeaseOptions { voters: Vec::new(), renew_interval: Duration::from_secs(1) }
    }
}

/// The lease as this meta server holds it (meaningful while it leads).
#[derive(Debug)]
pub struct DrLease {
    opts: DrLeaseOptions,
    holder: Mutex<Holder>,
    /// The origin of this process's monotonic milliseconds.
    base: Instant,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl DrLease {
    pub fn new(opts: DrLeaseOptions) -> DrLease {
        let holder = Holder::new(opts.voters.iter().map(|(n, _)| n.clone()));
        DrLease { opts, holder: Mutex::new(holder), base: Instant::now() }
    }

    fn holder(&self) -> MutexGuard<'_, Holder> {
        self.holder.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This process's monotonic clock, in ms.
    pub fn now_ms(&self) -> u64 {
        ms(self.base.elapsed())
    }

    /// Whether DR voters are configured.
    pub fn used(&self) -> bool {
        !self.opts.voters.is_empty()
    }

    /// Whether client writes to active tables need the lease now (voters, and not waived).
    pub fn enforced(&self, state: &MetaState) -> bool {
        self.used() && state.dr_lease_waiver.is_none()
    }

    /// What is left now of the lease for `table`, active here at `epoch`.
    pub fn lease_left_ms(&self, table: &str, epoch: u64) -> u64 {
        self.holder().lease_left_ms(table, epoch, self.now_ms())
    }

    /// What a beacon answer tells replica servers is left of the lease of `table` (its role and
    /// epoch here): see [`Holder::beacon_lease_ms`].
    pub fn beacon_lease_ms(&self, enforced: bool, role: DrRole, table: &str, epoch: u64) -> u64 {
        self.holder().beacon_lease_ms(enforced, role, table, epoch, self.now_ms())
    }

    /// This table's lease as routes carry it.
    pub fn route_lease(&self, state: &MetaState, table: &str, role: DrRole, epoch: u64) -> pb::RouteDrLease {
        let now = self.now_ms();
        let h = self.holder();
        let active = role == DrRole::Active;
        let left = if active { h.lease_left_ms(table, epoch, now) } else { 0 };
        let detail = if !self.used() {
            "no DR voters configured (tern meta --dr-voters)".to_string()
        } else if !active {
            String::new()
        } else {
            h.why_not(table, epoch, now)
        };
        pb::RouteDrLease {
            used: self.used(),
            voters: h.voters(),
            waived: state.dr_lease_waiver.is_some(),
            lease_left_ms: left,
            detail,
        }
    }

    /// `GetDrLease`: the voters' standings and every active table's lease.
    pub fn status(&self, state: &MetaState) -> pb::DrLeaseStatus {
        let now = self.now_ms();
        let h = self.holder();
        let addrs: BTreeMap<&str, &str> =
            self.opts.voters.iter().map(|(n, a)| (n.as_str(), a.as_str())).collect();
        let grants = h
            .standings(now)
            .into_iter()
            .map(|s| pb::DrVoterGrant {
                addr: addrs.get(s.voter.as_str()).map(|a| a.to_string()).unwrap_or_default(),
                voter: s.voter,
                granted: s.granted,
                lease_left_ms: s.lease_left_ms,
                answered_ms_ago: s.answered_ms_ago.map_or(-1, |a| a.min(i64::MAX as u64) as i64),
                detail: s.detail,
            })
            .collect();
        let tables = state
            .tables
            .values()
            .filter(|t| t.status == TableStatus::Serving && t.role == DrRole::Active)
            .map(|t| pb::DrTableLease {
                table: t.name.clone(),
                epoch: t.epoch,
                lease_left_ms: h.lease_left_ms(&t.name, t.epoch, now),
                detail: h.why_not(&t.name, t.epoch, now),
            })
            .collect();
        let waiver = state.dr_lease_waiver.as_ref();
        pb::DrLeaseStatus {
            used: self.used(),
            voters: h.voters(),
            majority: if self.used() { h.majority() as u32 } else { 0 },
            waived: waiver.is_some(),
            waiver_reason: waiver.map(|w| w.reason.clone()).unwrap_or_default(),
            waived_at_ms: waiver.map_or(0, |w| w.at_ms),
            grants,
            tables,
            renew_interval_ms: ms(self.opts.renew_interval),
        }
    }
}

/// Renews the lease with every voter while this server leads, and fences tables the voters
/// say are active elsewhere at a higher epoch. Runs until the process stops.
pub async fn run(lease: Arc<DrLease>, group: Arc<RaftGroup<MetaSm>>, pool: Arc<Pool>) {
    if !lease.used() {
        return;
    }
    let mut tick = tokio::time::interval(lease.opts.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held = false;
    loop {
        tick.tick().await;
        if !group.is_leader() {
            continue;
        }
        renew_once(&lease, &group, &pool).await;
        let left = lease.holder().cluster_lease_left_ms(lease.now_ms());
        match (held, left > 0) {
            (false, true) => tracing::info!("DR lease held: a majority of the DR voters grant it"),
            (true, false) => {
                let why = lease.holder().why_not_at_all(lease.now_ms());
                tracing::warn!(
                    "DR lease lost ({why}): active tables take no client writes until it is renewed"
                )
            }
            _ => {}
        }
        held = left > 0;
        fence_superseded(&lease, &group).await;
    }
}

/// One round: a renewal to every voter at once, each counted from when it was sent.
async fn renew_once(lease: &DrLease, group: &RaftGroup<MetaSm>, pool: &Pool) {
    let (cluster, active) = group.read(|s| {
        let active: Vec<pb::DrTableEpoch> =
            s.0.tables
                .values()
                .filter(|t| t.status == TableStatus::Serving && t.role == DrRole::Active)
                .map(|t| pb::DrTableEpoch { table: t.name.clone(), epoch: t.epoch })
                .collect();
        (s.0.cluster_name.clone(), active)
    });
    let voters: Vec<String> = lease.opts.voters.iter().map(|(n, _)| n.clone()).collect();
    let asked: BTreeMap<String, u64> = active.iter().map(|t| (t.table.clone(), t.epoch)).collect();
    let req = pb::DrRenewRequest { cluster, voters: sorted(voters), active };
    let budget = lease.opts.renew_interval.max(Duration::from_millis(500));
    let calls = lease.opts.voters.iter().map(|(name, addr)| {
        let (req, asked) = (req.clone(), &asked);
        async move {
            let sent_at = lease.now_ms();
            let answer = match pool.channel(addr) {
                Err(e) => Answer::Failed(e.to_string()),
                Ok(ch) => {
                    let mut c = pb::dr_voter_client::DrVoterClient::new(ch);
                    match tokio::time::timeout(budget, c.renew(req)).await {
                        Err(_) => Answer::Failed(format!("no answer from {addr} within {budget:?}")),
                        Ok(Err(s)) => Answer::Failed(format!("{addr}: {}", s.message())),
                        Ok(Ok(r)) => answer_of(name, r.into_inner()),
                    }
                }
            };
            lease.holder().on_answer(name, sent_at, lease.now_ms(), asked, answer);
        }
    });
    futures::future::join_all(calls).await;
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn answer_of(name: &str, r: pb::DrRenewResponse) -> Answer {
    if r.voter != name {
        return Answer::Failed(format!(
            "the voter configured as {name} calls itself {:?}: check --dr-voters and its --dr-name",
            r.voter
        ));
    }
    if !r.granted {
        return Answer::Failed(format!("refused: {}", r.refused));
    }
    Answer::Granted {
        lease_ms: r.lease_ms,
        superseded: r.superseded.into_iter().map(|t| (t.table, t.epoch)).collect(),
    }
}

/// A table active here at an epoch below one a voter reports for it elsewhere was replaced
/// while this cluster could not hear of it: make it standby at that epoch (compare-and-set on
/// its own), so it stays fenced whoever looks.
async fn fence_superseded(lease: &DrLease, group: &RaftGroup<MetaSm>) {
    let superseded = lease.holder().superseded();
    if superseded.is_empty() {
        return;
    }
    let stale: Vec<(String, u64, u64)> = group.read(|s| {
        let active =
            s.0.tables.values().filter(|t| t.status == TableStatus::Serving && t.role == DrRole::Active);
        to_fence_superseded(&superseded, active.map(|t| (t.name.as_str(), t.epoch)))
    });
    for (table, epoch, expect) in stale {
        let change =
            RoleChange { table: table.clone(), role: DrRole::Standby, epoch, expect_epoch: Some(expect) };
        match group.write(Command::SetTableRole { change }).await {
            Ok(Response::Table(_)) => {
                tracing::warn!(
                    table,
                    "fenced: a DR voter says table {table} is active elsewhere at epoch {epoch} (here: active at {expect}); now standby at epoch {epoch}"
                );
                hold_tail(&table, group).await;
            }
            Ok(other) => tracing::debug!(table, "fencing skipped: {other:?}"),
            Err(e) => tracing::warn!(table, "fencing failed: {}", crate::leader::write_error(e)),
        }
    }
}

/// A copy fenced because another was promoted over it holds an unshipped tail of writes the
/// promoted copy may never have seen: its outgoing links are paused, so that the tail ships
/// only under `tern dr reconcile`, which measures it first and reports what became of it.
async fn hold_tail(table: &str, group: &RaftGroup<MetaSm>) {
    let shipping: Vec<u64> = group.read(|s| {
        s.0.links
            .values()
            .filter(|l| l.table_name == table && l.status == tern_core::LinkStatus::Shipping)
            .map(|l| l.id)
            .collect()
    });
    for id in shipping {
        let change = crate::state::dup::LinkChange::Pause;
        match group.write(Command::ChangeLink { id, change }).await {
            Ok(Response::Link(_)) => tracing::warn!(
                table,
                "link {id} paused: table {table} was fenced with writes the promoted copy may lack; `tern dr reconcile` ships them"
            ),
            Ok(other) => tracing::debug!(table, "pausing link {id} skipped: {other:?}"),
            Err(e) => tracing::warn!(table, "pausing link {id} failed: {}", crate::leader::write_error(e)),
        }
    }
}

/// Refuses a waiver without a reason.
pub fn check_waiver_reason(waive: bool, reason: &str) -> Result<(), Error> {
    if waive && reason.trim().is_empty() {
        return Err(Error::InvalidArgument(
            "waiving the DR lease needs a reason (kept in the cluster's state and shown by status)".into(),
        ));
    }
    Ok(())
}
