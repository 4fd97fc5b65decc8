//! The receiving side in a simulated replica server (as `tern-server`'s `duplicate.rs`): a
//! batch of puts for one partition is checked (no loop, no misroute), then every put goes to
//! the partition's replica as a client write; the batch is acknowledged once every put is done
//! or superseded (lost last-writer-wins), and refused as soon as one is refused.

use tern_core::mutation::WriteOutcome;
use tern_core::{ClusterId, Error, Gpid, WriteOp, partition_of};
use tern_replica::Event;

use super::ship::refusal;
use super::{Receiving, stamped_by};
use crate::net::{Addr, Msg, ResponseBody};
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
        puts: Vec<WriteOp>,
    ) {
        let (me, id_me) = (self.addr(), self.id);
        let Some(dup) = self.dup.as_mut() else { return };
        let own = dup.cluster;
        let own_partitions = dup.own_partitions;
        let refuse =
            |ctx: &mut Ctx<'_>, e: Error| ctx.send(me, from, Msg::DupAck { id, result: Err(refusal(&e)) });
        if partition_count != own_partitions {
            ctx.obs.violations.push(format!(
                "{id_me}: a batch for {gpid} was routed by {partition_count} partitions, the table has {own_partitions}"
            ));
            return refuse(ctx, Error::InvalidArgument("routed by a wrong partition count".into()));
        }
        if from_cluster == own {
            ctx.obs
                .violations
                .push(format!("no loops: {id_me} got a batch for {gpid} from its own cluster {own}"));
            return refuse(ctx, Error::InvalidArgument("a batch from this cluster itself".into()));
        }
        for p in &puts {
            let WriteOp::Put { hash_key, timetag, .. } = p else {
                ctx.obs
                    .violations
                    .push(format!("{id_me} {gpid}: a shipped batch holds a {} (not a put)", p.name()));
                return refuse(ctx, Error::InvalidArgument("not a put".into()));
            };
            let Some(t) = timetag else {
                ctx.obs.violations.push(format!("{id_me} {gpid}: a shipped put carries no timetag"));
                return refuse(ctx, Error::InvalidArgument("a put without its origin timetag".into()));
            };
            if stamped_by(*t, own) || !stamped_by(*t, from_cluster) {
                ctx.obs.violations.push(format!(
                    "no loops: {id_me} {gpid} got a put stamped {t} by cluster {} from cluster {from_cluster} \
                     (writes that arrived by duplication must never be shipped again)",
                    t.cluster()
                ));
                return refuse(ctx, Error::InvalidArgument("a put of another origin".into()));
            }
            if partition_of(hash_key, partition_count) != gpid.partition {
                ctx.obs.violations.push(format!("{id_me}: a put for {gpid} was misrouted by the shipper"));
                return refuse(ctx, Error::InvalidArgument("misrouted put".into()));
            }
        }
        if !self.replicas.contains_key(&gpid) {
            return refuse(ctx, Error::NotPrimary { gpid });
        }
        let Some(dup) = self.dup.as_mut() else { return };
        let key = dup.next_receiving;
        dup.next_receiving += 1;
        dup.receiving.insert(key, Receiving { from, id, waiting: puts.len(), superseded: 0 });
        if puts.is_empty() {
            return self.dup_finish(ctx, key, None);
        }
        for op in puts {
            let req = self.next_request;
            self.next_request += 1;
            if let Some(dup) = self.dup.as_mut() {
                dup.put_requests.insert(req, key);
            }
            self.feed(ctx, gpid, Event::ClientWrite { req, op });
        }
    }

    /// Whether `req` is a put of a batch being received; then takes its answer.
    pub(crate) fn dup_on_answer(&mut self, ctx: &mut Ctx<'_>, req: u64, body: &ResponseBody) -> bool {
        let Some(dup) = self.dup.as_mut() else { return false };
        let Some(key) = dup.put_requests.remove(&req) else { return false };
        let Some(r) = dup.receiving.get_mut(&key) else { return true };
        let refused = match body {
            ResponseBody::Written { outcome: WriteOutcome::Done, .. } => None,
            ResponseBody::Written { outcome: WriteOutcome::Superseded { .. }, .. } => {
                r.superseded += 1;
                None
            }
            ResponseBody::Written { outcome, .. } => Some(format!("unexpected outcome {outcome:?}")),
            ResponseBody::Refused { error, .. } => Some(refusal(error)),
            ResponseBody::Read { .. } => Some("a read answered a put".into()),
        };
        r.waiting -= 1;
        if refused.is_some() || r.waiting == 0 {
            self.dup_finish(ctx, key, refused);
        }
        true
    }

    fn dup_finish(&mut self, ctx: &mut Ctx<'_>, key: u64, refused: Option<String>) {
        let me = self.addr();
        let Some(dup) = self.dup.as_mut() else { return };
        let Some(r) = dup.receiving.remove(&key) else { return };
        let result = match refused {
            None => Ok(r.superseded),
            Some(e) => Err(e),
        };
        ctx.send(me, r.from, Msg::DupAck { id: r.id, result });
    }
}
