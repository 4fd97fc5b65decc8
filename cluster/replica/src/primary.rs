//! The primary: taking over (reconciliation), admitting client requests, two-phase commit
//! (commit once *every* member has logged an entry, PacificA §2.2), resending, suspecting
//! secondaries, and bringing learners in (§2.5, "addition of new secondaries").

use tern_core::{Ballot, ConfigChange, Decree, Error, NodeId, PartitionConfig, ReplicaStatus, WriteOp};
use tern_storage::LogEntry;

use crate::message::{Action, PeerMessage, ReadOp, Refusal, Reign, Reply, RequestId};
use crate::replica::Replica;
use crate::window::Slot;

/// A learner as its primary sees it.
#[derive(Clone, Debug)]
pub(crate) struct LearnerProgress {
    pub last_activity_ms: u64,
    /// It asked to learn (so the invitation arrived).
    pub requested: bool,
    /// Everything through this decree is durable at the learner.
    pub durable_through: Decree,
    /// When it was last sent a top-up (see `primary_tick`).
    pub topup_at_ms: u64,
    /// Its promotion to secondary was proposed at the current ballot. From then on it counts
    /// for commits as if it were a member: the configuration manager may make it one at any
    /// moment, and every member must hold every committed entry.
    pub joining: bool,
}

impl Replica {
    /// Starts a reign: re-propose every entry after the committed decree under the new ballot,
    /// followed by an empty entry that marks the reign, and serve nothing until all of it is
    /// committed, so that every member agrees (PacificA §2.5, "reconciliation").
    ///
    /// Nothing is sent until those entries are durable here: a replica that restarts must find
    /// its reign's ballot in its own log, or it could start another reign at the same ballot
    /// while secondaries still hold entries of the first one.
    pub(crate) fn become_primary(&mut self, now: u64, config: PartitionConfig, out: &mut Vec<Action>) {
        self.status = ReplicaStatus::Primary;
        self.ballot = config.ballot;
        self.config = config;
        self.reign = Reign { ballot: self.ballot, base: self.committed };
        self.learning = None;
        self.learners.clear();
        self.pending.clear();
        self.queued.clear();
        self.queued_bytes = 0;
        self.proposed.clear();
        self.last_resend_ms = now;
        // Timetags must keep growing with decrees across reigns.
        self.hlc.observe(self.window.max_timetag(), self.wall_ms);
        self.window.truncate_at_gap(self.committed);
        let mut entries = Vec::with_capacity(self.window.len() + 1);
        for slot in self.window.iter_mut() {
            slot.entry.ballot = self.reign.ballot;
            slot.durable = false;
            slot.acked.clear();
            slot.first_sent_ms = now;
            entries.push(slot.entry.clone());
        }
        let marker = LogEntry {
            ballot: self.reign.ballot,
            decree: self.last_prepared().next(),
            timetag: self.hlc.now(self.wall_ms),
            mutation: tern_core::Mutation::default(),
        };
        self.window.insert(Slot::new(marker.clone(), now));
        entries.push(marker);
        self.reconcile_target = self.last_prepared();
        self.active = false;
        self.reign_unsent = true;
        out.push(Action::Append { entries });
    }

    /// Once the reign's first entries are durable here, send them.
    pub(crate) fn send_reign_start(&mut self, out: &mut Vec<Action>) {
        if !self.reign_unsent || self.window.iter().any(|s| !s.durable) {
            return;
        }
        self.reign_unsent = false;
        let entries: Vec<LogEntry> = self.window.iter().map(|s| s.entry.clone()).collect();
        for e in entries {
            self.send_prepare(e, out);
        }
    }

    /// A newer configuration in which this replica stays primary (a member was added or
    /// removed): same reign, new ballot.
    pub(crate) fn continue_reign(&mut self, now: u64, config: PartitionConfig, out: &mut Vec<Action>) {
        self.ballot = config.ballot;
        self.learners.retain(|l, _| !config.is_member(*l));
        // Proposals made at the old ballot can no longer be accepted.
        for l in self.learners.values_mut() {
            l.joining = false;
        }
        self.config = config;
        self.try_commit(now, out);
    }

    fn send_prepare(&self, entry: LogEntry, out: &mut Vec<Action>) {
        let targets: Vec<NodeId> =
            self.config.secondaries.iter().copied().chain(self.learners.keys().copied()).collect();
        for to in targets {
            out.push(Action::Send {
                to,
                msg: PeerMessage::Prepare {
                    config: self.config.clone(),
                    reign: self.reign,
                    committed: self.committed,
                    entry: entry.clone(),
                },
            });
        }
    }

