//! What seeding a duplication peer from a backup asks of a cluster (`tern dup add
//! --seed-from-backup`, `tern_restore::seed`): a link added paused at the backup's decrees, the
//! seeded links of a table, and the log each replica of a table holds.

use tern_core::{LinkStatus, NodeId, Result};
use tern_proto::convert::PbEnum;
use tern_proto::pb;
use tern_proto::pb::replica_backup_client::ReplicaBackupClient;
use tern_proto::status::from_status;

use super::convert::{link_report_from_pb, new_link_to_pb};
use super::{AdminClient, LinkReport, NewLink};

/// A link of this cluster that was seeded from a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededLink {
    pub id: u64,
    pub table: String,
    pub remote_cluster: String,
    pub remote_table: String,
    pub status: LinkStatus,
    pub backup: String,
    /// Per source partition, the decree shipping starts after (while not yet shipped past it).
    pub confirmed: Vec<u64>,
}

/// One replica's log as its server reported it (`SeedReplicaLog`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaLog {
    pub node: NodeId,
    pub partition: u32,
    /// `None`: the log is empty.
    pub range: Option<(u64, u64)>,
    pub applied: u64,
    /// The server has heard the link asked about; with its confirmed decree there.
    pub link_confirmed: Option<u64>,
}

/// A table of a cluster, as a seed into it sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableState {
    Absent,
    /// Being restored from this backup (it serves nobody yet).
    Restoring(String),
    /// Any other table of that name (serving, or dropped and kept for recall).
    Exists,
}

impl AdminClient {
    /// What the cluster holds under `name`.
    pub async fn table_state(&self, name: &str) -> Result<TableState> {
        let r = self
            .call(pb::Empty {}, |mut c, r| async move { c.list_tables(r).await })
            .await
            .map_err(|e| e.context("list tables"))?;
        Ok(match r.tables.into_iter().find(|t| t.name == name) {
            None => TableState::Absent,
            Some(t) if !t.restoring.is_empty() => TableState::Restoring(t.restoring),
            Some(_) => TableState::Exists,
        })
    }

    /// Adds `link` paused with every partition started at `decrees` (the backup's): the
    /// source's replicas hold the log after them; resuming the link ships from there.
    pub async fn add_seeded_link(&self, link: &NewLink, backup: &str, decrees: &[u64]) -> Result<LinkReport> {
        let req = pb::DupAddRequest {
            seed: Some(pb::SeedStart { backup: backup.to_string(), decrees: decrees.to_vec() }),
            ..new_link_to_pb(link)
        };
        self.call(req, |mut c, r| async move { c.dup_add(r).await })
            .await
            .and_then(link_report_from_pb)
            .map_err(|e| {
                e.context(format!(
                    "add a link seeded from backup {backup} from table {} to cluster {} table {}",
                    link.table,
                    link.remote_cluster,
                    link.remote_table()
                ))
            })
    }

    /// The links of `table` seeded from a backup, removed ones too.
    pub async fn seeded_links(&self, table: &str) -> Result<Vec<SeededLink>> {
        let req = pb::DupListRequest { table: table.to_string() };
        let r = self
            .call(req, |mut c, r| async move { c.dup_list(r).await })
            .await
            .map_err(|e| e.context(format!("list the duplication links of table {table}")))?;
        let mut out = Vec::new();
        for l in r.links.into_iter().filter_map(|s| s.link).filter(|l| !l.seed_backup.is_empty()) {
            out.push(SeededLink {
                id: l.id,
                table: l.table_name,
                remote_cluster: l.remote_cluster,
                remote_table: l.remote_table,
                status: LinkStatus::from_pb(l.status, "link.status")?,
                backup: l.seed_backup,
                confirmed: l.confirmed,
            });
        }
        Ok(out)
    }

    /// The log of every replica of table `table` (by id) on the replica server at `addr`, each
    /// read after checking whether the server has heard link `link` (0: none).
    pub async fn replica_logs_on(&self, addr: &str, table: u32, link: u64) -> Result<Vec<ReplicaLog>> {
        let mut client = ReplicaBackupClient::new(crate::Pool::new().channel(addr)?);
        let r = client
            .seed_log_coverage(pb::SeedLogCoverageRequest { table, link })
            .await
            .map_err(|s| from_status(&s).context(format!("read the logs of table {table} on {addr}")))?
            .into_inner();
        Ok(r.replicas
            .into_iter()
            .map(|l| ReplicaLog {
                node: NodeId(r.node),
                partition: l.partition,
                range: (!l.log_empty).then_some((l.log_first, l.log_last)),
                applied: l.applied,
                link_confirmed: l.link_known.then_some(l.link_confirmed),
            })
            .collect())
    }
}
