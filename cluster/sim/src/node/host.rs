//! What the shared executor's `ReplicaHost` means in a simulated replica server: an in-memory
//! store and log on the node's simulated disk (log syncs complete after a random delay, and may
//! fail), the simulated network, and the run's observations (every applied entry, read and
//! acknowledged write is checked). The executor itself is `tern_host`, the server's own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::Rng;
use tern_core::mutation::WriteOutcome;
use tern_core::read::ReadResult;
use tern_core::{Ballot, ConfigChange, Decree, Error, Gpid, NodeId, ReplicaStatus, Result};
use tern_duplication::DupRules;
use tern_host::{LogRead, ReplicaHost};
use tern_replica::{CheckpointRef, PeerMessage, RequestId};
use tern_storage::{LogEntry, MemDisk, MemMutationLog, MemPartitionStore, MutationLog, PartitionStore};

use crate::checker::clock_bound::check as check_clock;
use crate::dup::NodeDup;
use crate::net::{Addr, Msg, ResponseBody};
use crate::observe::digest;
use crate::world_ctx::{Ctx, Ev};

/// A hosted replica's store and log.
pub(crate) struct ReplicaIo {
    pub(crate) store: MemPartitionStore,
    pub(crate) log: MemMutationLog,
    /// Appended, not yet synced.
    pub(crate) unsynced: Vec<(Ballot, Decree)>,
    pub(crate) sync_scheduled: bool,
}

/// One replica's view of its simulated node while the executor runs its actions.
pub(crate) struct SimHost<'a, 'c> {
    pub(crate) gpid: Gpid,
    pub(crate) me: NodeId,
    pub(crate) idx: usize,
    pub(crate) incarnation: u64,
    pub(crate) meta: Addr,
    /// The node's cluster (0 for the first).
    pub(crate) cluster: usize,
    pub(crate) io: &'a mut ReplicaIo,
    pub(crate) disk: &'a MemDisk,
    pub(crate) requests: &'a mut BTreeMap<RequestId, (Addr, u64)>,
    pub(crate) dup: &'a mut Option<NodeDup>,
    pub(crate) rules: &'a DupRules,
    pub(crate) ctx: &'a mut Ctx<'c>,
}

impl SimHost<'_, '_> {
    fn violation(&mut self, what: String) {
        let (me, g) = (self.me, self.gpid);
        self.ctx.obs.violations.push(format!("{me} {g}: {what}"));
    }

    /// Sends the answer to request `req`: to a batch being received from the other cluster, or
    /// to the client that asked.
    fn respond(&mut self, req: RequestId, body: ResponseBody) {
        let me = Addr::Node(self.me);
        if let Some(dup) = self.dup.as_mut()
            && dup.on_answer(self.ctx, me, req, &body)
        {
            return;
        }
        if let Some((to, id)) = self.requests.remove(&req) {
            self.ctx.send(me, to, Msg::Response { id, body });
        }
    }
}

impl ReplicaHost for SimHost<'_, '_> {
    type Store = MemPartitionStore;

    fn store(&self) -> Result<&MemPartitionStore> {
        Ok(&self.io.store)
    }

    fn store_mut(&mut self) -> Result<&mut MemPartitionStore> {
        Ok(&mut self.io.store)
    }

    fn append(&mut self, entries: Vec<LogEntry>) {
        if let Err(e) = self.io.log.append(&entries) {
            return self.violation(format!("log append failed: {e}"));
        }
        self.io.unsynced.extend(entries.iter().map(|e| (e.ballot, e.decree)));
        if !self.io.sync_scheduled {
            self.io.sync_scheduled = true;
            let delay = self.ctx.rng.random_range(200..2_000);
            let ev = Ev::LogSync { node: self.idx, gpid: self.gpid, incarnation: self.incarnation };
            self.ctx.after(delay, ev);
        }
    }

    fn read_log(&self, from: Decree, max: usize) -> Result<LogRead> {
        Ok((self.io.log.decree_range(), self.io.log.read(from, max)?))
    }

    fn reset_log(&mut self, keep: Vec<LogEntry>) -> Result<()> {
        self.io.unsynced.clear();
        self.io.log.reset()?;
        self.append_applied(keep)
    }

    fn append_applied(&mut self, entries: Vec<LogEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.io.log.append(&entries)?;
        self.io.log.sync()
    }

    fn gc_log(&mut self, below: Decree) {
        if let Err(e) = self.io.log.gc_below(below) {
            self.violation(format!("log gc failed: {e}"));
        }
    }

    fn flush_store(&mut self) -> Result<Decree> {
        self.io.store.flush()
    }

    fn sync_store(&mut self) -> Result<Decree> {
        self.io.store.flush()
    }

    fn dup_rules(&self) -> &DupRules {
        self.rules
    }

    fn dup_log_floor(&self) -> Option<Decree> {
        self.dup.as_ref().and_then(|d| d.log_floor(self.rules, self.gpid))
    }

