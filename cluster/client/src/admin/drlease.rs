//! A cluster's DR lease: its voters' answers, every active table's lease, and the operator's
//! waiver (docs/meta-proxy.md, "The DR lease").

use tern_core::Result;
use tern_proto::pb;

use super::convert::dr_lease_from_pb;
use super::{AdminClient, DrLeaseState};

impl AdminClient {
    /// The cluster's DR lease as its meta leader holds it.
    pub async fn dr_lease(&self) -> Result<DrLeaseState> {
        self.call(pb::Empty {}, |mut c, r| async move { c.get_dr_lease(r).await })
            .await
            .map(dr_lease_from_pb)
            .map_err(|e| e.context("ask for the cluster's DR lease"))
    }

    /// Waives the DR lease (`Some(reason)`): the cluster's active tables take client writes
    /// without it, even cut off from every proxy. `None` enforces it again.
    pub async fn set_dr_lease_waiver(&self, reason: Option<&str>) -> Result<DrLeaseState> {
        let req = pb::DrLeaseWaiverRequest {
            waive: reason.is_some(),
            reason: reason.unwrap_or_default().to_string(),
        };
        let what = if reason.is_some() { "waive the DR lease" } else { "enforce the DR lease again" };
        self.call(req, |mut c, r| async move { c.set_dr_lease_waiver(r).await })
            .await
            .map(dr_lease_from_pb)
            .map_err(|e| e.context(what))
    }
}

impl AdminClient {
    /// Keeps the record of an unplanned failover into this cluster (`tern dr failover`).
    pub async fn record_failover(&self, record: &tern_core::FailoverRecord) -> Result<()> {
        let req = tern_proto::convert::admin::failover_to_pb(record);
        self.call(req, |mut c, r| async move { c.record_failover(r).await }).await.map(|_| ()).map_err(|e| {
            e.context(format!("record the failover of table {} at epoch {}", record.table, record.epoch))
        })
    }

    /// The unplanned failovers into this cluster it keeps (of `table` only, if given), oldest
    /// first per table.
    pub async fn failovers(&self, table: Option<&str>) -> Result<Vec<tern_core::FailoverRecord>> {
        let req = pb::DupListRequest { table: table.unwrap_or_default().to_string() };
        self.call(req, |mut c, r| async move { c.list_failovers(r).await })
            .await
            .map(|r| r.records.into_iter().map(tern_proto::convert::admin::failover_from_pb).collect())
            .map_err(|e| e.context("list the failover records"))
    }

    /// Keeps what `tern dr reconcile` did (or measured so far) in this cluster's meta state.
    pub async fn record_reconcile(&self, summary: &tern_core::ReconcileSummary) -> Result<()> {
        let req = pb::ReconcileRecord {
            table: summary.table.clone(),
            epoch: summary.epoch,
            summary_json: summary.to_json(),
        };
        self.call(req, |mut c, r| async move { c.record_reconcile(r).await }).await.map(|_| ()).map_err(|e| {
            e.context(format!(
                "record the reconcile of table {} (failover epoch {})",
                summary.table, summary.epoch
            ))
        })
    }

    /// The reconcile summaries this cluster keeps (of `table` only, if given), oldest first per
    /// table. A summary this build cannot read is an error naming it.
    pub async fn reconciles(&self, table: Option<&str>) -> Result<Vec<tern_core::ReconcileSummary>> {
        let req = pb::DupListRequest { table: table.unwrap_or_default().to_string() };
        let list = self
            .call(req, |mut c, r| async move { c.list_reconciles(r).await })
            .await
            .map_err(|e| e.context("list the reconcile summaries"))?;
        list.records
            .into_iter()
            .map(|r| {
                tern_core::ReconcileSummary::from_json(&r.summary_json).map_err(|e| {
                    tern_core::Error::InvalidArgument(format!(
                        "the reconcile summary of table {} at epoch {}: {e}",
                        r.table, r.epoch
                    ))
                })
            })
            .collect()
    }

    /// Keeps a drill's report in this cluster's meta state (`report_json`: the report as JSON).
    pub async fn record_drill(&self, d: &DrillRecord) -> Result<()> {
        let req = pb::DrillRecord {
            started_ms: d.started_ms,
            from: d.from.clone(),
            to: d.to.clone(),
            passed: d.passed,
            report_json: d.report_json.clone().into_bytes(),
        };
        self.call(req, |mut c, r| async move { c.record_drill(r).await })
            .await
            .map(|_| ())
            .map_err(|e| e.context(format!("record the drill from {} to {}", d.from, d.to)))
    }

    /// The drill reports this cluster keeps, oldest first.
    pub async fn drills(&self) -> Result<Vec<DrillRecord>> {
        let list = self
            .call(pb::Empty {}, |mut c, r| async move { c.list_drills(r).await })
            .await
            .map_err(|e| e.context("list the drill reports"))?;
        Ok(list
            .records
            .into_iter()
            .map(|r| DrillRecord {
                started_ms: r.started_ms,
                from: r.from,
                to: r.to,
                passed: r.passed,
                report_json: String::from_utf8_lossy(&r.report_json).into_owned(),
            })
            .collect())
    }
}

/// A drill's report as a cluster keeps it: indexed by start and sides, the report as JSON
/// (`tern_runbook::DrillReport`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrillRecord {
    pub started_ms: u64,
    pub from: String,
    pub to: String,
    pub passed: bool,
    pub report_json: String,
}
