//! The replicated state and its snapshots: openraft's [`RaftStateMachine`].
//!
//! The state `S` lives in memory behind a `RwLock` shared with [`super::RaftGroup::read`],
//! together with the last applied log id and the last applied membership. `apply` does not write
//! to disk: the state is made durable by snapshots plus the (durable) log. A snapshot is the file
//! `snapshot` in the group's directory: two CRC-checked records, the JSON of openraft's
//! `SnapshotMeta` and (after a format byte) the bytes of [`Replicated::snapshot`], replaced atomically (written to a
//! temporary file, fsynced, renamed, directory fsynced) before openraft is told about it, so
//! openraft only purges log entries that a durable snapshot covers. Only the latest snapshot is
//! kept.
//!
//! On open, the state is rebuilt from the snapshot ([`Replicated::restore`]); openraft then
//! re-applies the log entries after it up to the durable committed log id, and the rest as soon as
//! the member learns they are committed.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StoredMembership,
};
use tern_core::{Error, Result};

use super::Replicated;
use super::file::{self, blocking};
use super::types::{Entry, LogId, StorageErr, Types, storage_err};

/// The name of the snapshot file inside a group's directory.
pub const SNAPSHOT_FILE: &str = "snapshot";

type Meta = SnapshotMeta<u64, BasicNode>;

/// The applied state and where it is in the log.
pub(crate) struct Applied<S> {
    pub(crate) state: S,
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, BasicNode>,
}

/// A shared handle to the applied state.
pub(crate) type AppliedHandle<S> = Arc<RwLock<Applied<S>>>;

pub(crate) fn read_applied<S>(a: &RwLock<Applied<S>>) -> std::sync::RwLockReadGuard<'_, Applied<S>> {
    a.read().unwrap_or_else(PoisonError::into_inner)
}

fn write_applied<S>(a: &RwLock<Applied<S>>) -> std::sync::RwLockWriteGuard<'_, Applied<S>> {
    a.write().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone)]
struct StoredSnapshot {
    meta: Meta,
    data: Arc<Vec<u8>>,
}

/// The latest snapshot, on disk and in memory.
struct SnapshotFile {
    dir: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
}

impl SnapshotFile {
    fn load(dir: &Path) -> Result<Option<StoredSnapshot>> {
        let Some(records) = file::read_records(dir, SNAPSHOT_FILE)? else { return Ok(None) };
        let [meta, data] = records.as_slice() else {
            return Err(Error::corruption(format!("{SNAPSHOT_FILE}: {} records, want 2", records.len())));
        };
        let meta: Meta = serde_json::from_slice(meta)
            .map_err(|e| Error::corruption(format!("{SNAPSHOT_FILE}: bad meta: {e}")))?;
        Ok(Some(StoredSnapshot { meta, data: Arc::new(data.clone()) }))
    }

    /// Makes `snap` durable and current, unless the current snapshot is newer. Blocking.
    fn save(&self, snap: StoredSnapshot) -> Result<()> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.meta.last_log_id > snap.meta.last_log_id) {
            return Ok(());
        }
        let meta = serde_json::to_vec(&snap.meta)
            .map_err(|e| Error::invariant(format!("encode snapshot meta: {e}")))?;
        // The data record starts with a format byte (1): records are never empty, states may be.
        let data: &[u8] = &snap.data;
        let mut tagged = Vec::with_capacity(data.len() + 1);
        tagged.push(1u8);
        tagged.extend_from_slice(data);
        file::write_records(&self.dir, SNAPSHOT_FILE, &[&meta, &tagged])?;
        *current = Some(snap);
        Ok(())
    }
}

fn untag(mut snap: StoredSnapshot) -> Result<StoredSnapshot> {
    match snap.data.split_first() {
        Some((1, rest)) => {
            snap.data = Arc::new(rest.to_vec());
            Ok(snap)
        }
        _ => Err(Error::corruption(format!("{SNAPSHOT_FILE}: bad data record"))),
    }
}

fn snapshot_err(meta: Option<&Meta>, verb: ErrorVerb, e: &Error) -> StorageErr {
    storage_err(ErrorSubject::Snapshot(meta.map(|m| m.signature())), verb, e)
}

