//! The primary: taking over (reconciliation), two-phase commit (commit once *every* member has
//! logged an entry, PacificA §2.2), resending, suspecting secondaries, bringing learners in
//! (§2.5, "addition of new secondaries"), and stepping down. Client requests are admitted in
//! `admission.rs` and `resolve.rs`.
//!
//! The primary's own state is `PrimaryState`, which exists only inside `Role::Primary`: its
//! handlers take what every role shares (`Shared`) as an argument and cannot change the role,
//! so a reign ends only in `Replica` (`step_down_if_primary`), which answers every waiting
//! client write on the way out.

use std::collections::{BTreeMap, VecDeque};

use tern_core::{Ballot, ConfigChange, Decree, Error, Gpid, NodeId, PartitionConfig, Timetag, WriteOp};
use tern_storage::LogEntry;

use crate::message::{Action, PeerMessage, Refusal, Reign, Reply, RequestId};
use crate::replica::{Replica, Shared};
use crate::role::Role;
use crate::window::Slot;

/// What only a primary has, for one reign. A reign starts with a fresh one
/// (`Replica::become_primary`) and stepping down consumes it (`PrimaryState::step_down`),
/// answering every client write it still holds.
#[derive(Debug)]
pub(crate) struct PrimaryState {
    /// False while a new primary re-proposes its window; it serves nothing until then.
    pub active: bool,
    /// The last decree of the reign's start (re-proposed entries and the marker): the primary
    /// becomes active once it is committed.
    pub reconcile_target: Decree,
    /// A new reign's first entries are not durable here yet, so nothing was sent.
    pub reign_unsent: bool,
    /// Client writes waiting for their decree to commit: request `i` waits for op `i`.
    pub pending: BTreeMap<u64, Vec<RequestId>>,
    /// Client writes admitted while the pipeline is full: they go out together as the next
    /// entry (see `enqueue`).
    pub queued: Vec<(RequestId, WriteOp)>,
    pub queued_bytes: u64,
    /// Handling the writes of one `ClientWrites`: queue them all, send them out after the last.
    pub holding: bool,
    /// Client writes waiting on their hash key: atomic ops until no uncommitted write touches
    /// it, and writes behind them (see `resolve.rs`).
    pub parked: VecDeque<(RequestId, WriteOp)>,
    /// Atomic ops handed to the runtime for resolution, with their hash key. Ordered, so that
    /// stepping down refuses them in the same order on every run.
    pub resolving: BTreeMap<RequestId, Vec<u8>>,
    pub learners: BTreeMap<NodeId, LearnerProgress>,
    /// When a change about a node was last proposed at a ballot (proposals are repeated while
    /// their reason holds: the message may be lost, or refused for now).
    pub proposed: BTreeMap<(Ballot, NodeId), u64>,
    pub last_resend_ms: u64,
}

/// A learner as its primary sees it.
#[derive(Clone, Debug)]
pub(crate) struct LearnerProgress {
    pub last_activity_ms: u64,
    /// It asked to learn (so the invitation arrived).
    pub requested: bool,
    /// Everything through this decree is durable at the learner.
    pub durable_through: Decree,
    /// When it was last sent a top-up (see `PrimaryState::tick`).
    pub topup_at_ms: u64,
    /// Its promotion to secondary was proposed at the current ballot. From then on it counts
    /// for commits as if it were a member: the configuration manager may make it one at any
    /// moment, and every member must hold every committed entry.
    pub joining: bool,
}

