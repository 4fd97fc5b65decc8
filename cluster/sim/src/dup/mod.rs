//! Duplication in two-cluster runs: the simulated runtime around the server's own duplication
//! code. Every decision is `tern-duplication`'s, the same the servers run: the shipper
//! (`Shipper`), where a new primary's shipper starts and what it knows is replicated from the
//! start (`DupRules::start_point`, `StartPoint::replicated_from`), which batches a receiver
//! admits (`DupRules::admit`), what of each log the links keep (`DupRules::log_floor`, applied
//! through the shared executor `tern_host`), what a full sync copies (`record_to_put`) and the
//! receiving tables' purge horizons (`DupRules::purge_horizon`). What is the simulator's own is
//! the transport: `ship.rs` (one shipper per partition the node leads, batches and heartbeats
//! as messages), `full_sync.rs` (a partition's records copied before it ships), `receive.rs`
//! (a batch's puts handed to the replica, acks, what was heard of incoming links), and the
//! bookkeeping of each meta server ([`MetaLink`], `horizon.rs`). Batches, acks, progress
//! reports and route queries are network messages, subject to every fault of the run, the cut
//! between the clusters included.

mod full_sync;
mod horizon;
mod receive;
mod ship;

pub use horizon::MetaHorizon;

use std::collections::{BTreeMap, BTreeSet};

use tern_confman::ConfigManager;
use tern_core::{ClusterId, Decree, Gpid, NodeId, PartitionIndex, TableId, Timetag, WriteOp};
use tern_duplication::{DupRules, Shipper, entry_to_puts, report_counts};

use self::full_sync::Copying;
use tern_replica::RequestId;
use tern_storage::LogEntry;

use crate::config::DupBugs;
use crate::net::{Addr, DupReport, IncomingHeard, LinkProgress, LinkView};
use crate::observe::Observations;
use crate::world_ctx::Ctx;

/// A put as the checks identify it: (hash key, sort key, timetag with its delete bit).
pub type PutId = (Vec<u8>, Vec<u8>, u64);

/// What the run observed of duplication, for the checks.
#[derive(Debug, Default)]
pub struct DupObs {
    /// (partition, decree) → the puts the entry first applied there ships (its local writes).
    pub origin: BTreeMap<(Gpid, u64), Vec<PutId>>,
    /// Puts a remote primary acknowledged (committed: applied, or superseded there).
    pub acked: BTreeSet<PutId>,
    /// Per partition, the decree its first shipper started after (a link ships what is
    /// committed after it started; earlier writes need a full sync).
    pub floor: BTreeMap<Gpid, Decree>,
    pub batches_acked: u64,
    pub batches_failed: u64,
    pub puts_acked: u64,
    /// Puts that lost last-writer-wins at the receiver (conflicts).
    pub superseded: u64,
    pub shippers_started: u64,
    /// Puts of entries after their partition's floor not acknowledged yet, by origin cluster
    /// and timetag (what a purge horizon must stay below, `checker/horizon.rs`).
    pub unacked: BTreeSet<(u8, u64, Vec<u8>, Vec<u8>)>,
    /// Batches refused because their timetags were too far ahead of the receiver's clock.
    pub clock_ahead: u64,
    /// Records full syncs copied (acknowledged), and full syncs completed.
    pub copied: u64,
    pub copies_done: u64,
    /// Per partition, the largest decree a completed copy began at: every write at or below it
    /// reached the other cluster as (or superseded by) a copied record state.
    pub copied_through: BTreeMap<Gpid, Decree>,
    /// Primaries that found a hole in their log and copied their records instead.
    pub resyncs: u64,
}

impl DupObs {
    /// Records the puts of an entry when it is first applied in its cluster.
    pub fn record_origin(&mut self, g: Gpid, entry: &LogEntry, local: ClusterId) -> Result<(), String> {
        let puts = entry_to_puts(entry, local).map_err(|e| e.to_string())?;
        let ids = puts.iter().filter_map(put_id).collect::<Vec<_>>();
        if !ids.is_empty() {
            if self.floor.get(&g).is_some_and(|f| entry.decree > *f) {
                self.track_unacked(&ids);
            }
            self.origin.insert((g, entry.decree.0), ids);
        }
        Ok(())
    }

    /// The partition `g` started shipping after decree `floor` (the first start point its meta
    /// server accepted): what it committed after that must reach the other cluster.
    pub fn set_floor(&mut self, g: Gpid, floor: Decree) {
        if self.floor.contains_key(&g) {
            return;
        }
        self.floor.insert(g, floor);
        let after: Vec<PutId> =
            self.origin.range((g, floor.0 + 1)..=(g, u64::MAX)).flat_map(|(_, p)| p.clone()).collect();
        self.track_unacked(&after);
    }

