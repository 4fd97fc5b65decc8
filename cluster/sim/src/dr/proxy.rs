//! A simulated DR voter: a proxy (`tern proxy --dr-name ... --auto-failover t`) or a witness
//! (`tern witness`). Its voter is `tern_drlease::Voter`; its watcher takes the steps of
//! `tern-meta-proxy`'s (`watch.rs`), each a shared decision of `tern_drlease::failover`:
//!
//! 1. every `watch_ms`, ask both clusters about the table (an answer not back by the next tick
//!    is "unreachable"); route ([`choose`]), note each copy's lease, tell the voter which copies
//!    are active ([`tern_drlease::Voter::observe`]), measure lag while the routed copy serves,
//!    follow the outage ([`outage_now`]);
//! 2. proxies only: fence copies active below the routed epoch ([`to_fence`]);
//! 3. fail over: a promotion under way is finished once the old lease has certainly expired
//!    ([`finish`]); else, once the outage is old enough ([`decide`]) and the old copy's lease
//!    can be known ([`lease_check`]), ask every voter to promise and wait
//!    ([`tern_drlease::DrRules::lease_expiry`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tern_core::DrRole;
use tern_drlease::failover::{Decision, Deposing, Finish, LagSample, Outage, Policy};
use tern_drlease::failover::{choose, decide, finish, health, outage_now, role_of, to_fence};
use tern_drlease::{DrRules, LeaseCheck, LeaseSeen, Moment, Ms, Promise, Seen, Voter, VoterConfig, Watched};

use super::{CopyReport, DrConfig, DrEv, DrMsg, TABLE, after};
use crate::clock::NodeClock;
use crate::net::{Addr, Msg};
use crate::world_ctx::Ctx;

/// What the watcher saw of one cluster's copy.
#[derive(Clone, Debug)]
enum View {
    Copy(CopyReport),
    Unreachable(String),
}

impl Watched for View {
    fn seen(&self) -> Seen<'_> {
        match self {
            View::Copy(CopyReport::Copy { role, epoch, partitions, with_primary, .. }) => Seen::Copy {
                role: *role,
                epoch: *epoch,
                partitions: *partitions,
                with_primary: *with_primary,
            },
            View::Copy(CopyReport::NoTable) => Seen::NoTable,
            View::Unreachable(e) => Seen::Unreachable(e),
        }
    }
}

/// Promises being collected (the proxy's `collect_promises`, each voter within a second).
#[derive(Debug)]
struct Collecting {
    id: u64,
    old: String,
    old_epoch: u64,
    epoch: u64,
    target: String,
    reason: String,
    deadline: Ms,
    promises: Vec<Promise<Ms>>,
    answered: BTreeSet<String>,
    not: Vec<String>,
    /// A move just decided is finished at once if it can be; one that replaces a target that
    /// cannot serve waits for the next tick (the watcher's order).
    finish_now: bool,
}

#[derive(Debug)]
pub struct SimProxy {
    idx: u8,
    name: String,
    /// A witness watches (its floors) and changes no role.
    witness: bool,
    clock: NodeClock,
    voter: Voter<Ms>,
    /// Every voter: name and address (this one among them).
    voters: Vec<(String, Addr)>,
    /// Every cluster: name and meta server.
    clusters: Vec<(String, Addr)>,
    policy: Policy,
    watch_ms: u64,
    rules: DrRules,
    /// The question in flight: its id, when it was asked, the answers so far by cluster.
    round: u64,
    asked_at: Option<Ms>,
    answers: BTreeMap<usize, CopyReport>,
    views: Vec<(String, View)>,
    /// The routed copy (index in `views`, epoch).
    route: Option<(usize, u64)>,
    outage: Option<Outage<Ms>>,
    sample: Option<LagSample<Ms>>,
    leases: BTreeMap<String, LeaseSeen>,
    collecting: Option<Collecting>,
    deposing: Option<Deposing<Ms>>,
    /// The last decision traced (a repeated one is not traced again).
    last_note: String,
    /// Promotions sent and not answered yet.
    promoting: BTreeSet<u64>,
    next_id: u64,
}