impl Replica {
    /// A purge horizon from the meta server: an active primary logs it, in an entry of its own,
    /// unless an entry already carries it (applied, or in the window). Every replica applies it
    /// at that decree, so all purge by the same bound.
    pub(crate) fn on_purge_horizon(&mut self, now: u64, below: Timetag, out: &mut Vec<Action>) {
        let Role::Primary(p) = &mut self.role else { return };
        if !p.active {
            return; // reconciling: the next beacon brings it again
        }
        let s = &mut self.shared;
        let in_window = s.window.iter().filter_map(|slot| slot.entry.mutation.purge_below).max();
        if below <= s.purge_applied.max(in_window.unwrap_or_default()) {
            return;
        }
        let entry = LogEntry {
            ballot: s.reign.ballot,
            decree: s.last_prepared().next(),
            timetag: s.hlc.now(s.wall_ms),
            mutation: tern_core::Mutation::purge_horizon(below),
        };
        s.window.insert(Slot::new(entry.clone(), now));
        p.send_prepare(s, &entry, out);
        out.push(Action::Append { entries: vec![entry] });
    }

    /// Starts a reign: re-propose every entry after the committed decree under the new ballot,
    /// followed by an empty entry that marks the reign, and serve nothing until all of it is
    /// committed, so that every member agrees (PacificA §2.5, "reconciliation").
    ///
    /// Nothing is sent until those entries are durable here: a replica that restarts must find
    /// its reign's ballot in its own log, or it could start another reign at the same ballot
    /// while secondaries still hold entries of the first one.
    pub(crate) fn become_primary(&mut self, now: u64, config: PartitionConfig, out: &mut Vec<Action>) {
        let s = &mut self.shared;
        s.ballot = config.ballot;
        s.config = config;
        s.reign = Reign { ballot: s.ballot, base: s.committed };
        // Timetags must keep growing with decrees across reigns.
        s.hlc.observe(s.window.max_timetag(), s.wall_ms);
        s.window.truncate_at_gap(s.committed);
        let mut entries = Vec::with_capacity(s.window.len() + 1);
        for slot in s.window.iter_mut() {
            slot.entry.ballot = s.reign.ballot;
            slot.durable = false;
            slot.acked.clear();
            slot.first_sent_ms = now;
            entries.push(slot.entry.clone());
        }
        let marker = LogEntry {
            ballot: s.reign.ballot,
            decree: s.last_prepared().next(),
            timetag: s.hlc.now(s.wall_ms),
            mutation: tern_core::Mutation::default(),
        };
        s.window.insert(Slot::new(marker.clone(), now));
        entries.push(marker);
        // Whatever role it played before (never primary: a primary continues its reign) is
        // left here, with its state.
        self.role = Role::Primary(PrimaryState::new(s.last_prepared(), now));
        out.push(Action::Append { entries });
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_prepare_ack(
        &mut self,
        now: u64,
        from: NodeId,
        ballot: Ballot,
        entry_ballot: Ballot,
        decree: Decree,
        durable_through: Decree,
        refusal: Option<Refusal>,
        out: &mut Vec<Action>,
    ) {
        let Role::Primary(p) = &mut self.role else { return };
        let s = &mut self.shared;
        let Some(r) = refusal else {
            return p.on_ack(s, now, from, entry_ballot, decree, durable_through, out);
        };
        match r {
            Refusal::StaleBallot if ballot > s.ballot => {
                // A newer configuration exists that this replica has not seen; it may or may
                // not keep this replica as primary. Stop serving at the old ballot and wait for
                // the configuration itself (`on_config` accepts it at this ballot).
                self.step_down_if_primary(out);
                self.shared.ballot = ballot;
            }
            // The refused message was older than the refuser's ballot, which is not above
            // ours: it was sent before this primary adopted its current configuration (the
            // member adopted it first). Nothing is wrong with the member.
            Refusal::StaleBallot => {}
            _ if s.config.is_secondary(from) => {
                p.propose(s, now, ConfigChange::RemoveSecondary(from), from, out)
            }
            _ => {}
        }
    }

    pub(crate) fn on_tick(&mut self, now: u64, out: &mut Vec<Action>) {
        match &mut self.role {
            Role::Primary(p) => p.tick(&mut self.shared, now, out),
            Role::Learner(_) => self.learner_tick(now, out),
            Role::Inactive | Role::Secondary | Role::Failed(_) => {}
        }
    }

    pub(crate) fn on_add_learner(
        &mut self,
        now: u64,
        config: PartitionConfig,
        learner: NodeId,
        out: &mut Vec<Action>,
    ) {
        let s = &self.shared;
        let Role::Primary(p) = &mut self.role else { return };
        if !p.active || config.ballot != s.ballot || s.config.is_member(learner) || learner == s.me {
            return;
        }
        p.learners.entry(learner).and_modify(|l| l.last_activity_ms = now).or_insert(LearnerProgress {
            last_activity_ms: now,
            requested: false,
            durable_through: Decree::ZERO,
            topup_at_ms: now,
            joining: false,
        });
        out.push(Action::Send {
            to: learner,
            msg: PeerMessage::LearnInvite { config: s.config.clone(), reign: s.reign },
        });
    }

    pub(crate) fn on_learn_request(
        &mut self,
        now: u64,
        from: NodeId,
        ballot: Ballot,
        applied: Decree,
        out: &mut Vec<Action>,
    ) {
        let s = &self.shared;
        let Role::Primary(p) = &mut self.role else { return };
        if ballot > s.ballot {
            return;
        }
        let Some(l) = p.learners.get_mut(&from) else { return };
        l.last_activity_ms = now;
        l.requested = true;
        out.push(Action::SendLearnResponse {
            to: from,
            learner_applied: applied,
            through: s.last_prepared(),
            config: s.config.clone(),
            reign: s.reign,
            committed: s.committed,
        });
    }

    pub(crate) fn on_learn_ack(
        &mut self,
        now: u64,
        from: NodeId,
        ballot: Ballot,
        through: Decree,
        out: &mut Vec<Action>,
    ) {
        let Role::Primary(p) = &mut self.role else { return };
        if ballot > self.shared.ballot {
            return;
        }
        if let Some(l) = p.learners.get_mut(&from) {
            l.durable_through = l.durable_through.max(through);
            l.last_activity_ms = now;
        }
        p.try_commit(&mut self.shared, now, out);
    }
}

impl PrimaryState {
    /// The state of a reign that just started, whose first entries end at `reconcile_target`.
    fn new(reconcile_target: Decree, now: u64) -> PrimaryState {
        PrimaryState {
            active: false,
            reconcile_target,
            reign_unsent: true,
            pending: BTreeMap::new(),
            queued: Vec::new(),
            queued_bytes: 0,
            holding: false,
            parked: VecDeque::new(),
            resolving: BTreeMap::new(),
            learners: BTreeMap::new(),
            proposed: BTreeMap::new(),
            last_resend_ms: now,
        }
    }

