//! The replica: the event dispatch, and what every role shares (configuration changes, leases,
//! reports). Its role is a type (`role.rs`); role-specific handlers are in `primary.rs` (with
//! `admission.rs` and `resolve.rs` for client requests), `secondary.rs` and `learner.rs`.

use tern_core::{
    Ballot, Decree, Error, Gpid, Hlc, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus, Timetag,
};
use tern_storage::LogEntry;

use crate::message::{Action, Event, Now, PeerMessage, Reign};
use crate::options::ReplicaOptions;
use crate::role::Role;
use crate::window::{Slot, Window};

/// One partition replica. See the crate docs.
#[derive(Debug)]
pub struct Replica {
    pub(crate) shared: Shared,
    /// The role it plays now, with that role's own state (see `role.rs`).
    pub(crate) role: Role,
}

/// What a replica holds whatever its role.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) gpid: Gpid,
    pub(crate) me: NodeId,
    pub(crate) opts: ReplicaOptions,
    /// The newest configuration this replica knows.
    pub(crate) config: PartitionConfig,
    pub(crate) ballot: Ballot,
    /// As primary, its own reign; otherwise the reign of the primary it follows.
    pub(crate) reign: Reign,
    pub(crate) hlc: Hlc,
    /// Lease end, on the monotonic clock.
    pub(crate) lease_expires_ms: u64,
    /// The wall clock at the current event: for timetags only.
    pub(crate) wall_ms: u64,
    /// Highest committed decree; everything up to it has been handed to the store (`Apply`).
    pub(crate) committed: Decree,
    /// Entries after `committed`.
    pub(crate) window: Window,
    /// As secondary or learner: the newest commit point heard from the primary (entries may
    /// become durable here after it arrived). Kept across roles: a learner that becomes a
    /// secondary still needs the commit point it heard while learning.
    pub(crate) commit_hint: Decree,
    /// The purge horizon as applied: the store's at open, raised by every entry applied since.
    pub(crate) purge_applied: Timetag,
}

impl Replica {
    /// A replica with nothing known yet; the runtime follows with `Open` or `Create`. `now_ms` is
    /// the wall clock (it seeds the HLC).
    pub fn new(gpid: Gpid, me: NodeId, opts: ReplicaOptions, now_ms: u64) -> Replica {
        let hlc = Hlc::new(opts.cluster, now_ms, opts.max_clock_offset_ms);
        Replica {
            shared: Shared {
                gpid,
                me,
                config: PartitionConfig { gpid, ballot: Ballot::ZERO, primary: None, secondaries: vec![] },
                ballot: Ballot::ZERO,
                reign: Reign::default(),
                hlc,
                lease_expires_ms: 0,
                wall_ms: now_ms,
                committed: Decree::ZERO,
                window: Window::default(),
                commit_hint: Decree::ZERO,
                purge_applied: Timetag::ZERO,
                opts,
            },
            role: Role::Inactive,
        }
    }

    /// Handles one event; actions for the runtime are pushed to `out`, in the order they must
    /// run.
    pub fn handle(&mut self, now: Now, event: Event, out: &mut Vec<Action>) {
        self.shared.wall_ms = now.wall_ms;
        let now_ms = now.mono_ms;
        match event {
            Event::Open { applied, applied_timetag, applied_ballot, purge_below, log } => {
                self.shared.purge_applied = purge_below;
                self.on_open(now_ms, applied, applied_timetag, applied_ballot, log)
            }
            Event::Create { config } => self.on_create(now_ms, config, out),
            Event::ConfigUpdate { config } => self.on_config(now_ms, config, out),
            Event::AddLearner { config, learner } => self.on_add_learner(now_ms, config, learner, out),
            Event::Lease { expires_at_ms } => self.shared.lease_expires_ms = expires_at_ms,
            Event::Tick => self.on_tick(now_ms, out),
            Event::ClientWrite { req, op } => self.on_write(now_ms, req, op, out),
            Event::ClientWrites { writes } => self.on_writes(now_ms, writes, out),
            Event::ClientRead { req, read } => self.on_read(now_ms, req, read, out),
            Event::Peer { from, msg } => self.on_peer(now_ms, from, msg, out),
            Event::Appended { entries } => self.on_appended(now_ms, &entries, out),
            Event::AppendFailed { error } => self.fail(error, out),
            Event::CheckpointInstalled { decree, timetag } => {
                self.on_checkpoint_installed(now_ms, decree, timetag, out)
            }
            Event::CheckpointFailed { error } => self.on_checkpoint_failed(now_ms, error, out),
            Event::Resolved { req, result } => self.on_resolved(now_ms, req, result, out),
            Event::PurgeHorizon { below } => self.on_purge_horizon(now_ms, below, out),
        }
        // What is applied raises the purge horizon as applied (the store does the same).
        for a in out.iter() {
            if let Action::Apply { entries, .. } = a {
                let applied = entries.iter().filter_map(|e| e.mutation.purge_below).max();
                self.shared.purge_applied = self.shared.purge_applied.max(applied.unwrap_or_default());
            }
        }
    }

