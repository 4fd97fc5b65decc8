//! The `Restore` RPC: a batch of a backup's records for one partition of a table being restored
//! from that backup (`tern backup restore`, docs/backup.md "Restore").
//!
//! Whether the batch may be written is `tern_duplication::admit_restore`'s decision (the table
//! restores from this very backup, routing by the table's own partition count, timetags present
//! and not from the future). Admitted puts then take the path duplicated ones take: through the
//! partition's primary (2PC, the primary's clock moves past their timetags) and applied by
//! last-writer-wins on every replica. It lives with the receiving side of duplication because
//! it is that path, not because a restore is a link.

use tern_core::mutation::WriteOutcome;
use tern_core::{Error, Result};
use tern_duplication::{RestoreBatch, admit_restore};
use tern_proto::convert::{gpid_from_pb, put_from_pb};
use tern_proto::pb;
use tokio::sync::oneshot;

use super::DupEnv;
use crate::host::reply::ReplyTo;
use crate::host::task::Input;

pub async fn restore(env: &DupEnv, r: pb::RestoreRequest) -> Result<pb::RestoreResponse> {
    let gpid = gpid_from_pb(r.gpid.as_ref())?;
    let puts = r.puts.into_iter().map(put_from_pb).collect::<Result<Vec<_>>>()?;
    let batch = RestoreBatch { gpid, partition_count: r.partition_count, backup: r.backup, puts };
    let receiver =
        tern_duplication::Receiver { own_partitions: env.roles.partitions(gpid.table.0), ..env.receiver };
    let restoring = env.roles.restoring_from(gpid.table.0);
    let admitted = admit_restore(&receiver, restoring.as_deref(), batch, env.clock.now().wall_ms)?;
    let h = env.registry.get(gpid).ok_or(Error::NotPrimary { gpid })?;
    let mut waiting = Vec::with_capacity(admitted.puts.len());
    let mut writes = Vec::with_capacity(admitted.puts.len());
    for op in admitted.puts {
        let (tx, rx) = oneshot::channel();
        writes.push((op, ReplyTo::Once(tx)));
        waiting.push(rx);
    }
    if !writes.is_empty() {
        h.submit(Input::Writes(writes))?;
    }
    let mut resp = pb::RestoreResponse::default();
    for rx in waiting {
        let outcome = match tokio::time::timeout(env.request_timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(crate::host::reply::dropped(true)),
            Err(_) => {
                return Err(Error::OutcomeUnknown(format!(
                    "partition {gpid} did not answer within {:?}",
                    env.request_timeout
                )));
            }
        };
        match outcome {
            WriteOutcome::Superseded { .. } => resp.superseded += 1,
            WriteOutcome::Failed(e) => return Err(e),
            _ => resp.applied += 1,
        }
    }
    Ok(resp)
}
