//! The `Meta` gRPC service. Every call is served by the leader; other meta servers answer
//! `UNAVAILABLE` naming the leader (`tern-leader`), and clients follow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tern_client::admin::TableInfo;
use tern_client::admin::convert::table_to_pb;
use tern_core::{Ballot, ConfigChange, Error, NodeId, TableId};
use tern_proto::convert::{PbEnum, config_to_pb, gpid_from_pb, report_from_pb};
use tern_proto::pb;
use tern_proto::status::{LEADER_KEY, to_status};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::MetaSm;
use crate::leader::{LeaderInput, StatusReport, write_error};
use crate::raft::RaftGroup;
use crate::state::dr::{DrRole, RoleChange};
use crate::state::{Command, Response as Applied, TableRecord, TableStatus};

/// The `Meta` gRPC service of a meta server.
#[derive(Clone, Debug)]
pub struct MetaService {
    pub group: Arc<RaftGroup<MetaSm>>,
    /// The leader task's queue, while this server leads.
    pub leader: Arc<Mutex<Option<mpsc::Sender<LeaderInput>>>>,
    /// Each replica server's memory, from its last beacon this meta accepted as leader (not
    /// replicated: a new leader knows it after one beacon round).
    pub memory: Arc<Mutex<HashMap<u64, pb::NodeMemory>>>,
    /// The cluster's DR lease (renewed by this server while it leads).
    pub dr_lease: Arc<crate::drlease::DrLease>,
    /// Backup policy settings (minimum interval, operation lease).
    pub backup: crate::backup_runner::BackupRunnerOptions,
}

fn status(e: Error) -> Status {
    to_status(&e)
}

fn no_such_node(node: u64) -> Status {
    status(Error::InvalidArgument(format!(
        "no replica server {} in this cluster (see `tern cluster status`)",
        NodeId(node)
    )))
}

/// A table as the admin API answers it; the admin client's converter is the one place a table
/// becomes protobuf.
fn table_info(t: &TableRecord) -> pb::TableInfo {
    table_to_pb(&TableInfo {
        id: TableId(t.id),
        name: t.name.clone(),
        partitions: t.partitions,
        replicas: t.replicas,
        status: t.status,
        role: t.role,
        epoch: t.epoch,
        restoring: t.restoring.clone(),
    })
}

/// Table names: 1–64 characters from `[A-Za-z0-9_.-]`.
pub(crate) fn check_table_name(name: &str) -> Result<(), Status> {
    tern_core::table::check_table_name(name).map_err(status)
}

impl MetaService {
    /// The leader task, or the error that tells the caller where the leader is.
    pub(crate) fn leader(&self) -> Result<mpsc::Sender<LeaderInput>, Status> {
        let tx = self.leader.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match tx {
            Some(tx) if self.group.is_leader() => Ok(tx),
            _ => {
                let mut s = Status::unavailable("this meta server is not the leader");
                if let Some((_, addr)) = self.group.leader()
                    && let Ok(v) = addr.parse()
                {
                    s.metadata_mut().insert(LEADER_KEY, v);
                }
                Err(s)
            }
        }
    }

    pub(crate) async fn send(&self, input: LeaderInput) -> Result<(), Status> {
        self.leader()?.send(input).await.map_err(|_| status(Error::Unavailable("leadership changed".into())))
    }

    /// Has the leader's configuration manager place table `id`'s partitions (only the missing
    /// ones: a creation a leader change interrupted is finished) and waits until it has.
    async fn create_partitions(&self, id: u32, partitions: u32, replicas: u32) -> Result<(), Status> {
        let (reply, rx) = oneshot::channel();
        self.send(LeaderInput::CreatePartitions {
            table: tern_core::TableId(id),
            partitions,
            replicas: replicas as usize,
            reply,
        })
        .await?;
        rx.await.map_err(|_| status(Error::Unavailable("leadership changed".into())))?.map_err(status)
    }

    /// Liveness, health and balance from the leader's configuration manager.
    async fn status_report(&self) -> Result<StatusReport, Status> {
        let (reply, rx) = oneshot::channel();
        self.send(LeaderInput::Status { reply }).await?;
        rx.await.map_err(|_| status(Error::Unavailable("leadership changed".into())))
    }

    pub(crate) async fn write(&self, cmd: Command) -> Result<Applied, Status> {
        self.leader()?;
        self.group.write(cmd).await.map_err(|e| status(write_error(e)))
    }