    fn on_peer(&mut self, now: u64, from: NodeId, msg: PeerMessage, out: &mut Vec<Action>) {
        match msg {
            PeerMessage::Prepare { config, reign, committed, entry } => {
                self.on_prepare(now, from, config, reign, committed, entry, out)
            }
            PeerMessage::PrepareAck { ballot, entry_ballot, decree, durable_through, refusal } => {
                self.on_prepare_ack(now, from, ballot, entry_ballot, decree, durable_through, refusal, out)
            }
            PeerMessage::GroupCheck { config, reign, committed } => {
                self.on_group_check(now, from, config, reign, committed, out)
            }
            PeerMessage::LearnInvite { config, reign } => self.on_learn_invite(now, from, config, reign, out),
            PeerMessage::LearnRequest { ballot, applied } => {
                self.on_learn_request(now, from, ballot, applied, out)
            }
            PeerMessage::LearnResponse { config, reign, committed, through, checkpoint, entries } => {
                self.on_learn_response(now, from, config, reign, committed, through, checkpoint, entries, out)
            }
            PeerMessage::LearnAck { ballot, through } => self.on_learn_ack(now, from, ballot, through, out),
        }
    }

    // ---- queries ----

    pub fn gpid(&self) -> Gpid {
        self.shared.gpid
    }

    /// The role it plays now, as reported to the configuration manager.
    pub fn status(&self) -> ReplicaStatus {
        self.role.status()
    }

    /// Why it stopped, if it failed (status `Error`): the first log or store error it was told
    /// of. Kept until the replica is reopened.
    pub fn failure(&self) -> Option<&Error> {
        self.role.failure()
    }

    pub fn ballot(&self) -> Ballot {
        self.shared.ballot
    }

    pub fn committed(&self) -> Decree {
        self.shared.committed
    }

    pub fn config(&self) -> &PartitionConfig {
        &self.shared.config
    }

    /// The highest decree this replica holds (committed or not).
    pub fn last_prepared(&self) -> Decree {
        self.shared.last_prepared()
    }

    /// Whether it would serve a read now (monotonic clock): an active primary with a valid lease.
    pub fn is_serving(&self, now_ms: u64) -> bool {
        self.role.primary().is_some_and(|p| p.active) && self.shared.lease_valid(now_ms)
    }

    pub fn report(&self) -> ReplicaReport {
        ReplicaReport {
            gpid: self.shared.gpid,
            ballot: self.shared.ballot,
            status: self.status(),
            committed: self.shared.committed,
            last_prepared: self.last_prepared(),
        }
    }

    // ---- shared ----

    fn on_open(
        &mut self,
        now: u64,
        applied: Decree,
        applied_timetag: Timetag,
        applied_ballot: Ballot,
        log: Vec<LogEntry>,
    ) {
        // The runtime opens a replica once, before anything else: there is no role to leave.
        self.role = Role::Inactive;
        let s = &mut self.shared;
        s.committed = applied;
        s.window.clear();
        for e in log.into_iter().filter(|e| e.decree > applied) {
            let mut slot = Slot::new(e, now);
            slot.durable = true;
            s.window.insert(slot);
        }
        // Every durable entry is in the store or in the log: this is the largest ballot this
        // replica ever logged, so a reign it started is never started again at the same ballot.
        s.ballot = s.window.max_ballot().max(applied_ballot);
        s.config.ballot = s.ballot;
        s.hlc.observe(applied_timetag, s.wall_ms);
        s.hlc.observe(s.window.max_timetag(), s.wall_ms);
    }

    fn on_create(&mut self, now: u64, config: PartitionConfig, out: &mut Vec<Action>) {
        let s = &self.shared;
        if config.gpid != s.gpid || s.ballot > Ballot::ZERO || s.committed > Decree::ZERO {
            return; // only a brand-new, empty replica can be created into a configuration
        }
        if config.is_primary(s.me) {
            self.become_primary(now, config, out);
        } else if config.is_secondary(s.me) {
            self.shared.ballot = config.ballot;
            self.shared.config = config;
            self.role = Role::Secondary;
        }
    }

