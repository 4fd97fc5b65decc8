//! The proxy's view of every table it routes: each cluster's copy (role, epoch, health, DR
//! lease), the copy it routes to, the standbys' measured lag, fencing, and automatic failover.
//! Tables with a failover policy, tables clients asked about in the last minute, and tables a
//! cluster renewed its DR lease for with this voter in the last minute are refreshed every
//! `interval` in the background (so a role change is seen within it, before any client asks); a
//! client's question for a table not seen for `max_age` is answered after asking the clusters.
//!
//! Every watched table with a copy still active below the routed epoch gets it fenced (not only
//! tables with a policy). A promotion first takes the old active copy's DR lease away
//! (promises from the DR voters, [`crate::voter::collect_promises`]) and waits until it has
//! certainly expired ([`crate::lease`]); once promised, the move is finished even if the old
//! copy comes back meanwhile (it is fenced by then).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tern_client::Pool;
use tern_client::admin::{FailoverDecision, RouteLease, TableRoute};
use tern_core::{DrRole, Error, ErrorCode, FailoverOutcome, Result};

use crate::choose::{View, choose};
use crate::failover::{self, Decision, Deposing, Finish, LagSample, Outage, Policy};
use crate::lease::{self, LeaseCheck};
use crate::service::Cluster;
use crate::voter::{DrOptions, VoterState, collect_promises};

/// A table nobody asked about for this long stops being refreshed (unless it has a policy).
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct TableState {
    pub views: Vec<(String, View)>,
    pub route: Result<(usize, TableRoute)>,
    pub refreshed: Instant,
    pub asked: Instant,
    pub outage: Option<Outage>,
    pub sample: Option<LagSample>,
    pub last_decision: Option<FailoverDecision>,
    /// Each cluster's DR lease for the table as it last reported it (while reachable).
    pub leases: BTreeMap<String, Option<RouteLease>>,
    /// A promotion under way: the old copy's lease is being waited out.
    pub deposing: Option<Deposing>,
}

#[derive(Debug)]
pub struct Watcher {
    pub(crate) clusters: Arc<Vec<Cluster>>,
    pub(crate) max_age: Duration,
    pub(crate) policies: HashMap<String, Policy>,
    pub(crate) tables: Mutex<HashMap<String, TableState>>,
    /// Cluster id (as duplication links name remotes) → the name this proxy knows it by.
    ids: Mutex<HashMap<u32, String>>,
    /// The DR lease settings: voters, this process's voter name, the override.
    pub(crate) dr: DrOptions,
    /// This process's DR voter, if it is one.
    pub(crate) voter: Option<VoterState>,
    /// A `tern witness`: it watches to learn floors, and changes no role.
    pub(crate) witness: bool,
    /// Tables clusters renewed their DR lease for with this voter, and when.
    lease_tables: Mutex<HashMap<String, Instant>>,
    /// Connections to other DR voters (promises).
    pub(crate) pool: Pool,
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Watcher {
    pub fn new(
        clusters: Vec<Cluster>,
        max_age: Duration,
        policies: HashMap<String, Policy>,
        dr: DrOptions,
        witness: bool,
    ) -> Watcher {
        let voter = dr.name.as_deref().map(|name| VoterState::new(name, &dr));
        Watcher {
            clusters: Arc::new(clusters),
            max_age,
            policies,
            tables: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
            dr,
            voter,
            witness,
            lease_tables: Mutex::new(HashMap::new()),
            pool: Pool::new(),
        }
    }

    /// A cluster renewed its DR lease for these tables: watch them.
    pub(crate) fn note_lease_tables<'a>(&self, tables: impl Iterator<Item = &'a String>) {
        let now = Instant::now();
        let mut l = self.lease_tables.lock().unwrap_or_else(|e| e.into_inner());
        for t in tables {
            l.insert(t.clone(), now);
        }
    }

