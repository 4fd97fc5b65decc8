//! The secondary (and the learner once caught up): ballot checks on every message, logging
//! prepares, and committing what the primary says is committed.
//!
//! The commit rule: a commit point from the primary of reign `R` covers decree `d` only if
//! `d <= R.base` (committed before the reign began, so every member holds the same entry) or
//! the entry held at `d` carries a ballot of reign `R` (the primary sent it). An older entry at
//! `d` that the new primary has not replaced yet may differ from the one it committed.

use tern_core::{Decree, NodeId, PartitionConfig};
use tern_storage::LogEntry;

use crate::message::{Action, PeerMessage, Refusal, Reign};
use crate::replica::Replica;
use crate::role::Role;
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
        if config.gpid != self.shared.gpid || config.primary != Some(from) {
            return Some(Refusal::NotMember);
        }
        if config.ballot < self.shared.ballot {
            return Some(Refusal::StaleBallot);
        }
        if self.role.is_primary() && config.ballot == self.shared.ballot {
            return Some(Refusal::NotMember); // two primaries at one ballot cannot happen
        }
        if config.ballot > self.shared.ballot {
            // A newer configuration: whatever this replica was, a primary at an older ballot
            // is no longer one.
            let was_primary = self.role.is_primary();
            self.step_down_if_primary(out);
            let follows = if config.is_secondary(self.shared.me) {
                match &self.role {
                    Role::Secondary => true,
                    Role::Inactive => was_primary,
                    Role::Learner(l) => l.is_complete() && l.learns_from(from, reign),
                    Role::Primary(_) | Role::Failed(_) => false,
                }
            } else {
                matches!(&self.role, Role::Learner(l) if l.learns_from(from, reign))
            };
            self.shared.ballot = config.ballot;
            self.shared.config = config.clone();
            if !follows {
                if !matches!(self.role, Role::Failed(_)) {
                    self.role = Role::Inactive;
                }
                return Some(Refusal::Inactive);
            }
            if config.is_secondary(self.shared.me) {
                self.role = Role::Secondary;
            }
        }
        match &self.role {
            Role::Inactive | Role::Failed(_) => return Some(Refusal::Inactive),
            Role::Learner(l) if l.primary != from => return Some(Refusal::NotMember),
            Role::Learner(l) if !l.learns_from(from, reign) => {
                if reign.ballot < l.reign.ballot {
                    return Some(Refusal::NotMember); // a delayed message of an older reign
                }
                // The primary started a new reign since this replica began learning (it
                // restarted, losing what it had not made durable): what was learned may hold
                // entries the new reign replaced. Start over when invited again.
                self.role = Role::Inactive;
                return Some(Refusal::Inactive);
            }
            Role::Primary(_) | Role::Secondary | Role::Learner(_) => {}
        }
        if reign.ballot >= self.shared.reign.ballot {
            self.shared.reign = reign;
        }
        None
    }

    fn refuse_peer(&self, to: NodeId, refusal: Refusal, entry: Option<&LogEntry>, out: &mut Vec<Action>) {
        out.push(Action::Send {
            to,
            msg: PeerMessage::PrepareAck {
                ballot: self.shared.ballot,
                entry_ballot: entry.map(|e| e.ballot).unwrap_or_default(),
                decree: entry.map(|e| e.decree).unwrap_or_default(),
                durable_through: Decree::ZERO,
                refusal: Some(refusal),
            },
        });
    }

    /// Whether this replica acknowledges entries now (a learner only once caught up).
    fn acks_entries(&self) -> bool {
        match &self.role {
            Role::Secondary => true,
            Role::Learner(l) => l.is_complete(),
            Role::Inactive | Role::Primary(_) | Role::Failed(_) => false,
        }
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
        if d <= self.shared.committed {
            if self.acks_entries() {
                self.shared.ack(entry.ballot, d, out);
            }
        } else {
            let (held, durable) = match self.shared.window.get(d) {
                Some(s) => (Some(s.entry.ballot), s.durable),
                None => (None, false),
            };
            match held {
                Some(b) if b == entry.ballot => {
                    if durable && self.acks_entries() {
                        self.shared.ack(b, d, out);
                    }
                }
                Some(b) if b > entry.ballot => {} // a stale resend
                _ => {
                    // New, or replaces an entry from an older ballot. The clock passes every
                    // timetag this replica holds: if it becomes primary, its writes are newer
                    // than everything it stored (last-writer-wins relies on that).
                    self.shared.hlc.observe(entry.timetag, self.shared.wall_ms);
                    self.shared.window.insert(Slot::new(entry.clone(), now));
                    out.push(Action::Append { entries: vec![entry] });
                }
            }
        }
        self.shared.commit_hint = self.shared.commit_hint.max(committed);
        self.secondary_commit(self.shared.commit_hint, out);
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
        self.shared.commit_hint = self.shared.commit_hint.max(committed);
        self.secondary_commit(self.shared.commit_hint, out);
        // Answer, so the primary knows this replica is there and how far it holds the log
        // (a learner with nothing to acknowledge would otherwise look gone).
        if self.acks_entries() {
            out.push(Action::Send {
                to: from,
                msg: PeerMessage::PrepareAck {
                    ballot: self.shared.ballot,
                    entry_ballot: tern_core::Ballot::ZERO,
                    decree: Decree::ZERO,
                    durable_through: self.shared.window.durable_through(self.shared.committed),
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
        let s = &mut self.shared;
        let mut entries = Vec::new();
        while s.committed < upto {
            let d = s.committed.next();
            let ok = match s.window.get(d) {
                Some(slot) => slot.durable && (slot.entry.ballot >= s.reign.ballot || d <= s.reign.base),
                None => false,
            };
            if !ok {
                break;
            }
            let slot = s.window.remove(d).expect("checked above");
            s.committed = d;
            entries.push(slot.entry);
        }
        if !entries.is_empty() {
            out.push(Action::Apply { entries, replies: vec![] });
        }
    }
}
