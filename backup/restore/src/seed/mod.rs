//! Seeding a duplication peer from a backup (`tern dup add --seed-from-backup`, issue 25 item
//! 7; guide: docs/backup.md, "Seeding a duplication peer"). The remote table gets the backup
//! by a restore, and the link ships the source's log from each partition's backup decree + 1,
//! so only what was written since the backup crosses the link.
//!
//! The order makes it safe ([`plan::steps`]): check that every source replica still holds its
//! log from the backup's decree + 1; create the remote table restoring; add the link *paused*
//! with every partition at the backup's decree (from then on every replica keeps that log,
//! invariant 11 of docs/duplication.md); wait until every source replica has heard the link and
//! check again (a garbage collection that raced the first check shows now); restore; resume the
//! link. Each step is idempotent and a re-run takes only the steps left, so an interrupted
//! seed is finished by running the same command again (a resumed restore sends its records
//! again, which last-writer-wins makes harmless).

pub mod plan;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_backup::ObjectStore;
use tern_backup::model::{BackupId, list_backups, load_manifest};
use tern_client::TernClient;
use tern_client::admin::seed::{ReplicaLog, TableState};
use tern_client::admin::{AdminClient, NewLink, TableRoute};
use tern_core::{LinkMode, LinkStatus};

use self::plan::{Coverage, ExistingLink, RemoteTable, SeedRefusal, Step};
use crate::error::{RestoreError, Result};
use crate::{RestoreProgress, RestoreRequest, RestoreSummary};

/// What to seed, and how.
#[derive(Clone, Debug)]
pub struct SeedRequest {
    /// The source table (this cluster's).
    pub table: String,
    pub remote_cluster: String,
    pub remote_metas: Vec<String>,
    pub remote_table: String,
    /// `None`: the newest backup of `table` in the target.
    pub backup: Option<BackupId>,
    /// The remote table's partition count when it is created (default: the backup's).
    pub partitions: Option<u32>,
    pub replicas: u32,
    /// The link's throttle (0: unlimited).
    pub max_bytes_per_sec: u64,
    /// The restore's download limit, requests in flight and work directory.
    pub limit_bytes_per_sec: Option<u64>,
    pub concurrency: usize,
    pub work_dir: PathBuf,
    /// Decide and check only: no table, link or record is written.
    pub dry_run: bool,
    /// How long to wait for every source replica to report its log (and hear the link).
    pub hold_timeout: Duration,
    /// The target as the operator named it (for messages).
    pub target: String,
}

/// What a seed reports as it goes.
#[derive(Clone, Debug)]
pub enum SeedEvent {
    Step(Step),
    Restore(RestoreProgress),
}

/// What a seed did (or, with `dry_run`, would do).
#[derive(Clone, Debug)]
pub struct SeedSummary {
    pub backup: String,
    pub table: String,
    pub remote_cluster: String,
    pub remote_table: String,
    /// Per source partition, the backup's decree: shipping starts after it.
    pub decrees: Vec<u64>,
    /// The steps taken (with `dry_run`: the steps a run would take).
    pub steps: Vec<Step>,
    pub dry_run: bool,
    pub link: Option<u64>,
    pub restore: Option<RestoreSummary>,
}

pub type EventFn = Arc<dyn Fn(&SeedEvent) + Send + Sync>;

