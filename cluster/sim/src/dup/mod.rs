//! Duplication in two-cluster runs: the simulated runtime around the server's own duplication
//! code. Every decision is `tern-duplication`'s, the same the servers run: the shipper
//! (`Shipper`), where a new primary's shipper starts (`DupRules::start_point`), which batches
//! a receiver admits (`DupRules::admit`), and what of each log the links keep
//! (`DupRules::log_floor`, applied through the shared executor `tern_host`). What is the
//! simulator's own is the transport: `ship.rs` (one shipper per partition the node leads,
//! batches as messages), `receive.rs` (a batch's puts handed to the replica, acks), and the
//! link's progress at each meta server ([`MetaLink`]). Batches, acks, progress reports and
//! route queries are network messages, subject to every fault of the run, the cut between the
//! clusters included.

mod receive;
mod ship;

use std::collections::{BTreeMap, BTreeSet};

use tern_confman::ConfigManager;
use tern_core::{ClusterId, Decree, Gpid, NodeId, PartitionIndex, TableId, Timetag, WriteOp};
use tern_duplication::{DupRules, Shipper, entry_to_puts, report_counts};
use tern_replica::RequestId;
use tern_storage::LogEntry;

use crate::config::DupBugs;
use crate::net::{Addr, DupReport, LinkProgress};
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
}

impl DupObs {
    /// Records the puts of an entry when it is first applied in its cluster.
    pub fn record_origin(&mut self, g: Gpid, entry: &LogEntry, local: ClusterId) -> Result<(), String> {
        let puts = entry_to_puts(entry, local).map_err(|e| e.to_string())?;
        let ids = puts.iter().filter_map(put_id).collect::<Vec<_>>();
        if !ids.is_empty() {
            self.origin.insert((g, entry.decree.0), ids);
        }
        Ok(())
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
}

impl MetaLink {
    pub fn new(table: TableId, partitions: u32) -> MetaLink {
        let gpid = |p| Gpid { table, partition: PartitionIndex(p) };
        MetaLink { partitions: (0..partitions).map(|p| (gpid(p), LinkProgress::default())).collect() }
    }

    pub fn view(&self) -> Vec<(Gpid, LinkProgress)> {
        self.partitions.iter().map(|(g, p)| (*g, *p)).collect()
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
            // Everything up to the new confirmed decree must have been acknowledged remotely.
            let after = if p.started {
                p.confirmed
            } else {
                ctx.obs.dup.floor.get(&r.gpid).copied().unwrap_or(Decree::ZERO)
            };
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
}

/// A batch in flight.
struct Sent {
    gpid: Gpid,
    generation: u64,
    batch: u64,
    puts: Vec<WriteOp>,
    deadline_ms: u64,
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
    /// The own meta server's view of the link, from its last answer.
    view: BTreeMap<Gpid, LinkProgress>,
    /// The remote table's partition count and primaries, from the remote meta server.
    remote_partitions: Option<u32>,
    remote_primaries: BTreeMap<u32, NodeId>,
    shippers: BTreeMap<Gpid, Running>,
    /// Partitions led here whose start point is decided (ballot, decree) and whose shipper
    /// waits for the remote routes.
    starting: BTreeMap<Gpid, (tern_core::Ballot, Decree)>,
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
    ) -> NodeDup {
        NodeDup {
            own_partitions,
            cluster: ClusterId::new(cluster as u8 + 1).expect("a valid cluster id"),
            own_meta: Addr::Meta(cluster as u8),
            remote_meta: Addr::Meta(remote as u8),
            remote_table: TableId(remote as u32 + 1),
            batch_max_puts,
            bugs,
            view: BTreeMap::new(),
            remote_partitions: None,
            remote_primaries: BTreeMap::new(),
            shippers: BTreeMap::new(),
            starting: BTreeMap::new(),
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
        *self = NodeDup::new(cluster, remote, self.own_partitions, self.batch_max_puts, self.bugs.clone());
    }

    /// The lowest decree the log of `g` must keep for the link (`DupRules::log_floor`, as the
    /// servers decide it): the node knows the link once its meta server has answered since it
    /// started (a crash forgets the view).
    pub fn log_floor(&self, rules: &DupRules, g: Gpid) -> Option<Decree> {
        let known = !self.view.is_empty();
        rules.log_floor(known, self.view.get(&g).copied())
    }

    pub fn on_links(&mut self, partitions: Vec<(Gpid, LinkProgress)>) {
        for (g, p) in partitions {
            self.view.insert(g, p);
        }
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

    /// Whether the shipper of `g` runs at `ballot` with everything up to `committed` confirmed
    /// and nothing in flight.
    pub fn caught_up(&self, g: Gpid, ballot: tern_core::Ballot, committed: Decree) -> Result<(), String> {
        let Some(r) = self.shippers.get(&g) else { return Err(format!("{g}: no shipper runs")) };
        if r.ballot != ballot {
            return Err(format!("{g}: the shipper runs at b{}, the primary is at b{ballot}", r.ballot));
        }
        if let Some(gap) = &r.log_gap {
            return Err(format!("{g}: {gap}"));
        }
        let s = r.shipper.stats();
        if s.confirmed != committed || s.inflight_batches > 0 {
            return Err(format!(
                "{g}: shipped through d{} of d{committed} ({} batches in flight, {} puts queued, last error {:?})",
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
        if let Some(id) = put_id(p) {
            obs.dup.acked.insert(id);
        }
    }
}