    fn track_unacked(&mut self, ids: &[PutId]) {
        for (h, s, t) in ids {
            if !self.acked.contains(&(h.clone(), s.clone(), *t)) {
                let origin = Timetag::from_u64(*t).cluster().get();
                self.unacked.insert((origin, *t, h.clone(), s.clone()));
            }
        }
    }

    /// A copy of `g`'s records that began at decree `start` completed: its puts up to `start`
    /// reached the other cluster as copied record states.
    pub fn copy_done(&mut self, g: Gpid, start: Decree) {
        let through = self.copied_through.entry(g).or_default();
        *through = (*through).max(start);
        let covered: Vec<PutId> =
            self.origin.range((g, 0)..=(g, start.0)).flat_map(|(_, p)| p.clone()).collect();
        for (h, s, t) in covered {
            let origin = Timetag::from_u64(t).cluster().get();
            self.unacked.remove(&(origin, t, h, s));
        }
    }

    /// The oldest put stamped by cluster `origin` not acknowledged by the other cluster yet.
    pub fn oldest_unacked(&self, origin: u8) -> Option<(Timetag, &[u8], &[u8])> {
        let (_, t, h, s) =
            self.unacked.range((origin, 0, vec![], vec![])..).next().filter(|u| u.0 == origin)?;
        Some((Timetag::from_u64(*t), h, s))
    }
}

pub fn put_id(op: &WriteOp) -> Option<PutId> {
    match op {
        WriteOp::Put { hash_key, sort_key, timetag: Some(t), .. } => {
            Some((hash_key.clone(), sort_key.clone(), t.as_u64()))
        }
        _ => None,
    }
}

/// The link's progress at one meta server: per partition of its table, whether shipping
/// started and the confirmed decree. Which reports count and how progress moves are
/// `tern-duplication`'s rules (`report_counts`, `LinkProgress::after_report`), the ones
/// `tern-meta` applies.
#[derive(Debug)]
pub struct MetaLink {
    partitions: BTreeMap<Gpid, LinkProgress>,
    /// Per partition, the replicated-up-to recorded with the confirmed decree (the largest an
    /// accepted report said; `LinkRecord::record` in `tern-meta`).
    replicated_up_to: BTreeMap<Gpid, Timetag>,
    /// Added with a full sync that has not finished in every partition (link status
    /// `syncing-checkpoint`).
    syncing: bool,
}

impl MetaLink {
    pub fn new(table: TableId, partitions: u32, full_sync: bool) -> MetaLink {
        let gpid = |p| Gpid { table, partition: PartitionIndex(p) };
        MetaLink {
            partitions: (0..partitions).map(|p| (gpid(p), LinkProgress::default())).collect(),
            replicated_up_to: BTreeMap::new(),
            syncing: full_sync,
        }
    }

    pub fn view(&self) -> LinkView {
        let w = |g: &Gpid| self.replicated_up_to.get(g).copied().unwrap_or_default();
        LinkView {
            partitions: self.partitions.iter().map(|(g, p)| (*g, *p, w(g))).collect(),
            syncing: self.syncing,
        }
    }

    pub fn progress(&self, g: Gpid) -> Option<LinkProgress> {
        self.partitions.get(&g).copied()
    }

    pub fn all_started(&self) -> bool {
        self.partitions.values().all(|p| p.started)
    }

    pub fn on_progress(
        &mut self,
        ctx: &mut Ctx<'_>,
        cm: &ConfigManager,
        from: NodeId,
        reports: &[DupReport],
    ) {
        for r in reports {
            // Which reports count, and how progress moves, are the meta server's own rules.
            let current = cm.config(r.gpid).is_some_and(|c| report_counts(c, from, r.ballot));
            let Some(p) = self.partitions.get_mut(&r.gpid) else { continue };
            if !current {
                continue;
            }
            // The first start point accepted: what is committed after it must ship.
            if !p.started {
                ctx.obs.dup.set_floor(r.gpid, r.confirmed);
            }
            // Everything up to the new confirmed decree must have been acknowledged remotely.
            let after = if p.started { p.confirmed } else { r.confirmed };
            if r.confirmed > after
                && let Some(v) =
                    crate::checker::dup_confirmed::check_advance(ctx.obs, r.gpid, after, r.confirmed)
            {
                ctx.obs.violations.push(v);
            }
            let next = p.after_report(r.confirmed);
            if next.confirmed < p.confirmed {
                ctx.obs.violations.push(format!(
                    "{}: the meta server's confirmed decree went back from {} to {}",
                    r.gpid, p.confirmed, next.confirmed
                ));
            }
            if next != *p {
                ctx.trace(format!(
                    "link {}: confirmed d{} (reported by {from} at b{})",
                    r.gpid, next.confirmed, r.ballot
                ));
            }
            *p = next;
            let w = self.replicated_up_to.entry(r.gpid).or_default();
            *w = (*w).max(r.replicated_up_to);
        }
        // A full sync is over once every partition copied its records and ships its log.
        if self.syncing && self.all_started() {
            self.syncing = false;
            ctx.trace("link: every partition copied its records: shipping".into());
        }
    }
}

