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
    for p in r.puts {
        let op = put_from_pb(p)?;
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
        h.tx.send(Input::Write { op, reply: tx })
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
    Ok(resp)
}
