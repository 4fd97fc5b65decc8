//! The learner (PacificA's "potential secondary"): catches up from the primary, by log or by
//! checkpoint + log, while also receiving every new prepare; once caught up it tells the
//! primary, which asks the configuration manager to make it a secondary.
//!
//! A learner empties its log when invited and acknowledges nothing until it holds everything
//! through the point the primary sent it. It therefore never acknowledges an entry that a later
//! step of learning could still remove. A prepare lost on the way whose entry commits meanwhile
//! is not resent (it left the primary's window); the primary tops the learner up from its log
//! instead, and the learner accepts such responses after it completed, too.

use tern_core::{Decree, Error, NodeId, PartitionConfig, Timetag};
use tern_storage::LogEntry;

use crate::message::{Action, CheckpointRef, PeerMessage, Reign};
use crate::replica::Replica;
use crate::role::Role;
use crate::window::Slot;

/// What only a learner has: whom it learns from and how far it got.
#[derive(Debug)]
pub(crate) struct Learning {
    pub primary: NodeId,
    /// The primary's reign this learner learns under. A new reign of the same primary may have
    /// replaced entries this learner holds (a restarted primary loses what it had not made
    /// durable): what was learned under another reign is not trusted.
    pub reign: Reign,
    pub stage: Stage,
    pub last_activity_ms: u64,
}

#[derive(Debug)]
pub(crate) enum Stage {
    /// Asked the primary; waiting for its response.
    Requested,
    /// Installing the checkpoint the primary sent; the log entries wait.
    Installing { committed: Decree, through: Decree, entries: Vec<LogEntry> },
    /// Writing the learned entries; complete once everything through `through` is durable.
    Persisting { committed: Decree, through: Decree },
    /// Caught up: acknowledges prepares like a secondary.
    Complete,
}

impl Learning {
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.stage, Stage::Complete)
    }

    /// Whether it learns from `primary` in its reign `reign`.
    pub(crate) fn learns_from(&self, primary: NodeId, reign: Reign) -> bool {
        self.primary == primary && self.reign == reign
    }

    /// Whether it waits for a `LearnResponse`: the answer to its request, or a top-up once
    /// caught up (it may have missed a prepare).
    fn takes_response(&self) -> bool {
        matches!(self.stage, Stage::Requested | Stage::Complete)
    }
}

impl Replica {
    pub(crate) fn learning_complete(&self) -> bool {
        self.role.learning().is_some_and(Learning::is_complete)
    }

    fn request_learn(&self, to: NodeId, out: &mut Vec<Action>) {
        out.push(Action::Send {
            to,
            msg: PeerMessage::LearnRequest { ballot: self.shared.ballot, applied: self.shared.committed },
        });
    }

