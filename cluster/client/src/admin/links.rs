//! Duplication links of this cluster's tables: add one, list with progress, change (pause,
//! resume, remove, throttle), conflicts. A two-way pair is [`super::two_way`].

use tern_core::{LinkChange, Result};
use tern_proto::convert::link_change_to_pb;
use tern_proto::pb;

use super::convert::{conflicts_from_pb, incoming_from_pb, link_report_from_pb, new_link_to_pb};
use super::{AdminClient, IncomingLinkReport, LinkConflicts, LinkReport, NewLink, TableStates};

impl AdminClient {
    /// Adds one link (the meta servers check the remote cluster's name, id and table).
    pub async fn add_link(&self, link: &NewLink) -> Result<LinkReport> {
        self.call(new_link_to_pb(link), |mut c, r| async move { c.dup_add(r).await })
            .await
            .and_then(link_report_from_pb)
            .map_err(|e| {
                e.context(format!(
                    "add a link from table {} to cluster {} table {}",
                    link.table,
                    link.remote_cluster,
                    link.remote_table()
                ))
            })
    }

    /// Every link (of `table` only, if given), removed ones too, with per-partition progress.
    pub async fn links(&self, table: Option<&str>) -> Result<Vec<LinkReport>> {
        let req = pb::DupListRequest { table: table.unwrap_or_default().to_string() };
        let what = || match table {
            Some(t) => format!("list the duplication links of table {t}"),
            None => "list the duplication links".to_string(),
        };
        let r = self
            .call(req, |mut c, r| async move { c.dup_list(r).await })
            .await
            .map_err(|e| e.context(what()))?;
        r.links.into_iter().map(link_report_from_pb).collect::<Result<_>>().map_err(|e| e.context(what()))
    }

    /// Links of other clusters into this cluster's tables (of `table` only, if given): how far
    /// each sending partition is applied here, and the purge horizon it holds back.
    pub async fn incoming(&self, table: Option<&str>) -> Result<Vec<IncomingLinkReport>> {
        let req = pb::DupListRequest { table: table.unwrap_or_default().to_string() };
        let r = self
            .call(req, |mut c, r| async move { c.dup_list(r).await })
            .await
            .map_err(|e| e.context("list the incoming duplication links"))?;
        Ok(r.incoming.into_iter().map(incoming_from_pb).collect())
    }

    pub async fn change_link(&self, id: u64, change: LinkChange) -> Result<LinkReport> {
        self.call(link_change_to_pb(id, change), |mut c, r| async move { c.dup_change(r).await })
            .await
            .and_then(link_report_from_pb)
            .map_err(|e| e.context(format!("{change} link {id}")))
    }

    /// Stops shipping; the log is held from where it stopped.
    pub async fn pause_link(&self, id: u64) -> Result<LinkReport> {
        self.change_link(id, LinkChange::Pause).await
    }

    /// Resumes a paused link from where it stopped.
    pub async fn resume_link(&self, id: u64) -> Result<LinkReport> {
        self.change_link(id, LinkChange::Resume).await
    }

    /// Removes a link for good.
    pub async fn remove_link(&self, id: u64) -> Result<LinkReport> {
        self.change_link(id, LinkChange::Remove).await
    }

    /// Limits the bytes per second the link ships (0 = unlimited).
    pub async fn set_link_throttle(&self, id: u64, max_bytes_per_sec: u64) -> Result<LinkReport> {
        self.change_link(id, LinkChange::SetThrottle { max_bytes_per_sec }).await
    }

    /// The conflicts of a link's shipped writes with the remote side's records (both kinds:
    /// shipped writes that lost, remote records they replaced): the totals and the last ones.
    pub async fn link_conflicts(&self, id: u64) -> Result<LinkConflicts> {
        let req = pb::DupChangeRequest { id, ..Default::default() };
        self.call(req, |mut c, r| async move { c.dup_conflicts(r).await })
            .await
            .and_then(conflicts_from_pb)
            .map_err(|e| e.context(format!("ask for the conflicts of link {id}")))
    }

    /// Every table's status, by id: whether a link's source table serves, was dropped or purged.
    pub async fn table_states(&self) -> Result<TableStates> {
        let tables = self.list_tables().await?;
        Ok(TableStates(tables.into_iter().map(|t| (t.id, t.status)).collect()))
    }
}
