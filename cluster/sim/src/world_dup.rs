//! What the world checks of the link before it calls a two-cluster run converged: in every
//! partition of each cluster, the primary's shipper runs at the primary's ballot and has
//! shipped (every put acknowledged) everything committed, and the meta server has recorded
//! that confirmed decree.

use crate::meta::SimMeta;
use crate::node::SimNode;

pub fn link_not_caught_up(metas: &[SimMeta], nodes: &[SimNode]) -> Option<String> {
    for m in metas {
        let Some(link) = &m.link else { continue };
        for c in m.cm.configs() {
            let primary = c.primary.and_then(|p| nodes.iter().find(|n| n.id == p && n.up));
            let Some(pn) = primary else { return Some(format!("{c}: no primary up")) };
            let Some(r) = pn.replica(c.gpid) else { return Some(format!("{c}: primary has no replica")) };
            let Some(dup) = &pn.dup else { return None };
            if let Err(why) = dup.caught_up(c.gpid, c.ballot, r.committed()) {
                return Some(format!("shipping from {}: {why}", pn.id));
            }
            let recorded = link.progress(c.gpid).unwrap_or_default();
            if !recorded.started || recorded.confirmed != r.committed() {
                return Some(format!(
                    "{}: the meta server records confirmed d{} (started: {}), committed is d{}",
                    c.gpid,
                    recorded.confirmed,
                    recorded.started,
                    r.committed()
                ));
            }
        }
    }
    None
}
