//! Many reads at once (`TernClient::read_batch`): grouped by the server that is primary of their
//! partition, one `BatchRead` call per server, all sent concurrently. What the Redis gateway
//! uses for a pipeline's GETs: per read, it costs about what a store lookup costs instead of a
//! whole RPC.

use std::collections::HashMap;
use std::time::Duration;

use tern_core::read::{ReadOp, ReadResult};
use tern_core::{DrRole, Error, ErrorCode, Gpid, Result, partition_of};
use tern_proto::convert::{read_result_from_pb, read_to_pb};
use tern_proto::pb;
use tern_proto::pb::kv_client::KvClient;

use crate::TernClient;
use crate::transport::error_of;

/// Most reads sent in one `BatchRead` (the server takes up to 4096).
const CHUNK: usize = 1024;

fn hash_key(op: &ReadOp) -> Option<&[u8]> {
    match op {
        ReadOp::Get { hash_key, .. }
        | ReadOp::MultiGet { hash_key, .. }
        | ReadOp::Scan { hash_key, .. }
        | ReadOp::Count { hash_key }
        | ReadOp::Ttl { hash_key, .. } => Some(hash_key),
        ReadOp::ScanTable { .. } => None,
    }
}

impl TernClient {
    /// The reads `ops` of `table`, answered in order. Each succeeds or fails on its own; a read
    /// its batch could not answer for a reason worth retrying (the primary moved, a server is
    /// down, the copy became a standby) is retried alone, like [`TernClient::read`], within the
    /// client's deadline.
    pub async fn read_batch(&self, table: &str, ops: Vec<ReadOp>) -> Vec<Result<ReadResult>> {
        let mut results: Vec<Option<Result<ReadResult>>> = vec![None; ops.len()];
        if let Ok(route) = self.route(table, false).await {
            let mut by_server: HashMap<String, Vec<(usize, Gpid)>> = HashMap::new();
            for (i, op) in ops.iter().enumerate() {
                let Some(hk) = hash_key(op) else { continue };
                let p = partition_of(hk, route.partitions).0;
                if let Some(addr) = route.primary_addr(p) {
                    by_server.entry(addr).or_default().push((i, Gpid::new(route.table_id, p)));
                }
            }
            let calls = by_server.into_iter().flat_map(|(addr, reads)| {
                let chunks: Vec<Vec<(usize, Gpid)>> = reads.chunks(CHUNK).map(<[_]>::to_vec).collect();
                chunks.into_iter().map(move |chunk| (addr.clone(), chunk))
            });
            let answers = futures::future::join_all(calls.map(|(addr, chunk)| {
                let req = pb::BatchReadRequest {
                    reads: chunk.iter().map(|(i, g)| read_to_pb(*g, &ops[*i])).collect(),
                };
                async move { (chunk, self.batch_call(&addr, req).await) }
            }))
            .await;
            let standby_route = route.role == DrRole::Standby;
            for (chunk, answer) in answers {
                let Ok(items) = answer else { continue };
                for ((i, _), item) in chunk.into_iter().zip(items) {
                    results[i] = settle(item, standby_route);
                }
            }
        }
        // Whatever a batch did not settle goes alone, with the usual retries.
        let rest =
            results.iter().enumerate().filter(|(_, r)| r.is_none()).map(|(i, _)| i).collect::<Vec<_>>();
        let retried = futures::future::join_all(rest.iter().map(|&i| self.read(table, ops[i].clone()))).await;
        for (i, r) in rest.into_iter().zip(retried) {
            results[i] = Some(r);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::invariant("a read was not answered"))))
            .collect()
    }

    async fn batch_call(&self, addr: &str, req: pb::BatchReadRequest) -> Result<Vec<pb::BatchReadItem>> {
        let n = req.reads.len();
        let mut c = KvClient::new(self.pool.channel(addr)?);
        let answer = tokio::time::timeout(self.opts.timeout.min(Duration::from_secs(5)), c.batch_read(req))
            .await
            .map_err(|_| Error::Timeout(format!("{addr} did not answer a batch read")))?
            .map_err(|s| error_of(&s))?
            .into_inner();
        if answer.items.len() != n {
            return Err(Error::invariant(format!(
                "{addr} answered {} of {n} batched reads",
                answer.items.len()
            )));
        }
        Ok(answer.items)
    }
}

/// A batch item's final result, or `None` if the read should be retried alone.
fn settle(item: pb::BatchReadItem, standby_route: bool) -> Option<Result<ReadResult>> {
    if item.error_code != 0 {
        let code = u16::try_from(item.error_code).ok().and_then(ErrorCode::from_u16)?;
        let e = Error::Remote { code, message: item.error_message };
        return if e.is_retryable() { None } else { Some(Err(e)) };
    }
    let r = item.result?;
    // A standby answered although the route said active: the role moved; `read` follows it.
    if r.possibly_stale && !standby_route {
        return None;
    }
    Some(read_result_from_pb(r))
}
