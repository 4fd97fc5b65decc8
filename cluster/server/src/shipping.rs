//! Duplication on this node: which links exist (from the meta server's beacon answers), one
//! shipper task per (link, partition) this node is primary of, the progress the next beacon
//! reports, and how far each replica's log must be kept.
//!
//! Log retention: while a link exists (shipping or paused), every replica of its table keeps
//! its log from the link's confirmed decree on, as the meta server knows it (never ahead of
//! the shipper's own), so that whichever replica becomes primary can continue shipping where
//! the last one stopped. Until a partition has started shipping, its replicas keep their
//! whole log; so does a server that has not heard the links from the meta server since it
//! started (its first flush must not drop what a link needs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tern_client::{ClientOptions, TernClient};
use tern_core::{Decree, Gpid, LinkStatus, ReplicaStatus, Result};
use tern_proto::convert::PbEnum;
use tern_proto::pb;

use crate::node::Node;
use crate::shipper_task;

/// A running shipper task of this node.
struct Running {
    ballot: u64,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
pub struct Shipping {
    links: Mutex<Vec<pb::DupLink>>,
    /// A beacon answer has told this node the links since it started. Until then it does not
    /// know which log a link needs, so it keeps all of it (found by an e2e test: a replica that
    /// restarted and relearned before its first beacon answer dropped the log a link needed).
    known: std::sync::atomic::AtomicBool,
    running: Mutex<HashMap<(u64, Gpid), Running>>,
    /// The newest progress of each (link, partition) shipped from here, for the next beacon.
    progress: Mutex<HashMap<(u64, u32), pb::DupProgress>>,
    /// One client per link for the remote cluster.
    remotes: Mutex<HashMap<u64, Arc<TernClient>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shipping {
    /// The links the meta server listed in its last answer.
    pub fn set_links(&self, links: Vec<pb::DupLink>) {
        *lock(&self.links) = links;
        self.known.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn link(&self, id: u64) -> Option<pb::DupLink> {
        lock(&self.links).iter().find(|l| l.id == id).cloned()
    }

    /// The lowest decree the log of `gpid` must still hold (for `LogWriter::gc`), if a link
    /// holds any of it back.
    pub fn log_floor(&self, gpid: Gpid) -> Option<Decree> {
        if !self.known.load(std::sync::atomic::Ordering::Acquire) {
            return Some(Decree::ZERO);
        }
        let p = gpid.partition.0 as usize;
        lock(&self.links)
            .iter()
            .filter(|l| l.table == gpid.table.0)
            .map(|l| match (l.started.get(p), l.confirmed.get(p)) {
                (Some(true), Some(c)) => Decree(*c).next(),
                _ => Decree::ZERO,
            })
            .min()
    }

    pub fn publish(&self, p: pb::DupProgress, now_wall_ms: u64) {
        crate::dup_metrics::record_progress(&p, now_wall_ms);
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
pub fn reconcile(node: &Arc<Node>) {
    let links = lock(&node.shipping.links).clone();
    let mut want = HashMap::new();
    for r in node.reports() {
        if r.status != ReplicaStatus::Primary {
            continue;
        }
        // A status that does not decode ships nothing.
        let active = |l: &pb::DupLink| LinkStatus::from_pb(l.status, "status").is_ok_and(LinkStatus::ships);
        for l in links.iter().filter(|l| l.table == r.gpid.table.0 && active(l)) {
            want.insert((l.id, r.gpid), r.ballot.0);
        }
    }
    let mut running = lock(&node.shipping.running);
    running.retain(|key, run| {
        let keep = want.get(key) == Some(&run.ballot) && !run.task.is_finished();
        if !keep {
            run.task.abort();
            lock(&node.shipping.progress).remove(&(key.0, key.1.partition.0));
        }
        keep
    });
    for ((link, gpid), ballot) in want {
        if running.contains_key(&(link, gpid)) {
            continue;
        }
        let task = tokio::spawn(shipper_task::run(node.clone(), link, gpid, ballot));
        running.insert((link, gpid), Running { ballot, task });
    }
}

/// Stops every shipper (the server is stopping).
pub fn stop_all(node: &Node) {
    for (_, r) in lock(&node.shipping.running).drain() {
        r.task.abort();
    }
}
