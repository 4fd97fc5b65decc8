//! Tables and their DR roles: create, drop, recall, list, describe (routing), role and epoch.

use std::future::Future;

use tern_core::{DrRole, Result};
use tern_proto::convert::PbEnum;
use tern_proto::pb;
use tern_proto::pb::meta_client::MetaClient as PbMetaClient;
use tonic::transport::Channel;

use super::convert::{route_from_pb, table_from_pb};
use super::{AdminClient, RestoringTable, TableInfo, TableRoute};

impl AdminClient {
    pub async fn create_table(&self, name: &str, partitions: u32, replicas: u32) -> Result<TableInfo> {
        let req = pb::CreateTableRequest { name: name.to_string(), partitions, replicas };
        self.call(req, |mut c, r| async move { c.create_table(r).await })
            .await
            .and_then(table_from_pb)
            .map_err(|e| e.context(format!("create table {name}")))
    }

    /// Drops a table; it can be recalled within the meta servers' recall window.
    pub async fn drop_table(&self, name: &str) -> Result<TableInfo> {
        self.by_name("drop", name, |mut c, r| async move { c.drop_table(r).await }).await
    }

    /// Brings back a dropped table.
    pub async fn recall_table(&self, name: &str) -> Result<TableInfo> {
        self.by_name("recall", name, |mut c, r| async move { c.recall_table(r).await }).await
    }

    /// A call `f` that does `verb` to table `name` and answers with the table.
    async fn by_name<F, Fut>(&self, verb: &str, name: &str, f: F) -> Result<TableInfo>
    where
        F: Fn(PbMetaClient<Channel>, pb::TableRequest) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<pb::TableInfo>, tonic::Status>>,
    {
        let req = pb::TableRequest { name: name.to_string() };
        self.call(req, f).await.and_then(table_from_pb).map_err(|e| e.context(format!("{verb} table {name}")))
    }

    /// Every table, serving or dropped.
    pub async fn list_tables(&self) -> Result<Vec<TableInfo>> {
        let r = self
            .call(pb::Empty {}, |mut c, r| async move { c.list_tables(r).await })
            .await
            .map_err(|e| e.context("list tables"))?;
        r.tables.into_iter().map(table_from_pb).collect::<Result<_>>().map_err(|e| e.context("list tables"))
    }

    /// A serving table's routing: its partitions, their primaries and the servers' addresses.
    pub async fn describe_table(&self, name: &str) -> Result<TableRoute> {
        self.route(name).await.map_err(|e| e.context(format!("describe table {name}")))
    }

    /// A serving table with its DR role and epoch in this cluster.
    pub async fn table_role(&self, name: &str) -> Result<TableInfo> {
        self.route(name)
            .await
            .map(|r| r.table)
            .map_err(|e| e.context(format!("ask for the role of table {name}")))
    }

    async fn route(&self, name: &str) -> Result<TableRoute> {
        let req = pb::RouteRequest { table: name.to_string(), ..Default::default() };
        self.call(req, |mut c, r| async move { c.get_route(r).await }).await.and_then(route_from_pb)
    }

    /// Creates `name` in the restoring state for `backup` (it serves nobody until
    /// [`AdminClient::finish_restore`]), or finds it restoring from the same backup with the
    /// same partition count (then `resumed`). Any other table of that name is refused, named.
    pub async fn begin_restore(
        &self,
        name: &str,
        partitions: u32,
        replicas: u32,
        backup: &str,
    ) -> Result<RestoringTable> {
        let req = pb::BeginRestoreRequest {
            table: name.to_string(),
            partitions,
            replicas,
            backup: backup.to_string(),
        };
        let r = self
            .call(req, |mut c, r| async move { c.begin_restore(r).await })
            .await
            .map_err(|e| e.context(format!("begin restoring table {name} from backup {backup}")))?;
        let info = r.table.ok_or_else(|| {
            tern_core::Error::invariant(format!("begin restore of table {name}: an answer without the table"))
        })?;
        let restoring = info.restoring.clone();
        Ok(RestoringTable { table: table_from_pb(info)?, backup: restoring, resumed: r.resumed })
    }

    /// The restore of `name` from `backup` is complete: the table serves from now on.
    pub async fn finish_restore(&self, name: &str, backup: &str) -> Result<TableInfo> {
        let req = pb::FinishRestoreRequest { table: name.to_string(), backup: backup.to_string() };
        self.call(req, |mut c, r| async move { c.finish_restore(r).await })
            .await
            .and_then(table_from_pb)
            .map_err(|e| e.context(format!("finish restoring table {name} from backup {backup}")))
    }

    /// Sets a table's DR role at `epoch` (never below the current one); with `expect_epoch`,
    /// only if the current epoch is that (compare-and-set, else `EPOCH_CONFLICT`).
    pub async fn set_table_role(
        &self,
        name: &str,
        role: DrRole,
        epoch: u64,
        expect_epoch: Option<u64>,
    ) -> Result<TableInfo> {
        let req = pb::SetTableRoleRequest {
            table: name.to_string(),
            role: role.to_pb(),
            epoch,
            check_epoch: expect_epoch.is_some(),
            expect_epoch: expect_epoch.unwrap_or(0),
        };
        self.call(req, |mut c, r| async move { c.set_table_role(r).await })
            .await
            .and_then(table_from_pb)
            .map_err(|e| e.context(format!("make table {name} {role} at epoch {epoch}")))
    }
}
