//! The duplication links this server knows (from the meta server's beacon answers), and what
//! they hold back of each replica's log. Every replica of a linked table asks here, primary or
//! not: the decision itself is `DupRules::log_floor` (duplication/src/retention.rs).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tern_core::{Decree, Gpid};
use tern_duplication::{DupRules, LinkProgress};
use tern_proto::pb;

#[derive(Debug, Default)]
pub struct Links {
    links: Mutex<Vec<pb::DupLink>>,
    /// A beacon answer has told this node the links since it started. Until then it does not
    /// know which log a link needs, so it keeps all of it (found by an e2e test: a replica that
    /// restarted and relearned before its first beacon answer dropped the log a link needed).
    known: AtomicBool,
    rules: DupRules,
}

impl Links {
    /// The links the meta server listed in its last answer.
    pub fn set(&self, links: Vec<pb::DupLink>) {
        *self.links.lock().unwrap_or_else(|e| e.into_inner()) = links;
        self.known.store(true, Ordering::Release);
    }

    pub fn all(&self) -> Vec<pb::DupLink> {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, id: u64) -> Option<pb::DupLink> {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|l| l.id == id).cloned()
    }

    /// The rules every duplication decision of this server follows.
    pub fn rules(&self) -> &DupRules {
        &self.rules
    }

    /// The lowest decree the log of `gpid` must still hold for the links, if any holds some.
    pub fn log_floor(&self, gpid: Gpid) -> Option<Decree> {
        let known = self.known.load(Ordering::Acquire);
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let of_table = links.iter().filter(|l| l.table == gpid.table.0);
        self.rules.log_floor(known, of_table.map(|l| progress_of(l, gpid)))
    }
}

/// A link's progress on the partition of `gpid`, as the meta server holds it.
pub fn progress_of(link: &pb::DupLink, gpid: Gpid) -> LinkProgress {
    let p = gpid.partition.0 as usize;
    match (link.started.get(p), link.confirmed.get(p)) {
        (Some(true), Some(c)) => LinkProgress { started: true, confirmed: Decree(*c) },
        _ => LinkProgress::default(),
    }
}
