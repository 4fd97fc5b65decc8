//! What the shared executor's [`ReplicaHost`] means on a replica server: the replica's RocksDB
//! store, its log in the node's group-commit log writer, peer links, the meta server, and the
//! requests waiting for answers. Completions (an append made durable, a log reset that failed,
//! a checkpoint fetched) come back to the replica's task through its control queue.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tern_core::mutation::WriteOutcome;
use tern_core::read::ReadResult;
use tern_core::{Ballot, ConfigChange, Decree, Error, Gpid, NodeId, ReplicaStatus, Result};
use tern_duplication::DupRules;
use tern_host::{LogRead, ReplicaHost};
use tern_replica::{CheckpointRef, Event, PeerMessage, RequestId};
use tern_rocks::RocksPartitionStore;
use tern_storage::{LogEntry, PartitionStore};
use tokio::sync::mpsc;

use super::HostEnv;
use super::checkpoint;
use super::reply::ReplyTo;
use super::task::{Input, RawChunk};
use crate::dup::carried;

pub(super) struct ServerHost {
    pub(super) env: Arc<HostEnv>,
    pub(super) gpid: Gpid,
    dir: PathBuf,
    /// `None` only while a checkpoint replaces it.
    store: Option<RocksPartitionStore>,
    /// The task's control queue: where completions go.
    control: mpsc::UnboundedSender<Input>,
    writes: BTreeMap<RequestId, ReplyTo<WriteOutcome>>,
    reads: BTreeMap<RequestId, ReplyTo<ReadResult>>,
    next_request: RequestId,
}

impl ServerHost {
    pub(super) fn new(
        env: Arc<HostEnv>,
        gpid: Gpid,
        dir: PathBuf,
        store: RocksPartitionStore,
        control: mpsc::UnboundedSender<Input>,
    ) -> ServerHost {
        ServerHost {
            env,
            gpid,
            dir,
            store: Some(store),
            control,
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_request: 0,
        }
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        self.next_request
    }

    /// Registers where the answer to a write goes; returns the request's id for the replica.
    pub(super) fn expect_write(&mut self, reply: ReplyTo<WriteOutcome>) -> RequestId {
        let req = self.request_id();
        self.writes.insert(req, reply);
        req
    }

    pub(super) fn expect_read(&mut self, reply: ReplyTo<ReadResult>) -> RequestId {
        let req = self.request_id();
        self.reads.insert(req, reply);
        req
    }

    /// The timetag of the newest entry the store applied (zero while it is replaced).
    pub(super) fn applied_timetag(&self) -> tern_core::Timetag {
        self.store.as_ref().map_or(tern_core::Timetag::ZERO, |s| s.last_applied_timetag())
    }

    pub(super) fn take_store(&mut self) -> Option<RocksPartitionStore> {
        self.store.take()
    }

    /// A RocksDB checkpoint of the store into `dir`, for a backup; the decree inside it.
    pub(super) fn backup_checkpoint(&self, dir: &std::path::Path) -> Result<Decree> {
        let store = self.store()?;
        tokio::task::block_in_place(|| store.checkpoint(dir))
    }

    /// A callback for the log writer: a failure stops the replica.
    fn on_log_failure(&self, what: &'static str) -> Box<dyn FnOnce(Result<()>) + Send> {
        let (tx, gpid) = (self.control.clone(), self.gpid);
        Box::new(move |r| {
            if let Err(error) = r {
                tracing::error!(%gpid, "{what} failed: {error}");
                let _ = tx.send(Input::Event(Box::new(Event::AppendFailed { error })));
            }
        })
    }