    /// Writes a decommission or recommission; a refusal is an invalid argument.
    async fn write_node_change(&self, cmd: Command) -> Result<Response<pb::Empty>, Status> {
        match self.write(cmd).await? {
            Applied::Refused(why) => Err(status(Error::InvalidArgument(why))),
            _ => Ok(Response::new(pb::Empty {})),
        }
    }

    fn addresses(&self) -> Vec<pb::NodeAddress> {
        self.group.read(|s| {
            s.0.nodes.iter().map(|(id, n)| pb::NodeAddress { node: *id, addr: n.addr.clone() }).collect()
        })
    }
}

#[tonic::async_trait]
impl pb::meta_server::Meta for MetaService {
    async fn beacon(&self, req: Request<pb::BeaconRequest>) -> Result<Response<pb::BeaconResponse>, Status> {
        let r = req.into_inner();
        let (node, memory) = (r.node, r.memory);
        let reports = r.reports.iter().map(report_from_pb).collect::<Result<Vec<_>, _>>().map_err(status)?;
        let mut reported_tables: Vec<u32> = reports.iter().map(|r| r.gpid.table.0).collect();
        reported_tables.sort_unstable();
        reported_tables.dedup();
        let (reply, rx) = oneshot::channel();
        let sent_at_ms = r.sent_at_ms;
        self.send(LeaderInput::Beacon {
            node: NodeId(r.node),
            addr: r.addr,
            sent_at_ms,
            reports,
            dup_progress: r.dup_progress,
            incoming: r.incoming,
            reply,
        })
        .await?;
        let answer =
            rx.await.map_err(|_| status(Error::Unavailable("leadership changed".into())))?.map_err(status)?;
        if let Some(m) = memory {
            self.memory.lock().unwrap_or_else(|e| e.into_inner()).insert(node, m);
        }
        let lease = &self.dr_lease;
        let (name, id, dup_links, table_roles, purged_tables, dr_lease) = self.group.read(|s| {
            // Ids are never reused: one this meta handed out and no longer holds was purged.
            let purged = reported_tables
                .iter()
                .copied()
                .filter(|t| *t <= s.0.next_table_id && !s.0.tables.contains_key(t))
                .collect();
            let enforced = lease.enforced(&s.0);
            let roles =
                s.0.tables
                    .values()
                    .map(|t| pb::TableRole {
                        table: t.id,
                        name: t.name.clone(),
                        role: t.role.to_pb(),
                        epoch: t.epoch,
                        partitions: t.partitions,
                        purge_below: s.0.horizon(t.id).map_or(0, |h| h.purge_below),
                        // What is left now; the server counts it from its beacon's send time.
                        dr_lease_ms: lease.beacon_lease_ms(enforced, t.role, &t.name, t.epoch),
                        restoring: t.restoring.clone().unwrap_or_default(),
                    })
                    .collect();
            let links = crate::dup::beacon_links(&s.0, &answer.dup_demands);
            (s.0.cluster_name.clone(), s.0.cluster_id, links, roles, purged, enforced)
        });
        Ok(Response::new(pb::BeaconResponse {
            sent_at_ms,
            lease_ms: answer.lease_ms,
            configs: answer.configs.iter().map(config_to_pb).collect(),
            addresses: self.addresses(),
            cluster_name: name,
            cluster_id: u32::from(id),
            dup_links,
            table_roles,
            purged_tables,
            dr_lease,
        }))
    }

