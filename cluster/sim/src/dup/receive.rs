//! The receiving side in a simulated replica server. What a batch or heartbeat says of its
//! sending partition (its replicated-up-to) is heard first, whatever becomes of the batch, and
//! reported to the own meta server with the next beacon, as the servers' `Incoming` does.
//! Whether a batch is admitted is the servers' own decision (`DupRules::admit`); a refusal is
//! also a violation here, because the simulated shippers are correct unless a bug is planted —
//! except `CLOCK_AHEAD`, the refusal of timetags too far ahead of this clock, which a cluster
//! whose clock runs ahead must get (counted; the shipper retries until this clock catches up).
//! Admitted puts go to the partition's replica like a pipeline frame of client writes; the
//! batch is acknowledged once every put is done or superseded (lost last-writer-wins), and
//! refused as soon as one is refused.

use tern_core::mutation::WriteOutcome;
use tern_core::{ClusterId, Error, Gpid, Timetag, WriteOp};
use tern_duplication::{IncomingBatch, Receiver};
use tern_replica::{Event, RequestId};

use super::ship::{is_clock_ahead, refusal};
use super::{NodeDup, Receiving};
use crate::net::{Addr, Msg, ResponseBody, ShipHeader};
use crate::node::SimNode;
use crate::world_ctx::Ctx;

impl SimNode {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dup_on_batch(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: Addr,
        id: u64,
        from_cluster: ClusterId,
        gpid: Gpid,
        partition_count: u32,
        header: ShipHeader,
        puts: Vec<WriteOp>,
    ) {
        let (me, id_me, now) = (self.addr(), self.id, self.wall_ms(ctx));
        let Some(dup) = self.dup.as_mut() else { return };
        dup.hear(from_cluster, &header);
        let refuse =
            |ctx: &mut Ctx<'_>, e: Error| ctx.send(me, from, Msg::DupAck { id, result: Err(refusal(&e)) });
        let receiver = Receiver {
            own_cluster: dup.cluster,
            own_partitions: Some(dup.own_partitions),
            max_clock_offset_ms: self.opts.max_clock_offset_ms,
        };
        let batch =
            IncomingBatch { gpid, from_cluster: u32::from(from_cluster.get()), partition_count, puts };
        let puts = match self.rules.admit(&receiver, batch, now) {
            Ok(admitted) => admitted.puts,
            Err(e) if is_clock_ahead(&e) => {
                ctx.obs.dup.clock_ahead += 1;
                return refuse(ctx, e);
            }
            Err(e) => {
                ctx.obs
                    .violations
                    .push(format!("{id_me}: a batch for {gpid} was refused by the receiver: {e}"));
                return refuse(ctx, e);
            }
        };
        if !self.replicas.contains_key(&gpid) {
            return refuse(ctx, Error::NotPrimary { gpid });
        }
        let key = dup.next_receiving;
        dup.next_receiving += 1;
        dup.receiving.insert(key, Receiving { from, id, waiting: puts.len(), superseded: 0 });
        if puts.is_empty() {
            return dup.finish(ctx, me, key, None);
        }
        let mut writes = Vec::with_capacity(puts.len());
        for op in puts {
            let req = self.next_request;
            self.next_request += 1;
            dup.put_requests.insert(req, key);
            writes.push((req, op));
        }
        self.feed(ctx, gpid, Event::ClientWrites { writes });
    }
}

impl NodeDup {
    /// What a batch or heartbeat from `from_cluster` says of its sending partition.
    fn hear(&mut self, from_cluster: ClusterId, h: &ShipHeader) {
        let key = (from_cluster.get(), h.source_table, h.source_partition);
        let entry = self.heard.entry(key).or_insert((h.source_partitions, Timetag::ZERO));
        entry.0 = h.source_partitions;
        entry.1 = entry.1.max(h.replicated_up_to);
    }

    /// Whether `req` is a put of a batch being received; then takes its answer.
    pub(crate) fn on_answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        me: Addr,
        req: RequestId,
        body: &ResponseBody,
    ) -> bool {
        let Some(key) = self.put_requests.remove(&req) else { return false };
        let Some(r) = self.receiving.get_mut(&key) else { return true };
        let refused = match body {
            // Applied, over nothing or over a record it replaced (the simulator does not
            // journal conflicts).
            ResponseBody::Written { outcome: WriteOutcome::Done | WriteOutcome::Replaced { .. }, .. } => None,
            ResponseBody::Written { outcome: WriteOutcome::Superseded { .. }, .. } => {
                r.superseded += 1;
                None
            }
            ResponseBody::Written { outcome, .. } => Some(format!("unexpected outcome {outcome:?}")),
            ResponseBody::Refused { error, .. } => {
                if is_clock_ahead(error) {
                    ctx.obs.dup.clock_ahead += 1;
                }
                Some(refusal(error))
            }
            ResponseBody::Read { .. } => Some("a read answered a put".into()),
        };
        r.waiting -= 1;
        if refused.is_some() || r.waiting == 0 {
            self.finish(ctx, me, key, refused);
        }
        true
    }

    fn finish(&mut self, ctx: &mut Ctx<'_>, me: Addr, key: u64, refused: Option<String>) {
        let Some(r) = self.receiving.remove(&key) else { return };
        let result = match refused {
            None => Ok(r.superseded),
            Some(e) => Err(e),
        };
        ctx.send(me, r.from, Msg::DupAck { id: r.id, result });
    }
}
