//! Atomic operations at the primary (incr, check_and_set, check_and_mutate), and duplicated
//! writes arriving from peer clusters.
//!
//! An atomic op reads before it writes. Instead of logging the op (and letting every replica
//! evaluate it when applying), the primary evaluates it once and logs the result as a
//! `WriteOp::Resolved`: the new state of each record and the client's outcome. That is what
//! lets a duplicated table ship atomics (the peer receives record states, not an increment to
//! redo), and it keeps every logged write a plain record write.
//!
//! Order: an atomic op is *parked* until no write to its hash key is queued or uncommitted
//! (so the store it reads holds every earlier write to that key), then the runtime evaluates
//! it against the store (`Action::Resolve`, answered by `Event::Resolved`) and the result joins
//! the next batch like any write. Later writes to the same hash key park behind it, so writes
//! to one hash key are logged in arrival order; other hash keys are not held up.

use tern_core::{Error, Result, WriteOp};

use crate::admission::refuse;
use crate::message::{Action, RequestId};
use crate::primary::PrimaryState;
use crate::replica::{Replica, Shared};
use crate::role::Role;

impl Replica {
    /// The runtime evaluated a parked atomic op (see `PrimaryState::on_resolved`).
    pub(crate) fn on_resolved(
        &mut self,
        now: u64,
        req: RequestId,
        result: Result<WriteOp>,
        out: &mut Vec<Action>,
    ) {
        // Not primary: the op was refused when the primary stepped down.
        if let Role::Primary(p) = &mut self.role {
            p.on_resolved(&mut self.shared, now, req, result, out);
        }
    }
}

impl PrimaryState {
    /// Whether a client write must wait: an atomic op, or any write to a hash key that an
    /// earlier waiting (or resolving) op holds.
    pub(crate) fn must_park(&self, op: &WriteOp) -> bool {
        let hk = op.hash_key();
        op.is_atomic()
            || self.parked.iter().any(|(_, p)| p.hash_key() == hk)
            || self.resolving.values().any(|k| k.as_slice() == hk)
    }

    pub(crate) fn park(
        &mut self,
        s: &mut Shared,
        now: u64,
        req: RequestId,
        op: WriteOp,
        out: &mut Vec<Action>,
    ) {
        if self.parked.len() >= s.opts.max_parked {
            let error = Error::Busy(format!("partition {} has too many writes waiting on hash keys", s.gpid));
            return refuse(req, error, out);
        }
        // A queued write to the same hash key must be logged before the atomic op reads.
        if self.queued.iter().any(|(_, q)| q.hash_key() == op.hash_key()) {
            self.flush_queued(s, now, out);
        }
        self.parked.push_back((req, op));
        self.drain_parked(s, now, out);
    }

    /// Starts every parked op that no longer waits, in arrival order per hash key: atomic ops
    /// go to the runtime for resolution, plain writes to the next batch.
    pub(crate) fn drain_parked(&mut self, s: &mut Shared, now: u64, out: &mut Vec<Action>) {
        if self.parked.is_empty() || self.unable_to_serve(s, now, false).is_some() {
            return;
        }
        let mut held: Vec<Vec<u8>> = self.resolving.values().cloned().collect();
        let mut i = 0;
        while i < self.parked.len() {
            let hk = self.parked[i].1.hash_key();
            if held.iter().any(|k| k.as_slice() == hk) || self.key_in_flight(s, hk) {
                held.push(hk.to_vec());
                i += 1;
                continue;
            }
            let Some((req, op)) = self.parked.remove(i) else { break };
            if op.is_atomic() {
                held.push(op.hash_key().to_vec());
                self.resolving.insert(req, op.hash_key().to_vec());
                // Runs after every `Apply` pushed before it: the store holds all committed
                // writes, and no uncommitted one touches this hash key.
                out.push(Action::Resolve { req, op, now_secs: s.wall_ms / 1000 });
            } else {
                // Now queued (or logged): later ops on this key wait for it to commit.
                self.enqueue(s, now, req, op, out);
            }
        }
    }

    /// Whether a queued or uncommitted entry writes under `hk`.
    fn key_in_flight(&self, s: &Shared, hk: &[u8]) -> bool {
        #[cfg(feature = "planted-bugs")]
        let uncommitted_counts = !s.opts.bug_resolve_past_in_flight;
        #[cfg(not(feature = "planted-bugs"))]
        let uncommitted_counts = true;
        self.queued.iter().any(|(_, q)| q.hash_key() == hk)
            || (uncommitted_counts
                && s.window.iter().any(|slot| slot.entry.mutation.ops.iter().any(|o| o.hash_key() == hk)))
    }

    /// The runtime evaluated a parked atomic op: log its result, or refuse it (nothing of it
    /// was or will be written).
    fn on_resolved(
        &mut self,
        s: &mut Shared,
        now: u64,
        req: RequestId,
        result: Result<WriteOp>,
        out: &mut Vec<Action>,
    ) {
        if self.resolving.remove(&req).is_none() {
            return; // refused meanwhile (the primary stepped down)
        }
        let result = result.and_then(|op| match op {
            WriteOp::Resolved { .. } => Ok(op),
            other => Err(Error::invariant(format!("resolution returned a {} op", other.name()))),
        });
        // A refusal is an answer read from the store, like a read: it needs the lease too.
        match (self.unable_to_serve(s, now, true), result) {
            (Some(error), _) | (None, Err(error)) => refuse(req, error, out),
            (None, Ok(op)) => self.enqueue(s, now, req, op, out),
        }
        self.drain_parked(s, now, out);
    }
}

impl Shared {
    /// A duplicated write (a `Put` with its origin's timetag) is admitted whatever its age: it
    /// applies by last-writer-wins against what the store holds, and a dead record that
    /// compaction may have dropped counts as absent on every replica alike
    /// (`tern_storage::purgeable`), so replicas agree however late it comes. Dead records stay
    /// until every incoming link has confirmed that nothing older is left to ship (the purge
    /// horizon, `docs/duplication.md`), so a write of a link that was down for days still loses
    /// to the newer tombstone it should lose to. It is refused if its timetag is further ahead
    /// of this clock than the maximum clock offset (`CLOCK_AHEAD`); otherwise the clock moves
    /// past it, so that writes accepted here later order after it.
    pub(crate) fn admit_duplicated(&mut self, op: &WriteOp) -> Result<()> {
        let WriteOp::Put { timetag: Some(t), .. } = op else { return Ok(()) };
        // A timetag from the future would win every last-writer-wins decision here until this
        // clock caught up, and moving the clock to it would drag every later write along.
        self.hlc.observe_remote(*t, self.wall_ms).map_err(|ahead_ms| Error::ClockAhead {
            gpid: self.gpid,
            from_cluster: t.cluster().get(),
            ahead_ms,
            max_ms: self.hlc.max_offset_ms(),
        })
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
