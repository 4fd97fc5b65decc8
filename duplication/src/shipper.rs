//! The shipper: one per (duplication link, source partition), owned by the source primary's
//! runtime. A synchronous state machine: the runtime reads the log when [`Shipper::next_read`]
//! asks, sends the batches [`Shipper::poll`] returns, reports each batch's ack or failure, and
//! persists [`Shipper::confirmed`] (the link's progress, which also holds back log GC). Time
//! only comes in as `now_ms` parameters; nothing here reads a clock or does I/O.
//!
//! Invariants:
//!
//! * **Confirmed is exact.** `confirmed` is the largest decree `d` such that every put of every
//!   entry `<= d` has been acknowledged by the remote cluster (entries without puts count once
//!   read). It never goes back. Restarting from it (a new primary, a restarted process) ships
//!   again at most what was in flight: harmless, puts are idempotent under last-writer-wins.
//! * **Routing by each put's own hash key**, `partition_of(hash_key, remote_partitions)`: a
//!   batch only holds puts of one remote partition (Pegasus routed a batch by its last key).
//! * **Log order per remote partition** whenever nothing fails: batches are cut from a FIFO
//!   queue. A failed batch goes back ahead of every later put of its partition. Order across
//!   batches is a courtesy, not a requirement: pipelined batches may be applied in any order,
//!   and last-writer-wins makes the final state the same (see `convert.rs` for the one case
//!   that needed care: two puts of one record under one timetag).
//! * **Bounded memory**: the log is read ahead only while less than `max_buffered_bytes` of
//!   puts are read and not acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;

use tern_core::{ClusterId, Decree, Error, Result, Timetag, WriteOp, partition_of};
use tern_storage::LogEntry;

use crate::convert::entry_to_puts;
use crate::throttle::{PayloadSize, Throttle, ThrottleReport, WireSize, max_request_bytes};

/// Tuning of one shipper. Defaults in [`ShipperOptions::default`]; checked by
/// [`ShipperOptions::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipperOptions {
    /// A batch is cut before it would pass this many payload bytes, or, under a throttle,
    /// `max_request_bytes` in wire bytes (a single larger put still goes, alone).
    pub batch_max_bytes: u64,
    /// A batch holds at most this many puts.
    pub batch_max_puts: usize,
    /// Batches sent and not yet acknowledged or failed, per remote partition.
    pub max_inflight_per_partition: usize,
    /// Read-ahead limit: the log is not read further while this many payload bytes are read
    /// and not acknowledged.
    pub max_buffered_bytes: u64,
    /// Entries asked for per log read.
    pub read_chunk: usize,
    /// Delay before resending to a remote partition after its first failure; doubles on each
    /// further failure, up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Wire bytes per second this shipper may send (its partition's share of the link's
    /// limit); 0 = unlimited. Counted by the shipper's [`WireSize`].
    pub bytes_per_sec: u64,
}

impl Default for ShipperOptions {
    fn default() -> ShipperOptions {
        ShipperOptions {
            batch_max_bytes: 256 * 1024,
            batch_max_puts: 512,
            max_inflight_per_partition: 2,
            max_buffered_bytes: 8 * 1024 * 1024,
            read_chunk: 256,
            backoff_initial_ms: 100,
            backoff_max_ms: 10_000,
            bytes_per_sec: 0,
        }
    }
}

impl ShipperOptions {
    /// Refuses options with which the shipper could never send or never read.
    pub fn validate(&self) -> Result<()> {
        let positive: [(&str, u64); 6] = [
            ("batch_max_bytes", self.batch_max_bytes),
            ("batch_max_puts", self.batch_max_puts as u64),
            ("max_inflight_per_partition", self.max_inflight_per_partition as u64),
            ("max_buffered_bytes", self.max_buffered_bytes),
            ("read_chunk", self.read_chunk as u64),
            ("backoff_initial_ms", self.backoff_initial_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::InvalidArgument(format!("shipper option {name} must be positive")));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(Error::InvalidArgument(format!(
                "shipper option backoff_max_ms ({}) is below backoff_initial_ms ({})",
                self.backoff_max_ms, self.backoff_initial_ms
            )));
        }
        Ok(())
    }
}

