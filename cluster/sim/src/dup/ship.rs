//! The sending side in a simulated replica server: one shipper per partition this node leads,
//! started when it becomes primary where the shared rules say (`DupRules::start_point`: after
//! the meta server's confirmed decree, after the committed decree if the partition has not
//! started, or after a copy of its records if the link is added with a full sync), dropped when
//! it stops leading. Each shipper reads committed entries from the log, sends the batches it
//! cuts to the remote cluster's primaries, and hears back; a shipper with nothing to send sends
//! a heartbeat every 2 s (what the partition is replicated up to, for the receiving table's
//! purge horizon). Progress goes to the own meta server with every beacon.

use tern_core::{Ballot, Decree, Error, Gpid, ReplicaStatus, Timetag, WriteOp};
use tern_duplication::{Shipper, ShipperOptions, StartPoint};
use tern_storage::log::contiguous_run;
use tern_storage::{MutationLog, PartitionStore};

use super::full_sync::Copying;
use super::{Running, Sent, Starting, header, record_acked, stamped_by};
use crate::net::{Addr, DupReport, Msg};
use crate::node::{BEACON_MS, SimNode};
use crate::world_ctx::Ctx;

/// A batch not answered within this long (local ms) counts as failed (it may still apply).
pub(super) const BATCH_TIMEOUT_MS: u64 = 3_000;
/// How often a node asks the remote meta server for its routes.
const ROUTES_MS: u64 = 1_000;
/// A partition with nothing to send says how far it is replicated this often (the servers').
const HEARTBEAT_MS: u64 = 2_000;