    fn send(&mut self, to: NodeId, msg: PeerMessage) {
        self.ctx.send(Addr::Node(self.me), Addr::Node(to), Msg::Peer { gpid: self.gpid, msg });
    }

    fn propose(&mut self, gpid: Gpid, ballot: Ballot, change: ConfigChange) {
        self.ctx.send(Addr::Node(self.me), self.meta, Msg::Propose { gpid, ballot, change });
    }

    fn make_checkpoint(&mut self) -> Result<CheckpointRef> {
        let id = *self.ctx.next_checkpoint;
        *self.ctx.next_checkpoint += 1;
        let path = PathBuf::from(format!("/checkpoint/{id}"));
        let decree = self.io.store.checkpoint(&path)?;
        if let Some(image) = self.disk.export(&path) {
            self.ctx.checkpoints.insert(id, (image, vec![]));
        }
        self.disk.remove(&path);
        Ok(CheckpointRef { id, decree, timetag: self.io.store.last_applied_timetag() })
    }

    fn carry_with_checkpoint(&mut self, checkpoint: &CheckpointRef, entries: Vec<LogEntry>) -> Result<()> {
        if let Some((_, carried)) = self.ctx.checkpoints.get_mut(&checkpoint.id) {
            *carried = entries;
        }
        Ok(())
    }

    fn fetch_checkpoint(&mut self, _from: NodeId, checkpoint: CheckpointRef) {
        // The transfer takes a while and fails if the source is unreachable at the start.
        let delay = self.ctx.rng.random_range(5_000..50_000);
        let ok = !self.ctx.faulty || self.ctx.rng.random_bool(0.9);
        let ev = Ev::CheckpointFetched {
            node: self.idx,
            gpid: self.gpid,
            incarnation: self.incarnation,
            id: checkpoint.id,
            ok,
        };
        self.ctx.after(delay, ev);
    }

    fn write_done(&mut self, req: RequestId, decree: Decree, outcome: Result<WriteOutcome>) {
        match outcome {
            Ok(outcome) => {
                if !matches!(outcome, WriteOutcome::Failed(_)) {
                    self.ctx.obs.acked.push((self.gpid, decree));
                }
                // A client write taken while another copy was the active one: a split brain.
                crate::dr::on_write_done(self.ctx, self.me, req);
                self.respond(req, ResponseBody::Written { outcome, decree });
            }
            Err(error) => self.respond(req, ResponseBody::Refused { error, not_applied: false }),
        }
    }

    fn read_done(&mut self, req: RequestId, ballot: Ballot, result: Result<ReadResult>) {
        match result {
            Ok(ReadResult::Get(value)) => {
                self.ctx.obs.served.push((self.gpid, self.ctx.now_us, self.me, ballot));
                self.respond(req, ResponseBody::Read { value });
            }
            Ok(other) => self.violation(format!("the simulator only reads with get, not {other:?}")),
            Err(e) => self.violation(format!("read failed: {e}")),
        }
    }

    fn refused(&mut self, req: RequestId, error: Error, not_applied: bool) {
        self.respond(req, ResponseBody::Refused { error, not_applied });
    }

    fn applied(&mut self, entries: &[LogEntry]) {
        let (me, g) = (self.me, self.gpid);
        for e in entries {
            let d = digest(e);
            match self.ctx.obs.applied.get(&(g, e.decree.0)) {
                Some((first, who)) if *first != d => self.ctx.obs.violations.push(format!(
                    "committed prefixes disagree (PacificA §2.2 commit invariant): {me} applied decree {} of {g} as a different entry than {who} did",
                    e.decree
                )),
                Some(_) => {}
                None => {
                    self.ctx.obs.applied.insert((g, e.decree.0), (d, me));
                    let clocks = self.ctx.obs.clocks.get(self.cluster);
                    if let Some(v) = clocks.and_then(|c| check_clock(c, self.cluster, self.ctx.now_us, e)) {
                        self.ctx.obs.violations.push(format!("{me} {g}: {v}"));
                    }
                    if let Some(dup) = self.dup.as_ref()
                        && let Err(err) = self.ctx.obs.dup.record_origin(g, e, dup.cluster)
                    {
                        self.ctx.obs.violations.push(format!("{me} {g}: d{} cannot be shipped: {err}", e.decree));
                    }
                }
            }
        }
    }

    fn role_changed(
        &mut self,
        before: (ReplicaStatus, Ballot),
        after: (ReplicaStatus, Ballot),
        failure: Option<&Error>,
    ) {
        let (me, g) = (self.me, self.gpid);
        let why = failure.map(|e| format!(": {e}")).unwrap_or_default();
        self.ctx.trace(format!(
            "{me} {g} {} b{} -> {} b{}{why}",
            before.0.name(),
            before.1,
            after.0.name(),
            after.1
        ));
    }

    fn trouble(&mut self, what: String) {
        self.violation(what);
    }
}