    pub(crate) fn refuse(&self, req: RequestId, error: Error, out: &mut Vec<Action>) {
        out.push(Action::Refuse { req, error, not_applied: true });
    }

    /// Why this replica cannot serve a request now, if it cannot.
    pub(crate) fn unable_to_serve(&self, now: u64, need_lease: bool) -> Option<Error> {
        if self.status != ReplicaStatus::Primary {
            return Some(Error::NotPrimary { gpid: self.gpid });
        }
        if !self.active {
            return Some(Error::Unavailable(format!("partition {} primary is reconciling", self.gpid)));
        }
        if need_lease && !self.lease_valid(now) {
            return Some(Error::Unavailable(format!("partition {} primary has no lease", self.gpid)));
        }
        None
    }

    pub(crate) fn on_write(&mut self, now: u64, req: RequestId, op: WriteOp, out: &mut Vec<Action>) {
        if let Some(e) = self.unable_to_serve(now, true) {
            return self.refuse(req, e, out);
        }
        if let Err(e) = self.opts.limits.check_op(&op) {
            return self.refuse(req, e, out);
        }
        if self.last_prepared().0 - self.committed.0 >= self.opts.max_inflight {
            return self.refuse(
                req,
                Error::Busy(format!("partition {} has too many writes in flight", self.gpid)),
                out,
            );
        }
        if matches!(op, WriteOp::Resolved { .. }) {
            let e = Error::InvalidArgument("a resolved op is logged by a primary, never sent".into());
            return self.refuse(req, e, out);
        }
        if let Err(e) = self.admit_duplicated(&op) {
            return self.refuse(req, e, out);
        }
        if self.must_park(&op) {
            return self.park(now, req, op, out);
        }
        self.enqueue(now, req, op, out);
    }

    /// Adds an admitted write to the next batch.
    pub(crate) fn enqueue(&mut self, now: u64, req: RequestId, op: WriteOp, out: &mut Vec<Action>) {
        // Batching: while the pipeline is full (see `pipeline_full`), writes wait and then go
        // out together as one entry: one log record, one prepare per secondary, one ack, one
        // store write for all of them. Below that a write leaves at once, so batching costs
        // latency only under heavy load. A batch holds distinct hash keys only, so that no two
        // of its ops touch the same record (they share the entry's timetag).
        if self.queued.iter().any(|(_, q)| q.hash_key() == op.hash_key()) {
            self.flush_queued(now, out);
        }
        self.queued_bytes += op.payload_bytes();
        self.queued.push((req, op));
        if (!self.pipeline_full() && !self.holding)
            || self.queued.len() >= self.opts.batch_max_ops
            || self.queued_bytes >= self.opts.batch_max_bytes
        {
            self.flush_queued(now, out);
        }
    }

    /// Whether new client writes should wait for the next batch: `batch_max_uncommitted`
    /// entries are already prepared and not committed. Below that a write leaves at once, even
    /// while the previous entry is still being logged here: the node's log writer groups
    /// appends for one fsync and peer links carry many messages per frame, so an entry per
    /// write costs no more CPU, and the prepare reaches the secondaries a log turn sooner
    /// (`docs/decisions.md`, "A primary sends each write at once").
    pub(crate) fn pipeline_full(&self) -> bool {
        self.window.len() >= self.opts.batch_max_uncommitted
    }

    /// Sends the queued client writes as one entry.
    pub(crate) fn flush_queued(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.queued.is_empty() || self.status != ReplicaStatus::Primary {
            return;
        }
        self.queued_bytes = 0;
        let (reqs, ops): (Vec<RequestId>, Vec<WriteOp>) =
            std::mem::take(&mut self.queued).into_iter().unzip();
        let entry = LogEntry {
            ballot: self.reign.ballot,
            decree: self.last_prepared().next(),
            timetag: self.hlc.now(self.wall_ms),
            mutation: tern_core::Mutation::new(ops),
        };
        self.pending.insert(entry.decree.0, reqs);
        self.window.insert(Slot::new(entry.clone(), now));
        self.send_prepare(entry.clone(), out);
        out.push(Action::Append { entries: vec![entry] });
    }

