//! A full sync in a simulated replica server: before a partition of a link added with a full
//! sync ships its log, its primary copies the records its store holds to the remote table, as
//! the servers' `cluster/server/src/dup/full_sync.rs` does. Which records are copied, and how,
//! is `tern_duplication::record_to_put` (their own timetags, tombstones included, other
//! clusters' records skipped); where the shipper then starts is `DupRules::start_point`'s (after
//! the store's applied decree when the copy began, `D`, which every replica's log keeps from the
//! link's start). As in the servers, the store is read a chunk at a time while writes go on,
//! records are routed by their own hash key, one batch is in flight at a time and a failed one
//! is sent again after a backoff; a primary change starts the copy over.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use tern_core::key::KeyRange;
use tern_core::{Ballot, Decree, Gpid, Timetag, WriteOp, partition_of};
use tern_duplication::record_to_put;
use tern_storage::PartitionStore;

use super::ship::BATCH_TIMEOUT_MS;
use super::{Sent, Starting, header};
use crate::net::{Addr, Msg};
use crate::node::SimNode;
use crate::world_ctx::Ctx;

/// Records read from the store at a time (the servers read 1024; the simulated tables are small,
/// and a small chunk lets writes land between chunks).
const CHUNK: usize = 4;
/// Backoff after a failed batch: doubling from this, up to 5 s (the servers').
const BACKOFF_MS: u64 = 100;

/// One partition's copy in progress.
pub(super) struct Copying {
    pub(super) ballot: Ballot,
    /// Tells this copy's batches from those of one it replaced.
    pub(super) generation: u64,
    /// What the shipper knows is replicated once the copy is done (`StartPoint::replicated_from`).
    up_to: Timetag,
    /// The store's applied decree when the first chunk was read: the log ships after it.
    start: Option<Decree>,
    /// The last key read; the next chunk starts after it.
    after: Option<Vec<u8>>,
    scanned: bool,
    /// Records read and not sent, per remote partition.
    pending: BTreeMap<u32, Vec<WriteOp>>,
    /// The batch being sent (again, after a failure) and whether it is in flight.
    sending: Option<(u32, Vec<WriteOp>)>,
    inflight: bool,
    retry_at_ms: u64,
    backoff_ms: u64,
}

impl Copying {
    pub(super) fn new(ballot: Ballot, generation: u64, up_to: Timetag) -> Copying {
        Copying {
            ballot,
            generation,
            up_to,
            start: None,
            after: None,
            scanned: false,
            pending: BTreeMap::new(),
            sending: None,
            inflight: false,
            retry_at_ms: 0,
            backoff_ms: 0,
        }
    }

    pub(super) fn on_acked(&mut self) {
        self.sending = None;
        self.inflight = false;
        self.backoff_ms = 0;
    }

    pub(super) fn on_failed(&mut self, now_ms: u64) {
        self.inflight = false;
        self.backoff_ms = (self.backoff_ms * 2).clamp(BACKOFF_MS, 5_000);
        self.retry_at_ms = now_ms + self.backoff_ms;
    }
}

/// What the next step of a copy is.
enum Step {
    Wait,
    Send(u32, Vec<WriteOp>),
    Scan,
    Done(Decree),
}

impl SimNode {
    /// Moves the copy of `g` on as far as it can go now: reads chunks, sends a batch, or, once
    /// everything is acknowledged, hands over to the shipper.
    pub(super) fn copy_step(&mut self, ctx: &mut Ctx<'_>, g: Gpid) {
        let now = self.now_ms(ctx);
        let now_secs = self.wall_ms(ctx) / 1000;
        let (me, id_me) = (self.addr(), self.id);
        let (Some(dup), Some(h)) = (self.dup.as_mut(), self.replicas.get(&g)) else { return };
        let Some(partitions) = dup.remote_partitions else { return };
        let batch_max = dup.batch_max_puts;
        let header = header(dup, g, true);
        loop {
            let Some(c) = dup.copies.get_mut(&g) else { return };
            let step = if c.inflight || now < c.retry_at_ms {
                Step::Wait
            } else if let Some((p, puts)) = c.sending.clone() {
                Step::Send(p, puts)
            } else if let Some(p) = c.pending.iter().find(|(_, v)| v.len() >= batch_max).map(|(p, _)| *p) {
                let puts = c.pending.remove(&p).unwrap_or_default();
                c.sending = Some((p, puts));
                continue;
            } else if !c.scanned {
                Step::Scan
            } else if let Some(p) = c.pending.keys().next().copied() {
                let puts = c.pending.remove(&p).unwrap_or_default();
                c.sending = Some((p, puts));
                continue;
            } else {
                Step::Done(c.start.unwrap_or_default())
            };
            match step {
                Step::Wait => return,
                Step::Scan => {
                    let store = &h.io.store;
                    c.start.get_or_insert(store.last_applied_decree());
                    let start = c.after.clone().map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
                    let range = KeyRange { start, end: std::ops::Bound::Unbounded };
                    let mut chunk = Vec::new();
                    let _ = store.raw_scan(&range, false, &mut |k, v| {
                        chunk.push((k.to_vec(), v.to_vec()));
                        Ok(if chunk.len() >= CHUNK {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        })
                    });
                    c.scanned = chunk.len() < CHUNK;
                    c.after = chunk.last().map(|(k, _)| k.clone()).or(c.after.take());
                    for (k, v) in chunk {
                        match record_to_put(&k, &v, dup.cluster, now_secs) {
                            Ok(Some(put)) => {
                                let p = partition_of(put.hash_key(), partitions).0;
                                c.pending.entry(p).or_default().push(put);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                ctx.obs.violations.push(format!("{id_me} {g}: cannot copy a record: {e}"))
                            }
                        }
                    }
                }
                Step::Send(p, puts) => {
                    let generation = c.generation;
                    let Some(&to) = dup.remote_primaries.get(&p) else {
                        c.on_failed(now);
                        dup.next_refresh_ms = now;
                        return;
                    };
                    c.inflight = true;
                    let id = dup.next_id;
                    dup.next_id += 1;
                    let gpid = Gpid { table: dup.remote_table, partition: tern_core::PartitionIndex(p) };
                    let msg = Msg::DupBatch {
                        id,
                        from_cluster: dup.cluster,
                        gpid,
                        partition_count: partitions,
                        header,
                        puts: puts.clone(),
                    };
                    ctx.send(me, Addr::Node(to), msg);
                    let deadline_ms = now + BATCH_TIMEOUT_MS;
                    dup.sent
                        .insert(id, Sent { gpid: g, generation, batch: 0, puts, deadline_ms, copy: true });
                    return;
                }
                Step::Done(start) => {
                    let Some(c) = dup.copies.remove(&g) else { return };
                    ctx.obs.dup.copies_done += 1;
                    ctx.obs.dup.copy_done(g, start);
                    ctx.trace(format!("{id_me} {g} copied its records: ships from d{}", start.next()));
                    dup.starting.insert(g, Starting { ballot: c.ballot, after: start, up_to: c.up_to });
                    return;
                }
            }
        }
    }
}