    /// Replaces the store with the checkpoint downloaded into `dir`, keeps the log entries it
    /// carried for the links, and returns what to tell the replica.
    pub(super) fn install_checkpoint(&mut self, dir: PathBuf, checkpoint: CheckpointRef) -> Event {
        let store_dir = self.dir.join("store");
        self.store = None; // closes the old store
        let carried = carried::take(&dir).unwrap_or_else(|e| {
            tracing::warn!(gpid = %self.gpid, "checkpoint {}: no log for duplication: {e}", checkpoint.id);
            vec![]
        });
        let result = tokio::task::block_in_place(|| {
            if store_dir.exists() {
                std::fs::remove_dir_all(&store_dir)
                    .map_err(|e| Error::io(format!("remove {}", store_dir.display()), e))?;
            }
            self.env.backend.open_from_checkpoint(&dir, &store_dir)
        });
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok(store) => {
                let (decree, timetag) = (store.last_applied_decree(), store.last_applied_timetag());
                self.store = Some(store);
                tracing::info!(gpid = %self.gpid, "installed checkpoint {} at decree {decree}", checkpoint.id);
                match tern_host::keep_carried(self, carried, decree) {
                    Ok(()) => Event::CheckpointInstalled { decree, timetag },
                    Err(error) => Event::AppendFailed { error },
                }
            }
            Err(error) => {
                tracing::error!(gpid = %self.gpid, "installing checkpoint {} failed: {error}", checkpoint.id);
                // Reopen whatever is there so the replica can try again.
                self.store = self.env.backend.open(&store_dir).ok();
                Event::CheckpointFailed { error }
            }
        }
    }

    /// Up to `limit` raw records after `after`, for a full sync.
    pub(super) fn scan_raw(&self, after: Option<Vec<u8>>, limit: usize) -> Result<RawChunk> {
        let store = self.store()?;
        let applied = store.last_applied_decree();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let range = tern_core::key::KeyRange { start, end: std::ops::Bound::Unbounded };
        let mut records = Vec::with_capacity(limit.min(4096));
        let mut done = true;
        store.raw_scan(&range, false, &mut |k, v| {
            if records.len() >= limit {
                done = false;
                return Ok(std::ops::ControlFlow::Break(()));
            }
            records.push((k.to_vec(), v.to_vec()));
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        Ok(RawChunk { applied, records, done })
    }
}

impl ReplicaHost for ServerHost {
    type Store = RocksPartitionStore;

    fn store(&self) -> Result<&RocksPartitionStore> {
        self.store
            .as_ref()
            .ok_or_else(|| Error::Unavailable(format!("replica {} is installing a checkpoint", self.gpid)))
    }

    fn store_mut(&mut self) -> Result<&mut RocksPartitionStore> {
        let gpid = self.gpid;
        self.store
            .as_mut()
            .ok_or_else(|| Error::Unavailable(format!("replica {gpid} is installing a checkpoint")))
    }

    fn append(&mut self, entries: Vec<LogEntry>) {
        let tx = self.control.clone();
        self.env.logs.append(
            self.gpid,
            entries,
            Box::new(move |r| {
                let event = match r {
                    Ok(entries) => Event::Appended { entries },
                    Err(error) => Event::AppendFailed { error },
                };
                let _ = tx.send(Input::Event(Box::new(event)));
            }),
        );
    }

    fn read_log(&self, from: Decree, max: usize) -> Result<LogRead> {
        tokio::task::block_in_place(|| self.env.logs.read(self.gpid, from, max))
    }

    fn reset_log(&mut self, keep: Vec<LogEntry>) -> Result<()> {
        self.env.logs.reset(self.gpid, self.on_log_failure("log reset"));
        self.append_applied(keep)
    }

    fn append_applied(&mut self, entries: Vec<LogEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let n = entries.len();
        let failed = self.on_log_failure("keeping log entries for duplication");
        let gpid = self.gpid;
        self.env.logs.append(
            self.gpid,
            entries,
            Box::new(move |r| match r {
                Ok(_) => tracing::debug!(%gpid, "kept {n} log entries for duplication"),
                Err(e) => failed(Err(e)),
            }),
        );
        Ok(())
    }

    fn gc_log(&mut self, below: Decree) {
        self.env.logs.gc(self.gpid, below);
    }

    fn flush_store(&mut self) -> Result<Decree> {
        let store = self.store()?;
        // The flush runs in RocksDB's threads; the log is collected below what earlier flushes
        // made durable (one interval behind), so the partition never waits for a flush here.
        tokio::task::block_in_place(|| store.request_flush())?;
        store.durable_decree()
    }

    fn sync_store(&mut self) -> Result<Decree> {
        let store = self.store()?;
        tokio::task::block_in_place(|| store.flush())
    }

    fn dup_rules(&self) -> &DupRules {
        self.env.links.rules()
    }

    fn dup_log_floor(&self) -> Option<Decree> {
        // The links' floor and what running operations (a backup's upload) hold.
        super::holds::lowest(self.env.links.log_floor(self.gpid), self.env.holds.floor(self.gpid))
    }

    fn send(&mut self, to: NodeId, msg: PeerMessage) {
        self.env.peers.send(to, self.gpid, &msg);
    }

    fn propose(&mut self, gpid: Gpid, ballot: Ballot, change: ConfigChange) {
        let (meta, me) = (self.env.meta.clone(), self.env.id);
        tokio::spawn(async move { super::propose::propose(&meta, me, gpid, ballot, change).await });
    }

    fn make_checkpoint(&mut self) -> Result<CheckpointRef> {
        let store = self.store()?;
        tokio::task::block_in_place(|| checkpoint::create(&self.env, self.gpid, store))
    }

    fn carry_with_checkpoint(&mut self, cp: &CheckpointRef, entries: Vec<LogEntry>) -> Result<()> {
        let dir = checkpoint::path_of(&self.env, self.gpid, cp.id);
        tokio::task::block_in_place(|| carried::write(&dir, &entries))
    }

    fn fetch_checkpoint(&mut self, from: NodeId, cp: CheckpointRef) {
        checkpoint::spawn_fetch(self.env.clone(), self.gpid, from, cp, self.control.clone());
    }

    fn write_done(&mut self, req: RequestId, _decree: Decree, outcome: Result<WriteOutcome>) {
        if let Some(r) = self.writes.remove(&req) {
            r.send(match outcome {
                Ok(WriteOutcome::Failed(e)) | Err(e) => Err(e),
                Ok(o) => Ok(o),
            });
        }
    }

    fn read_done(&mut self, req: RequestId, _ballot: Ballot, result: Result<ReadResult>) {
        if let Some(r) = self.reads.remove(&req) {
            r.send(result);
        }
    }

    fn refused(&mut self, req: RequestId, error: Error, not_applied: bool) {
        if let Some(r) = self.writes.remove(&req) {
            // Refused after it was logged: a later primary may still apply it.
            let error = if not_applied {
                error
            } else {
                Error::OutcomeUnknown(format!("{error}; the write may still be applied"))
            };
            r.send(Err(error));
        } else if let Some(r) = self.reads.remove(&req) {
            r.send(Err(error));
        }
    }

    fn role_changed(
        &mut self,
        before: (ReplicaStatus, Ballot),
        after: (ReplicaStatus, Ballot),
        failure: Option<&Error>,
    ) {
        let why = failure.map(|e| format!(": {e}")).unwrap_or_default();
        tracing::info!(gpid = %self.gpid, "{} b{} -> {} b{}{why}", before.0.name(), before.1, after.0.name(), after.1);
    }

    fn trouble(&mut self, what: String) {
        tracing::warn!(gpid = %self.gpid, "{what}");
    }
}
