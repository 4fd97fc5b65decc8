//! The proxy's gRPC face: the meta servers' `GetRoute`, answered with the routing of the
//! cluster whose copy of the table is active at the highest epoch. Clients (`TernClient`,
//! `tern kv --meta PROXY`) then talk to that cluster's replica servers directly; a write that
//! meets a standby (a role change) makes them ask again. Other meta calls are refused: they
//! belong to one cluster, ask its meta servers.

use std::sync::Arc;

use tern_client::AdminClient;
use tern_client::admin::convert::route_to_pb;
use tern_core::Error;
use tern_proto::pb;
use tern_proto::status::to_status;
use tonic::{Request, Response, Status};

use crate::watch::Watcher;

/// One cluster the proxy fronts.
#[derive(Debug)]
pub struct Cluster {
    pub name: String,
    pub admin: AdminClient,
}

#[derive(Debug)]
pub struct ProxyService {
    watcher: Arc<Watcher>,
}

impl ProxyService {
    pub fn new(watcher: Arc<Watcher>) -> ProxyService {
        ProxyService { watcher }
    }

    pub async fn route(&self, table: &str) -> tern_core::Result<pb::Route> {
        self.watcher.route(table).await.map(|r| route_to_pb(&r))
    }
}

fn not_here(what: &str) -> Status {
    to_status(&Error::InvalidArgument(format!(
        "{what} is not served by tern proxy: ask a cluster's meta servers directly (the proxy answers routing only)"
    )))
}

#[tonic::async_trait]
impl pb::meta_server::Meta for ProxyService {
    async fn get_route(&self, req: Request<pb::RouteRequest>) -> Result<Response<pb::Route>, Status> {
        if self.watcher.witness {
            return Err(to_status(&Error::InvalidArgument(
                "this is a DR witness (tern witness): it routes nothing; ask a tern proxy".into(),
            )));
        }
        let table = req.into_inner().table;
        self.route(&table).await.map(Response::new).map_err(|e| to_status(&e))
    }