/// Puts for one remote partition, to be sent in one request. The runtime reports its fate
/// with [`Shipper::on_acked`] or [`Shipper::on_failed`], quoting `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Unique within this shipper.
    pub id: u64,
    pub remote_partition: u32,
    /// In log order; every one a `WriteOp::Put` with a timetag.
    pub puts: Vec<WriteOp>,
    /// Payload bytes of `puts` (what batch limits and the read-ahead count).
    pub bytes: u64,
    /// The request's size on the wire, by the shipper's [`WireSize`] (what the throttle counts).
    pub wire_bytes: u64,
}

/// What `tern dup status` and the metrics show of one shipper.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShipperStats {
    pub confirmed: Decree,
    /// The last decree read from the log.
    pub read_through: Decree,
    /// Payload bytes read and not acknowledged (queued or in flight).
    pub buffered_bytes: u64,
    /// Puts waiting to be sent (failed ones included).
    pub queued_puts: u64,
    pub inflight_batches: usize,
    /// Physical time of the timetag of the oldest entry with unacknowledged puts; `None` when
    /// everything read is acknowledged.
    pub oldest_unacked_physical_ms: Option<u64>,
    /// See [`Shipper::replicated_up_to`].
    pub replicated_up_to: Timetag,
    /// The timetag of the last entry read.
    pub read_timetag: Timetag,
    /// Puts and batches acknowledged.
    pub shipped_puts: u64,
    pub shipped_batches: u64,
    pub failed_batches: u64,
    /// The last failure's message; cleared by the next ack.
    pub last_error: Option<String>,
    /// `now_ms` of the last ack.
    pub last_acked_ms: Option<u64>,
    /// Remote partitions whose last reported batch failed: waiting out a backoff, or retrying
    /// after it (an ack clears it).
    pub backing_off_partitions: u32,
}

/// A put read from the log and not yet acknowledged.
#[derive(Clone, Debug)]
struct Queued {
    decree: Decree,
    put: WriteOp,
    bytes: u64,
    wire_bytes: u64,
}

#[derive(Debug, Default)]
struct RemotePartition {
    /// Keyed by read order, so that failed puts go back to their place.
    queue: BTreeMap<u64, Queued>,
    inflight: usize,
    /// The current backoff delay; 0 when the partition is healthy.
    backoff_ms: u64,
    /// No send before this time.
    retry_at_ms: Option<u64>,
    /// Counts backoff steps. A batch remembers the value when it was sent: when several
    /// pipelined batches fail from one outage, only the first grows the delay.
    backoff_epoch: u64,
}

#[derive(Debug)]
struct Inflight {
    remote_partition: u32,
    items: Vec<(u64, Queued)>,
    bytes: u64,
    backoff_epoch: u64,
}

#[derive(Debug)]
struct PendingEntry {
    /// Puts of the entry not yet acknowledged (> 0 while the entry is in the map).
    unacked: usize,
    timetag: Timetag,
}

/// See the module doc.
#[derive(Debug)]
pub struct Shipper {
    local: ClusterId,
    opts: ShipperOptions,
    read_through: Decree,
    /// The timetag of the entry at `read_through` (zero until one is read).
    read_timetag: Timetag,
    /// A lower bound of [`Shipper::replicated_up_to`] known when the shipper was made (what the
    /// meta server recorded with the confirmed decree it resumes from).
    resumed_up_to: Timetag,
    /// Entries with unacknowledged puts, by decree.
    pending: BTreeMap<u64, PendingEntry>,
    partitions: Vec<RemotePartition>,
    inflight: BTreeMap<u64, Inflight>,
    next_seq: u64,
    next_batch_id: u64,
    /// The remote partition `poll` serves first: the one the throttle stopped last time, so
    /// that a tight throttle serves partitions in turn.
    cursor: usize,
    throttle: Throttle,
    wire: Arc<dyn WireSize>,
    buffered_bytes: u64,
    shipped_puts: u64,
    shipped_batches: u64,
    failed_batches: u64,
    last_error: Option<String>,
    last_acked_ms: Option<u64>,
}

impl Shipper {
    /// A shipper of this cluster (`local`) to a table with `remote_partitions` partitions, that
    /// resumes after `confirmed` (the persisted progress; `Decree::ZERO` for a new link that
    /// ships the whole log).
    pub fn new(
        local: ClusterId,
        remote_partitions: u32,
        confirmed: Decree,
        opts: ShipperOptions,
    ) -> Result<Shipper> {
        opts.validate()?;
        if remote_partitions == 0 {
            return Err(Error::InvalidArgument("the remote table has no partitions".into()));
        }
        Ok(Shipper {
            local,
            read_through: confirmed,
            read_timetag: Timetag::ZERO,
            resumed_up_to: Timetag::ZERO,
            pending: BTreeMap::new(),
            partitions: (0..remote_partitions).map(|_| RemotePartition::default()).collect(),
            inflight: BTreeMap::new(),
            next_seq: 0,
            next_batch_id: 1,
            cursor: 0,
            throttle: Throttle::new(opts.bytes_per_sec),
            wire: Arc::new(PayloadSize),
            opts,
            buffered_bytes: 0,
            shipped_puts: 0,
            shipped_batches: 0,
            failed_batches: 0,
            last_error: None,
            last_acked_ms: None,
        })
    }