impl SimProxy {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        idx: u8,
        name: String,
        witness: bool,
        clock: NodeClock,
        voters: &[(String, Addr)],
        clusters: &[(String, Addr)],
        cfg: &DrConfig,
        rules: DrRules,
    ) -> SimProxy {
        let names: Vec<String> = voters.iter().map(|(n, _)| n.clone()).collect();
        let vcfg =
            VoterConfig { name: name.clone(), voters: names, lease: Duration::from_millis(cfg.lease_ms) };
        SimProxy {
            idx,
            voter: Voter::new(vcfg, Ms(clock.local_ms(0))),
            name,
            witness,
            clock,
            voters: voters.to_vec(),
            clusters: clusters.to_vec(),
            // The simulated lag stands for "the link runs": no RPO budget to exceed.
            policy: Policy {
                after: Duration::from_millis(cfg.failover_after_ms),
                rpo_budget: Duration::from_secs(3_600),
            },
            watch_ms: cfg.watch_ms,
            rules,
            round: 0,
            asked_at: None,
            answers: BTreeMap::new(),
            views: Vec::new(),
            route: None,
            outage: None,
            sample: None,
            leases: BTreeMap::new(),
            collecting: None,
            deposing: None,
            last_note: String::new(),
            promoting: BTreeSet::new(),
            next_id: 1,
        }
    }

    fn addr(&self) -> Addr {
        Addr::Dr(self.idx)
    }

    fn now(&self, ctx: &Ctx<'_>) -> Ms {
        Ms(self.clock.local_ms(ctx.now_us))
    }

    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.voters.iter().map(|(n, _)| n.clone()).collect();
        n.sort();
        n
    }

    fn note(&mut self, ctx: &mut Ctx<'_>, what: String) {
        if what != self.last_note {
            ctx.trace(format!("{}: {what}", self.name));
            self.last_note = what;
        }
    }

    pub fn on_tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = self.now(ctx);
        if let Some(asked_at) = self.asked_at {
            self.refresh(asked_at, now);
            if !self.witness {
                self.fence(ctx);
                self.failover(ctx, now);
            }
        }
        self.ask_clusters(ctx, now);
        after(ctx, &self.clock, self.watch_ms, DrEv::Tick(self.idx));
    }

    /// What the last round of questions (asked at `asked_at`) found.
    fn refresh(&mut self, asked_at: Ms, now: Ms) {
        let views: Vec<(String, View)> = self
            .clusters
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let view = match self.answers.get(&i) {
                    Some(r) => View::Copy(r.clone()),
                    None => View::Unreachable(format!("no answer within {} ms", self.watch_ms)),
                };
                (name.clone(), view)
            })
            .collect();
        let route = choose(TABLE, &views).ok().and_then(|i| match views[i].1.seen() {
            Seen::Copy { epoch, .. } => Some((i, epoch)),
            _ => None,
        });
        for (name, view) in &views {
            if let View::Copy(CopyReport::Copy { role, epoch, lease, .. }) = view {
                self.leases.insert(name.clone(), lease.clone());
                // A copy active at an epoch: no lease for copies below it from this voter.
                if *role == DrRole::Active {
                    self.voter.observe(TABLE, *epoch);
                }
            }
        }
        if let Some((i, _)) = route.filter(|(i, _)| health(&views[*i].1).is_ok()) {
            let link_started = matches!(&views[i].1, View::Copy(CopyReport::Copy { link_started: true, .. }));
            let lags = views
                .iter()
                .filter(|(n, _)| *n != views[i].0)
                .map(|(n, _)| {
                    let lag = if link_started {
                        Ok(Duration::ZERO)
                    } else {
                        Err("the link has not started in every partition".to_string())
                    };
                    (n.clone(), lag)
                })
                .collect();
            self.sample =
                Some(LagSample { at: now, from: views[i].0.clone(), lags, behind: Default::default() });
        }
        self.outage = outage_now(self.outage.take(), self.route, &views, route, asked_at);
        self.views = views;
        self.route = route;
    }

    /// Copies active below the routed epoch are made standby at it.
    fn fence(&mut self, ctx: &mut Ctx<'_>) {
        let Some((i, _)) = self.route else { return };
        for (cluster, epoch, expect) in to_fence(&self.views, i) {
            let what = format!("fence {cluster} (active at epoch {expect}, below the routed epoch {epoch})");
            self.note(ctx, what);
            self.set_role(ctx, &cluster, DrRole::Standby, epoch, expect);
        }
    }

    fn set_role(&mut self, ctx: &mut Ctx<'_>, cluster: &str, role: DrRole, epoch: u64, expect: u64) {
        let Some((_, meta)) = self.clusters.iter().find(|(n, _)| n == cluster) else { return };
        let id = self.next_id;
        self.next_id += 1;
        if role == DrRole::Active {
            self.promoting.insert(id);
        }
        ctx.send(self.addr(), *meta, Msg::Dr(DrMsg::SetRole { id, role, epoch, expect }));
    }

    /// Asks both clusters again (answers taken at the next tick), forgetting the round in flight.
    fn ask_clusters(&mut self, ctx: &mut Ctx<'_>, now: Ms) {
        self.round += 1;
        self.answers.clear();
        self.asked_at = Some(now);
        for (_, meta) in self.clusters.clone() {
            ctx.send(self.addr(), meta, Msg::Dr(DrMsg::Describe { id: self.round }));
        }
    }

    fn failover(&mut self, ctx: &mut Ctx<'_>, now: Ms) {
        // Promises being collected: once every voter answered (`on_message` goes on at once
        // then), or a second passed.
        if let Some(c) = &self.collecting {
            if c.answered.len() < self.voters.len() && now < c.deadline {
                return;
            }
            return self.promises_in(ctx, now);
        }
        // Promises were given: finish the move, whatever the outage does now.
        if self.deposing.is_some() {
            return self.finish_deposing(ctx, now);
        }
        let decision = match &self.outage {
            Some(o) => decide(&self.views, o, self.sample.as_ref(), &self.policy, now),
            None => Decision::Wait,
        };
        match decision {
            Decision::Wait => {}
            Decision::Refuse(why) => self.note(ctx, format!("refused: {why}")),
            Decision::Promote { cluster, epoch, expect_epoch, reason, .. } => {
                let Some((old, old_epoch)) = self.outage.as_ref().map(|o| (o.cluster.clone(), o.epoch))
                else {
                    return;
                };
                self.depose(ctx, now, old, old_epoch, epoch, cluster, Some(expect_epoch), reason, true);
            }
        }
    }

    /// The promises are in: when the old lease has certainly expired (the shared rule), and,
    /// for a move just decided, an attempt to finish it at once (as the watcher does).
    fn promises_in(&mut self, ctx: &mut Ctx<'_>, now: Ms) {
        let Some(c) = self.collecting.take() else { return };
        match self.rules.lease_expiry(&c.promises, self.voters.len()) {
            Err(why) => {
                let mut why = format!("{}; cannot know that {}'s DR lease ended: {why}", c.reason, c.old);
                if !c.not.is_empty() {
                    why.push_str(&format!(" ({})", c.not.join("; ")));
                }
                self.note(ctx, format!("refused: {why}"));
            }
            Ok(expires_at) => {
                let wait = expires_at.since(now);
                self.note(ctx, format!("waiting-for-lease {:.3}s: {}", wait.as_secs_f64(), c.reason));
                self.deposing = Some(Deposing {
                    old: c.old,
                    old_epoch: c.old_epoch,
                    epoch: c.epoch,
                    target: c.target,
                    expires_at,
                    promised_by: c.promises.into_iter().map(|p| p.voter).collect(),
                    reason: c.reason,
                });
                if c.finish_now {
                    self.finish_deposing(ctx, now);
                }
            }
        }
    }

    /// A move under way: the shared `finish` says what to do.
    fn finish_deposing(&mut self, ctx: &mut Ctx<'_>, now: Ms) {
        let Some(d) = self.deposing.clone() else { return };
        match finish(&self.views, &d, self.voters.len(), now) {
            Finish::Done => {}
            Finish::Wait(_) => return,
            Finish::Promote { cluster, epoch, expect_epoch, reason } => {
                self.note(ctx, format!("promote {cluster} at epoch {epoch}: {reason}"));
                self.set_role(ctx, &cluster, DrRole::Active, epoch, expect_epoch);
            }
            Finish::Abandon(why) => self.note(ctx, format!("refused: {why}")),
            Finish::Redepose { old, old_epoch, epoch, target, reason } => {
                self.deposing = None;
                let expect = self.views.iter().find(|(n, _)| *n == target).and_then(|(_, v)| role_of(v));
                // Finished on a later tick, like any move under way (the watcher's order).
                let expect = expect.map(|(_, e)| e);
                return self.depose(ctx, now, old, old_epoch, epoch, target, expect, reason, false);
            }
        }
        self.deposing = None;
    }

    /// Takes `old`'s lease away before `target` is made active at `epoch` (the watcher's
    /// `depose`): promises, unless the old copy's lease cannot be known.
    #[allow(clippy::too_many_arguments)]
    fn depose(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Ms,
        old: String,
        old_epoch: u64,
        epoch: u64,
        target: String,
        expect: Option<u64>,
        reason: String,
        finish_now: bool,
    ) {
        let names = self.names();
        match tern_drlease::lease_check(&old, self.leases.get(&old), &names, false) {
            LeaseCheck::Refuse(why) => self.note(ctx, format!("refused: {reason}; {why}")),
            LeaseCheck::Go(note) => {
                if let Some(expect) = expect {
                    self.note(ctx, format!("promote {target} at epoch {epoch}: {reason}; {note}"));
                    self.set_role(ctx, &target, DrRole::Active, epoch, expect);
                }
            }
            LeaseCheck::AskPromises => {
                self.ask_promises(ctx, now, old, old_epoch, epoch, target, reason, finish_now)
            }
        }
    }

    /// Asks every voter to promise no lease for a copy of the table below `epoch` (replacing
    /// `old`'s); this process's own voter answers at once.
    #[allow(clippy::too_many_arguments)]
    fn ask_promises(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Ms,
        old: String,
        old_epoch: u64,
        epoch: u64,
        target: String,
        reason: String,
        finish_now: bool,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let names = self.names();
        self.note(ctx, format!("asking for promises below epoch {epoch} (replacing {old})"));
        let mut c = Collecting {
            id,
            old,
            old_epoch,
            epoch,
            target,
            reason,
            deadline: now.after(Duration::from_secs(1)),
            promises: Vec::new(),
            answered: BTreeSet::new(),
            not: Vec::new(),
            finish_now,
        };
        for (voter, addr) in self.voters.clone() {
            if voter == self.name {
                let pledge = self.voter.promise(now, TABLE, &c.old, epoch, &names);
                c.answered.insert(voter.clone());
                match pledge.promised {
                    Ok(()) => c.promises.push(Promise {
                        voter,
                        received_at: now,
                        since_grant: pledge.since_grant,
                        lease: pledge.lease,
                    }),
                    Err(e) => c.not.push(format!("{voter}: refused ({e})")),
                }
            } else {
                let msg = DrMsg::Promise {
                    id,
                    table: TABLE.to_string(),
                    cluster: c.old.clone(),
                    epoch,
                    voters: names.clone(),
                };
                ctx.send(self.addr(), addr, Msg::Dr(msg));
            }
        }
        let all = c.answered.len() == self.voters.len();
        self.collecting = Some(c);
        if all {
            self.promises_in(ctx, now);
        }
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_>, from: Addr, m: DrMsg) {
        let now = self.now(ctx);
        let me = self.addr();
        match m {
            DrMsg::Renew { id, cluster, voters, active } => {
                let r = self.voter.renew(now, &cluster, &voters, &active);
                let granted = r.granted.map(|l| l.as_millis() as u64);
                let msg = DrMsg::Renewed { id, voter: self.name.clone(), granted, superseded: r.superseded };
                ctx.send(me, from, Msg::Dr(msg));
            }
            DrMsg::Promise { id, table, cluster, epoch, voters } => {
                let p = self.voter.promise(now, &table, &cluster, epoch, &voters);
                if p.promised.is_ok() {
                    ctx.trace(format!(
                        "{}: promised no lease for {table} below epoch {epoch} ({from:?})",
                        self.name
                    ));
                }
                let msg = DrMsg::Promised {
                    id,
                    voter: self.name.clone(),
                    promised: p.promised,
                    // Whole milliseconds, rounded down: the wait only gets longer.
                    since_grant_ms: p.since_grant.as_millis() as u64,
                    lease_ms: p.lease.as_millis() as u64,
                };
                ctx.send(me, from, Msg::Dr(msg));
            }
            DrMsg::Promised { id, voter, promised, since_grant_ms, lease_ms } => {
                let known = self.voters.iter().any(|(n, a)| *n == voter && *a == from);
                let Some(c) = self.collecting.as_mut().filter(|c| c.id == id && known) else { return };
                if !c.answered.insert(voter.clone()) {
                    return; // a duplicate
                }
                match promised {
                    Ok(()) => c.promises.push(Promise {
                        voter,
                        received_at: now,
                        since_grant: Duration::from_millis(since_grant_ms),
                        lease: Duration::from_millis(lease_ms),
                    }),
                    Err(e) => c.not.push(format!("{voter}: refused ({e})")),
                }
                // Every voter answered: the watcher goes on at once.
                if c.answered.len() == self.voters.len() {
                    self.promises_in(ctx, now);
                }
            }
            DrMsg::Described { id, copy } => {
                if id == self.round
                    && let Some(i) = self.clusters.iter().position(|(_, a)| *a == from)
                {
                    self.answers.insert(i, copy);
                }
            }
            DrMsg::RoleSet { id, result } => {
                let promoted = self.promoting.remove(&id);
                match result {
                    // Route to the new active copy at once (what the proxy does): the round in
                    // flight may have been answered before the promotion.
                    Ok(()) if promoted => self.ask_clusters(ctx, now),
                    Ok(()) => {}
                    Err(e) => self.note(ctx, format!("role change #{id} refused: {e}")),
                }
            }
            _ => {}
        }
    }
}