    /// Ends the reign: answers every client write still waiting. A logged write may still be
    /// committed by a later primary (outcome unknown); one never logged certainly will not be.
    pub(crate) fn step_down(self, gpid: Gpid, out: &mut Vec<Action>) {
        let changed = || Error::Unavailable(format!("partition {gpid} changed primary"));
        for req in self.pending.into_values().flatten() {
            // Prepared but not committed: a later primary may still commit it.
            out.push(Action::Refuse { req, error: changed(), not_applied: false });
        }
        let waiting = self.parked.into_iter().map(|(r, _)| r).chain(self.resolving.into_keys());
        for req in self.queued.into_iter().map(|(r, _)| r).chain(waiting) {
            // Never logged: certainly not applied.
            out.push(Action::Refuse { req, error: changed(), not_applied: true });
        }
    }

    /// Once the reign's first entries are durable here, send them.
    pub(crate) fn send_reign_start(&mut self, s: &Shared, out: &mut Vec<Action>) {
        if !self.reign_unsent || s.window.iter().any(|slot| !slot.durable) {
            return;
        }
        self.reign_unsent = false;
        for slot in s.window.iter() {
            self.send_prepare(s, &slot.entry, out);
        }
    }

    /// A newer configuration in which this replica stays primary (a member was added or
    /// removed): same reign, new ballot.
    pub(crate) fn continue_reign(
        &mut self,
        s: &mut Shared,
        now: u64,
        config: PartitionConfig,
        out: &mut Vec<Action>,
    ) {
        s.ballot = config.ballot;
        self.learners.retain(|l, _| !config.is_member(*l));
        // Proposals made at the old ballot can no longer be accepted.
        for l in self.learners.values_mut() {
            l.joining = false;
        }
        s.config = config;
        self.try_commit(s, now, out);
    }

