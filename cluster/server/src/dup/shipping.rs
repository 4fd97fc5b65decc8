//! The shippers of this node: one task per (link, partition) this node is primary of, the
//! progress the next beacon reports, and a client per link for the remote cluster. What each
//! replica's log keeps for the links is `links.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tern_client::{ClientOptions, TernClient};
use tern_core::{Gpid, LinkStatus, ReplicaStatus, Result};
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
    /// One client per link for the remote cluster.
    remotes: Mutex<BTreeMap<u64, Arc<TernClient>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shipping {
    pub fn publish(&self, p: pb::DupProgress, now_wall_ms: u64) {
        super::metrics::record_progress(&p, now_wall_ms);
        let mut map = lock(&self.progress);
        let entry = map.entry((p.link, p.partition)).or_default();
        // Conflicts not yet reported stay until a beacon carries them.
        let mut conflicts = std::mem::take(&mut entry.recent_conflicts);
        conflicts.extend(p.recent_conflicts.iter().cloned());
        *entry = pb::DupProgress { recent_conflicts: conflicts, ..p };
    }

    /// What the next beacon reports.
    pub fn progress(&self) -> Vec<pb::DupProgress> {
        lock(&self.progress).values().cloned().collect()
    }

    /// A beacon carrying `sent` got through: drop the conflicts it reported.
    pub fn reported(&self, sent: &[pb::DupProgress]) {
        let mut map = lock(&self.progress);
        for s in sent {
            if let Some(e) = map.get_mut(&(s.link, s.partition)) {
                let n = s.recent_conflicts.len().min(e.recent_conflicts.len());
                e.recent_conflicts.drain(..n);
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
