//! The receiving side of duplication: the `Duplicate` RPC.
//!
//! A shipper of another cluster sends puts for one partition of a table here. Whether the batch
//! may be written is `DupRules::admit`'s decision (duplication/src/receive.rs, the code the
//! simulator runs too). Admitted puts go to the partition's primary together, like a pipeline
//! frame of client writes (2PC, one entry where possible); the primary refuses timetags older
//! than the last-writer-wins retention and moves its clock past the others
//! (`Replica::admit_duplicated`), and every replica applies each put only if it is newer than
//! the stored record (tombstones included).

use tern_core::{Error, Result};
use tern_duplication::{IncomingBatch, PutVerdict, judge_put};
use tern_proto::convert::{gpid_from_pb, put_from_pb};
use tern_proto::pb;
use tokio::sync::oneshot;

use super::DupEnv;
use crate::host::reply::ReplyTo;
use crate::host::task::Input;

/// Handles one request: the admitted puts go to the partition's replica in order (so the
/// primary logs them in order), then the outcomes are gathered.
pub async fn duplicate(env: &DupEnv, r: pb::DuplicateRequest) -> Result<pb::DuplicateResponse> {
    let gpid = gpid_from_pb(r.gpid.as_ref())?;
    env.incoming.heard(gpid.table.0, &r);
    let puts = r.puts.into_iter().map(put_from_pb).collect::<Result<Vec<_>>>()?;
    let batch =
        IncomingBatch { gpid, from_cluster: r.from_cluster, partition_count: r.partition_count, puts };
    // Routed by this table's own partition count, not the one the sender claims.
    let receiver =
        tern_duplication::Receiver { own_partitions: env.roles.partitions(gpid.table.0), ..env.receiver };
    let admitted = env.links.rules().admit(&receiver, batch, env.clock.now().wall_ms).inspect_err(|e| {
        if e.code() == tern_core::ErrorCode::ClockAhead {
            super::metrics::record_clock_ahead();
            tracing::warn!(%gpid, "{e}");
        }
    })?;
    let h = env.registry.get(gpid).ok_or(Error::NotPrimary { gpid })?;
    let mut waiting = Vec::with_capacity(admitted.puts.len());
    let mut writes = Vec::with_capacity(admitted.puts.len());
    for op in admitted.puts {
        let tern_core::WriteOp::Put { hash_key, sort_key, timetag: Some(t), .. } = &op else {
            return Err(Error::invariant("an admitted duplicated write is not a timetagged put"));
        };
        let key = (hash_key.clone(), sort_key.clone(), t.as_u64());
        let (tx, rx) = oneshot::channel();
        writes.push((op, ReplyTo::Once(tx)));
        waiting.push((key, rx));
    }
    if !writes.is_empty() {
        h.submit(Input::Writes(writes))?;
    }
    let mut resp = pb::DuplicateResponse::default();
    let timeout = env.request_timeout;
    for ((hash_key, sort_key, incoming), rx) in waiting {
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(crate::host::reply::dropped(true)),
            Err(_) => {
                return Err(Error::OutcomeUnknown(format!(
                    "partition {gpid} did not answer within {timeout:?}"
                )));
            }
        };
        let conflict = |stored: tern_core::Timetag| pb::DupConflict {
            hash_key,
            sort_key,
            incoming,
            stored: stored.as_u64(),
            ..Default::default()
        };
        match judge_put(&outcome, env.cluster_id) {
            PutVerdict::Lost { stored } => resp.conflicts.push(conflict(stored)),
            PutVerdict::Overwrote { stored } => {
                resp.applied += 1;
                resp.overwritten.push(conflict(stored));
            }
            PutVerdict::Applied => resp.applied += 1,
        }
    }
    super::metrics::record_received(resp.applied, resp.conflicts.len(), resp.overwritten.len());
    Ok(resp)
}