/// One running shipper of a node: (link, partition) this node leads at `ballot`.
struct Running {
    ballot: tern_core::Ballot,
    /// Tells a running shipper's batches from those of one it replaced.
    generation: u64,
    shipper: Shipper,
    /// Why the log cannot be read further (a hole: the partition needs a full sync).
    log_gap: Option<String>,
    /// When a batch or heartbeat last went out (a quiet partition sends heartbeats).
    last_sent_ms: u64,
}

/// A partition led here whose start point is decided, waiting for the remote routes.
#[derive(Clone, Copy)]
struct Starting {
    ballot: tern_core::Ballot,
    /// Ship the log after this decree.
    after: Decree,
    /// What the shipper knows is replicated from the start (`StartPoint::replicated_from`).
    up_to: Timetag,
}

/// A batch in flight: a shipper's (`batch` is its id) or a full sync's.
struct Sent {
    gpid: Gpid,
    generation: u64,
    batch: u64,
    puts: Vec<WriteOp>,
    deadline_ms: u64,
    copy: bool,
}

/// A batch being applied here for another cluster.
struct Receiving {
    from: Addr,
    id: u64,
    waiting: usize,
    superseded: u32,
}

/// A node's duplication state. Crashing loses all of it but the configuration.
#[allow(missing_debug_implementations)]
pub struct NodeDup {
    /// This cluster's id (what its timetags carry).
    pub cluster: ClusterId,
    own_meta: Addr,
    remote_meta: Addr,
    remote_table: TableId,
    /// The partition count of this cluster's table.
    own_partitions: u32,
    batch_max_puts: usize,
    bugs: DupBugs,
    /// A primary whose log no longer holds what it must ship copies the partition's records
    /// instead (a resync, as the servers do). Only in runs whose links are added to tables that
    /// already hold data: elsewhere the retention rules must keep every entry a link needs, and
    /// a hole is a violation (it stalls the link, and the run does not converge).
    resync_on_gap: bool,
    /// The own meta server answered since this node started: it knows whether its table has a
    /// link, and the view below is the link's.
    links_known: bool,
    /// The own meta server's view of the link, from its last answer (empty: no link).
    view: BTreeMap<Gpid, LinkProgress>,
    /// Per partition, the replicated-up-to the own meta server recorded (what batches say).
    recorded_up_to: BTreeMap<Gpid, Timetag>,
    /// The link still copies records (full sync).
    syncing: bool,
    /// The own table's purge horizon, as the own meta server last said.
    pub purge_below: Timetag,
    /// The remote table's partition count and primaries, from the remote meta server.
    remote_partitions: Option<u32>,
    remote_primaries: BTreeMap<u32, NodeId>,
    shippers: BTreeMap<Gpid, Running>,
    /// Partitions led here whose start point is decided and whose shipper waits for the remote
    /// routes.
    starting: BTreeMap<Gpid, Starting>,
    /// Partitions led here copying their records (full sync) before they ship.
    copies: BTreeMap<Gpid, Copying>,
    /// What this node's receiving side heard of incoming links: (from cluster, source table,
    /// source partition) → (source partition count, largest replicated-up-to). In memory, as
    /// the servers' `Incoming`: a crash forgets it.
    heard: BTreeMap<(u8, u32, u32), (u32, Timetag)>,
    sent: BTreeMap<u64, Sent>,
    next_id: u64,
    next_generation: u64,
    next_refresh_ms: u64,
    next_report_ms: u64,
    receiving: BTreeMap<u64, Receiving>,
    /// Put requests handed to a replica → the batch they belong to.
    put_requests: BTreeMap<RequestId, u64>,
    next_receiving: u64,
}

impl NodeDup {
    pub fn new(
        cluster: usize,
        remote: usize,
        own_partitions: u32,
        batch_max_puts: usize,
        bugs: DupBugs,
        resync_on_gap: bool,
    ) -> NodeDup {
        NodeDup {
            own_partitions,
            resync_on_gap,
            cluster: ClusterId::new(cluster as u8 + 1).expect("a valid cluster id"),
            own_meta: Addr::Meta(cluster as u8),
            remote_meta: Addr::Meta(remote as u8),
            remote_table: TableId(remote as u32 + 1),
            batch_max_puts,
            bugs,
            links_known: false,
            view: BTreeMap::new(),
            recorded_up_to: BTreeMap::new(),
            syncing: false,
            purge_below: Timetag::ZERO,
            remote_partitions: None,
            remote_primaries: BTreeMap::new(),
            shippers: BTreeMap::new(),
            starting: BTreeMap::new(),
            copies: BTreeMap::new(),
            heard: BTreeMap::new(),
            sent: BTreeMap::new(),
            next_id: 1,
            next_generation: 1,
            next_refresh_ms: 0,
            next_report_ms: 0,
            receiving: BTreeMap::new(),
            put_requests: BTreeMap::new(),
            next_receiving: 1,
        }
    }

