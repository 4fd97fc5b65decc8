//! The receiving side of duplication: the `Duplicate` RPC.
//!
//! A shipper of another cluster sends puts for one partition of a table here. Each put carries
//! its origin's timetag and goes through this partition's primary like a client write (2PC,
//! batching); the primary refuses timetags older than the last-writer-wins retention and moves
//! its clock past the others (`Replica::admit_duplicated`), and every replica applies it only
//! if it is newer than the stored record (tombstones included).

use tern_core::mutation::WriteOutcome;
use tern_core::{Error, Gpid, Result, WriteOp, partition_of};
use tern_proto::convert::{gpid_from_pb, put_from_pb};
use tern_proto::pb;
use tokio::sync::oneshot;

use crate::node::Node;
use crate::replica_task::Input;

/// Checks a request and turns it into puts for `gpid`. Refuses the whole request when any put
/// is malformed, misrouted or claims another origin: nothing of it is written.
fn admit(node: &Node, r: pb::DuplicateRequest) -> Result<(Gpid, Vec<WriteOp>)> {
    let gpid = gpid_from_pb(r.gpid.as_ref())?;
    let own = u32::from(node.opts.cluster_id.get());
    if r.from_cluster == own {
        return Err(Error::InvalidArgument(format!(
            "duplicated writes from cluster id {own}, which is this cluster's own id: \
             two clusters of a link must have different ids"
        )));
    }
    if r.partition_count == 0 || gpid.partition.0 >= r.partition_count {
        return Err(Error::InvalidArgument(format!(
            "duplicated writes for {gpid} routed by a partition count of {}",
            r.partition_count
        )));
    }
    let mut puts = Vec::with_capacity(r.puts.len());
    let oldest = r.full_sync.then(|| oldest_for_full_sync(node));
    for p in r.puts {
        let mut op = put_from_pb(p)?;
        if let Some(oldest) = oldest {
            raise_old_timetag(&mut op, oldest);
        }
        let WriteOp::Put { hash_key, timetag, .. } = &op else { unreachable!("put_from_pb makes puts") };
        let Some(t) = timetag else {
            return Err(Error::InvalidArgument("a duplicated put without its origin timetag".into()));
        };
        if u32::from(t.cluster().get()) != r.from_cluster {
            return Err(Error::InvalidArgument(format!(
                "a put from cluster {} carries a timetag of cluster {}: writes that arrived by \
                 duplication are never shipped again",
                r.from_cluster,
                t.cluster().get()
            )));
        }
        let p = partition_of(hash_key, r.partition_count);
        if p != gpid.partition {
            return Err(Error::InvalidArgument(format!(
                "hash key {} belongs to partition {} of {}, not to {gpid}",
                tern_core::key::escape(hash_key, 64),
                p.0,
                r.partition_count
            )));
        }
        puts.push(op);
    }
    Ok((gpid, puts))
}

/// The oldest timetag (physical ms) a full sync's record may keep here: the start of the
/// last-writer-wins retention, with two minutes to spare against the primary's check
/// (`Replica::admit_duplicated` allows one).
fn oldest_for_full_sync(node: &Node) -> u64 {
    let retention = node.replica_options().lww_retention_ms;
    if retention == 0 {
        return 0; // no retention: the primary refuses every duplicated write anyway
    }
    (node.now().wall_ms + 120_000).saturating_sub(retention)
}

/// A full sync copies a table's existing records, some older than the retention; the primary
/// refuses those (a tombstone that would make them lose may be compacted away on some replicas
/// and not on others). They enter with their timetag raised to the retention's start instead:
/// as if written then, which orders them before every write of the last day.
fn raise_old_timetag(op: &mut WriteOp, oldest_ms: u64) {
    if let WriteOp::Put { timetag: Some(t), .. } = op
        && t.physical_ms() < oldest_ms
    {
        *t = tern_core::Timetag::new(oldest_ms, t.logical(), t.cluster(), t.is_delete());
    }
}

/// Handles one request: every put is handed to the partition's replica task in order (so the
/// primary logs them in order), then the outcomes are gathered.
pub async fn duplicate(node: &Node, r: pb::DuplicateRequest) -> Result<pb::DuplicateResponse> {
    let (gpid, puts) = admit(node, r)?;
    let h = node.replica(gpid).ok_or(Error::NotPrimary { gpid })?;
    let wall = node.now().wall_ms;
    let max_offset = node.replica_options().max_clock_offset_ms;
    let mut clock_ahead = 0u32;
    let mut waiting = Vec::with_capacity(puts.len());
    for op in puts {
        let WriteOp::Put { hash_key, sort_key, timetag: Some(t), .. } = &op else { continue };
        if t.physical_ms() > wall + max_offset {
            clock_ahead += 1;
            tracing::warn!(
                %gpid,
                "a duplicated write from cluster {} is {} ms ahead of this server's clock",
                t.cluster().get(),
                t.physical_ms() - wall
            );
        }
        let key = (hash_key.clone(), sort_key.clone(), t.as_u64());
        let (tx, rx) = oneshot::channel();
        h.tx.send(Input::Write { op, reply: crate::reply::ReplyTo::Once(tx) })
            .map_err(|_| Error::Unavailable(format!("replica {gpid} is closing")))?;
        waiting.push((key, rx));
    }
    let mut resp = pb::DuplicateResponse { clock_ahead, ..Default::default() };
    let timeout = node.opts.request_timeout;
    for ((hash_key, sort_key, incoming), rx) in waiting {
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(Error::Unavailable(format!("replica {gpid} dropped the request"))),
            Err(_) => {
                return Err(Error::OutcomeUnknown(format!(
                    "partition {gpid} did not answer within {timeout:?}"
                )));
            }
        };
        match outcome {
            WriteOutcome::Superseded { stored } => {
                resp.conflicts.push(pb::DupConflict { hash_key, sort_key, incoming, stored: stored.as_u64() })
            }
            _ => resp.applied += 1,
        }
    }
    crate::dup_metrics::record_received(resp.applied, resp.conflicts.len(), resp.clock_ahead);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use tern_core::{ClusterId, Timetag};

    use super::*;

    fn put(physical_ms: u64, delete: bool) -> WriteOp {
        WriteOp::Put {
            hash_key: b"h".to_vec(),
            sort_key: vec![],
            value: (!delete).then(|| b"v".to_vec()),
            expire_ts: 0,
            timetag: Some(Timetag::new(physical_ms, 7, ClusterId::new(3).unwrap(), delete)),
        }
    }

    #[test]
    fn a_full_sync_raises_only_timetags_older_than_the_retention() {
        let mut old = put(1_000, true);
        raise_old_timetag(&mut old, 50_000);
        let WriteOp::Put { timetag: Some(t), .. } = old else { panic!() };
        assert_eq!((t.physical_ms(), t.logical(), t.cluster().get(), t.is_delete()), (50_000, 7, 3, true));
        let mut recent = put(60_000, false);
        raise_old_timetag(&mut recent, 50_000);
        assert_eq!(recent, put(60_000, false));
    }
}
