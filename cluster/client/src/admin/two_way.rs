//! A two-way pair of links, added with rollback: the link here, then its reverse in the other
//! cluster; if the reverse cannot be added, the first is removed again. The calls go through
//! [`PairOps`] so that the rollback is tested without servers.

use tern_core::{LinkMode, Result};

use super::{AdminClient, LinkReport, NewLink, TwoWayLinks};

/// What adding a pair asks of each cluster.
pub(crate) trait PairOps {
    async fn cluster_name(&self) -> Result<String>;
    async fn add_link(&self, link: &NewLink) -> Result<LinkReport>;
    async fn remove_link(&self, id: u64) -> Result<LinkReport>;
}

impl PairOps for AdminClient {
    async fn cluster_name(&self) -> Result<String> {
        AdminClient::cluster_name(self).await
    }

    async fn add_link(&self, link: &NewLink) -> Result<LinkReport> {
        AdminClient::add_link(self, link).await
    }

    async fn remove_link(&self, id: u64) -> Result<LinkReport> {
        AdminClient::remove_link(self, id).await
    }
}

impl AdminClient {
    /// Adds `link` in this cluster and the reverse link in `link.remote_cluster` (both recorded
    /// as two-way, whatever `link.mode` says). The reverse names this cluster by its name (asked
    /// first, so that a failure there leaves nothing behind) and by the meta addresses this
    /// client was given, which must be reachable from the other cluster; it never full-syncs
    /// (the first link's sync, if asked, copies this table's records there). If the reverse
    /// cannot be added, the first link is removed again, and the error says whether that worked.
    pub async fn add_two_way(&self, link: &NewLink) -> Result<TwoWayLinks> {
        let remote = AdminClient::connect(link.remote_metas.clone()).map_err(|e| {
            e.context(format!("connect to the meta servers of cluster {}", link.remote_cluster))
        })?;
        add_pair(self, &remote, self.metas(), link).await
    }
}

/// [`AdminClient::add_two_way`] with `local` (whose meta servers are `local_metas`) and
/// `remote` as the two clusters.
pub(crate) async fn add_pair(
    local: &impl PairOps,
    remote: &impl PairOps,
    local_metas: &[String],
    link: &NewLink,
) -> Result<TwoWayLinks> {
    let own = local.cluster_name().await?;
    let first = local.add_link(&NewLink { mode: LinkMode::TwoWay, ..link.clone() }).await?;
    let reverse = NewLink {
        table: link.remote_table().to_string(),
        remote_cluster: own.clone(),
        remote_metas: local_metas.to_vec(),
        remote_table: Some(link.table.clone()),
        full_sync: false,
        max_bytes_per_sec: link.max_bytes_per_sec,
        mode: LinkMode::TwoWay,
    };
    match remote.add_link(&reverse).await {
        Ok(second) => {
            Ok(TwoWayLinks { own_cluster: own, first, remote_cluster: link.remote_cluster.clone(), second })
        }
        Err(e) => {
            let id = first.link.id;
            let what = format!(
                "add the reverse link in cluster {} (from table {} back to cluster {own} table {})",
                link.remote_cluster,
                link.remote_table(),
                link.table
            );
            Err(match local.remove_link(id).await {
                Ok(_) => e.context(format!("{what}; link {id} in cluster {own} was removed again")),
                Err(undo) => e.context(format!(
                    "{what}; removing link {id} in cluster {own} failed too ({undo}): remove it with `tern dup remove {id}`"
                )),
            })
        }
    }
}

#[cfg(test)]
#[path = "two_way_tests.rs"]
mod tests;