    async fn beacon(&self, _: Request<pb::BeaconRequest>) -> Result<Response<pb::BeaconResponse>, Status> {
        Err(not_here("a replica server's beacon"))
    }
    async fn propose(&self, _: Request<pb::ProposeRequest>) -> Result<Response<pb::Empty>, Status> {
        Err(not_here("a configuration proposal"))
    }
    async fn create_table(
        &self,
        _: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::TableInfo>, Status> {
        Err(not_here("table creation"))
    }
    async fn drop_table(&self, _: Request<pb::TableRequest>) -> Result<Response<pb::TableInfo>, Status> {
        Err(not_here("dropping a table"))
    }
    async fn recall_table(&self, _: Request<pb::TableRequest>) -> Result<Response<pb::TableInfo>, Status> {
        Err(not_here("recalling a table"))
    }
    async fn list_tables(&self, _: Request<pb::Empty>) -> Result<Response<pb::ListTablesResponse>, Status> {
        Err(not_here("listing tables"))
    }
    async fn cluster_status(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        Err(not_here("cluster status"))
    }
    async fn decommission(&self, _: Request<pb::DecommissionRequest>) -> Result<Response<pb::Empty>, Status> {
        Err(not_here("decommissioning"))
    }
    async fn recommission(&self, _: Request<pb::RecommissionRequest>) -> Result<Response<pb::Empty>, Status> {
        Err(not_here("recommissioning"))
    }
    async fn set_table_role(
        &self,
        _: Request<pb::SetTableRoleRequest>,
    ) -> Result<Response<pb::TableInfo>, Status> {
        Err(not_here("setting a table's role"))
    }
    async fn dup_add(&self, _: Request<pb::DupAddRequest>) -> Result<Response<pb::DupLinkStatus>, Status> {
        Err(not_here("adding a duplication link"))
    }
    async fn dup_change(
        &self,
        _: Request<pb::DupChangeRequest>,
    ) -> Result<Response<pb::DupLinkStatus>, Status> {
        Err(not_here("changing a duplication link"))
    }
    async fn dup_list(
        &self,
        _: Request<pb::DupListRequest>,
    ) -> Result<Response<pb::DupListResponse>, Status> {
        Err(not_here("listing duplication links"))
    }
    async fn dup_conflicts(
        &self,
        _: Request<pb::DupChangeRequest>,
    ) -> Result<Response<pb::DupConflictsResponse>, Status> {
        Err(not_here("duplication conflicts"))
    }
    async fn get_dr_lease(&self, _: Request<pb::Empty>) -> Result<Response<pb::DrLeaseStatus>, Status> {
        Err(not_here("a cluster's DR lease"))
    }
    async fn set_dr_lease_waiver(
        &self,
        _: Request<pb::DrLeaseWaiverRequest>,
    ) -> Result<Response<pb::DrLeaseStatus>, Status> {
        Err(not_here("waiving a cluster's DR lease"))
    }
    async fn record_failover(&self, _: Request<pb::DrFailoverRecord>) -> Result<Response<pb::Empty>, Status> {
        Err(not_here("recording a failover"))
    }
    async fn list_failovers(
        &self,
        _: Request<pb::DupListRequest>,
    ) -> Result<Response<pb::DrFailoverList>, Status> {
        Err(not_here("a cluster's failover records"))
    }

    async fn record_drill(&self, _: Request<pb::DrillRecord>) -> Result<Response<pb::Empty>, Status> {
        Err(not_here("recording a drill"))
    }
    async fn list_drills(&self, _: Request<pb::Empty>) -> Result<Response<pb::DrillList>, Status> {
        Err(not_here("a cluster's drill reports"))
    }

    async fn record_reconcile(&self, _: Request<pb::ReconcileRecord>) -> Result<Response<pb::Empty>, Status> {
        Err(not_here("recording a reconcile"))
    }
    async fn list_reconciles(
        &self,
        _: Request<pb::DupListRequest>,
    ) -> Result<Response<pb::ReconcileList>, Status> {
        Err(not_here("a cluster's reconcile summaries"))
    }

    async fn begin_restore(
        &self,
        _: Request<pb::BeginRestoreRequest>,
    ) -> Result<Response<pb::BeginRestoreResponse>, Status> {
        Err(not_here("restoring a backup"))
    }

    async fn finish_restore(
        &self,
        _: Request<pb::FinishRestoreRequest>,
    ) -> Result<Response<pb::TableInfo>, Status> {
        Err(not_here("restoring a backup"))
    }

    async fn backup_policy_add(
        &self,
        _: Request<pb::BackupPolicyRequest>,
    ) -> Result<Response<pb::BackupPolicyStatus>, Status> {
        Err(not_here("backup policies"))
    }

    async fn backup_policy_alter(
        &self,
        _: Request<pb::BackupPolicyRequest>,
    ) -> Result<Response<pb::BackupPolicyStatus>, Status> {
        Err(not_here("backup policies"))
    }

    async fn backup_policy_set_paused(
        &self,
        _: Request<pb::BackupPolicyName>,
    ) -> Result<Response<pb::BackupPolicyStatus>, Status> {
        Err(not_here("backup policies"))
    }

    async fn backup_policy_remove(
        &self,
        _: Request<pb::BackupPolicyName>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(not_here("backup policies"))
    }

    async fn backup_policy_list(
        &self,
        _: Request<pb::BackupPolicyName>,
    ) -> Result<Response<pb::BackupPolicyListResponse>, Status> {
        Err(not_here("backup policies"))
    }

    async fn backup_op_begin(&self, _: Request<pb::BackupOp>) -> Result<Response<pb::BackupOp>, Status> {
        Err(not_here("backup operations"))
    }

    async fn backup_op_renew(
        &self,
        _: Request<pb::BackupOpRenewRequest>,
    ) -> Result<Response<pb::BackupOp>, Status> {
        Err(not_here("backup operations"))
    }

    async fn backup_op_end(
        &self,
        _: Request<pb::BackupOpRenewRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(not_here("backup operations"))
    }

    async fn apply_version_get(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::ApplyVersionStatus>, Status> {
        Err(not_here("a cluster's topology state version"))
    }

    async fn apply_version_bump(
        &self,
        _: Request<pb::ApplyVersionBumpRequest>,
    ) -> Result<Response<pb::ApplyVersionStatus>, Status> {
        Err(not_here("a cluster's topology state version"))
    }
}
