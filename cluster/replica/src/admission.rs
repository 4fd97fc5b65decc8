//! Client requests at the primary: admission (role, lease, limits), batching client writes
//! into entries, and reads. A request is answered here only when it certainly was not applied;
//! an admitted write is answered when its entry commits (`PrimaryState::try_commit`) or when
//! the primary steps down (`PrimaryState::step_down`). Atomic ops and duplicated writes take
//! a detour through `resolve.rs`.

use tern_core::{Error, WriteOp};
use tern_storage::LogEntry;

use crate::message::{Action, ReadOp, RequestId};
use crate::primary::PrimaryState;
use crate::replica::{Replica, Shared};
use crate::role::Role;
use crate::window::Slot;

/// Refuses a request that certainly was not and will not be applied.
pub(crate) fn refuse(req: RequestId, error: Error, out: &mut Vec<Action>) {
    out.push(Action::Refuse { req, error, not_applied: true });
}

impl Replica {
    /// A batch of client writes (`Event::ClientWrites`).
    pub(crate) fn on_writes(&mut self, now: u64, writes: Vec<(RequestId, WriteOp)>, out: &mut Vec<Action>) {
        let Role::Primary(p) = &mut self.role else {
            for (req, _) in writes {
                refuse(req, Error::NotPrimary { gpid: self.shared.gpid }, out);
            }
            return;
        };
        let s = &mut self.shared;
        p.holding = true;
        for (req, op) in writes {
            p.on_write(s, now, req, op, out);
        }
        p.holding = false;
        if !s.pipeline_full() {
            p.flush_queued(s, now, out);
        }
    }

    pub(crate) fn on_write(&mut self, now: u64, req: RequestId, op: WriteOp, out: &mut Vec<Action>) {
        match &mut self.role {
            Role::Primary(p) => p.on_write(&mut self.shared, now, req, op, out),
            _ => refuse(req, Error::NotPrimary { gpid: self.shared.gpid }, out),
        }
    }

    /// Why this replica cannot serve a request now, if it cannot.
    pub(crate) fn unable_to_serve(&self, now: u64, need_lease: bool) -> Option<Error> {
        match &self.role {
            Role::Primary(p) => p.unable_to_serve(&self.shared, now, need_lease),
            _ => Some(Error::NotPrimary { gpid: self.shared.gpid }),
        }
    }

    pub(crate) fn on_read(&mut self, now: u64, req: RequestId, read: ReadOp, out: &mut Vec<Action>) {
        #[cfg(feature = "planted-bugs")]
        let need_lease = !self.shared.opts.bug_read_without_lease;
        #[cfg(not(feature = "planted-bugs"))]
        let need_lease = true;
        if let Some(e) = self.unable_to_serve(now, need_lease) {
            return refuse(req, e, out);
        }
        out.push(Action::ServeRead { req, read, ballot: self.shared.ballot });
    }
}

impl Shared {
    /// Whether new client writes should wait for the next batch: `batch_max_uncommitted`
    /// entries are already prepared and not committed. Below that a write leaves at once, even
    /// while the previous entry is still being logged here: the node's log writer groups
    /// appends for one fsync and peer links carry many messages per frame, so an entry per
    /// write costs no more CPU, and the prepare reaches the secondaries a log turn sooner
    /// (`docs/decisions.md`, "A primary sends each write at once").
    pub(crate) fn pipeline_full(&self) -> bool {
        self.window.len() >= self.opts.batch_max_uncommitted
    }
}

impl PrimaryState {
    /// Why this primary cannot serve a request now, if it cannot.
    pub(crate) fn unable_to_serve(&self, s: &Shared, now: u64, need_lease: bool) -> Option<Error> {
        if !self.active {
            return Some(Error::Unavailable(format!("partition {} primary is reconciling", s.gpid)));
        }
        if need_lease && !s.lease_valid(now) {
            return Some(Error::Unavailable(format!("partition {} primary has no lease", s.gpid)));
        }
        None
    }

    fn on_write(&mut self, s: &mut Shared, now: u64, req: RequestId, op: WriteOp, out: &mut Vec<Action>) {
        if let Some(e) = self.unable_to_serve(s, now, true) {
            return refuse(req, e, out);
        }
        if let Err(e) = s.opts.limits.check_op(&op) {
            return refuse(req, e, out);
        }
        if s.last_prepared().0 - s.committed.0 >= s.opts.max_inflight {
            return refuse(
                req,
                Error::Busy(format!("partition {} has too many writes in flight", s.gpid)),
                out,
            );
        }
        if matches!(op, WriteOp::Resolved { .. }) {
            let e = Error::InvalidArgument("a resolved op is logged by a primary, never sent".into());
            return refuse(req, e, out);
        }
        if let Err(e) = s.admit_duplicated(&op) {
            return refuse(req, e, out);
        }
        if self.must_park(&op) {
            return self.park(s, now, req, op, out);
        }
        self.enqueue(s, now, req, op, out);
    }

    /// Adds an admitted write to the next batch.
    pub(crate) fn enqueue(
        &mut self,
        s: &mut Shared,
        now: u64,
        req: RequestId,
        op: WriteOp,
        out: &mut Vec<Action>,
    ) {
        // Batching: while the pipeline is full (see `Shared::pipeline_full`), writes wait and
        // then go out together as one entry: one log record, one prepare per secondary, one
        // ack, one store write for all of them. Below that a write leaves at once, so batching
        // costs latency only under heavy load. A batch holds distinct hash keys only, so that
        // no two of its ops touch the same record (they share the entry's timetag).
        if self.queued.iter().any(|(_, q)| q.hash_key() == op.hash_key()) {
            self.flush_queued(s, now, out);
        }
        self.queued_bytes += op.payload_bytes();
        self.queued.push((req, op));
        if (!s.pipeline_full() && !self.holding)
            || self.queued.len() >= s.opts.batch_max_ops
            || self.queued_bytes >= s.opts.batch_max_bytes
        {
            self.flush_queued(s, now, out);
        }
    }

    /// Sends the queued client writes as one entry.
    pub(crate) fn flush_queued(&mut self, s: &mut Shared, now: u64, out: &mut Vec<Action>) {
        if self.queued.is_empty() {
            return;
        }
        self.queued_bytes = 0;
        let (reqs, ops): (Vec<RequestId>, Vec<WriteOp>) =
            std::mem::take(&mut self.queued).into_iter().unzip();
        let entry = LogEntry {
            ballot: s.reign.ballot,
            decree: s.last_prepared().next(),
            timetag: s.hlc.now(s.wall_ms),
            mutation: tern_core::Mutation::new(ops),
        };
        self.pending.insert(entry.decree.0, reqs);
        s.window.insert(Slot::new(entry.clone(), now));
        self.send_prepare(s, &entry, out);
        out.push(Action::Append { entries: vec![entry] });
    }
}
