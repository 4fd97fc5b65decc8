//! Full sync of one partition for a link added with `--full-sync`: copy the records the store
//! holds to the remote table, then let the shipper ship the log from the decree the copy began
//! at.
//!
//! Why this is complete: the copy starts by reading the store's applied decree `D`; every write
//! up to `D` is then in the store, so the copy sees it (or a newer state of its record, which
//! last-writer-wins orders the same way), and every write after `D` is in the log, which every
//! replica keeps while the partition has not started shipping. The store is read in chunks
//! while writes go on, not from a frozen snapshot: a record copied in a newer state than at `D`
//! is shipped again from the log, which changes nothing. Records are sent with their own
//! timetags (tombstones included, so a delete reaches the peer too), routed by their own hash
//! key; records that arrived here by duplication are not copied (they are the other cluster's
//! to ship). Interrupting it is safe: a new primary starts the copy again.
//!
//! The copy goes through the partition's throttle, like the shipper's batches: every attempt
//! at sending a request takes its encoded size from the same bucket, at the partition's share
//! of the link's limit.

use std::collections::BTreeMap;
use std::time::Duration;

use tern_client::{ShipHeader, TernClient};
use tern_core::{Decree, Error, Gpid, Result, WriteOp, partition_of};
use tern_duplication::{Throttle, ThrottleReport, WireSize, max_request_bytes, record_to_put};
use tokio::sync::oneshot;

use super::DupEnv;
use super::wire::DuplicateRequestSize;
use crate::host::task::{Input, RawChunk};

/// Records read from the store at a time.
const CHUNK: usize = 1024;
/// Most puts in one request to the remote table.
const BATCH: usize = 512;

/// The partition's throttle as a copy uses it: `share` says the partition's share of the link's
/// limit now (re-read while waiting for tokens).
pub struct Pace<'a> {
    pub throttle: &'a mut Throttle,
    pub share: &'a (dyn Fn() -> u64 + Send + Sync),
}

impl Pace<'_> {
    /// Waits until a request of `wire_bytes` may go, and takes them.
    async fn take(&mut self, env: &DupEnv, wire_bytes: u64) {
        loop {
            self.throttle.set_bytes_per_sec((self.share)());
            let now = env.clock.now().wall_ms;
            if self.throttle.try_take(wire_bytes, now) {
                return;
            }
            // At most a second at a time: the share may grow meanwhile.
            let wait = self.throttle.ready_at_ms(wire_bytes, now).saturating_sub(now).clamp(1, 1_000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    fn report(&mut self, env: &DupEnv) -> ThrottleReport {
        self.throttle.report(env.clock.now().wall_ms)
    }
}

/// Copies the partition's records to `remote_table` (of `remote_partitions` partitions) and
/// returns the decree after which the log must be shipped, and how many records it copied.
/// `progress` is told the number of records copied so far, the last error, if any, and the
/// throttle's state.
pub async fn copy_partition(
    env: &DupEnv,
    gpid: Gpid,
    client: &TernClient,
    (remote_table, remote_partitions): (&str, u32),
    header: &ShipHeader,
    pace: &mut Pace<'_>,
    mut progress: impl FnMut(u64, Option<String>, ThrottleReport),
) -> Result<(Decree, u64)> {
    let local = env.cluster_id;
    let mut after: Option<Vec<u8>> = None;
    let mut start: Option<Decree> = None;
    let mut copied = 0u64;
    // Per remote partition: the puts waiting and their wire bytes.
    let mut pending: BTreeMap<u32, (Vec<WriteOp>, u64)> = BTreeMap::new();
    let size = DuplicateRequestSize;
    loop {
        let chunk = scan(env, gpid, after.clone()).await?;
        start.get_or_insert(chunk.applied);
        let now_secs = env.clock.now().wall_ms / 1000;
        // Under a throttle a request is cut small (as the shipper's are).
        let max_wire = max_request_bytes((pace.share)());
        for (k, v) in &chunk.records {
            if let Some(put) = record_to_put(k, v, local, now_secs)? {
                let p = partition_of(put.hash_key(), remote_partitions).0;
                let (batch, wire) = pending.entry(p).or_insert_with(|| (Vec::new(), size.request_bytes()));
                *wire += size.put_bytes(&put);
                batch.push(put);
                if batch.len() >= BATCH || *wire >= max_wire {
                    let puts = std::mem::take(batch);
                    *wire = size.request_bytes();
                    let to = Remote { client, table: remote_table, partition: p, header };
                    copied += send(env, &to, &puts, pace, &mut progress, copied).await;
                    // After every request: the throttle's report feeds the meta leader's split.
                    progress(copied, None, pace.report(env));
                }
            }
        }
        after = chunk.records.last().map(|(k, _)| k.clone());
        progress(copied, None, pace.report(env));
        if chunk.done {
            break;
        }
    }
    for (p, (puts, _)) in std::mem::take(&mut pending) {
        if !puts.is_empty() {
            let to = Remote { client, table: remote_table, partition: p, header };
            copied += send(env, &to, &puts, pace, &mut progress, copied).await;
        }
    }
    progress(copied, None, pace.report(env));
    tracing::info!(%gpid, "full sync copied {copied} records to {remote_table}");
    let start = start.ok_or_else(|| Error::invariant("a full sync read no chunk"))?;
    Ok((start, copied))
}

async fn scan(env: &DupEnv, gpid: Gpid, after: Option<Vec<u8>>) -> Result<RawChunk> {
    let h = env.registry.get(gpid).ok_or(Error::NotPrimary { gpid })?;
    let (reply, rx) = oneshot::channel();
    h.submit(Input::ScanRaw { after, limit: CHUNK, reply })?;
    rx.await.map_err(|_| Error::Unavailable(format!("replica {gpid} dropped a full sync read")))?
}

/// Where a copy's request goes.
struct Remote<'a> {
    client: &'a TernClient,
    table: &'a str,
    partition: u32,
    header: &'a ShipHeader,
}

/// Sends one batch until the remote acknowledges it (the client retries by error class; on
/// top of that, back off and try again: a full sync must not skip records). Every attempt
/// waits for the throttle.
async fn send(
    env: &DupEnv,
    to: &Remote<'_>,
    puts: &[WriteOp],
    pace: &mut Pace<'_>,
    progress: &mut impl FnMut(u64, Option<String>, ThrottleReport),
    copied: u64,
) -> u64 {
    let size = DuplicateRequestSize;
    let wire_bytes = size.request_bytes() + puts.iter().map(|p| size.put_bytes(p)).sum::<u64>();
    let mut delay = Duration::from_millis(100);
    loop {
        pace.take(env, wire_bytes).await;
        match to.client.duplicate(to.table, to.partition, to.header, puts).await {
            Ok(_) => return puts.len() as u64,
            Err(e) => {
                progress(copied, Some(format!("full sync: {e}")), pace.report(env));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