    /// A crash: everything in memory is gone.
    pub fn reset(&mut self) {
        let (cluster, remote) = (self.cluster.get() as usize - 1, self.remote_table.0 as usize - 1);
        *self = NodeDup::new(
            cluster,
            remote,
            self.own_partitions,
            self.batch_max_puts,
            self.bugs.clone(),
            self.resync_on_gap,
        );
    }

    /// The lowest decree the log of `g` must keep for the link (`DupRules::log_floor`, as the
    /// servers decide it): the node knows the link once its meta server has answered since it
    /// started (a crash forgets the view).
    pub fn log_floor(&self, rules: &DupRules, g: Gpid) -> Option<Decree> {
        rules.log_floor(self.links_known, self.view.get(&g).copied())
    }

    /// The own meta server's answer: its view of the link (if the table has one) and the
    /// table's purge horizon.
    pub fn on_links(&mut self, link: Option<LinkView>, purge_below: Timetag) {
        self.links_known = true;
        self.purge_below = self.purge_below.max(purge_below);
        let Some(link) = link else { return };
        self.syncing = link.syncing;
        for (g, p, w) in link.partitions {
            self.view.insert(g, p);
            self.recorded_up_to.insert(g, w);
        }
    }

    /// What the next beacon reports of incoming links.
    pub fn heard_report(&self) -> Vec<IncomingHeard> {
        let heard = self.heard.iter();
        heard
            .map(|(&(from_cluster, source_table, source_partition), &(source_partitions, w))| IncomingHeard {
                from_cluster,
                source_table,
                source_partition,
                source_partitions,
                replicated_up_to: w,
            })
            .collect()
    }

    pub fn on_remote_configs(&mut self, configs: &[tern_core::PartitionConfig]) {
        let mine: Vec<_> = configs.iter().filter(|c| c.gpid.table == self.remote_table).collect();
        if mine.is_empty() {
            return;
        }
        self.remote_partitions = Some(mine.len() as u32);
        self.remote_primaries.clear();
        for c in mine {
            if let Some(p) = c.primary {
                self.remote_primaries.insert(c.gpid.partition.0, p);
            }
        }
    }

    /// Whether the shipper of `g` runs at `ballot` with everything up to `needed` confirmed and
    /// nothing in flight.
    pub fn caught_up(&self, g: Gpid, ballot: tern_core::Ballot, needed: Decree) -> Result<(), String> {
        let Some(r) = self.shippers.get(&g) else { return Err(format!("{g}: no shipper runs")) };
        if r.ballot != ballot {
            return Err(format!("{g}: the shipper runs at b{}, the primary is at b{ballot}", r.ballot));
        }
        if let Some(gap) = &r.log_gap {
            return Err(format!("{g}: {gap}"));
        }
        let s = r.shipper.stats();
        if s.confirmed < needed || s.inflight_batches > 0 || s.queued_puts > 0 {
            return Err(format!(
                "{g}: shipped through d{} of d{needed} ({} batches in flight, {} puts queued, last error {:?})",
                s.confirmed, s.inflight_batches, s.queued_puts, s.last_error
            ));
        }
        Ok(())
    }
}

/// Whether `t` was stamped by cluster `c`.
fn stamped_by(t: Timetag, c: ClusterId) -> bool {
    t.cluster() == c
}

/// The observations a shipper's ack adds.
fn record_acked(obs: &mut Observations, puts: &[WriteOp], superseded: u32) {
    obs.dup.batches_acked += 1;
    obs.dup.puts_acked += puts.len() as u64;
    obs.dup.superseded += u64::from(superseded);
    for p in puts {
        if let Some((h, s, t)) = put_id(p) {
            let origin = Timetag::from_u64(t).cluster().get();
            obs.dup.unacked.remove(&(origin, t, h.clone(), s.clone()));
            obs.dup.acked.insert((h, s, t));
        }
    }
}

/// What batches of partition `g` say of it: its replicated-up-to as the meta server recorded it
/// (a shipper's own figure runs ahead of that, and a later primary resumes from the recorded
/// one: the receiving table must never hear a figure a later primary could contradict).
fn header(dup: &NodeDup, g: Gpid, full_sync: bool) -> crate::net::ShipHeader {
    crate::net::ShipHeader {
        source_table: g.table.0,
        source_partition: g.partition.0,
        source_partitions: dup.own_partitions,
        replicated_up_to: dup.recorded_up_to.get(&g).copied().unwrap_or_default(),
        full_sync,
    }
}