/// The state machine of one member (openraft's `RaftStateMachine`).
pub struct StateMachineStore<S: Replicated> {
    applied: AppliedHandle<S>,
    snapshots: Arc<SnapshotFile>,
}

impl<S: Replicated> fmt::Debug for StateMachineStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = read_applied(&self.applied);
        f.debug_struct("StateMachineStore").field("last_applied", &a.last_applied).finish()
    }
}

impl<S: Replicated> StateMachineStore<S> {
    /// Opens the state machine in `dir` (which must exist) with `state` as the state before any
    /// command: if `dir` holds a snapshot, `state` is restored from it. Blocking.
    pub fn open(dir: &Path, mut state: S) -> Result<StateMachineStore<S>> {
        let current = SnapshotFile::load(dir)?.map(untag).transpose()?;
        let (last_applied, membership) = match &current {
            Some(snap) => {
                state.restore(&snap.data)?;
                (snap.meta.last_log_id, snap.meta.last_membership.clone())
            }
            None => (None, StoredMembership::default()),
        };
        Ok(StateMachineStore {
            applied: Arc::new(RwLock::new(Applied { state, last_applied, membership })),
            snapshots: Arc::new(SnapshotFile { dir: dir.to_path_buf(), current: Mutex::new(current) }),
        })
    }

    pub(crate) fn applied(&self) -> AppliedHandle<S> {
        self.applied.clone()
    }
}

/// Builds snapshots of the applied state (openraft's `RaftSnapshotBuilder`).
pub struct SnapshotBuilder<S: Replicated> {
    applied: AppliedHandle<S>,
    snapshots: Arc<SnapshotFile>,
}

impl<S: Replicated> fmt::Debug for SnapshotBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotBuilder")
    }
}

static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

impl<S: Replicated> RaftSnapshotBuilder<Types<S>> for SnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Types<S>>, StorageErr> {
        let (data, last_log_id, last_membership) = {
            let a = read_applied(&self.applied);
            let data = a.state.snapshot().map_err(|e| snapshot_err(None, ErrorVerb::Write, &e))?;
            (data, a.last_applied, a.membership.clone())
        };
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let seq = SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{millis}-{seq}", l.leader_id, l.index),
            None => format!("none-{millis}-{seq}"),
        };
        let meta = Meta { last_log_id, last_membership, snapshot_id };
        let snap = StoredSnapshot { meta: meta.clone(), data: Arc::new(data) };
        let snapshots = self.snapshots.clone();
        let data = snap.data.to_vec();
        blocking(move || snapshots.save(snap))
            .await
            .map_err(|e| snapshot_err(Some(&meta), ErrorVerb::Write, &e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl<S: Replicated> RaftStateMachine<Types<S>> for StateMachineStore<S> {
    type SnapshotBuilder = SnapshotBuilder<S>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, BasicNode>), StorageErr> {
        let a = read_applied(&self.applied);
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<S::Response>, StorageErr>
    where
        I: IntoIterator<Item = Entry<S>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut a = write_applied(&self.applied);
        let mut responses = Vec::new();
        for entry in entries {
            a.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => S::Response::default(),
                EntryPayload::Normal(cmd) => a.state.apply(&cmd),
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(entry.log_id), m);
                    S::Response::default()
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder<S> {
        SnapshotBuilder { applied: self.applied.clone(), snapshots: self.snapshots.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageErr> {
        let snap = StoredSnapshot { meta: meta.clone(), data: Arc::new(snapshot.into_inner()) };
        // Durable first: once this returns, openraft may purge the log the snapshot covers.
        let snapshots = self.snapshots.clone();
        let to_save = snap.clone();
        blocking(move || snapshots.save(to_save))
            .await
            .map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, &e))?;
        let mut a = write_applied(&self.applied);
        a.state.restore(&snap.data).map_err(|e| snapshot_err(Some(meta), ErrorVerb::Read, &e))?;
        a.last_applied = meta.last_log_id;
        a.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Types<S>>>, StorageErr> {
        let current = self.snapshots.current.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Ok(current.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data.to_vec())) }))
    }
}