    pub(crate) fn on_learn_invite(
        &mut self,
        now: u64,
        from: NodeId,
        config: PartitionConfig,
        reign: Reign,
        out: &mut Vec<Action>,
    ) {
        let s = &self.shared;
        if config.gpid != s.gpid
            || config.primary != Some(from)
            || config.ballot < s.ballot
            || config.is_member(s.me)
            || matches!(self.role, Role::Failed(_))
        {
            return;
        }
        if let Role::Learner(l) = &mut self.role
            && l.learns_from(from, reign)
        {
            // Invited again: the primary lost track of it (or of its request). Ask again; once
            // caught up, the answer is handled as a top-up.
            if l.takes_response() {
                l.last_activity_ms = now;
                self.request_learn(from, out);
            }
            return;
        }
        self.step_down_if_primary(out);
        let s = &mut self.shared;
        s.ballot = config.ballot;
        s.config = config;
        s.reign = reign;
        // Whatever the log held after the store is not trusted: start it over before anything
        // is acknowledged.
        s.window.clear();
        s.commit_hint = Decree::ZERO;
        out.push(Action::ResetLog);
        self.role =
            Role::Learner(Learning { primary: from, reign, stage: Stage::Requested, last_activity_ms: now });
        self.request_learn(from, out);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_learn_response(
        &mut self,
        now: u64,
        from: NodeId,
        config: PartitionConfig,
        reign: Reign,
        committed: Decree,
        through: Decree,
        checkpoint: Option<CheckpointRef>,
        entries: Vec<LogEntry>,
        out: &mut Vec<Action>,
    ) {
        let Role::Learner(l) = &mut self.role else { return };
        let s = &mut self.shared;
        if !l.learns_from(from, reign) || !l.takes_response() || config.ballot < s.ballot {
            return;
        }
        s.ballot = config.ballot;
        s.config = config;
        s.reign = reign;
        l.last_activity_ms = now;
        if let Some(cp) = checkpoint.filter(|cp| cp.decree > s.committed) {
            l.stage = Stage::Installing { committed, through, entries };
            out.push(Action::InstallCheckpoint { from, checkpoint: cp });
            return;
        }
        self.continue_learning(now, committed, through, entries, out);
    }

    pub(crate) fn on_checkpoint_installed(
        &mut self,
        now: u64,
        decree: Decree,
        timetag: Timetag,
        out: &mut Vec<Action>,
    ) {
        let Role::Learner(l) = &mut self.role else { return };
        if !matches!(l.stage, Stage::Installing { .. }) {
            return;
        }
        // The entries move out; `continue_learning` sets the next stage.
        let Stage::Installing { committed, through, entries } =
            std::mem::replace(&mut l.stage, Stage::Requested)
        else {
            return;
        };
        // The store now holds everything through `decree`.
        let s = &mut self.shared;
        s.committed = decree;
        s.window.drop_through(decree);
        s.hlc.observe(timetag, s.wall_ms);
        self.continue_learning(now, committed, through, entries, out);
    }

    pub(crate) fn on_checkpoint_failed(&mut self, now: u64, _error: Error, out: &mut Vec<Action>) {
        if let Role::Learner(l) = &mut self.role
            && matches!(l.stage, Stage::Installing { .. })
        {
            l.stage = Stage::Requested;
            l.last_activity_ms = now;
            let p = l.primary;
            self.request_learn(p, out);
        }
    }

    fn continue_learning(
        &mut self,
        now: u64,
        committed: Decree,
        through: Decree,
        entries: Vec<LogEntry>,
        out: &mut Vec<Action>,
    ) {
        let s = &mut self.shared;
        let mut new = Vec::new();
        for e in entries.into_iter().filter(|e| e.decree > s.committed) {
            let held = s.window.get(e.decree).map(|slot| slot.entry.ballot);
            if held.is_some_and(|b| b >= e.ballot) {
                continue; // the same entry already came as a prepare
            }
            s.hlc.observe(e.timetag, s.wall_ms);
            s.window.insert(Slot::new(e.clone(), now));
            new.push(e);
        }
        if !new.is_empty() {
            out.push(Action::Append { entries: new });
        }
        if let Role::Learner(l) = &mut self.role {
            l.stage = Stage::Persisting { committed, through };
        }
        self.check_learned(out);
    }

    /// Completes learning once everything through the learned point is durable.
    fn check_learned(&mut self, out: &mut Vec<Action>) {
        let Role::Learner(l) = &mut self.role else { return };
        let Stage::Persisting { committed, through } = l.stage else { return };
        let s = &mut self.shared;
        if s.window.durable_through(s.committed) < through {
            return;
        }
        // Entries the primary said were committed come from its log: apply them.
        let mut entries = Vec::new();
        while s.committed < committed {
            let d = s.committed.next();
            match s.window.get(d) {
                Some(slot) if slot.durable => {}
                _ => break,
            }
            entries.push(s.window.remove(d).expect("checked above").entry);
            s.committed = d;
        }
        if !entries.is_empty() {
            out.push(Action::Apply { entries, replies: vec![] });
        }
        l.stage = Stage::Complete;
        let durable = s.window.durable_through(s.committed);
        out.push(Action::Send {
            to: l.primary,
            msg: PeerMessage::LearnAck { ballot: s.ballot, through: durable },
        });
        for slot in s.window.iter().filter(|slot| slot.durable) {
            s.ack(slot.entry.ballot, slot.entry.decree, out);
        }
        self.secondary_commit(self.shared.commit_hint, out);
    }

    pub(crate) fn learner_on_appended(
        &mut self,
        _now: u64,
        newly: &[(tern_core::Ballot, Decree)],
        out: &mut Vec<Action>,
    ) {
        if self.learning_complete() {
            for &(b, d) in newly {
                self.shared.ack(b, d, out);
            }
            self.secondary_commit(self.shared.commit_hint, out);
        } else {
            self.check_learned(out);
        }
    }

    pub(crate) fn learner_tick(&mut self, now: u64, out: &mut Vec<Action>) {
        let timeout = self.shared.opts.learn_timeout_ms;
        let Role::Learner(l) = &mut self.role else { return };
        if matches!(l.stage, Stage::Requested) && now.saturating_sub(l.last_activity_ms) >= timeout {
            l.last_activity_ms = now;
            let p = l.primary;
            self.request_learn(p, out);
        }
    }
}