    async fn propose(&self, req: Request<pb::ProposeRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        let gpid = gpid_from_pb(r.gpid.as_ref()).map_err(status)?;
        let change = if r.add {
            ConfigChange::AddSecondary(NodeId(r.node))
        } else {
            ConfigChange::RemoveSecondary(NodeId(r.node))
        };
        self.send(LeaderInput::Propose { from: NodeId(r.from), gpid, ballot: Ballot(r.ballot), change })
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn get_route(&self, req: Request<pb::RouteRequest>) -> Result<Response<pb::Route>, Status> {
        self.leader()?;
        let req = req.into_inner();
        let name = req.table;
        let route = self.group.read(|s| {
            let t = s.0.serving_table(&name)?;
            // Nobody but the restore tool gets a route to half a table.
            if let Some(backup) = t.restoring.as_ref().filter(|_| !req.for_restore) {
                return Err(Error::Restoring { table: name.clone(), backup: backup.clone() });
            }
            Ok::<_, Error>(pb::Route {
                table: Some(table_info(t)),
                partitions: s.0.table_configs(t.id).iter().map(config_to_pb).collect(),
                addresses: vec![],
                dr_lease: Some(self.dr_lease.route_lease(&s.0, &t.name, t.role, t.epoch)),
            })
        });
        let mut route = route.map_err(status)?;
        route.addresses = self.addresses();
        Ok(Response::new(route))
    }

    async fn create_table(
        &self,
        req: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::TableInfo>, Status> {
        let r = req.into_inner();
        check_table_name(&r.name)?;
        tern_core::table::check_partitions(r.partitions).map_err(status)?;
        tern_core::table::check_replicas(r.replicas).map_err(status)?;
        let nodes = self.status_report().await?.nodes;
        let alive = nodes.iter().filter(|n| n.alive && !n.decommissioned).count();
        if alive < r.replicas as usize {
            return Err(status(Error::Unavailable(format!(
                "{} replicas wanted but only {alive} replica servers are alive",
                r.replicas
            ))));
        }
        let t = match self
            .write(Command::CreateTable {
                name: r.name.clone(),
                partitions: r.partitions,
                replicas: r.replicas,
            })
            .await?
        {
            Applied::Table(t) => t,
            Applied::Refused(why) => return Err(status(Error::InvalidArgument(why))),
            _ => return Err(status(Error::invariant("create table returned no table"))),
        };
        self.create_partitions(t.id, t.partitions, t.replicas).await?;
        Ok(Response::new(table_info(&t)))
    }

    async fn drop_table(&self, req: Request<pb::TableRequest>) -> Result<Response<pb::TableInfo>, Status> {
        let name = req.into_inner().name;
        match self.write(Command::DropTable { name: name.clone(), at_ms: crate::wall_ms() }).await? {
            Applied::Table(t) => Ok(Response::new(table_info(&t))),
            _ => Err(status(Error::TableNotFound(name))),
        }
    }

    async fn recall_table(&self, req: Request<pb::TableRequest>) -> Result<Response<pb::TableInfo>, Status> {
        let name = req.into_inner().name;
        match self.write(Command::RecallTable { name: name.clone() }).await? {
            Applied::Table(t) => Ok(Response::new(table_info(&t))),
            Applied::Refused(why) => Err(status(Error::InvalidArgument(why))),
            _ => Err(status(Error::TableNotFound(name))),
        }
    }

    async fn set_table_role(
        &self,
        req: Request<pb::SetTableRoleRequest>,
    ) -> Result<Response<pb::TableInfo>, Status> {
        let r = req.into_inner();
        let role = DrRole::from_pb(r.role, "role").map_err(status)?;
        let change = RoleChange {
            table: r.table.clone(),
            role,
            epoch: r.epoch,
            expect_epoch: r.check_epoch.then_some(r.expect_epoch),
        };
        match self.write(Command::SetTableRole { change }).await? {
            Applied::Table(t) => {
                tracing::info!("table {} is now {} at epoch {}", t.name, t.role, t.epoch);
                Ok(Response::new(table_info(&t)))
            }
            Applied::EpochConflict { expected, actual } => {
                Err(status(Error::EpochConflict { table: r.table, expected, actual }))
            }
            Applied::Refused(why) if why.starts_with("no serving table") => {
                Err(status(Error::TableNotFound(r.table)))
            }
            Applied::Refused(why) => Err(status(Error::InvalidArgument(why))),
            other => Err(status(Error::invariant(format!("set-table-role returned {other:?}")))),
        }
    }

    async fn list_tables(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        self.leader()?;
        let tables = self.group.read(|s| s.0.tables.values().map(table_info).collect());
        Ok(Response::new(pb::ListTablesResponse { tables }))
    }

    async fn cluster_status(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let StatusReport { nodes, unhealthy, balancing } = self.status_report().await?;
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let resp = self.group.read(|s| pb::ClusterStatusResponse {
            cluster_name: s.0.cluster_name.clone(),
            cluster_id: u32::from(s.0.cluster_id),
            meta_leader: self.group.leader().map(|(id, _)| id).unwrap_or(0),
            nodes: nodes
                .iter()
                .map(|n| pb::NodeStatus {
                    node: n.node.0,
                    addr: s.0.nodes.get(&n.node.0).map(|r| r.addr.clone()).unwrap_or_default(),
                    alive: n.alive,
                    decommissioned: s.0.nodes.get(&n.node.0).is_some_and(|r| r.decommissioned),
                    primaries: n.primaries as u32,
                    replicas: n.replicas as u32,
                    memory: memory.get(&n.node.0).copied(),
                })
                .collect(),
            tables: s.0.tables.values().map(table_info).collect(),
            unhealthy: unhealthy.iter().map(config_to_pb).collect(),
            balancing: balancing.unwrap_or_default(),
        });
        Ok(Response::new(resp))
    }

    async fn decommission(
        &self,
        req: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let node = req.into_inner().node;
        let report = self.status_report().await?;
        let Some(target) = report.nodes.iter().find(|n| n.node.0 == node) else {
            return Err(no_such_node(node));
        };
        if !target.decommissioned {
            let remaining =
                report.nodes.iter().filter(|n| n.alive && !n.decommissioned && n.node.0 != node).count();
            let needed = self.group.read(|s| {
                s.0.tables.values().filter(|t| t.status == TableStatus::Serving).map(|t| t.replicas).max()
            });
            if let Some(needed) = needed.filter(|n| (*n as usize) > remaining) {
                return Err(status(Error::InvalidArgument(format!(
                    "decommissioning {} would leave {remaining} serving replica servers, fewer than the {needed} replicas a table needs; add a server first",
                    NodeId(node)
                ))));
            }
        }
        self.write_node_change(Command::Decommission { id: node }).await
    }

    async fn recommission(
        &self,
        req: Request<pb::RecommissionRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let node = req.into_inner().node;
        let known = self.group.read(|s| s.0.nodes.contains_key(&node));
        if !known {
            return Err(no_such_node(node));
        }
        self.write_node_change(Command::Recommission { id: node }).await
    }

    async fn dup_add(&self, req: Request<pb::DupAddRequest>) -> Result<Response<pb::DupLinkStatus>, Status> {
        self.do_dup_add(req.into_inner()).await.map(Response::new)
    }

    async fn dup_change(
        &self,
        req: Request<pb::DupChangeRequest>,
    ) -> Result<Response<pb::DupLinkStatus>, Status> {
        self.do_dup_change(req.into_inner()).await.map(Response::new)
    }

    async fn dup_list(
        &self,
        req: Request<pb::DupListRequest>,
    ) -> Result<Response<pb::DupListResponse>, Status> {
        self.do_dup_list(req.into_inner()).await.map(Response::new)
    }

    async fn dup_conflicts(
        &self,
        req: Request<pb::DupChangeRequest>,
    ) -> Result<Response<pb::DupConflictsResponse>, Status> {
        self.do_dup_conflicts(req.into_inner()).await.map(Response::new)
    }

    async fn get_dr_lease(&self, _req: Request<pb::Empty>) -> Result<Response<pb::DrLeaseStatus>, Status> {
        self.leader()?;
        Ok(Response::new(self.group.read(|s| self.dr_lease.status(&s.0))))
    }

    async fn set_dr_lease_waiver(
        &self,
        req: Request<pb::DrLeaseWaiverRequest>,
    ) -> Result<Response<pb::DrLeaseStatus>, Status> {
        let r = req.into_inner();
        crate::drlease::check_waiver_reason(r.waive, &r.reason).map_err(status)?;
        let waiver = r.waive.then(|| crate::state::dr::DrLeaseWaiver {
            reason: r.reason.trim().to_string(),
            at_ms: crate::wall_ms(),
        });
        match &waiver {
            Some(w) => tracing::warn!(
                "DR lease WAIVED by an operator ({}): active tables take client writes without it; a standby promoted elsewhere meanwhile is a split brain",
                w.reason
            ),
            None => tracing::info!("DR lease enforced again"),
        }
        self.write(Command::SetDrLeaseWaiver { waiver }).await?;
        Ok(Response::new(self.group.read(|s| self.dr_lease.status(&s.0))))
    }

    async fn record_failover(
        &self,
        req: Request<pb::DrFailoverRecord>,
    ) -> Result<Response<pb::Empty>, Status> {
        let record = tern_proto::convert::admin::failover_from_pb(req.into_inner());
        if record.table.is_empty() {
            return Err(status(Error::InvalidArgument("a failover record names no table".into())));
        }
        tracing::warn!(
            table = record.table,
            "unplanned failover from {} recorded at epoch {} ({} decrees lost at most, {})",
            record.from,
            record.epoch,
            record.decrees_lost().map_or_else(|| "unknown".to_string(), |n| n.to_string()),
            if record.exact { "exact" } else { "bounds" }
        );
        self.write(Command::RecordFailover { record }).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list_failovers(
        &self,
        req: Request<pb::DupListRequest>,
    ) -> Result<Response<pb::DrFailoverList>, Status> {
        self.leader()?;
        let table = req.into_inner().table;
        let records = self.group.read(|s| {
            s.0.failovers
                .iter()
                .filter(|(t, _)| table.is_empty() || **t == table)
                .flat_map(|(_, rs)| rs.iter().map(tern_proto::convert::admin::failover_to_pb))
                .collect()
        });
        Ok(Response::new(pb::DrFailoverList { records }))
    }

    async fn record_reconcile(
        &self,
        req: Request<pb::ReconcileRecord>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        let summary = tern_core::ReconcileSummary::from_json(&r.summary_json)
            .map_err(|e| status(Error::InvalidArgument(e)))?;
        if summary.table != r.table || summary.epoch != r.epoch {
            return Err(status(Error::InvalidArgument(format!(
                "a reconcile summary of table {:?} at epoch {} sent as {:?} at epoch {}",
                summary.table, summary.epoch, r.table, r.epoch
            ))));
        }
        if summary.finished() {
            tracing::warn!(
                table = summary.table,
                "reconcile after the failover from {} at epoch {}: {} tail writes applied, {} lost, {} of this cluster's writes replaced",
                summary.from,
                summary.epoch,
                summary.applied(),
                summary.lost,
                summary.overwritten
            );
        }
        match self.write(Command::RecordReconcile { summary }).await? {
            Applied::Refused(why) => Err(status(Error::InvalidArgument(why))),
            _ => Ok(Response::new(pb::Empty {})),
        }
    }

    async fn record_drill(&self, req: Request<pb::DrillRecord>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        let report_json = String::from_utf8(r.report_json)
            .map_err(|_| status(Error::InvalidArgument("a drill report that is not UTF-8 JSON".into())))?;
        tracing::info!(from = r.from, to = r.to, passed = r.passed, "drill report recorded");
        let drill = crate::state::drill::DrillEntry {
            started_ms: r.started_ms,
            from: r.from,
            to: r.to,
            passed: r.passed,
            report_json,
        };
        match self.write(Command::RecordDrill { drill }).await? {
            Applied::Refused(why) => Err(status(Error::InvalidArgument(why))),
            _ => Ok(Response::new(pb::Empty {})),
        }
    }

    async fn list_drills(&self, _: Request<pb::Empty>) -> Result<Response<pb::DrillList>, Status> {
        self.leader()?;
        let records = self.group.read(|s| {
            s.0.drills
                .iter()
                .map(|d| pb::DrillRecord {
                    started_ms: d.started_ms,
                    from: d.from.clone(),
                    to: d.to.clone(),
                    passed: d.passed,
                    report_json: d.report_json.clone().into_bytes(),
                })
                .collect()
        });
        Ok(Response::new(pb::DrillList { records }))
    }

    async fn list_reconciles(
        &self,
        req: Request<pb::DupListRequest>,
    ) -> Result<Response<pb::ReconcileList>, Status> {
        self.leader()?;
        let table = req.into_inner().table;
        let records = self.group.read(|s| {
            s.0.reconciles
                .iter()
                .filter(|(t, _)| table.is_empty() || **t == table)
                .flat_map(|(_, rs)| {
                    rs.iter().map(|r| pb::ReconcileRecord {
                        table: r.table.clone(),
                        epoch: r.epoch,
                        summary_json: r.to_json(),
                    })
                })
                .collect()
        });
        Ok(Response::new(pb::ReconcileList { records }))
    }

    async fn begin_restore(
        &self,
        req: Request<pb::BeginRestoreRequest>,
    ) -> Result<Response<pb::BeginRestoreResponse>, Status> {
        let r = req.into_inner();
        check_table_name(&r.table)?;
        tern_core::table::check_partitions(r.partitions).map_err(status)?;
        tern_core::table::check_replicas(r.replicas).map_err(status)?;
        if r.backup.is_empty() {
            return Err(status(Error::InvalidArgument("a restore names its backup".into())));
        }
        let cmd = Command::BeginRestore {
            name: r.table.clone(),
            partitions: r.partitions,
            replicas: r.replicas,
            backup: r.backup.clone(),
        };
        let (t, resumed) = match self.write(cmd).await? {
            Applied::Restoring { table, resumed } => (table, resumed),
            Applied::Refused(why) => return Err(status(Error::InvalidArgument(why))),
            other => return Err(status(Error::invariant(format!("begin-restore returned {other:?}")))),
        };
        // A new table, or one whose creation a leader change interrupted, gets its partitions
        // (the configuration manager creates only the missing ones).
        let placed = self.group.read(|s| s.0.table_configs(t.id).len());
        if placed < t.partitions as usize {
            self.create_partitions(t.id, t.partitions, t.replicas).await?;
        }
        tracing::info!(
            "table {} is {} from backup {}",
            t.name,
            if resumed { "still being restored" } else { "created to be restored" },
            r.backup
        );
        Ok(Response::new(pb::BeginRestoreResponse { table: Some(table_info(&t)), resumed }))
    }

    async fn finish_restore(
        &self,
        req: Request<pb::FinishRestoreRequest>,
    ) -> Result<Response<pb::TableInfo>, Status> {
        let r = req.into_inner();
        match self.write(Command::FinishRestore { name: r.table.clone(), backup: r.backup.clone() }).await? {
            Applied::Table(t) => {
                tracing::info!("table {} is restored from backup {} and serves", t.name, r.backup);
                Ok(Response::new(table_info(&t)))
            }
            Applied::Refused(why) => Err(status(Error::InvalidArgument(why))),
            other => Err(status(Error::invariant(format!("finish-restore returned {other:?}")))),
        }
    }

    async fn backup_policy_add(
        &self,
        req: Request<pb::BackupPolicyRequest>,
    ) -> Result<Response<pb::BackupPolicyStatus>, Status> {
        self.do_backup_policy_add(req.into_inner(), false).await.map(Response::new)
    }

    async fn backup_policy_alter(
        &self,
        req: Request<pb::BackupPolicyRequest>,
    ) -> Result<Response<pb::BackupPolicyStatus>, Status> {
        self.do_backup_policy_add(req.into_inner(), true).await.map(Response::new)
    }

    async fn backup_policy_set_paused(
        &self,
        req: Request<pb::BackupPolicyName>,
    ) -> Result<Response<pb::BackupPolicyStatus>, Status> {
        self.do_backup_policy_set_paused(req.into_inner()).await.map(Response::new)
    }

    async fn backup_policy_remove(
        &self,
        req: Request<pb::BackupPolicyName>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.do_backup_policy_remove(req.into_inner()).await.map(|()| Response::new(pb::Empty {}))
    }

    async fn backup_policy_list(
        &self,
        req: Request<pb::BackupPolicyName>,
    ) -> Result<Response<pb::BackupPolicyListResponse>, Status> {
        self.do_backup_policy_list(req.into_inner()).map(Response::new)
    }

    async fn backup_op_begin(&self, req: Request<pb::BackupOp>) -> Result<Response<pb::BackupOp>, Status> {
        self.do_backup_op_begin(req.into_inner()).await.map(Response::new)
    }

    async fn backup_op_renew(
        &self,
        req: Request<pb::BackupOpRenewRequest>,
    ) -> Result<Response<pb::BackupOp>, Status> {
        self.do_backup_op_renew(req.into_inner()).await.map(Response::new)
    }

    async fn backup_op_end(
        &self,
        req: Request<pb::BackupOpRenewRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.do_backup_op_end(req.into_inner()).await.map(|()| Response::new(pb::Empty {}))
    }

    async fn apply_version_get(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::ApplyVersionStatus>, Status> {
        self.do_apply_version_get().map(Response::new)
    }

    async fn apply_version_bump(
        &self,
        req: Request<pb::ApplyVersionBumpRequest>,
    ) -> Result<Response<pb::ApplyVersionStatus>, Status> {
        self.do_apply_version_bump(req.into_inner()).await.map(Response::new)
    }
}