    pub(crate) fn tables(&self) -> MutexGuard<'_, HashMap<String, TableState>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The route of the copy of `table` active at the highest epoch.
    pub async fn route(&self, table: &str) -> Result<TableRoute> {
        if let Some(s) = self.tables().get_mut(table)
            && s.refreshed.elapsed() < self.max_age
        {
            s.asked = Instant::now();
            return s.route.clone().map(|(_, r)| r);
        }
        self.refresh(table, false).await
    }

    /// Every cluster's view of `table`, asked concurrently.
    async fn views(&self, table: &str) -> Vec<(String, View)> {
        let asks = self.clusters.iter().map(|c| async move {
            let view = match c.admin.describe_table(table).await {
                Ok(r) => View::Route(r),
                Err(e) if e.code() == ErrorCode::TableNotFound => View::NoTable,
                Err(e) => View::Unreachable(e.root().to_string()),
            };
            (c.name.clone(), view)
        });
        futures::future::join_all(asks).await
    }

    /// Asks the clusters about `table` and records what they said; on the background tick
    /// (`tick`) also measures lag and runs failover.
    async fn refresh(&self, table: &str, tick: bool) -> Result<TableRoute> {
        // An outage starts when the question was asked, not when it timed out.
        let asked_at = Instant::now();
        let views = self.views(table).await;
        let route = choose(table, &views).and_then(|i| match &views[i].1 {
            View::Route(r) => Ok((i, r.clone())),
            _ => Err(Error::invariant("chose a cluster without a route")),
        });
        let now = Instant::now();
        let serving =
            route.as_ref().ok().filter(|(i, _)| failover::health(&views[*i].1).is_ok()).map(|(i, _)| *i);
        let sample = match serving {
            Some(i) if tick => Some(self.sample(table, &views[i].0, now).await),
            _ => None,
        };
        let answer = route.clone().map(|(_, r)| r);
        let mut tables = self.tables();
        let s = tables.entry(table.to_string()).or_insert_with(|| TableState {
            views: Vec::new(),
            route: Err(Error::Unavailable("not asked yet".into())),
            refreshed: now,
            asked: now,
            outage: None,
            sample: None,
            last_decision: None,
            leases: BTreeMap::new(),
            deposing: None,
        });
        if !tick {
            s.asked = now;
        }
        for (name, view) in &views {
            if let View::Route(r) = view {
                s.leases.insert(name.clone(), r.dr_lease.clone());
                // A copy active at an epoch: no lease for copies below it from this voter.
                if r.table.role == DrRole::Active
                    && let Some(v) = &self.voter
                {
                    v.lock().observe(table, r.table.epoch);
                }
            }
        }
        // When an outage starts and ends is the shared rule (`tern_drlease::failover::outage_now`).
        let epoch_of = |r: &Result<(usize, TableRoute)>| r.as_ref().ok().map(|(i, r)| (*i, r.table.epoch));
        s.outage =
            failover::outage_now(s.outage.take(), epoch_of(&s.route), &views, epoch_of(&route), asked_at);
        s.views = views;
        s.route = route;
        s.refreshed = now;
        if let Some(sample) = sample {
            s.sample = Some(sample);
        }
        answer
    }

    /// The lag of every other cluster behind `active`, from `active`'s duplication links.
    async fn sample(&self, table: &str, active: &str, now: Instant) -> LagSample {
        let (mut lags, mut behind) = (BTreeMap::new(), BTreeMap::new());
        let Some(c) = self.clusters.iter().find(|c| c.name == active) else {
            return LagSample { at: now, from: active.to_string(), lags, behind };
        };
        self.learn_ids().await;
        let links = c.admin.links(Some(table)).await;
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for other in self.clusters.iter().filter(|o| o.name != active) {
            let best = match &links {
                Err(e) => Err(format!("{active} did not report its links: {}", e.root())),
                Ok(list) => list
                    .iter()
                    .filter(|l| ids.get(&l.link.remote_cluster_id) == Some(&other.name))
                    .map(|l| (failover::link_lag(l), l.totals()))
                    .min_by_key(|(lag, _)| lag.as_ref().map_or(Duration::MAX, |d| *d))
                    .ok_or_else(|| format!("no duplication link from {active} to it")),
            };
            let lag = match best {
                Ok((lag, totals)) => {
                    behind.insert(other.name.clone(), (totals.decrees_behind, totals.bytes_behind));
                    lag
                }
                Err(e) => Err(e),
            };
            lags.insert(other.name.clone(), lag);
        }
        LagSample { at: Instant::now(), from: active.to_string(), lags, behind }
    }

