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

use std::collections::BTreeMap;
use std::time::Duration;

use tern_client::{ShipHeader, TernClient};
use tern_core::{ClusterId, Decree, Error, Gpid, Result, Timetag, WriteOp, key, partition_of, value};
use tokio::sync::oneshot;

use super::DupEnv;
use crate::host::task::{Input, RawChunk};

/// Records read from the store at a time.
const CHUNK: usize = 1024;
/// Most puts in one request to the remote table.
const BATCH: usize = 512;

/// Copies the partition's records to `remote_table` (of `remote_partitions` partitions) and
/// returns the decree after which the log must be shipped, and how many records it copied. `progress` is told the number of
/// records copied so far and the last error, if any.
pub async fn copy_partition(
    env: &DupEnv,
    gpid: Gpid,
    client: &TernClient,
    remote_table: &str,
    remote_partitions: u32,
    header: &ShipHeader,
    mut progress: impl FnMut(u64, Option<String>),
) -> Result<(Decree, u64)> {
    let local = env.cluster_id;
    let mut after: Option<Vec<u8>> = None;
    let mut start: Option<Decree> = None;
    let mut copied = 0u64;
    let mut pending: BTreeMap<u32, Vec<WriteOp>> = BTreeMap::new();
    loop {
        let chunk = scan(env, gpid, after.clone()).await?;
        start.get_or_insert(chunk.applied);
        let now_secs = env.clock.now().wall_ms / 1000;
        for (k, v) in &chunk.records {
            if let Some(put) = to_put(k, v, local, now_secs)? {
                let p = partition_of(put.hash_key(), remote_partitions).0;
                let batch = pending.entry(p).or_default();
                batch.push(put);
                if batch.len() >= BATCH {
                    let puts = std::mem::take(batch);
                    copied += send(client, remote_table, p, header, &puts, &mut progress, copied).await;
                }
            }
        }
        after = chunk.records.last().map(|(k, _)| k.clone());
        progress(copied, None);
        if chunk.done {
            break;
        }
    }
    for (p, puts) in std::mem::take(&mut pending) {
        if !puts.is_empty() {
            copied += send(client, remote_table, p, header, &puts, &mut progress, copied).await;
        }
    }
    progress(copied, None);
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

/// A stored record as a duplicated put, unless it is another cluster's write or expired.
fn to_put(k: &[u8], v: &[u8], local: ClusterId, now_secs: u64) -> Result<Option<WriteOp>> {
    let (hash_key, sort_key) = key::decode(k)?;
    let (header, user) = value::decode(v)?;
    let tt: Timetag = header.timetag;
    if tt.cluster() != local || (!header.is_tombstone() && header.is_expired(now_secs)) {
        return Ok(None);
    }
    Ok(Some(WriteOp::Put {
        hash_key: hash_key.to_vec(),
        sort_key: sort_key.to_vec(),
        value: (!header.is_tombstone()).then(|| user.to_vec()),
        expire_ts: if header.is_tombstone() { 0 } else { header.expire_ts },
        timetag: Some(tt),
    }))
}

/// Sends one batch until the remote acknowledges it (the client retries by error class; on
/// top of that, back off and try again: a full sync must not skip records).
async fn send(
    client: &TernClient,
    table: &str,
    partition: u32,
    header: &ShipHeader,
    puts: &[WriteOp],
    progress: &mut impl FnMut(u64, Option<String>),
    copied: u64,
) -> u64 {
    let mut delay = Duration::from_millis(100);
    loop {
        match client.duplicate(table, partition, header, puts).await {
            Ok(_) => return puts.len() as u64,
            Err(e) => {
                progress(copied, Some(format!("full sync: {e}")));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tern_core::ValueHeader;

    use super::*;

    fn cluster(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn stored(tt: Timetag, expire_ts: u32, user: &[u8]) -> (Vec<u8>, Vec<u8>) {
        (key::encode(b"h", b"s").unwrap(), value::encode(&ValueHeader { expire_ts, timetag: tt }, user))
    }

    #[test]
    fn records_become_puts_with_their_own_timetag_and_others_are_skipped() {
        let tt = Timetag::new(5_000_000, 3, cluster(1), false);
        let (k, v) = stored(tt, 0, b"v");
        let put = to_put(&k, &v, cluster(1), 100).unwrap().unwrap();
        let want = WriteOp::Put {
            hash_key: b"h".to_vec(),
            sort_key: b"s".to_vec(),
            value: Some(b"v".to_vec()),
            expire_ts: 0,
            timetag: Some(tt),
        };
        assert_eq!(put, want);
        let (k, v) = stored(tt.with_delete(true), 0, b"");
        let tomb = to_put(&k, &v, cluster(1), 100).unwrap().unwrap();
        assert!(matches!(tomb, WriteOp::Put { value: None, .. }), "a tombstone is copied as one");
        let (k, v) = stored(Timetag::new(5_000_000, 3, cluster(2), false), 0, b"v");
        assert_eq!(to_put(&k, &v, cluster(1), 100).unwrap(), None, "another cluster's write");
        let (k, v) = stored(tt, 50, b"v");
        assert_eq!(to_put(&k, &v, cluster(1), 100).unwrap(), None, "expired at 100 s");
    }
}
