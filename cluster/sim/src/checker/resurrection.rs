//! Every key ends in its newest write, and no deleted key comes back (duplication design,
//! `docs/duplication.md`: last-writer-wins with tombstones kept until every incoming link is past
//! them). After healing, for every key written anywhere, take its newest write by timetag over
//! both clusters: if it is a delete, no cluster holds the key live (a live record there is a
//! *resurrection*: a tombstone went before an older write arrived); otherwise every cluster holds
//! exactly that write.
//!
//! One exception is what the design says it cannot protect: a delete older than the purge
//! horizon its cluster had when it first heard of an incoming link (a link added later, with a
//! full sync of records older than that) may have been dropped before any link held it, and the
//! older record of the *other* cluster that the link brings then stays. Those are counted, not
//! reported. (A record of the deleting cluster's own that comes back is never excused: its
//! delete must reach the other cluster whenever it was made.)

use std::collections::BTreeMap;

use tern_core::{Timetag, key, value};

use super::cross_cluster::{Held, show};
use crate::meta::SimMeta;
use crate::observe::Observations;

/// Reported at most; the rest are counted.
const MAX_REPORTED: usize = 5;

/// Every key's newest write (by timetag) in either cluster, by stored key.
pub fn newest_writes(obs: &Observations) -> BTreeMap<Vec<u8>, Timetag> {
    let mut newest: BTreeMap<Vec<u8>, Timetag> = BTreeMap::new();
    for puts in obs.dup.origin.values() {
        for (h, s, t) in puts {
            let Ok(k) = key::encode(h, s) else { continue };
            let t = Timetag::from_u64(*t);
            let n = newest.entry(k).or_insert(t);
            if t.with_delete(false) > n.with_delete(false) {
                *n = t;
            }
        }
    }
    newest
}

/// The violations, and how many keys came back under the exception above.
pub fn check(obs: &Observations, metas: &[SimMeta], held: &[Held]) -> (Vec<String>, u64) {
    let newest = newest_writes(obs);
    let (mut out, mut wrong, mut exempt) = (Vec::new(), 0, 0);
    for (k, n) in &newest {
        for (c, h) in held.iter().enumerate() {
            let stored = h.records.get(k);
            let header = stored.and_then(|v| value::decode(v).ok()).map(|(hd, _)| hd);
            let ok = match header {
                None => n.is_delete(),
                Some(hd) => hd.timetag.with_delete(false) == n.with_delete(false),
            };
            if ok {
                continue;
            }
            let live = header.is_some_and(|hd| !hd.is_tombstone());
            let from_other = header.is_some_and(|hd| hd.timetag.cluster() != n.cluster());
            let origin = usize::from(n.cluster().get()) - 1;
            let unprotected = metas
                .get(origin)
                .and_then(|m| m.horizon.as_ref())
                .and_then(|h| h.registered_at)
                .is_some_and(|at| n.physical_secs() < at.physical_secs());
            if n.is_delete() && live && from_other && unprotected {
                exempt += 1;
                continue;
            }
            wrong += 1;
            if wrong <= MAX_REPORTED {
                let what = if n.is_delete() && live {
                    "a deleted key came back (resurrection)"
                } else {
                    "a key does not end in its newest write"
                };
                out.push(format!(
                    "{what}: the newest write anywhere is stamped {n}, cluster {} holds {}",
                    c + 1,
                    show(k, stored)
                ));
            }
        }
    }
    if wrong > MAX_REPORTED {
        out.push(format!("... {wrong} keys in all do not end in their newest write"));
    }
    (out, exempt)
}
