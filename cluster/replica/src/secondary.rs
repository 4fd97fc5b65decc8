//! The secondary (and the learner once caught up): ballot checks on every message, logging
//! prepares, and committing what the primary says is committed.
//!
//! The commit rule: a commit point from the primary of reign `R` covers decree `d` only if
//! `d <= R.base` (committed before the reign began, so every member holds the same entry) or
//! the entry held at `d` carries a ballot of reign `R` (the primary sent it). An older entry at
//! `d` that the new primary has not replaced yet may differ from the one it committed.

use tern_core::{Decree, NodeId, PartitionConfig, ReplicaStatus};
use tern_storage::LogEntry;

use crate::message::{Action, PeerMessage, Refusal, Reign};
use crate::replica::Replica;
use crate::window::Slot;

impl Replica {
    /// Checks a message from a primary of `config`; adopts a newer configuration when this
    /// replica belongs to it. Returns the refusal to send back, if the message is refused.
    fn accept_from_primary(
        &mut self,
        from: NodeId,
        config: &PartitionConfig,
        reign: Reign,
        out: &mut Vec<Action>,
    ) -> Option<Refusal> {
        if config.gpid != self.gpid || config.primary != Some(from) {
            return Some(Refusal::NotMember);
        }
        if config.ballot < self.ballot {
            return Some(Refusal::StaleBallot);
        }
        if self.status == ReplicaStatus::Primary && config.ballot == self.ballot {
            return Some(Refusal::NotMember); // two primaries at one ballot cannot happen
        }
        if config.ballot > self.ballot {
            // A newer configuration: whatever this replica was, a primary at an older ballot
            // is no longer one.
            let was_primary = self.status == ReplicaStatus::Primary;
            self.step_down_if_primary(out);
            let follows = if config.is_secondary(self.me) {
                match self.status {
                    ReplicaStatus::Secondary => true,
                    ReplicaStatus::Inactive => was_primary,
                    ReplicaStatus::Learner => self.learning_complete() && self.learns_from(from, reign),
                    _ => false,
                }
            } else {
                self.status == ReplicaStatus::Learner && self.learns_from(from, reign)
            };
            self.ballot = config.ballot;
            self.config = config.clone();
            if !follows {
                if self.status != ReplicaStatus::Error {
                    self.status = ReplicaStatus::Inactive;
                    self.learning = None;
                }
                return Some(Refusal::Inactive);
            }
            if config.is_secondary(self.me) {
                self.status = ReplicaStatus::Secondary;
                self.learning = None;
            }
        }
        match self.status {
            ReplicaStatus::Inactive | ReplicaStatus::Error => return Some(Refusal::Inactive),
            ReplicaStatus::Learner if self.learning_primary() != Some(from) => {
                return Some(Refusal::NotMember);
            }
            ReplicaStatus::Learner if !self.learns_from(from, reign) => {
                if self.learning.as_ref().is_some_and(|l| reign.ballot < l.reign.ballot) {
                    return Some(Refusal::NotMember); // a delayed message of an older reign
                }
                // The primary started a new reign since this replica began learning (it
                // restarted, losing what it had not made durable): what was learned may hold
                // entries the new reign replaced. Start over when invited again.
                self.status = ReplicaStatus::Inactive;
                self.learning = None;
                return Some(Refusal::Inactive);
            }
            _ => {}
        }
        if reign.ballot >= self.reign.ballot {
            self.reign = reign;
        }
        None
    }

    fn refuse_peer(&self, to: NodeId, refusal: Refusal, entry: Option<&LogEntry>, out: &mut Vec<Action>) {
        out.push(Action::Send {
            to,
            msg: PeerMessage::PrepareAck {
                ballot: self.ballot,
                entry_ballot: entry.map(|e| e.ballot).unwrap_or_default(),
                decree: entry.map(|e| e.decree).unwrap_or_default(),
                durable_through: Decree::ZERO,
                refusal: Some(refusal),
            },
        });
    }

    /// Whether this replica acknowledges entries now (a learner only once caught up).
    fn acks_entries(&self) -> bool {
        self.status == ReplicaStatus::Secondary
            || (self.status == ReplicaStatus::Learner && self.learning_complete())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_prepare(
        &mut self,
        now: u64,
        from: NodeId,
        config: PartitionConfig,
        reign: Reign,
        committed: Decree,
        entry: LogEntry,
        out: &mut Vec<Action>,
    ) {
        if let Some(r) = self.accept_from_primary(from, &config, reign, out) {
            return self.refuse_peer(from, r, Some(&entry), out);
        }
        let d = entry.decree;
        if d <= self.committed {
            if self.acks_entries() {
                self.ack(entry.ballot, d, out);
            }
        } else {
            let (held, durable) = match self.window.get(d) {
                Some(s) => (Some(s.entry.ballot), s.durable),
                None => (None, false),
            };
            match held {
                Some(b) if b == entry.ballot => {
                    if durable && self.acks_entries() {
                        self.ack(b, d, out);
                    }
                }
                Some(b) if b > entry.ballot => {} // a stale resend
                _ => {
                    // New, or replaces an entry from an older ballot. The clock passes every
                    // timetag this replica holds: if it becomes primary, its writes are newer
                    // than everything it stored (last-writer-wins relies on that).
                    self.hlc.observe(entry.timetag, self.wall_ms);
                    self.window.insert(Slot::new(entry.clone(), now));
                    out.push(Action::Append { entries: vec![entry] });
                }
            }
        }
        self.commit_hint = self.commit_hint.max(committed);
        self.secondary_commit(self.commit_hint, out);
    }

    pub(crate) fn on_group_check(
        &mut self,
        _now: u64,
        from: NodeId,
        config: PartitionConfig,
        reign: Reign,
        committed: Decree,
        out: &mut Vec<Action>,
    ) {
        if let Some(r) = self.accept_from_primary(from, &config, reign, out) {
            return self.refuse_peer(from, r, None, out);
        }
        self.commit_hint = self.commit_hint.max(committed);
        self.secondary_commit(self.commit_hint, out);
        // Answer, so the primary knows this replica is there and how far it holds the log
        // (a learner with nothing to acknowledge would otherwise look gone).
        if self.acks_entries() {
            out.push(Action::Send {
                to: from,
                msg: PeerMessage::PrepareAck {
                    ballot: self.ballot,
                    entry_ballot: tern_core::Ballot::ZERO,
                    decree: Decree::ZERO,
                    durable_through: self.window.durable_through(self.committed),
                    refusal: None,
                },
            });
        }
    }

    /// Commits and applies, in order, what the primary says is committed, under the commit
    /// rule of the module docs.
    pub(crate) fn secondary_commit(&mut self, upto: Decree, out: &mut Vec<Action>) {
        if !self.acks_entries() {
            return;
        }
        let mut entries = Vec::new();
        while self.committed < upto {
            let d = self.committed.next();
            let ok = match self.window.get(d) {
                Some(s) => s.durable && (s.entry.ballot >= self.reign.ballot || d <= self.reign.base),
                None => false,
            };
            if !ok {
                break;
            }
            let slot = self.window.remove(d).expect("checked above");
            self.committed = d;
            entries.push(slot.entry);
        }
        if !entries.is_empty() {
            out.push(Action::Apply { entries, replies: vec![] });
        }
    }
}