/// Runs a seed: `source` is this cluster, `remote` and `remote_client` (made by
/// `TernClient::for_restore`) the remote one; backups are read from `store`.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    source: &AdminClient,
    remote: &AdminClient,
    remote_client: Arc<TernClient>,
    req: &SeedRequest,
    events: EventFn,
) -> Result<SeedSummary> {
    let refused = |e: SeedRefusal| RestoreError::Invalid(e.to_string());
    let ids = list_backups(store.as_ref()).await?;
    let backup = plan::choose_backup(&req.table, req.backup.as_ref(), &ids, &req.target).map_err(refused)?;
    let manifest = load_manifest(store.as_ref(), &backup).await?;
    manifest.validate()?;
    let cluster = source.cluster_name().await?;
    let route = source.describe_table(&req.table).await?;
    plan::check_manifest(&manifest, &cluster, &req.table, route.table.partitions).map_err(refused)?;
    let mut decrees = vec![0; manifest.partitions.len()];
    for p in &manifest.partitions {
        decrees[p.index as usize] = p.decree;
    }
    let backup_name = backup.as_str().to_string();
    let link = existing_link(source, req).await?;
    let remote_state = match remote.table_state(&req.remote_table).await? {
        TableState::Absent => RemoteTable::Absent,
        TableState::Restoring(b) => RemoteTable::Restoring { backup: b },
        TableState::Exists => RemoteTable::Serving,
    };
    let steps = plan::steps(&req.table, &req.remote_table, &backup_name, link.as_ref(), &remote_state)
        .map_err(refused)?;
    let mut summary = SeedSummary {
        backup: backup_name.clone(),
        table: req.table.clone(),
        remote_cluster: req.remote_cluster.clone(),
        remote_table: req.remote_table.clone(),
        decrees: decrees.clone(),
        steps: Vec::new(),
        dry_run: req.dry_run,
        link: link.as_ref().map(|l| l.id),
        restore: None,
    };
    if req.dry_run {
        // The log check reads only; it is what a dry run is for.
        if steps.contains(&Step::CheckLog) {
            wait_covered(source, &req.table, &decrees, 0, req.hold_timeout).await?;
        }
        summary.steps = steps;
        return Ok(summary);
    }
    for step in steps {
        events.as_ref()(&SeedEvent::Step(step));
        match step {
            Step::CheckLog => {
                wait_covered(source, &req.table, &decrees, 0, req.hold_timeout).await?;
            }
            Step::CreateRemoteTable => {
                let partitions =
                    crate::plan::target_partitions(manifest.table.partition_count, req.partitions)?;
                remote.begin_restore(&req.remote_table, partitions, req.replicas, &backup_name).await?;
            }
            Step::AddLink => {
                let new = NewLink {
                    table: req.table.clone(),
                    remote_cluster: req.remote_cluster.clone(),
                    remote_metas: req.remote_metas.clone(),
                    remote_table: Some(req.remote_table.clone()),
                    full_sync: false,
                    max_bytes_per_sec: req.max_bytes_per_sec,
                    mode: LinkMode::OneWay,
                };
                let added = source.add_seeded_link(&new, &backup_name, &decrees).await?;
                summary.link = Some(added.link.id);
            }
            Step::ConfirmHold => {
                let id = summary.link.ok_or_else(|| RestoreError::Invalid("no link to confirm".into()))?;
                wait_covered(source, &req.table, &decrees, id, req.hold_timeout).await.map_err(|e| {
                    RestoreError::Invalid(format!(
                        "{e} (link {id} stays paused and holds nothing useful: remove it with `tern dup remove {id}`)"
                    ))
                })?;
            }
            Step::Restore => {
                let restore = RestoreRequest {
                    backup: backup.clone(),
                    table: req.remote_table.clone(),
                    partitions: req.partitions,
                    replicas: req.replicas,
                    limit_bytes_per_sec: req.limit_bytes_per_sec,
                    concurrency: req.concurrency,
                    work_dir: req.work_dir.clone(),
                };
                let ev = events.clone();
                let progress =
                    Arc::new(move |p: &RestoreProgress| ev.as_ref()(&SeedEvent::Restore(p.clone())));
                let r = crate::run(store.clone(), remote, remote_client.clone(), &restore, progress).await?;
                summary.restore = Some(r);
            }
            Step::StartShipping => {
                let id = summary.link.ok_or_else(|| RestoreError::Invalid("no link to resume".into()))?;
                source.resume_link(id).await?;
            }
        }
        summary.steps.push(step);
    }
    Ok(summary)
}

/// The live link of the source table to the remote table, if any, and the backup it was
/// seeded from.
async fn existing_link(source: &AdminClient, req: &SeedRequest) -> Result<Option<ExistingLink>> {
    let to_remote = |cluster: &str, table: &str| cluster == req.remote_cluster && table == req.remote_table;
    let live = source.links(Some(&req.table)).await?.into_iter().find(|l| {
        l.link.status != LinkStatus::Removed && to_remote(&l.link.remote_cluster, &l.link.remote_table)
    });
    let Some(live) = live else { return Ok(None) };
    let seeded = source.seeded_links(&req.table).await?;
    let seed_backup = seeded.into_iter().find(|s| s.id == live.link.id).map(|s| s.backup);
    Ok(Some(ExistingLink { id: live.link.id, status: live.link.status, seed_backup }))
}

/// Every source replica's log, as its server reports it (a server that does not answer is
/// left out: the check then waits for it).
async fn replica_logs(
    source: &AdminClient,
    route: &TableRoute,
    link: u64,
) -> (Vec<ReplicaLog>, Option<String>) {
    let mut nodes: Vec<_> = route.partitions.iter().flat_map(|c| c.members()).collect();
    nodes.sort();
    nodes.dedup();
    let (mut logs, mut last_error) = (Vec::new(), None);
    for node in nodes {
        let Some(addr) = route.addresses.get(&node) else { continue };
        match source.replica_logs_on(addr, route.table.id.0, link).await {
            Ok(l) => logs.extend(l),
            Err(e) => last_error = Some(format!("{node} at {addr}: {e}")),
        }
    }
    (logs, last_error)
}

/// Waits until [`plan::check_coverage`] says covered (`link` != 0: and every replica heard the
/// link), or refuses; gives up after `timeout`, saying what it waited for.
async fn wait_covered(
    source: &AdminClient,
    table: &str,
    decrees: &[u64],
    link: u64,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let route = source.describe_table(table).await?;
        let (logs, error) = replica_logs(source, &route, link).await;
        match plan::check_coverage(table, decrees, &route.partitions, &logs, link != 0) {
            Ok(Coverage::Covered) => return Ok(()),
            Err(refusal) => return Err(RestoreError::Invalid(refusal.to_string())),
            Ok(Coverage::Waiting { partition, node, why }) => {
                if Instant::now() >= deadline {
                    let who = node.map_or_else(String::new, |n| format!(" on {n}"));
                    let error = error.map_or_else(String::new, |e| format!(" (last error: {e})"));
                    return Err(RestoreError::Invalid(format!(
                        "could not tell within {timeout:?} whether the log of partition {partition} of table {table}{who} still covers the backup: {why}{error}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
