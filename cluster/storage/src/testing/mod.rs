//! Test support every back end runs: the conformance suite (`partition_store_conformance!`)
//! and a reference model of the data model for property tests (`model`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod conformance;
pub mod log_conformance;
pub mod model;

// For `partition_store_conformance!`'s model test, in the back ends' crates.
#[doc(hidden)]
pub use {proptest, tempfile};

use std::path::Path;
use std::sync::Arc;

use tern_core::read::{TablePage, TableScan};
use tern_core::{ClusterId, Decree, ManualClock, Mutation, Timetag, WriteOp};

use crate::store::PartitionStore;

/// How the suites open stores of one back end. Every store a harness opens reads time from
/// [`StoreHarness::clock`].
pub trait StoreHarness {
    type Store: PartitionStore;

    /// Opens the store at `dir`, creating an empty one if there is none.
    fn open(&self, dir: &Path) -> Self::Store;

    /// Opens a new store at `dir` from the checkpoint at `checkpoint`.
    fn open_from_checkpoint(&self, checkpoint: &Path, dir: &Path) -> Self::Store;

    /// Simulates a crash (unflushed writes lost). Returns false if the back end cannot do that
    /// in-process (it must then test crashes another way, e.g. in a child process).
    fn crash(&self, store: Self::Store) -> bool;

    fn clock(&self) -> &Arc<ManualClock>;
}

/// The start of time in the suites: 2026-01-01T00:00:00Z.
pub const T0_MS: u64 = 1_767_225_600_000;

/// A timetag stamped at the harness clock's "now", as a primary would.
pub fn timetag_now(clock: &ManualClock, logical: u32) -> Timetag {
    use tern_core::Clock;
    Timetag::new(clock.now_ms(), logical % 1000, ClusterId::new(1).expect("1 is a valid cluster id"), false)
}

/// Applies `ops` as the next decree, stamped now. Panics on store errors (tests only).
pub fn apply_next<S: PartitionStore + ?Sized>(
    store: &mut S,
    clock: &ManualClock,
    ops: Vec<WriteOp>,
) -> Vec<tern_core::mutation::WriteOutcome> {
    let decree = store.last_applied_decree().next();
    let tt = timetag_now(clock, decree.0 as u32);
    store.apply(decree, tt, &Mutation::new(ops)).expect("apply")
}

/// Applies, as the next decree, an entry that raises the partition's purge horizon to the
/// current time of `clock` (what a primary logs when the meta server says no duplicated write
/// older than that can arrive any more).
pub fn apply_purge_horizon<S: PartitionStore + ?Sized>(store: &mut S, clock: &ManualClock) {
    let decree = store.last_applied_decree().next();
    let tt = timetag_now(clock, decree.0 as u32);
    store.apply(decree, tt, &Mutation::purge_horizon(tt)).expect("apply a purge horizon");
}

/// Every raw record of `store` (storage key → stored bytes, headers included): what two stores
/// must agree on byte for byte.
pub fn raw_contents<S: PartitionStore + ?Sized>(store: &S) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    store
        .raw_scan(&tern_core::key::KeyRange::all(), false, &mut |k, v| {
            out.insert(k.to_vec(), v.to_vec());
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .expect("raw scan");
    out
}

/// Every page of a table scan with `spec`, following resume tokens until the last page.
pub fn scan_table_pages<S: PartitionStore + ?Sized>(store: &S, spec: &TableScan) -> Vec<TablePage> {
    let mut spec = spec.clone();
    let mut pages = Vec::new();
    loop {
        let page = store.scan_table(&spec).unwrap();
        spec.resume_token = page.resume_token.clone();
        pages.push(page);
        if spec.resume_token.is_none() {
            return pages;
        }
    }
}

pub fn set(hk: &[u8], sk: &[u8], v: &[u8]) -> WriteOp {
    WriteOp::Set { hash_key: hk.to_vec(), sort_key: sk.to_vec(), value: v.to_vec(), ttl_secs: 0 }
}

pub fn set_ttl(hk: &[u8], sk: &[u8], v: &[u8], ttl_secs: u32) -> WriteOp {
    WriteOp::Set { hash_key: hk.to_vec(), sort_key: sk.to_vec(), value: v.to_vec(), ttl_secs }
}

pub fn del(hk: &[u8], sk: &[u8]) -> WriteOp {
    WriteOp::Del { hash_key: hk.to_vec(), sort_key: sk.to_vec() }
}

/// A write duplicated from cluster `cluster`, stamped `physical_ms.logical` there; `value: None`
/// is a delete.
pub fn put_from(
    hk: &[u8],
    sk: &[u8],
    value: Option<&[u8]>,
    physical_ms: u64,
    logical: u32,
    cluster: u8,
) -> WriteOp {
    let cluster = ClusterId::new(cluster).expect("a valid cluster id");
    WriteOp::Put {
        hash_key: hk.to_vec(),
        sort_key: sk.to_vec(),
        value: value.map(<[u8]>::to_vec),
        expire_ts: 0,
        timetag: Some(Timetag::new(physical_ms, logical, cluster, value.is_none())),
    }
}

pub fn decree(n: u64) -> Decree {
    Decree(n)
}