    /// Adopts a newer configuration from the configuration manager.
    ///
    /// A configuration at the ballot this replica already holds is still new to it when it knows
    /// that ballot only second-hand: a primary refused as stale by a member that learned the
    /// ballot first adopts the number without the configuration (`on_prepare_ack`). The meta
    /// issues one configuration per ballot, and this replica never reigned at that ballot, so
    /// taking it, even as primary, starts no second reign at one ballot.
    pub(crate) fn on_config(&mut self, now: u64, config: PartitionConfig, out: &mut Vec<Action>) {
        let s = &self.shared;
        let known = config.ballot < s.ballot || config.ballot <= s.config.ballot;
        if config.gpid != s.gpid || known || matches!(self.role, Role::Failed(_)) {
            return;
        }
        let me = s.me;
        // This replica stepped down as primary when a member told it of this ballot, before its
        // configuration came (`on_prepare_ack`). Its beacon may since have reported it inactive
        // at this ballot, and the configuration manager may be making another replica primary
        // on that report without waiting for this node's lease (a replica that says it is not
        // primary does not serve). Reigning here now would let two primaries hold valid leases
        // (found by the simulator: seed 3052). So it never becomes primary at a ballot it
        // stepped down at; the manager moves on to a higher ballot.
        let stepped_down_at_this_ballot = s.config.ballot < s.ballot && config.ballot == s.ballot;
        if config.is_primary(me) && stepped_down_at_this_ballot {
            self.shared.config = config;
        } else if config.is_primary(me) {
            if let Role::Primary(p) = &mut self.role {
                p.continue_reign(&mut self.shared, now, config, out);
            } else {
                self.become_primary(now, config, out);
            }
        } else if config.is_secondary(me) {
            let can_serve = match &self.role {
                Role::Primary(_) | Role::Secondary => true,
                Role::Learner(l) => l.is_complete() && Some(l.primary) == config.primary,
                Role::Inactive | Role::Failed(_) => false,
            };
            self.step_down_if_primary(out);
            self.shared.ballot = config.ballot;
            self.shared.config = config;
            if can_serve {
                self.role = Role::Secondary;
            }
        } else {
            let keeps_learning = matches!(&self.role, Role::Learner(l) if Some(l.primary) == config.primary);
            self.step_down_if_primary(out);
            if !keeps_learning {
                self.role = Role::Inactive;
            }
            self.shared.ballot = config.ballot;
            self.shared.config = config;
        }
    }

    /// Ends a reign, if this replica is primary: every client write it holds is answered
    /// (`PrimaryState::step_down`) and its primary state is dropped.
    pub(crate) fn step_down_if_primary(&mut self, out: &mut Vec<Action>) {
        if !self.role.is_primary() {
            return;
        }
        if let Role::Primary(p) = std::mem::replace(&mut self.role, Role::Inactive) {
            p.step_down(self.shared.gpid, out);
        }
    }

    /// The log or the store failed: stop, keeping the error. A later failure is a consequence
    /// of the first, which is the one kept.
    fn fail(&mut self, error: Error, out: &mut Vec<Action>) {
        self.step_down_if_primary(out);
        if !matches!(self.role, Role::Failed(_)) {
            self.role = Role::Failed(error);
        }
    }

    fn on_appended(&mut self, now: u64, entries: &[(Ballot, Decree)], out: &mut Vec<Action>) {
        let mut newly = Vec::new();
        for &(b, d) in entries {
            if let Some(slot) = self.shared.window.get_mut(d)
                && slot.entry.ballot == b
                && !slot.durable
            {
                slot.durable = true;
                newly.push((b, d));
            }
        }
        match &mut self.role {
            Role::Primary(p) => {
                let s = &mut self.shared;
                p.send_reign_start(s, out);
                p.try_commit(s, now, out);
                if !s.pipeline_full() {
                    p.flush_queued(s, now, out);
                }
            }
            Role::Secondary => {
                for (b, d) in newly {
                    self.shared.ack(b, d, out);
                }
                self.secondary_commit(self.shared.commit_hint, out);
            }
            Role::Learner(_) => self.learner_on_appended(now, &newly, out),
            Role::Inactive | Role::Failed(_) => {}
        }
    }
}

impl Shared {
    pub(crate) fn lease_valid(&self, now_ms: u64) -> bool {
        now_ms < self.lease_expires_ms
    }

    /// The highest decree this replica holds (committed or not).
    pub(crate) fn last_prepared(&self) -> Decree {
        self.window.last().unwrap_or(self.committed).max(self.committed)
    }

    /// Acknowledges a durable entry to the primary this replica follows.
    pub(crate) fn ack(&self, entry_ballot: Ballot, decree: Decree, out: &mut Vec<Action>) {
        if let Some(p) = self.config.primary.filter(|&p| p != self.me) {
            out.push(Action::Send {
                to: p,
                msg: PeerMessage::PrepareAck {
                    ballot: self.ballot,
                    entry_ballot,
                    decree,
                    durable_through: self.window.durable_through(self.committed),
                    refusal: None,
                },
            });
        }
    }
}