    pub(crate) fn on_read(&mut self, now: u64, req: RequestId, read: ReadOp, out: &mut Vec<Action>) {
        #[cfg(feature = "planted-bugs")]
        let need_lease = !self.opts.bug_read_without_lease;
        #[cfg(not(feature = "planted-bugs"))]
        let need_lease = true;
        if let Some(e) = self.unable_to_serve(now, need_lease) {
            return self.refuse(req, e, out);
        }
        out.push(Action::ServeRead { req, read, ballot: self.ballot });
    }

    fn committable(&self, slot: &Slot) -> bool {
        if !slot.durable {
            return false;
        }
        #[cfg(feature = "planted-bugs")]
        if self.opts.bug_commit_on_majority {
            let members = 1 + self.config.secondaries.len();
            let acks = 1 + self.config.secondaries.iter().filter(|s| slot.acked.contains(s)).count();
            return acks * 2 > members;
        }
        let d = slot.entry.decree;
        self.config.secondaries.iter().all(|s| slot.acked.contains(s))
            && self
                .learners
                .iter()
                .filter(|(_, l)| l.joining)
                .all(|(n, l)| slot.acked.contains(n) || d <= l.durable_through)
    }

    /// Commits the longest prefix that every member has logged, applies it and replies.
    pub(crate) fn try_commit(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.status != ReplicaStatus::Primary {
            return;
        }
        let mut entries = Vec::new();
        let mut replies = Vec::new();
        loop {
            let next = self.committed.next();
            match self.window.get(next) {
                Some(slot) if self.committable(slot) => {}
                _ => break,
            }
            let slot = self.window.remove(next).expect("checked above");
            self.committed = next;
            if let Some(reqs) = self.pending.remove(&next.0) {
                replies.extend(reqs.into_iter().enumerate().map(|(op, req)| Reply { decree: next, op, req }));
            }
            entries.push(slot.entry);
        }
        if !entries.is_empty() {
            out.push(Action::Apply { entries, replies });
            if !self.pipeline_full() {
                self.flush_queued(now, out);
            }
        }
        if !self.active && self.committed >= self.reconcile_target {
            self.active = true;
        }
        // After the `Apply` above: parked ops whose hash key just committed may go.
        self.drain_parked(now, out);
        let caught_up: Vec<NodeId> = self
            .learners
            .iter()
            .filter(|(_, l)| l.durable_through >= self.last_prepared())
            .map(|(n, _)| *n)
            .collect();
        for l in caught_up {
            if let Some(p) = self.learners.get_mut(&l) {
                p.joining = true;
            }
            self.propose(now, ConfigChange::AddSecondary(l), l, out);
        }
    }

    fn propose(&mut self, now: u64, change: ConfigChange, node: NodeId, out: &mut Vec<Action>) {
        let retry = self.opts.propose_retry_ms;
        let last = self.proposed.get(&(self.ballot, node)).copied();
        if last.is_none_or(|at| now.saturating_sub(at) >= retry) {
            self.proposed.insert((self.ballot, node), now);
            out.push(Action::Propose { gpid: self.gpid, ballot: self.ballot, change });
        }
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
        if self.status != ReplicaStatus::Primary {
            return;
        }
        let is_secondary = self.config.is_secondary(from);
        if let Some(r) = refusal {
            match r {
                Refusal::StaleBallot if ballot > self.ballot => {
                    // A newer configuration exists that this replica has not seen; it may or may
                    // not keep this replica as primary. Stop serving at the old ballot and wait for
                    // the configuration itself (`on_config` accepts it at this ballot).
                    self.step_down_if_primary(out);
                    self.ballot = ballot;
                }
                // The refused message was older than the refuser's ballot, which is not above
                // ours: it was sent before this primary adopted its current configuration (the
                // member adopted it first). Nothing is wrong with the member.
                Refusal::StaleBallot => {}
                _ if is_secondary => self.propose(now, ConfigChange::RemoveSecondary(from), from, out),
                _ => {}
            }
            return;
        }
        if let Some(l) = self.learners.get_mut(&from) {
            l.durable_through = l.durable_through.max(durable_through);
            l.last_activity_ms = now;
        }
        if let Some(slot) = self.window.get_mut(decree)
            && slot.entry.ballot == entry_ballot
        {
            slot.acked.insert(from);
        }
        self.try_commit(now, out);
    }

    pub(crate) fn on_tick(&mut self, now: u64, out: &mut Vec<Action>) {
        match self.status {
            ReplicaStatus::Primary => self.primary_tick(now, out),
            ReplicaStatus::Learner => self.learner_tick(now, out),
            _ => {}
        }
    }

