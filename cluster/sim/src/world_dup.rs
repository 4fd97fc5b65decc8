//! What the world checks of the link before it calls a two-cluster run converged: in every
//! partition of each cluster, the primary's shipper runs at the primary's ballot and has
//! shipped (every put acknowledged) everything committed, and the meta server has recorded
//! that confirmed decree. Entries without puts (a purge horizon's, which come every second while
//! horizons rise) need not be confirmed yet: the shipper and the meta server record them a
//! moment later, and waiting for the very last one would never end.

use tern_core::Decree;

use crate::meta::SimMeta;
use crate::node::SimNode;
use crate::observe::Observations;

pub fn link_not_caught_up(metas: &[SimMeta], nodes: &[SimNode], obs: &Observations) -> Option<String> {
    for m in metas {
        let Some(link) = &m.link else { continue };
        for c in m.cm.configs() {
            let primary = c.primary.and_then(|p| nodes.iter().find(|n| n.id == p && n.up));
            let Some(pn) = primary else { return Some(format!("{c}: no primary up")) };
            let Some(r) = pn.replica(c.gpid) else { return Some(format!("{c}: primary has no replica")) };
            let Some(dup) = &pn.dup else { return None };
            // The last committed entry with puts to ship.
            let g = c.gpid;
            let last_put =
                obs.dup.origin.range((g, 0)..=(g, r.committed().0)).next_back().map(|((_, d), _)| *d);
            let needed = Decree(last_put.unwrap_or(0));
            if let Err(why) = dup.caught_up(g, c.ballot, needed) {
                return Some(format!("shipping from {}: {why}", pn.id));
            }
            let recorded = link.progress(g).unwrap_or_default();
            if !recorded.started || recorded.confirmed < needed {
                return Some(format!(
                    "{g}: the meta server records confirmed d{} (started: {}), d{needed} must ship (committed d{})",
                    recorded.confirmed,
                    recorded.started,
                    r.committed()
                ));
            }
        }
    }
    None
}