    pub(crate) fn send_prepare(&self, s: &Shared, entry: &LogEntry, out: &mut Vec<Action>) {
        let targets = s.config.secondaries.iter().copied().chain(self.learners.keys().copied());
        for to in targets {
            out.push(Action::Send {
                to,
                msg: PeerMessage::Prepare {
                    config: s.config.clone(),
                    reign: s.reign,
                    committed: s.committed,
                    entry: entry.clone(),
                },
            });
        }
    }

    fn committable(&self, s: &Shared, slot: &Slot) -> bool {
        if !slot.durable {
            return false;
        }
        #[cfg(feature = "planted-bugs")]
        if s.opts.bug_commit_on_majority {
            let members = 1 + s.config.secondaries.len();
            let acks = 1 + s.config.secondaries.iter().filter(|m| slot.acked.contains(m)).count();
            return acks * 2 > members;
        }
        let d = slot.entry.decree;
        s.config.secondaries.iter().all(|m| slot.acked.contains(m))
            && self
                .learners
                .iter()
                .filter(|(_, l)| l.joining)
                .all(|(n, l)| slot.acked.contains(n) || d <= l.durable_through)
    }

    /// Commits the longest prefix that every member has logged, applies it and replies.
    pub(crate) fn try_commit(&mut self, s: &mut Shared, now: u64, out: &mut Vec<Action>) {
        let mut entries = Vec::new();
        let mut replies = Vec::new();
        loop {
            let next = s.committed.next();
            match s.window.get(next) {
                Some(slot) if self.committable(s, slot) => {}
                _ => break,
            }
            let Some(slot) = s.window.remove(next) else { break };
            s.committed = next;
            if let Some(reqs) = self.pending.remove(&next.0) {
                replies.extend(reqs.into_iter().enumerate().map(|(op, req)| Reply { decree: next, op, req }));
            }
            entries.push(slot.entry);
        }
        if !entries.is_empty() {
            out.push(Action::Apply { entries, replies });
            if !s.pipeline_full() {
                self.flush_queued(s, now, out);
            }
        }
        if !self.active && s.committed >= self.reconcile_target {
            self.active = true;
        }
        // After the `Apply` above: parked ops whose hash key just committed may go.
        self.drain_parked(s, now, out);
        let through = s.last_prepared();
        let caught_up: Vec<NodeId> =
            self.learners.iter().filter(|(_, l)| l.durable_through >= through).map(|(n, _)| *n).collect();
        for l in caught_up {
            if let Some(p) = self.learners.get_mut(&l) {
                p.joining = true;
            }
            self.propose(s, now, ConfigChange::AddSecondary(l), l, out);
        }
    }

    fn propose(&mut self, s: &Shared, now: u64, change: ConfigChange, node: NodeId, out: &mut Vec<Action>) {
        let retry = s.opts.propose_retry_ms;
        let last = self.proposed.get(&(s.ballot, node)).copied();
        if last.is_none_or(|at| now.saturating_sub(at) >= retry) {
            self.proposed.insert((s.ballot, node), now);
            out.push(Action::Propose { gpid: s.gpid, ballot: s.ballot, change });
        }
    }