    /// Counts requests with `wire` from now on (the default counts payload bytes only).
    pub fn with_wire_size(mut self, wire: Arc<dyn WireSize>) -> Shipper {
        for part in &mut self.partitions {
            for q in part.queue.values_mut() {
                q.wire_bytes = wire.put_bytes(&q.put);
            }
        }
        self.wire = wire;
        self
    }

    /// What the runtime should read from the log next, given the partition's `committed`
    /// decree: `Some((from, max_entries))` when the read-ahead buffer has room and `committed`
    /// is beyond what was read, `None` otherwise. Reading is asked again after acks free room.
    pub fn next_read(&self, committed: Decree) -> Option<(Decree, usize)> {
        if committed <= self.read_through || self.buffered_bytes >= self.opts.max_buffered_bytes {
            return None;
        }
        let behind = committed.0 - self.read_through.0;
        let max = usize::try_from(behind).map_or(self.opts.read_chunk, |b| b.min(self.opts.read_chunk));
        Some((self.read_through.next(), max))
    }

    /// Takes committed entries read from the log, ascending. Entries at or below what was
    /// already read are skipped (a read that overlapped an earlier one); the rest must follow
    /// on without a gap. Stops at the first entry that is not the next decree (a hole in the
    /// log) or cannot be converted (an unresolved atomic op) and returns its error, keeping
    /// the entries before it: progress up to a bad entry stays visible.
    pub fn on_entries(&mut self, entries: &[LogEntry]) -> Result<()> {
        for entry in entries {
            if entry.decree <= self.read_through {
                continue;
            }
            let expected = self.read_through.next();
            if entry.decree != expected {
                return Err(Error::InvalidArgument(format!(
                    "duplication read decree {} where decree {expected} was expected: the log \
                     has a hole after decree {}",
                    entry.decree, self.read_through
                )));
            }
            let puts = entry_to_puts(entry, self.local)?;
            self.enqueue(entry, puts);
            self.read_through = entry.decree;
            self.read_timetag = self.read_timetag.max(entry.timetag);
        }
        Ok(())
    }

    fn enqueue(&mut self, entry: &LogEntry, puts: Vec<WriteOp>) {
        if puts.is_empty() {
            return;
        }
        let pending = PendingEntry { unacked: puts.len(), timetag: entry.timetag };
        self.pending.insert(entry.decree.0, pending);
        let count = self.partitions.len() as u32;
        for put in puts {
            let p = partition_of(put.hash_key(), count).0 as usize;
            let bytes = put.payload_bytes();
            let wire_bytes = self.wire.put_bytes(&put);
            self.buffered_bytes += bytes;
            let queued = Queued { decree: entry.decree, put, bytes, wire_bytes };
            self.partitions[p].queue.insert(self.next_seq, queued);
            self.next_seq += 1;
        }
    }

    /// The batches to send now. Per remote partition: at most `max_inflight_per_partition` in
    /// flight, none while it waits out a backoff. Within the throttle: partitions are served in
    /// turn, one batch each per round, and the first batch the throttle refuses ends the poll
    /// (it is served first next time, see [`Shipper::next_wakeup_ms`]).
    pub fn poll(&mut self, now_ms: u64) -> Vec<Batch> {
        let mut out = Vec::new();
        let n = self.partitions.len();
        loop {
            let mut progressed = false;
            for i in 0..n {
                let p = (self.cursor + i) % n;
                if !self.sendable(p, now_ms) {
                    continue;
                }
                let (count, bytes, wire_bytes) = self.plan(p);
                if !self.throttle.try_take(wire_bytes, now_ms) {
                    self.cursor = p;
                    return out;
                }
                out.push(self.cut(p, count, bytes, wire_bytes));
                progressed = true;
            }
            if !progressed {
                return out;
            }
        }
    }

