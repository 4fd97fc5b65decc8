//! What the clusters say, gathered once for a report: per cluster its tables (roles and
//! epochs), its outgoing duplication links with their progress, and its DR lease. The only I/O
//! of `tern dr status`; every cluster is asked at once, and one that does not answer within the
//! deadline is recorded as unreachable with the reason (a report never waits on a lost DC).

use std::time::Duration;

use tern_client::admin::backup_policy::PolicyStatus;
use tern_client::admin::{AdminClient, DrLeaseState, DrillRecord, LinkReport, TableInfo};
use tern_core::{FailoverRecord, ReconcileSummary, Result, TableStatus};

/// A cluster to ask: its name as the deployment calls it, and its meta servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAddr {
    pub name: String,
    pub metas: Vec<String>,
}

/// What one cluster answered.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterObs {
    pub name: String,
    pub metas: Vec<String>,
    /// Why it could not be asked (`None`: it answered).
    pub unreachable: Option<String>,
    /// Its serving tables.
    pub tables: Vec<TableInfo>,
    /// Its outgoing links (to other clusters), with progress.
    pub links: Vec<LinkReport>,
    /// Its DR lease, or why it could not be read.
    pub lease: std::result::Result<DrLeaseState, String>,
    /// The unplanned failovers into it it keeps a record of (`tern dr failover`).
    pub failovers: Vec<FailoverRecord>,
    /// What `tern dr reconcile` did (or measured so far) after those failovers.
    pub reconciles: Vec<ReconcileSummary>,
    /// Its backup policies with their last runs (`tern backup policy`).
    pub backup_policies: Vec<PolicyStatus>,
    /// The drill reports it keeps (`tern dr drill`), oldest first.
    pub drills: Vec<DrillRecord>,
}

impl ClusterObs {
    /// Its link shipping `table` to the same table in cluster `to` (not removed).
    pub fn link_to(&self, table: &str, to: &str) -> Option<&LinkReport> {
        self.links.iter().find(|l| {
            l.link.table_name == table
                && l.link.remote_cluster == to
                && l.link.remote_table == table
                && l.link.status != tern_core::LinkStatus::Removed
        })
    }
}

/// The wall clock now, ms since the epoch (what [`observe`] is given).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Every cluster's answers, and the wall time they were gathered at (ms since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub clusters: Vec<ClusterObs>,
    pub at_ms: u64,
}

/// Asks every cluster at once, each within `deadline`. `at_ms`: the wall time now (the caller
/// reads the clock).
pub async fn observe(clusters: &[ClusterAddr], deadline: Duration, at_ms: u64) -> Observed {
    let asks = clusters.iter().map(|c| observe_one(c, deadline));
    Observed { clusters: futures::future::join_all(asks).await, at_ms }
}

async fn observe_one(c: &ClusterAddr, deadline: Duration) -> ClusterObs {
    let mut obs = ClusterObs {
        name: c.name.clone(),
        metas: c.metas.clone(),
        unreachable: None,
        tables: Vec::new(),
        links: Vec::new(),
        lease: Err("not asked".into()),
        failovers: Vec::new(),
        reconciles: Vec::new(),
        backup_policies: Vec::new(),
        drills: Vec::new(),
    };
    match tokio::time::timeout(deadline, ask(c, deadline)).await {
        Ok(Ok((tables, links, lease, (failovers, reconciles, backup_policies, drills)))) => {
            obs.tables = tables;
            obs.links = links;
            obs.lease = lease;
            obs.failovers = failovers;
            obs.reconciles = reconciles;
            obs.backup_policies = backup_policies;
            obs.drills = drills;
        }
        Ok(Err(e)) => obs.unreachable = Some(e.to_string()),
        Err(_) => obs.unreachable = Some(format!("no answer from {} within {deadline:?}", c.metas.join(","))),
    }
    obs
}

type Answers = (
    Vec<TableInfo>,
    Vec<LinkReport>,
    std::result::Result<DrLeaseState, String>,
    (Vec<FailoverRecord>, Vec<ReconcileSummary>, Vec<PolicyStatus>, Vec<DrillRecord>),
);

async fn ask(c: &ClusterAddr, deadline: Duration) -> Result<Answers> {
    let admin = AdminClient::connect(c.metas.clone())?.with_deadline(deadline);
    let name = admin.cluster_name().await?;
    if name != c.name {
        return Err(tern_core::Error::InvalidArgument(format!(
            "the meta servers {} belong to cluster {name:?}, not {:?}: check the cluster list",
            c.metas.join(","),
            c.name
        )));
    }
    let mut tables = admin.list_tables().await?;
    tables.retain(|t| t.status == TableStatus::Serving);
    let links = admin.links(None).await?;
    let lease = admin.dr_lease().await.map_err(|e| e.to_string());
    // History for the report, not a health input: a meta server too old to keep it has none.
    let failovers = admin.failovers(None).await.unwrap_or_default();
    let reconciles = admin.reconciles(None).await.unwrap_or_default();
    let policies = admin.list_backup_policies(None).await.map(|l| l.policies).unwrap_or_default();
    let drills = admin.drills().await.unwrap_or_default();
    Ok((tables, links, lease, (failovers, reconciles, policies, drills)))
}

/// A wall time (ms since the Unix epoch) as UTC text, `2026-12-07 23:05:09.123 UTC`.
pub fn wall_text(ms: u64) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (H. Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{milli:03} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wall_times_read_as_utc() {
        assert_eq!(super::wall_text(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(super::wall_text(1_796_684_009_123), "2026-12-07 22:53:29.123 UTC");
        assert_eq!(super::wall_text(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
    }
}