    /// A prepare ack that refuses nothing: `from` holds the entry durably.
    #[allow(clippy::too_many_arguments)]
    fn on_ack(
        &mut self,
        s: &mut Shared,
        now: u64,
        from: NodeId,
        entry_ballot: Ballot,
        decree: Decree,
        durable_through: Decree,
        out: &mut Vec<Action>,
    ) {
        if let Some(l) = self.learners.get_mut(&from) {
            l.durable_through = l.durable_through.max(durable_through);
            l.last_activity_ms = now;
        }
        if let Some(slot) = s.window.get_mut(decree)
            && slot.entry.ballot == entry_ballot
        {
            slot.acked.insert(from);
        }
        self.try_commit(s, now, out);
    }

    fn tick(&mut self, s: &mut Shared, now: u64, out: &mut Vec<Action>) {
        // Queued writes normally leave when an entry commits; never let them wait longer than
        // a tick.
        self.flush_queued(s, now, out);
        self.drain_parked(s, now, out);
        if self.reign_unsent || now.saturating_sub(self.last_resend_ms) < s.opts.resend_ms {
            return;
        }
        // Re-evaluate what only acks would otherwise trigger (a caught-up learner whose
        // proposal was lost or refused).
        self.try_commit(s, now, out);
        self.last_resend_ms = now;
        let learners: Vec<NodeId> = self.learners.keys().copied().collect();
        let targets: Vec<NodeId> = s.config.secondaries.iter().copied().chain(learners).collect();
        let mut suspects = Vec::new();
        for slot in s.window.iter() {
            for &to in &targets {
                if slot.acked.contains(&to) {
                    continue;
                }
                out.push(Action::Send {
                    to,
                    msg: PeerMessage::Prepare {
                        config: s.config.clone(),
                        reign: s.reign,
                        committed: s.committed,
                        entry: slot.entry.clone(),
                    },
                });
                let joining = self
                    .learners
                    .get(&to)
                    .is_some_and(|l| l.joining && slot.entry.decree > l.durable_through);
                if (s.config.is_secondary(to) || joining)
                    && now.saturating_sub(slot.first_sent_ms) >= s.opts.ack_timeout_ms
                {
                    suspects.push(to);
                }
            }
        }
        for to in targets {
            out.push(Action::Send {
                to,
                msg: PeerMessage::GroupCheck {
                    config: s.config.clone(),
                    reign: s.reign,
                    committed: s.committed,
                },
            });
        }
        for suspect in suspects {
            self.propose(s, now, ConfigChange::RemoveSecondary(suspect), suspect, out);
        }
        // An invitation may have been lost: repeat it until the learner asks.
        for (l, p) in &self.learners {
            if !p.requested {
                out.push(Action::Send {
                    to: *l,
                    msg: PeerMessage::LearnInvite { config: s.config.clone(), reign: s.reign },
                });
            }
        }
        // A learner that lost a prepare whose entry has committed since cannot get it by resends
        // (committed entries leave the window): top it up from the log, from where it stands.
        let topup_every = 5 * s.opts.resend_ms;
        let (committed, through) = (s.committed, s.last_prepared());
        for (l, p) in self.learners.iter_mut() {
            if p.requested
                && p.durable_through < committed
                && now.saturating_sub(p.topup_at_ms) >= topup_every
            {
                p.topup_at_ms = now;
                out.push(Action::SendLearnResponse {
                    to: *l,
                    learner_applied: p.durable_through,
                    through,
                    config: s.config.clone(),
                    reign: s.reign,
                    committed,
                });
            }
        }
        // A quiet learner is forgotten, but never a joining one: the configuration manager may
        // already have made it a secondary on this primary's proposal (and may promote it), so
        // every commit must keep waiting for it until a new configuration says otherwise
        // (found by the simulator: a primary cut off from the manager forgot its joining
        // learner, committed alone, and the manager then promoted the learner).
        let timeout = s.opts.learn_timeout_ms;
        self.learners.retain(|_, l| l.joining || now.saturating_sub(l.last_activity_ms) < timeout);
    }
}