    fn sendable(&self, p: usize, now_ms: u64) -> bool {
        let part = &self.partitions[p];
        !part.queue.is_empty()
            && part.inflight < self.opts.max_inflight_per_partition
            && part.retry_at_ms.is_none_or(|t| now_ms >= t)
    }

    /// The next batch of partition `p`: (puts, payload bytes, wire bytes). Under a throttle a
    /// batch is also cut at `max_request_bytes` of wire bytes, so that a tight limit sends
    /// small requests evenly rather than a large one followed by a long debt.
    fn plan(&self, p: usize) -> (usize, u64, u64) {
        let (mut count, mut bytes, mut wire_bytes) = (0usize, 0u64, self.wire.request_bytes());
        let max_wire = max_request_bytes(self.throttle.bytes_per_sec());
        for q in self.partitions[p].queue.values() {
            let full = bytes + q.bytes > self.opts.batch_max_bytes
                || wire_bytes.saturating_add(q.wire_bytes) > max_wire;
            if count == self.opts.batch_max_puts || (count > 0 && full) {
                break;
            }
            count += 1;
            bytes += q.bytes;
            wire_bytes += q.wire_bytes;
        }
        (count, bytes, wire_bytes)
    }

    fn cut(&mut self, p: usize, count: usize, bytes: u64, wire_bytes: u64) -> Batch {
        let part = &mut self.partitions[p];
        let items: Vec<(u64, Queued)> = (0..count).filter_map(|_| part.queue.pop_first()).collect();
        part.inflight += 1;
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        // The shipper keeps its own copy to resend on failure; the runtime owns what it sends.
        let puts = items.iter().map(|(_, q)| q.put.clone()).collect();
        let remote_partition = p as u32;
        let backoff_epoch = part.backoff_epoch;
        self.inflight.insert(id, Inflight { remote_partition, items, bytes, backoff_epoch });
        Batch { id, remote_partition, puts, bytes, wire_bytes }
    }

    /// The remote partition applied batch `batch_id` (durably: its primary committed it).
    /// Resets that partition's backoff and clears `last_error`. Returns false for a batch not
    /// in flight (already reported, or unknown), which changes nothing.
    pub fn on_acked(&mut self, batch_id: u64, now_ms: u64) -> bool {
        let Some(batch) = self.inflight.remove(&batch_id) else { return false };
        let part = &mut self.partitions[batch.remote_partition as usize];
        part.inflight -= 1;
        part.backoff_ms = 0;
        part.retry_at_ms = None;
        for (_, q) in &batch.items {
            let entry = self
                .pending
                .get_mut(&q.decree.0)
                .expect("invariant: an in-flight put's entry is pending until all its puts are acked");
            entry.unacked -= 1;
            if entry.unacked == 0 {
                self.pending.remove(&q.decree.0);
            }
        }
        self.buffered_bytes -= batch.bytes;
        self.shipped_puts += batch.items.len() as u64;
        self.shipped_batches += 1;
        self.last_error = None;
        self.last_acked_ms = Some(now_ms);
        true
    }

    /// Sending batch `batch_id` failed (or timed out: it may still have been applied, and
    /// sending it again is harmless). Its puts go back ahead of the later puts of its remote
    /// partition, which then waits out a backoff: `backoff_initial_ms` after a first failure,
    /// doubling up to `backoff_max_ms` while failures go on. Batches that were already in flight
    /// when the backoff started do not grow it again (one outage, one step). Returns false for a
    /// batch not in flight, which changes nothing.
    pub fn on_failed(&mut self, batch_id: u64, now_ms: u64, error: String) -> bool {
        let Some(batch) = self.inflight.remove(&batch_id) else { return false };
        let part = &mut self.partitions[batch.remote_partition as usize];
        part.inflight -= 1;
        part.queue.extend(batch.items);
        if batch.backoff_epoch == part.backoff_epoch {
            part.backoff_epoch += 1;
            part.backoff_ms = if part.backoff_ms == 0 {
                self.opts.backoff_initial_ms
            } else {
                part.backoff_ms.saturating_mul(2).min(self.opts.backoff_max_ms)
            };
            part.retry_at_ms = Some(now_ms.saturating_add(part.backoff_ms));
        }
        self.failed_batches += 1;
        self.last_error = Some(error);
        true
    }

    /// The largest decree through which everything is acknowledged; see the module doc. What
    /// the runtime persists as the link's progress.
    pub fn confirmed(&self) -> Decree {
        match self.pending.first_key_value() {
            Some((&decree, _)) => Decree(decree - 1),
            None => self.read_through,
        }
    }