    fn primary_tick(&mut self, now: u64, out: &mut Vec<Action>) {
        // Queued writes normally leave when an entry commits; never let them wait longer than
        // a tick.
        self.flush_queued(now, out);
        self.drain_parked(now, out);
        if self.reign_unsent || now.saturating_sub(self.last_resend_ms) < self.opts.resend_ms {
            return;
        }
        // Re-evaluate what only acks would otherwise trigger (a caught-up learner whose
        // proposal was lost or refused).
        self.try_commit(now, out);
        self.last_resend_ms = now;
        let learners: Vec<NodeId> = self.learners.keys().copied().collect();
        let targets: Vec<NodeId> = self.config.secondaries.iter().copied().chain(learners).collect();
        let mut suspects = Vec::new();
        for slot in self.window.iter() {
            for &to in &targets {
                if slot.acked.contains(&to) {
                    continue;
                }
                out.push(Action::Send {
                    to,
                    msg: PeerMessage::Prepare {
                        config: self.config.clone(),
                        reign: self.reign,
                        committed: self.committed,
                        entry: slot.entry.clone(),
                    },
                });
                let joining = self
                    .learners
                    .get(&to)
                    .is_some_and(|l| l.joining && slot.entry.decree > l.durable_through);
                if (self.config.is_secondary(to) || joining)
                    && now.saturating_sub(slot.first_sent_ms) >= self.opts.ack_timeout_ms
                {
                    suspects.push(to);
                }
            }
        }
        for to in targets {
            out.push(Action::Send {
                to,
                msg: PeerMessage::GroupCheck {
                    config: self.config.clone(),
                    reign: self.reign,
                    committed: self.committed,
                },
            });
        }
        for s in suspects {
            self.propose(now, ConfigChange::RemoveSecondary(s), s, out);
        }
        // An invitation may have been lost: repeat it until the learner asks.
        for (l, p) in &self.learners {
            if !p.requested {
                out.push(Action::Send {
                    to: *l,
                    msg: PeerMessage::LearnInvite { config: self.config.clone(), reign: self.reign },
                });
            }
        }
        // A learner that lost a prepare whose entry has committed since cannot get it by resends
        // (committed entries leave the window): top it up from the log, from where it stands.
        let topup_every = 5 * self.opts.resend_ms;
        let (committed, through) = (self.committed, self.last_prepared());
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
                    config: self.config.clone(),
                    reign: self.reign,
                    committed,
                });
            }
        }
        // A quiet learner is forgotten, but never a joining one: the configuration manager may
        // already have made it a secondary on this primary's proposal (and may promote it), so
        // every commit must keep waiting for it until a new configuration says otherwise
        // (found by the simulator: a primary cut off from the manager forgot its joining
        // learner, committed alone, and the manager then promoted the learner).
        let timeout = self.opts.learn_timeout_ms;
        self.learners.retain(|_, l| l.joining || now.saturating_sub(l.last_activity_ms) < timeout);
    }

    pub(crate) fn on_add_learner(
        &mut self,
        now: u64,
        config: PartitionConfig,
        learner: NodeId,
        out: &mut Vec<Action>,
    ) {
        if self.status != ReplicaStatus::Primary
            || !self.active
            || config.ballot != self.ballot
            || self.config.is_member(learner)
            || learner == self.me
        {
            return;
        }
        self.learners.entry(learner).and_modify(|l| l.last_activity_ms = now).or_insert(LearnerProgress {
            last_activity_ms: now,
            requested: false,
            durable_through: Decree::ZERO,
            topup_at_ms: now,
            joining: false,
        });
        out.push(Action::Send {
            to: learner,
            msg: PeerMessage::LearnInvite { config: self.config.clone(), reign: self.reign },
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
        if self.status != ReplicaStatus::Primary || ballot > self.ballot {
            return;
        }
        let Some(l) = self.learners.get_mut(&from) else { return };
        l.last_activity_ms = now;
        l.requested = true;
        out.push(Action::SendLearnResponse {
            to: from,
            learner_applied: applied,
            through: self.last_prepared(),
            config: self.config.clone(),
            reign: self.reign,
            committed: self.committed,
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
        if self.status != ReplicaStatus::Primary || ballot > self.ballot {
            return;
        }
        if let Some(l) = self.learners.get_mut(&from) {
            l.durable_through = l.durable_through.max(through);
            l.last_activity_ms = now;
        }
        self.try_commit(now, out);
    }
}
