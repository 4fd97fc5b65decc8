//! The shippers of this node: one task per (link, partition) this node is primary of, the
//! progress the next beacon reports (with the conflict journal entries waiting for it, bounded:
//! while the meta server is unreachable the oldest are dropped and counted), and a client per
//! link for the remote cluster. What each replica's log keeps for the links is `links.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tern_client::{ClientOptions, TernClient};
use tern_core::{Gpid, LinkStatus, ReplicaStatus, Result};
use tern_duplication::{ConflictQueue, PENDING_CONFLICTS};
use tern_proto::convert::PbEnum;
use tern_proto::pb;

use super::{DupEnv, shipper_task};

/// A running shipper task of this node.
#[derive(Debug)]
struct Running {
    ballot: u64,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
pub struct Shipping {
    running: Mutex<BTreeMap<(u64, Gpid), Running>>,
    /// The newest progress of each (link, partition) shipped from here, for the next beacon.
    progress: Mutex<BTreeMap<(u64, u32), pb::DupProgress>>,
    /// Journal entries waiting for a beacon, per (link, partition); kept when a shipper stops
    /// (its drop count goes on), emptied by the beacons that carry them.
    conflicts: Mutex<BTreeMap<(u64, u32), ConflictQueue<pb::DupConflict>>>,
    /// Where each (link, partition)'s queue stood when the beacon under way was built.
    carrying: Mutex<BTreeMap<(u64, u32), u64>>,
    /// One client per link for the remote cluster.
    remotes: Mutex<BTreeMap<u64, Arc<TernClient>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shipping {
    /// A shipper's latest progress (its `recent_conflicts` are ignored: see [`Shipping::journal`]).
    pub fn publish(&self, p: pb::DupProgress, now_wall_ms: u64) {
        let mut p = pb::DupProgress { recent_conflicts: Vec::new(), ..p };
        p.conflicts_dropped = lock(&self.conflicts).get(&(p.link, p.partition)).map_or(0, |q| q.dropped());
        super::metrics::record_progress(&p, now_wall_ms);
        lock(&self.progress).insert((p.link, p.partition), p);
    }

    /// Conflicts a shipper learned of, for the journal: they wait for a beacon, at most
    /// `PENDING_CONFLICTS` per (link, partition), the oldest dropped (and counted) beyond.
    pub fn journal(&self, link: u64, partition: u32, conflicts: impl IntoIterator<Item = pb::DupConflict>) {
        let mut map = lock(&self.conflicts);
        let q = map.entry((link, partition)).or_insert_with(|| ConflictQueue::new(PENDING_CONFLICTS));
        let before = q.dropped();
        for c in conflicts {
            q.push(c);
        }
        if q.dropped() > before {
            tracing::warn!(
                link,
                partition,
                "{} conflict journal entries dropped (oldest first) while waiting for the meta server; {} in all",
                q.dropped() - before,
                q.dropped()
            );
        }
    }

    /// What the next beacon reports: each shipper's progress with the journal entries waiting.
    pub fn progress(&self) -> Vec<pb::DupProgress> {
        let conflicts = lock(&self.conflicts);
        let mut carrying = lock(&self.carrying);
        carrying.clear();
        let mut out: Vec<pb::DupProgress> = lock(&self.progress).values().cloned().collect();
        for p in &mut out {
            if let Some(q) = conflicts.get(&(p.link, p.partition)) {
                let (pending, end) = q.snapshot();
                p.recent_conflicts = pending;
                p.conflicts_dropped = q.dropped();
                carrying.insert((p.link, p.partition), end);
            }
        }
        out
    }

    /// The beacon built by the last [`Shipping::progress`] got through: drop the journal entries
    /// it carried.
    pub fn reported(&self, _sent: &[pb::DupProgress]) {
        let mut conflicts = lock(&self.conflicts);
        for (key, end) in std::mem::take(&mut *lock(&self.carrying)) {
            if let Some(q) = conflicts.get_mut(&key) {
                q.carried(end);
            }
        }
    }

    pub fn remote(&self, link: &pb::DupLink) -> Result<Arc<TernClient>> {
        let mut map = lock(&self.remotes);
        if let Some(c) = map.get(&link.id) {
            return Ok(c.clone());
        }
        let c = Arc::new(TernClient::new(ClientOptions::new(link.remote_metas.clone()))?);
        map.insert(link.id, c.clone());
        Ok(c)
    }
}

/// Starts a shipper for every (shipping link, partition this node is primary of) that has
/// none, and stops those whose link is gone, paused, or whose partition has another primary
/// (or a new ballot: the new reign starts from the meta server's confirmed decree).
pub fn reconcile(env: &DupEnv) {
    let links = env.links.all();
    let mut want = BTreeMap::new();
    let now_ms = env.clock.now().wall_ms;
    for r in env.registry.reports() {
        if r.status != ReplicaStatus::Primary {
            continue;
        }
        // A status that does not decode ships nothing.
        let status = |l: &pb::DupLink| LinkStatus::from_pb(l.status, "status");
        for l in links.iter().filter(|l| l.table == r.gpid.table.0) {
            match status(l) {
                Ok(s) if s.ships() => {
                    want.insert((l.id, r.gpid), r.ballot.0);
                }
                Ok(LinkStatus::Paused) => paused_progress(env, l, &r, now_ms),
                _ => {}
            }
        }
    }
    // Journal entries of removed links will never be reported.
    lock(&env.shipping.conflicts).retain(|(link, _), _| links.iter().any(|l| l.id == *link));
    let mut running = lock(&env.shipping.running);
    running.retain(|key, run| {
        let keep = want.get(key) == Some(&run.ballot) && !run.task.is_finished();
        if !keep {
            run.task.abort();
            lock(&env.shipping.progress).remove(&(key.0, key.1.partition.0));
        }
        keep
    });
    for ((link, gpid), ballot) in want {
        if running.contains_key(&(link, gpid)) {
            continue;
        }
        let task = tokio::spawn(shipper_task::run(env.clone(), link, gpid, ballot));
        running.insert((link, gpid), Running { ballot, task });
    }
}

/// A paused link ships nothing, but its lag still grows: the partition's primary reports what is
/// committed and applied, against what the meta server recorded as replicated, so that a paused
/// link never reads as caught up.
fn paused_progress(env: &DupEnv, link: &pb::DupLink, r: &tern_core::ReplicaReport, now_ms: u64) {
    let p = r.gpid.partition.0 as usize;
    let applied = env.registry.get(r.gpid).map_or(tern_core::Timetag::ZERO, |h| h.applied_timetag());
    let progress = pb::DupProgress {
        link: link.id,
        partition: r.gpid.partition.0,
        ballot: r.ballot.0,
        confirmed: link.confirmed.get(p).copied().unwrap_or(0),
        committed: r.committed.0,
        replicated_up_to: link.replicated_up_to.get(p).copied().unwrap_or(0),
        committed_timetag: applied.as_u64(),
        running: false,
        ..Default::default()
    };
    if link.started.get(p).copied().unwrap_or(false) {
        env.shipping.publish(progress, now_ms);
    }
}

/// Stops every shipper (the server is stopping).
pub fn stop_all(shipping: &Shipping) {
    for (_, r) in std::mem::take(&mut *lock(&shipping.running)) {
        r.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use tern_duplication::PENDING_CONFLICTS;

    use super::*;

    fn conflict(n: u64) -> pb::DupConflict {
        pb::DupConflict { incoming: n, ..Default::default() }
    }

    fn progress(link: u64, partition: u32) -> pb::DupProgress {
        pb::DupProgress { link, partition, ..Default::default() }
    }

    #[test]
    fn journal_entries_wait_for_a_beacon_bounded_with_the_oldest_dropped_and_counted() {
        let s = Shipping::default();
        s.publish(progress(1, 0), 0);
        // The meta server is unreachable: no beacon carries anything for a while.
        s.journal(1, 0, (0..PENDING_CONFLICTS as u64 + 30).map(conflict));
        s.publish(progress(1, 0), 0);
        let sent = s.progress();
        let p = &sent[0];
        assert_eq!(p.recent_conflicts.len(), PENDING_CONFLICTS);
        assert_eq!(p.recent_conflicts[0].incoming, 30, "the oldest went first");
        assert_eq!(p.conflicts_dropped, 30);
        // New entries while that beacon is under way stay for the next one.
        s.journal(1, 0, [conflict(1_000)]);
        s.reported(&sent);
        let next = s.progress();
        let left: Vec<u64> = next[0].recent_conflicts.iter().map(|c| c.incoming).collect();
        assert_eq!(left, vec![1_000]);
        assert_eq!(next[0].conflicts_dropped, 31, "the beacon under way lost its oldest entry");
    }

    #[test]
    fn a_failed_beacon_carries_nothing_away() {
        let s = Shipping::default();
        s.publish(progress(2, 3), 0);
        s.journal(2, 3, [conflict(1), conflict(2)]);
        assert_eq!(s.progress()[0].recent_conflicts.len(), 2);
        // That beacon failed: `reported` is not called; the next one carries the same entries.
        let again = s.progress();
        assert_eq!(again[0].recent_conflicts.len(), 2);
        s.reported(&again);
        assert!(s.progress()[0].recent_conflicts.is_empty());
    }
}
