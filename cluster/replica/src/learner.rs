//! The learner (PacificA's "potential secondary"): catches up from the primary, by log or by
//! checkpoint + log, while also receiving every new prepare; once caught up it tells the
//! primary, which asks the configuration manager to make it a secondary.
//!
//! A learner empties its log when invited and acknowledges nothing until it holds everything
//! through the point the primary sent it. It therefore never acknowledges an entry that a later
//! step of learning could still remove. A prepare lost on the way whose entry commits meanwhile
//! is not resent (it left the primary's window); the primary tops the learner up from its log
//! instead, and the learner accepts such responses after it completed, too.

use tern_core::{Decree, Error, NodeId, PartitionConfig, ReplicaStatus, Timetag};
use tern_storage::LogEntry;

use crate::message::{Action, CheckpointRef, PeerMessage, Reign};
use crate::replica::Replica;
use crate::window::Slot;

#[derive(Clone, Debug)]
pub(crate) struct Learning {
    pub primary: NodeId,
    /// The primary's reign this learner learns under. A new reign of the same primary may have
    /// replaced entries this learner holds (a restarted primary loses what it had not made
    /// durable): what was learned under another reign is not trusted.
    pub reign: Reign,
    pub stage: Stage,
    pub last_activity_ms: u64,
}

#[derive(Clone, Debug)]
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

impl Replica {
    pub(crate) fn learning_complete(&self) -> bool {
        matches!(self.learning, Some(Learning { stage: Stage::Complete, .. }))
    }

    pub(crate) fn learning_primary(&self) -> Option<NodeId> {
        self.learning.as_ref().map(|l| l.primary)
    }

    /// Whether this replica is learning from `primary` in its reign `reign`.
    pub(crate) fn learns_from(&self, primary: NodeId, reign: Reign) -> bool {
        self.learning.as_ref().is_some_and(|l| l.primary == primary && l.reign == reign)
    }

    fn request_learn(&self, to: NodeId, out: &mut Vec<Action>) {
        out.push(Action::Send {
            to,
            msg: PeerMessage::LearnRequest { ballot: self.ballot, applied: self.committed },
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
        if config.gpid != self.gpid
            || config.primary != Some(from)
            || config.ballot < self.ballot
            || config.is_member(self.me)
            || self.status == ReplicaStatus::Error
        {
            return;
        }
        if self.status == ReplicaStatus::Learner && self.learns_from(from, reign) {
            // Invited again: the primary lost track of it (or of its request). Ask again; once
            // caught up, the answer is handled as a top-up.
            if let Some(l) = self.learning.as_mut()
                && matches!(l.stage, Stage::Requested | Stage::Complete)
            {
                l.last_activity_ms = now;
                self.request_learn(from, out);
            }
            return;
        }
        self.step_down_if_primary(out);
        self.status = ReplicaStatus::Learner;
        self.ballot = config.ballot;
        self.config = config;
        self.reign = reign;
        // Whatever the log held after the store is not trusted: start it over before anything
        // is acknowledged.
        self.window.clear();
        self.commit_hint = Decree::ZERO;
        out.push(Action::ResetLog);
        self.learning =
            Some(Learning { primary: from, reign, stage: Stage::Requested, last_activity_ms: now });
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
        // The answer to its request, or a top-up once caught up (it may have missed a prepare).
        let waiting = matches!(&self.learning,
            Some(l) if l.primary == from && l.reign == reign && matches!(l.stage, Stage::Requested | Stage::Complete));
        if !waiting || self.status != ReplicaStatus::Learner || config.ballot < self.ballot {
            return;
        }
        self.ballot = config.ballot;
        self.config = config;
        self.reign = reign;
        if let Some(l) = self.learning.as_mut() {
            l.last_activity_ms = now;
        }
        if let Some(cp) = checkpoint.filter(|cp| cp.decree > self.committed) {
            if let Some(l) = self.learning.as_mut() {
                l.stage = Stage::Installing { committed, through, entries };
            }
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
        let Some(Learning { stage: Stage::Installing { committed, through, entries }, .. }) =
            self.learning.clone()
        else {
            return;
        };
        // The store now holds everything through `decree`.
        self.committed = decree;
        self.window.drop_through(decree);
        self.hlc.observe(timetag, self.wall_ms);
        self.continue_learning(now, committed, through, entries, out);
    }

    pub(crate) fn on_checkpoint_failed(&mut self, now: u64, _error: Error, out: &mut Vec<Action>) {
        if let Some(l) = self.learning.as_mut()
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
        let mut new = Vec::new();
        for e in entries.into_iter().filter(|e| e.decree > self.committed) {
            let held = self.window.get(e.decree).map(|s| s.entry.ballot);
            if held.is_some_and(|b| b >= e.ballot) {
                continue; // the same entry already came as a prepare
            }
            self.hlc.observe(e.timetag, self.wall_ms);
            self.window.insert(Slot::new(e.clone(), now));
            new.push(e);
        }
        if !new.is_empty() {
            out.push(Action::Append { entries: new });
        }
        if let Some(l) = self.learning.as_mut() {
            l.stage = Stage::Persisting { committed, through };
        }
        self.check_learned(out);
    }

    /// Completes learning once everything through the learned point is durable.
    fn check_learned(&mut self, out: &mut Vec<Action>) {
        let Some(Learning { stage: Stage::Persisting { committed, through }, primary, .. }) =
            self.learning.clone()
        else {
            return;
        };
        if self.window.durable_through(self.committed) < through {
            return;
        }
        // Entries the primary said were committed come from its log: apply them.
        let mut entries = Vec::new();
        while self.committed < committed {
            let d = self.committed.next();
            match self.window.get(d) {
                Some(s) if s.durable => {}
                _ => break,
            }
            entries.push(self.window.remove(d).expect("checked above").entry);
            self.committed = d;
        }
        if !entries.is_empty() {
            out.push(Action::Apply { entries, replies: vec![] });
        }
        if let Some(l) = self.learning.as_mut() {
            l.stage = Stage::Complete;
        }
        let durable = self.window.durable_through(self.committed);
        out.push(Action::Send {
            to: primary,
            msg: PeerMessage::LearnAck { ballot: self.ballot, through: durable },
        });
        let held: Vec<_> =
            self.window.iter().filter(|s| s.durable).map(|s| (s.entry.ballot, s.entry.decree)).collect();
        for (b, d) in held {
            self.ack(b, d, out);
        }
        self.secondary_commit(self.commit_hint, out);
    }

    pub(crate) fn learner_on_appended(
        &mut self,
        _now: u64,
        newly: &[(tern_core::Ballot, Decree)],
        out: &mut Vec<Action>,
    ) {
        if self.learning_complete() {
            for &(b, d) in newly {
                self.ack(b, d, out);
            }
            self.secondary_commit(self.commit_hint, out);
        } else {
            self.check_learned(out);
        }
    }

    pub(crate) fn learner_tick(&mut self, now: u64, out: &mut Vec<Action>) {
        let timeout = self.opts.learn_timeout_ms;
        let Some(l) = self.learning.as_mut() else { return };
        if matches!(l.stage, Stage::Requested) && now.saturating_sub(l.last_activity_ms) >= timeout {
            l.last_activity_ms = now;
            let p = l.primary;
            self.request_learn(p, out);
        }
    }
}