    /// The remote table's partition count.
    pub fn remote_partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// The last decree read from the log.
    pub fn read_through(&self) -> Decree {
        self.read_through
    }

    /// Sets what a resumed shipper already knows is replicated (see `resumed_up_to`).
    pub fn resume_replicated_up_to(&mut self, t: Timetag) {
        self.resumed_up_to = self.resumed_up_to.max(t);
    }

    /// Every write of this partition with a timetag at or below this has been acknowledged by
    /// the remote table (the link's *replicated-up-to*, `docs/duplication.md`): everything
    /// before the first entry with unacknowledged puts is (timetags grow with decrees), or,
    /// with nothing unacknowledged, everything read so far. It is measured on this partition's
    /// own clock: lag is the partition's newest timetag minus this, with no clock skew in it.
    pub fn replicated_up_to(&self) -> Timetag {
        let now = match self.pending.first_key_value() {
            Some((_, e)) => Timetag::from_u64(e.timetag.as_u64().saturating_sub(1)),
            None => self.read_timetag,
        };
        now.max(self.resumed_up_to)
    }

    /// When [`Shipper::poll`] may return something it would not return now: the end of a
    /// backoff, or the throttle holding enough tokens for the batch it serves first. `Some(now)`
    /// when a batch is ready at once; `None` when nothing waits on time (everything sent, or
    /// only waiting for acks or for entries).
    pub fn next_wakeup_ms(&self, now_ms: u64) -> Option<u64> {
        let n = self.partitions.len();
        let mut wake: Option<u64> = None;
        let mut served_first = None;
        for i in 0..n {
            let p = (self.cursor + i) % n;
            let part = &self.partitions[p];
            if part.queue.is_empty() || part.inflight >= self.opts.max_inflight_per_partition {
                continue;
            }
            match part.retry_at_ms {
                Some(t) if t > now_ms => wake = Some(wake.map_or(t, |w| w.min(t))),
                _ => served_first = served_first.or(Some(p)),
            }
        }
        if let Some(p) = served_first {
            let t = self.throttle.ready_at_ms(self.plan(p).2, now_ms);
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
        wake
    }

    /// Changes the throttle from now on; 0 = unlimited.
    pub fn set_bytes_per_sec(&mut self, bytes_per_sec: u64) {
        self.opts.bytes_per_sec = bytes_per_sec;
        self.throttle.set_bytes_per_sec(bytes_per_sec);
    }

    /// The throttle, for sends that bypass the shipper (a full sync's copies while this shipper
    /// waits): they count against the same bucket.
    pub fn throttle_mut(&mut self) -> &mut Throttle {
        &mut self.throttle
    }

    /// Takes over `throttle` (its rate, tokens, debt and counts), e.g. the one a full sync sent
    /// through before this shipper existed.
    pub fn set_throttle(&mut self, throttle: Throttle) {
        self.opts.bytes_per_sec = throttle.bytes_per_sec();
        self.throttle = throttle;
    }

    pub fn into_throttle(self) -> Throttle {
        self.throttle
    }

    /// What the meta server splits the link's limit by; see [`Throttle::report`].
    pub fn throttle_report(&mut self, now_ms: u64) -> ThrottleReport {
        self.throttle.report(now_ms)
    }

    /// The options in force (the throttle as last set).
    pub fn options(&self) -> &ShipperOptions {
        &self.opts
    }

    pub fn stats(&self) -> ShipperStats {
        ShipperStats {
            confirmed: self.confirmed(),
            read_through: self.read_through,
            buffered_bytes: self.buffered_bytes,
            queued_puts: self.partitions.iter().map(|p| p.queue.len() as u64).sum(),
            inflight_batches: self.inflight.len(),
            oldest_unacked_physical_ms: self.pending.first_key_value().map(|(_, e)| e.timetag.physical_ms()),
            replicated_up_to: self.replicated_up_to(),
            read_timetag: self.read_timetag,
            shipped_puts: self.shipped_puts,
            shipped_batches: self.shipped_batches,
            failed_batches: self.failed_batches,
            last_error: self.last_error.clone(),
            last_acked_ms: self.last_acked_ms,
            backing_off_partitions: self.partitions.iter().filter(|p| p.backoff_ms > 0).count() as u32,
        }
    }
}

#[cfg(test)]
#[path = "shipper_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "shipper_proptest.rs"]
mod proptests;