    /// Learns the cluster ids of clusters not known yet (links name remotes by id).
    async fn learn_ids(&self) {
        let known: Vec<String> =
            self.ids.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for c in self.clusters.iter().filter(|c| !known.contains(&c.name)) {
            if let Ok(s) = c.admin.cluster_status().await {
                self.ids.lock().unwrap_or_else(|e| e.into_inner()).insert(s.cluster_id, c.name.clone());
            }
        }
    }

    /// Refreshes every watched table every `interval`, and runs failover, until dropped.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let this = &*self;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let watched: Vec<String> = {
                let tables = this.tables();
                let mut w: Vec<String> =
                    tables.iter().filter(|(_, s)| s.asked.elapsed() < IDLE).map(|(t, _)| t.clone()).collect();
                let extra: Vec<String> = this.policies.keys().filter(|t| !w.contains(t)).cloned().collect();
                w.extend(extra);
                let mut leased = this.lease_tables.lock().unwrap_or_else(|e| e.into_inner());
                leased.retain(|_, at| at.elapsed() < IDLE);
                let extra: Vec<String> = leased.keys().filter(|t| !w.contains(t)).cloned().collect();
                w.extend(extra);
                w
            };
            let work = watched.iter().map(|t| async move {
                // Errors are recorded in the table's state (and shown by status).
                let _ = this.refresh(t, true).await;
                if this.witness || this.clusters.is_empty() {
                    return;
                }
                this.fence(t).await;
                if let Some(policy) = this.policies.get(t) {
                    this.failover(t, policy).await;
                }
            });
            futures::future::join_all(work).await;
        }
    }

    /// Fences copies still active below the routed epoch (a returning old active copy), for
    /// every watched table: a compare-and-set on the copy's own epoch, so any proxy may.
    async fn fence(&self, table: &str) {
        let fence = {
            let tables = self.tables();
            let Some(s) = tables.get(table) else { return };
            match &s.route {
                Ok((i, _)) => failover::to_fence(&s.views, *i),
                Err(_) => Vec::new(),
            }
        };
        for (cluster, epoch, expect) in fence {
            let r = self.set_role(table, &cluster, DrRole::Standby, epoch, expect).await;
            if r.is_ok() {
                self.hold_tail(table, &cluster).await;
            }
            let why = format!("{cluster} was still active at epoch {expect}, below the routed epoch {epoch}");
            self.record(table, outcome(FailoverOutcome::Fenced, &r), &cluster, epoch, &why, &r, None);
        }
    }

    /// Promotes a standby as the policy says, once the old active copy's DR lease has certainly
    /// expired.
    async fn failover(&self, table: &str, policy: &Policy) {
        let (decision, deposing) = {
            let tables = self.tables();
            let Some(s) = tables.get(table) else { return };
            let decision = match &s.outage {
                Some(o) => failover::decide(&s.views, o, s.sample.as_ref(), policy, Instant::now()),
                None => Decision::Wait,
            };
            (decision, s.deposing.clone())
        };
        // Promises were given: finish the move, whatever the outage does now.
        if let Some(d) = deposing {
            return self.finish_deposing(table, d).await;
        }
        match decision {
            Decision::Wait => {}
            Decision::Refuse(why) => self.record(table, FailoverOutcome::Refused, "", 0, &why, &Ok(()), None),
            Decision::Promote { cluster, epoch, expect_epoch, reason, .. } => {
                let Some((old, old_epoch)) =
                    self.tables().get(table).and_then(|s| s.outage.clone()).map(|o| (o.cluster, o.epoch))
                else {
                    return;
                };
                let deposing =
                    self.depose(table, &old, old_epoch, epoch, &cluster, Some(expect_epoch), reason).await;
                if let Some(d) = deposing {
                    self.finish_deposing(table, d).await
                }
            }
        }
    }

    /// Takes the DR lease of `old`'s copy away (promises that no copy below `epoch` gets it) and
    /// records the move to `target` at `epoch` as under way, to be finished once that lease has
    /// certainly expired; or refuses, saying why. With the operator's override, `target` is
    /// promoted at once (`expect`: its epoch now). Returns the move under way.
    #[allow(clippy::too_many_arguments)]
    async fn depose(
        &self,
        table: &str,
        old: &str,
        old_epoch: u64,
        epoch: u64,
        target: &str,
        expect: Option<u64>,
        reason: String,
    ) -> Option<Deposing> {
        let old_lease = self.tables().get(table).and_then(|s| s.leases.get(old).cloned().flatten());
        let names = self.dr.names();
        match lease::lease_check(old, old_lease.as_ref(), &names, self.dr.unsafe_failover_without_lease) {
            LeaseCheck::Refuse(why) => {
                let why = format!("{reason}; {why}");
                self.record(table, FailoverOutcome::Refused, "", 0, &why, &Ok(()), None);
                None
            }
            LeaseCheck::Go(note) => {
                if let Some(expect) = expect {
                    self.promote(table, target, epoch, expect, &format!("{reason}; {note}")).await
                }
                None
            }
            LeaseCheck::AskPromises => {
                let (promises, not) = collect_promises(self, table, old, epoch).await;
                match lease::lease_expiry(&promises, names.len()) {
                    Err(why) => {
                        let mut why = format!("{reason}; cannot know that {old}'s DR lease ended: {why}");
                        if !not.is_empty() {
                            why.push_str(&format!(" ({})", not.join("; ")));
                        }
                        self.record(table, FailoverOutcome::Refused, "", 0, &why, &Ok(()), None);
                        None
                    }
                    Ok(expires_at) => {
                        let d = Deposing {
                            old: old.to_string(),
                            old_epoch,
                            epoch,
                            target: target.to_string(),
                            expires_at,
                            promised_by: promises.into_iter().map(|p| p.voter).collect(),
                            reason,
                        };
                        if let Some(s) = self.tables().get_mut(table) {
                            s.deposing = Some(d.clone());
                        }
                        Some(d)
                    }
                }
            }
        }
    }

    /// A promotion under way: once the old lease has certainly expired, make the target active
    /// at the promised epoch; if it cannot serve but the old copy serves again, the old copy
    /// replaces it through a new move that deposes the target first (`failover::finish`).
    async fn finish_deposing(&self, table: &str, d: Deposing) {
        let views = match self.tables().get(table) {
            Some(s) => s.views.clone(),
            None => return,
        };
        match failover::finish(&views, &d, self.dr.voters.len(), Instant::now()) {
            Finish::Done => {}
            Finish::Wait(why) => {
                return self.record(
                    table,
                    FailoverOutcome::WaitingForLease,
                    &d.target,
                    d.epoch,
                    &why,
                    &Ok(()),
                    None,
                );
            }
            Finish::Promote { cluster, epoch, expect_epoch, reason } => {
                self.promote(table, &cluster, epoch, expect_epoch, &reason).await
            }
            Finish::Abandon(why) => self.record(table, FailoverOutcome::Refused, "", 0, &why, &Ok(()), None),
            Finish::Redepose { old, old_epoch, epoch, target, reason } => {
                if let Some(s) = self.tables().get_mut(table) {
                    s.deposing = None;
                }
                let expect = views
                    .iter()
                    .find(|(n, _)| *n == target)
                    .and_then(|(_, v)| failover::role_of(v))
                    .map(|(_, e)| e);
                // Finished on a later tick, like any move under way.
                self.depose(table, &old, old_epoch, epoch, &target, expect, reason).await;
                return;
            }
        }
        if let Some(s) = self.tables().get_mut(table) {
            s.deposing = None;
        }
    }

    /// Makes `cluster`'s copy active at `epoch` if its epoch is still `expect`.
    async fn promote(&self, table: &str, cluster: &str, epoch: u64, expect: u64, reason: &str) {
        // The decision's time is when the promotion was sent (it takes effect after).
        let at = wall_ms();
        let r = self.set_role(table, cluster, DrRole::Active, epoch, expect).await;
        self.record(table, outcome(FailoverOutcome::Promoted, &r), cluster, epoch, reason, &r, Some(at));
        if r.is_ok() {
            // Route to the new active copy at once.
            let _ = self.refresh(table, false).await;
        }
    }

    /// A fenced copy may hold writes the promoted copy never saw: its shipping links of the table
    /// are paused, so that they ship only under `tern dr reconcile` (which measures the tail
    /// first). The fenced cluster's meta leader does the same when a voter tells it; whichever
    /// fences first holds.
    async fn hold_tail(&self, table: &str, cluster: &str) {
        let Some(c) = self.clusters.iter().find(|c| c.name == cluster) else { return };
        let links = match c.admin.links(Some(table)).await {
            Ok(l) => l,
            Err(e) => return tracing::warn!(table, cluster, "holding the fenced copy's links: {e}"),
        };
        let shipping = links.iter().filter(|l| l.link.status == tern_core::LinkStatus::Shipping);
        for l in shipping {
            match c.admin.pause_link(l.link.id).await {
                Ok(_) => tracing::warn!(
                    table,
                    cluster,
                    "link {} paused: {cluster}'s copy was fenced with writes the promoted copy may lack; `tern dr reconcile` ships them",
                    l.link.id
                ),
                Err(e) => {
                    tracing::warn!(table, cluster, "pausing link {} of the fenced copy: {e}", l.link.id)
                }
            }
        }
    }

    async fn set_role(
        &self,
        table: &str,
        cluster: &str,
        role: DrRole,
        epoch: u64,
        expect: u64,
    ) -> Result<()> {
        let c = self
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .ok_or_else(|| Error::invariant(format!("unknown cluster {cluster}")))?;
        c.admin.set_table_role(table, role, epoch, Some(expect)).await.map(|_| ())
    }

    /// Keeps `table`'s last decision; logs and counts it unless it repeats the last one.
    /// `at_ms`: when it was taken, if not now.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        table: &str,
        outcome: FailoverOutcome,
        cluster: &str,
        epoch: u64,
        why: &str,
        r: &Result<()>,
        at_ms: Option<u64>,
    ) {
        let reason = match r {
            Ok(()) => why.to_string(),
            Err(e) => format!("{why}; setting the role failed: {}", e.root()),
        };
        let mut tables = self.tables();
        let Some(s) = tables.get_mut(table) else { return };
        let repeat = s.last_decision.as_ref().is_some_and(|d| d.outcome == outcome && d.reason == reason);
        if repeat {
            return;
        }
        match outcome {
            FailoverOutcome::Promoted | FailoverOutcome::Fenced | FailoverOutcome::WaitingForLease => {
                tracing::warn!(table, cluster, epoch, "failover: {outcome}: {reason}")
            }
            _ => tracing::error!(table, cluster, epoch, "failover: {outcome}: {reason}"),
        }
        metrics::counter!("tern_proxy_failover_decisions_total", "table" => table.to_string(), "outcome" => outcome.name())
            .increment(1);
        s.last_decision = Some(FailoverDecision {
            at_ms: at_ms.unwrap_or_else(wall_ms),
            outcome,
            cluster: (!cluster.is_empty()).then(|| cluster.to_string()),
            epoch,
            reason,
        });
    }
}

fn outcome(done: FailoverOutcome, r: &Result<()>) -> FailoverOutcome {
    match r {
        Ok(()) => done,
        Err(e) if e.code() == ErrorCode::EpochConflict => FailoverOutcome::LostRace,
        Err(_) => FailoverOutcome::Failed,
    }
}