impl SimNode {
    /// Called on every tick: time out batches, start and stop shippers, copy, ship, report,
    /// route.
    pub(crate) fn dup_tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = self.now_ms(ctx);
        let me = self.addr();
        let Some(dup) = self.dup.as_mut() else { return };
        let expired: Vec<u64> =
            dup.sent.iter().filter(|(_, s)| s.deadline_ms <= now).map(|(id, _)| *id).collect();
        for id in expired {
            let s = dup.sent.remove(&id).expect("listed above");
            ctx.obs.dup.batches_failed += 1;
            if s.copy {
                if let Some(c) = dup.copies.get_mut(&s.gpid).filter(|c| c.generation == s.generation) {
                    c.on_failed(now);
                }
            } else if let Some(r) = dup.shippers.get_mut(&s.gpid).filter(|r| r.generation == s.generation) {
                r.shipper.on_failed(s.batch, now, "timed out".into());
            }
            dup.next_refresh_ms = now;
        }
        if now >= dup.next_refresh_ms {
            dup.next_refresh_ms = now + ROUTES_MS;
            ctx.send(me, dup.remote_meta, Msg::QueryConfigs);
        }
        if now >= dup.next_report_ms {
            dup.next_report_ms = now + BEACON_MS;
            // A partition whose start point is decided counts as started even before its shipper
            // can reach the other cluster. One still copying its records reports nothing.
            let shipping = dup
                .shippers
                .iter()
                .map(|(g, r)| (*g, r.ballot, r.shipper.confirmed(), r.shipper.replicated_up_to()));
            let starting = dup.starting.iter().map(|(g, s)| (*g, s.ballot, s.after, s.up_to));
            let reports = shipping
                .chain(starting)
                .map(|(gpid, ballot, confirmed, replicated_up_to)| DupReport {
                    gpid,
                    ballot,
                    confirmed,
                    replicated_up_to,
                })
                .collect();
            let incoming = dup.heard_report();
            ctx.send(me, dup.own_meta, Msg::DupProgress { reports, incoming });
        }
        self.dup_reconcile(ctx);
        let gpids: Vec<Gpid> =
            self.dup.as_ref().map(|d| d.shippers.keys().copied().collect()).unwrap_or_default();
        for g in gpids {
            self.dup_pump(ctx, g);
            self.dup_heartbeat(ctx, g, now);
        }
        let copying: Vec<Gpid> =
            self.dup.as_ref().map(|d| d.copies.keys().copied().collect()).unwrap_or_default();
        for g in copying {
            self.copy_step(ctx, g);
        }
    }

    /// Decides where every partition led here that has no shipper starts (the link then counts
    /// as started there, whether or not the other cluster can be reached: what is committed
    /// after that point ships, whenever the routes come), or starts copying its records (a
    /// full sync); starts its shipper once the remote routes are known; and drops the shippers
    /// and copies of partitions no longer led at their ballot.
    fn dup_reconcile(&mut self, ctx: &mut Ctx<'_>) {
        let me = self.id;
        let Some(dup) = self.dup.as_mut() else { return };
        let leading: Vec<(Gpid, Ballot, Decree, Timetag)> = self
            .replicas
            .iter()
            .filter(|(_, h)| h.sm.status() == ReplicaStatus::Primary)
            .map(|(g, h)| (*g, h.sm.ballot(), h.sm.committed(), h.io.store.last_applied_timetag()))
            .collect();
        let led_at = |g: &Gpid, ballot: Ballot| leading.iter().any(|(lg, b, _, _)| lg == g && *b == ballot);
        let stale: Vec<Gpid> =
            dup.shippers.iter().filter(|(g, r)| !led_at(g, r.ballot)).map(|(g, _)| *g).collect();
        for g in stale {
            dup.shippers.remove(&g);
            dup.sent.retain(|_, s| s.gpid != g || s.copy);
            ctx.trace(format!("{me} {g} stops shipping"));
        }
        let stale: Vec<Gpid> =
            dup.copies.iter().filter(|(g, c)| !led_at(g, c.ballot)).map(|(g, _)| *g).collect();
        for g in stale {
            dup.copies.remove(&g);
            dup.sent.retain(|_, s| s.gpid != g || !s.copy);
            ctx.trace(format!("{me} {g} stops copying"));
        }
        dup.starting.retain(|g, s| led_at(g, s.ballot));
        for (g, ballot, committed, applied) in leading {
            if dup.shippers.contains_key(&g) || dup.copies.contains_key(&g) {
                continue;
            }
            if !dup.starting.contains_key(&g) {
                let Some(view) = dup.view.get(&g).copied() else { continue };
                let decided = self.rules.start_point(view, dup.syncing, committed);
                let recorded = dup.recorded_up_to.get(&g).copied().unwrap_or_default();
                let up_to = decided.replicated_from(committed, applied, recorded);
                match decided {
                    StartPoint::After { decree, .. } => {
                        ctx.trace(format!(
                            "{me} {g} ships from d{} at b{ballot} (started: {})",
                            decree.next(),
                            view.started
                        ));
                        dup.starting.insert(g, Starting { ballot, after: decree, up_to });
                    }
                    StartPoint::CopyFirst => {
                        ctx.trace(format!("{me} {g} copies its records at b{ballot} (full sync)"));
                        let generation = dup.next_generation;
                        dup.next_generation += 1;
                        dup.copies.insert(g, Copying::new(ballot, generation, up_to));
                        continue;
                    }
                }
            }
            let (Some(&start), Some(remote_partitions)) = (dup.starting.get(&g), dup.remote_partitions)
            else {
                continue;
            };
            let opts = ShipperOptions { batch_max_puts: dup.batch_max_puts, ..ShipperOptions::default() };
            let mut shipper = match Shipper::new(dup.cluster, remote_partitions, start.after, opts) {
                Ok(s) => s,
                Err(e) => {
                    ctx.obs.violations.push(format!("{me} {g}: cannot start a shipper: {e}"));
                    continue;
                }
            };
            shipper.resume_replicated_up_to(start.up_to);
            dup.starting.remove(&g);
            let generation = dup.next_generation;
            dup.next_generation += 1;
            ctx.obs.dup.shippers_started += 1;
            let run = Running { ballot, generation, shipper, log_gap: None, last_sent_ms: 0 };
            dup.shippers.insert(g, run);
        }
    }

    /// Feeds the shipper of `g` what is committed and sends what it cuts.
    pub(crate) fn dup_pump(&mut self, ctx: &mut Ctx<'_>, g: Gpid) {
        let now = self.now_ms(ctx);
        let me = self.addr();
        let (Some(dup), Some(h)) = (self.dup.as_mut(), self.replicas.get(&g)) else { return };
        let header = header(dup, g, false);
        let Some(run) = dup.shippers.get_mut(&g) else { return };
        let committed = h.sm.committed();
        let mut reshipped = Vec::new();
        while let Some((from, n)) = run.shipper.next_read(committed) {
            let through = Decree(committed.0.min(from.0 + n as u64 - 1));
            let entries = h.io.log.read(from, n).unwrap_or_default();
            let Some(entries) = contiguous_run(entries, from, through) else {
                let held = h.io.log.decree_range();
                run.log_gap =
                    Some(format!("the log no longer holds d{from}..=d{through} (it holds {held:?})"));
                break;
            };
            if dup.bugs.reship_duplicated {
                for e in &entries {
                    reshipped.extend(e.mutation.ops.iter().filter(|op| {
                        matches!(op, WriteOp::Put { timetag: Some(t), .. } if !stamped_by(*t, dup.cluster))
                    }).cloned());
                }
            }
            if let Err(e) = run.shipper.on_entries(&entries) {
                run.log_gap = Some(format!("cannot ship d{from}..=d{through}: {e}"));
                break;
            }
            run.log_gap = None;
        }
        if let Some(gap) = run.log_gap.clone().filter(|_| dup.resync_on_gap) {
            // The log no longer holds what must be shipped: copy the partition's records
            // instead, then ship from where the copy began (the servers' resync).
            let (ballot, applied) = (run.ballot, h.io.store.last_applied_timetag());
            dup.shippers.remove(&g);
            dup.sent.retain(|_, s| s.gpid != g || s.copy);
            let generation = dup.next_generation;
            dup.next_generation += 1;
            dup.copies.insert(g, Copying::new(ballot, generation, applied));
            ctx.obs.dup.resyncs += 1;
            let id = self.id;
            ctx.trace(format!("{id} {g}: {gap}: copies its records instead (resync)"));
            return;
        }
        let Some(partitions) = dup.remote_partitions else { return };
        for b in run.shipper.poll(now) {
            let Some(&to) = dup.remote_primaries.get(&b.remote_partition) else {
                run.shipper.on_failed(b.id, now, "no route to the remote primary".into());
                ctx.obs.dup.batches_failed += 1;
                dup.next_refresh_ms = now;
                continue;
            };
            let id = dup.next_id;
            dup.next_id += 1;
            let gpid =
                Gpid { table: dup.remote_table, partition: tern_core::PartitionIndex(b.remote_partition) };
            let msg = Msg::DupBatch {
                id,
                from_cluster: dup.cluster,
                gpid,
                partition_count: partitions,
                header,
                puts: b.puts.clone(),
            };
            ctx.send(me, Addr::Node(to), msg);
            run.last_sent_ms = now;
            let deadline_ms = now + BATCH_TIMEOUT_MS;
            let generation = run.generation;
            let sent = Sent { gpid: g, generation, batch: b.id, puts: b.puts, deadline_ms, copy: false };
            dup.sent.insert(id, sent);
        }
        // The planted loop: writes that arrived by duplication go back where they came from.
        for put in reshipped {
            let p = tern_core::partition_of(put.hash_key(), partitions);
            if let Some(&to) = dup.remote_primaries.get(&p.0) {
                let gpid = Gpid { table: dup.remote_table, partition: p };
                let (id, from_cluster) = (dup.next_id, dup.cluster);
                dup.next_id += 1;
                let msg = Msg::DupBatch {
                    id,
                    from_cluster,
                    gpid,
                    partition_count: partitions,
                    header,
                    puts: vec![put],
                };
                ctx.send(me, Addr::Node(to), msg);
            }
        }
    }

    /// A shipper that sent nothing for a while says how far its partition is replicated: a
    /// batch without puts to one remote partition (its answer changes nothing).
    fn dup_heartbeat(&mut self, ctx: &mut Ctx<'_>, g: Gpid, now: u64) {
        let me = self.addr();
        let Some(dup) = self.dup.as_mut() else { return };
        let (Some(partitions), Some(run)) = (dup.remote_partitions, dup.shippers.get(&g)) else { return };
        if now < run.last_sent_ms + HEARTBEAT_MS {
            return;
        }
        let to_partition = g.partition.0 % partitions;
        let header = header(dup, g, false);
        let id = dup.next_id;
        dup.next_id += 1;
        if let Some(run) = dup.shippers.get_mut(&g) {
            run.last_sent_ms = now;
        }
        let Some(&to) = dup.remote_primaries.get(&to_partition) else { return };
        let gpid = Gpid { table: dup.remote_table, partition: tern_core::PartitionIndex(to_partition) };
        let msg = Msg::DupBatch {
            id,
            from_cluster: dup.cluster,
            gpid,
            partition_count: partitions,
            header,
            puts: vec![],
        };
        ctx.send(me, Addr::Node(to), msg);
    }

    /// A remote primary answered batch `id`.
    pub(crate) fn dup_on_ack(&mut self, ctx: &mut Ctx<'_>, id: u64, result: Result<u32, String>) {
        let now = self.now_ms(ctx);
        let Some(dup) = self.dup.as_mut() else { return };
        let Some(s) = dup.sent.remove(&id) else { return };
        if s.copy {
            if let Some(c) = dup.copies.get_mut(&s.gpid).filter(|c| c.generation == s.generation) {
                match &result {
                    Ok(superseded) => {
                        record_acked(ctx.obs, &s.puts, *superseded);
                        ctx.obs.dup.copied += s.puts.len() as u64;
                        c.on_acked();
                    }
                    Err(_) => {
                        ctx.obs.dup.batches_failed += 1;
                        c.on_failed(now);
                        dup.next_refresh_ms = now;
                    }
                }
            }
            return self.copy_step(ctx, s.gpid);
        }
        let run = dup.shippers.get_mut(&s.gpid).filter(|r| r.generation == s.generation);
        match result {
            Ok(superseded) => {
                record_acked(ctx.obs, &s.puts, superseded);
                if let Some(r) = run {
                    r.shipper.on_acked(s.batch, now);
                }
            }
            Err(e) => {
                ctx.obs.dup.batches_failed += 1;
                if let Some(r) = run {
                    if dup.bugs.failed_as_acked {
                        r.shipper.on_acked(s.batch, now);
                    } else {
                        r.shipper.on_failed(s.batch, now, e);
                    }
                }
                dup.next_refresh_ms = now;
            }
        }
        self.dup_pump(ctx, s.gpid);
    }
}

/// The error a receiver answers when it cannot take a batch.
pub(super) fn refusal(e: &Error) -> String {
    format!("{}: {e}", e.code())
}

/// Whether an answer refused a batch for its timetags being ahead of the receiver's clock.
pub(super) fn is_clock_ahead(e: &Error) -> bool {
    e.code() == tern_core::ErrorCode::ClockAhead
}
