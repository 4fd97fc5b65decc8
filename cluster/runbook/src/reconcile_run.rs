//! Carries out a reconcile: observe, ask [`next_step`], do it through the admin client, say what
//! was done with its duration, repeat. Interrupting it is safe: the measured tail is kept in the
//! promoted cluster's meta state before anything ships, and shipping a write twice is harmless
//! under last-writer-wins, so a new run goes on from what it sees.

use std::time::{Duration, Instant};

use serde::Serialize;
use tern_client::admin::{AdminClient, NewLink};
use tern_core::{DrRole, Error, LinkMode, LinkStatus, ReconcileConflict, ReconcileSummary, Result};

use crate::failover_run::StepTaken;
use crate::observe::{ClusterAddr, Observed, observe, wall_ms};
use crate::reconcile::{
    Reverse, ShippedPuts, Step, done_text, finish, last_failover, merge_conflicts, next_step, tail_conflicts,
};

/// How a reconcile runs.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// The old side as the operator names it (must be the last failover's).
    pub from: Option<String>,
    /// Observe and say what would be done first, change nothing.
    pub dry_run: bool,
    /// Between observations while the tail ships.
    pub poll: Duration,
    /// For each cluster's answers.
    pub observe_deadline: Duration,
    /// Give up after this long (a re-run goes on).
    pub timeout: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            from: None,
            dry_run: false,
            poll: Duration::from_millis(500),
            observe_deadline: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
        }
    }
}

/// What a reconcile did.
#[derive(Clone, Debug, Serialize)]
pub struct ReconcileReport {
    pub table: String,
    pub steps: Vec<StepTaken>,
    /// Nothing was left to do when the command started (a reconcile finished before).
    pub nothing_to_do: bool,
    /// The summary kept in the promoted cluster's meta state (finished, or as far as it went;
    /// its list of conflicts is bounded).
    pub reconcile: Option<ReconcileSummary>,
    /// Every conflict of the tail the link's journal showed while this run watched it ship (the
    /// journal is read at every look, so more than its bound are listed).
    pub conflicts: Vec<ReconcileConflict>,
    /// Conflicts counted but not listed: their journal entries were dropped or replaced before
    /// this run read them, or a write was judged twice (a new primary ships again from the
    /// confirmed decree: harmless under last-writer-wins, but counted again).
    pub unlisted: u64,
    pub summary: String,
}

/// Reconciles `table` after its last failover. `say` hears each step as it starts and ends.
pub async fn run_reconcile(
    clusters: &[ClusterAddr],
    table: &str,
    opts: &ReconcileOptions,
    mut say: impl FnMut(&str),
) -> Result<ReconcileReport> {
    let started = Instant::now();
    let mut report = ReconcileReport {
        table: table.to_string(),
        steps: Vec::new(),
        nothing_to_do: false,
        reconcile: None,
        conflicts: Vec::new(),
        unlisted: 0,
        summary: String::new(),
    };
    let mut last_wait = String::new();
    let mut added_full_sync = false;
    let mut shipped = ShippedPuts::default();
    loop {
        if started.elapsed() > opts.timeout {
            return Err(Error::Timeout(format!(
                "reconcile of {table} did not finish in {:?} ({last_wait}); run it again to go on",
                opts.timeout
            )));
        }
        let obs = observe(clusters, opts.observe_deadline, wall_ms()).await;
        let step = next_step(&obs, table, opts.from.as_deref());
        if let Some(s) = kept(&obs, table)
            && let Some(l) =
                obs.clusters.iter().find(|c| c.name == s.from).and_then(|c| c.link_to(table, &s.to))
        {
            shipped.look(l);
        }
        if opts.dry_run && !matches!(step, Step::Refuse { .. } | Step::Done { .. }) {
            report.summary = format!("dry run, nothing changed; next: {}", describe(&step, table));
            return Ok(report);
        }
        let t0 = Instant::now();
        match step {
            Step::Refuse { why } => {
                return Err(Error::InvalidArgument(format!("reconcile of {table} refused: {why}")));
            }
            Step::Done { summary } => {
                report.nothing_to_do = report.steps.is_empty();
                report.reconcile = kept(&obs, table);
                report.summary = match (&report.reconcile, report.nothing_to_do) {
                    (Some(s), false) => done_text(s),
                    _ => summary,
                };
                return Ok(report);
            }
            Step::Wait { why } => {
                watch_journal(clusters, table, &obs, &mut report.conflicts).await;
                if why != last_wait {
                    say(&format!("waiting: {why}"));
                    last_wait = why;
                }
                tokio::time::sleep(opts.poll).await;
                continue;
            }
            step => {
                let what = describe(&step, table);
                say(&what);
                let step = match step {
                    // What this run saw shipped, across primary changes.
                    Step::Finish { mut summary } if report.reconcile.is_some() || shipped.total > 0 => {
                        summary.shipped_puts = summary.shipped_puts.max(shipped.total);
                        Step::Finish { summary }
                    }
                    other => other,
                };
                execute(clusters, table, &obs, step, &mut report, &mut added_full_sync, &mut say).await?;
                let took_ms = t0.elapsed().as_millis() as u64;
                say(&format!("  done in {took_ms} ms"));
                report.steps.push(StepTaken { what, took_ms });
            }
        }
    }
}

/// The summary `to` keeps for the table's last failover.
fn kept(obs: &Observed, table: &str) -> Option<ReconcileSummary> {
    let (newc, record) = last_failover(obs, table)?;
    newc.reconciles.iter().find(|s| s.table == table && s.epoch == record.epoch).cloned()
}

async fn execute(
    clusters: &[ClusterAddr],
    table: &str,
    obs: &Observed,
    step: Step,
    report: &mut ReconcileReport,
    added_full_sync: &mut bool,
    say: &mut impl FnMut(&str),
) -> Result<()> {
    match step {
        Step::Fence { cluster, epoch, expect } => {
            admin(clusters, &cluster)?.set_table_role(table, DrRole::Standby, epoch, Some(expect)).await?;
        }
        Step::Begin { summary } => {
            for p in summary.partitions.iter().filter(|p| p.decrees.is_some()) {
                if let Some((a, b)) = p.decrees {
                    say(&format!("  partition {}: decrees {a}..={b} ({})", p.partition, b - a + 1));
                }
            }
            say(&format!(
                "  {} decrees in all; kept in {}'s meta state before anything ships",
                summary.tail_decrees(),
                summary.to
            ));
            admin(clusters, &summary.to)?.record_reconcile(&summary).await?;
            report.reconcile = Some(summary);
        }
        Step::ResumeLink { cluster, link } => {
            admin(clusters, &cluster)?.resume_link(link).await?;
        }
        Step::ReverseLink { from, to, how } => match how {
            Reverse::Resume { link } => {
                admin(clusters, &from)?.resume_link(link).await?;
            }
            Reverse::AddFullSync => {
                let remote = clusters
                    .iter()
                    .find(|c| c.name == to)
                    .ok_or_else(|| Error::invariant(format!("cluster {to} is not in the list")))?;
                let link = NewLink {
                    table: table.to_string(),
                    remote_cluster: to.clone(),
                    remote_metas: remote.metas.clone(),
                    remote_table: None,
                    full_sync: true,
                    max_bytes_per_sec: 0,
                    mode: LinkMode::OneWay,
                };
                let added = admin(clusters, &from)?.add_link(&link).await?;
                say(&format!("  link {} added, copying {table} with a full sync", added.link.id));
                *added_full_sync = true;
            }
        },
        Step::Finish { mut summary } => {
            let (newc, record) = last_failover(obs, table)
                .ok_or_else(|| Error::invariant("the failover record went away during the reconcile"))?;
            let journal = admin(clusters, &summary.from)?.link_conflicts(summary.link).await?;
            merge_conflicts(&mut report.conflicts, tail_conflicts(&summary, &record, &journal));
            let back = newc.link_to(table, &summary.from);
            summary.reverse_link = back.map(|l| l.link.id);
            summary.reverse_full_sync =
                *added_full_sync || back.is_some_and(|l| l.link.status == LinkStatus::SyncingCheckpoint);
            let done = finish(summary, &report.conflicts, wall_ms());
            admin(clusters, &done.to)?.record_reconcile(&done).await?;
            report.unlisted = (done.lost + done.overwritten).saturating_sub(report.conflicts.len() as u64);
            report.reconcile = Some(done);
        }
        Step::Refuse { .. } | Step::Done { .. } | Step::Wait { .. } => {}
    }
    Ok(())
}

/// Reads the link's journal while the tail ships and keeps the tail's conflicts not seen yet. A
/// journal that cannot be read now is read at the next look (the counts stay complete anyway).
async fn watch_journal(
    clusters: &[ClusterAddr],
    table: &str,
    obs: &Observed,
    seen: &mut Vec<ReconcileConflict>,
) {
    let Some(summary) = kept(obs, table) else { return };
    let Some((_, record)) = last_failover(obs, table) else { return };
    let Ok(a) = admin(clusters, &summary.from) else { return };
    if let Ok(journal) = a.link_conflicts(summary.link).await {
        merge_conflicts(seen, tail_conflicts(&summary, &record, &journal));
    }
}

fn describe(step: &Step, table: &str) -> String {
    match step {
        Step::Fence { cluster, epoch, .. } => {
            format!("fence: {table} in {cluster} becomes standby at epoch {epoch} (the active copy's)")
        }
        Step::Begin { summary } => format!(
            "measure the tail: what {} committed that link {} had not shipped to {}",
            summary.from, summary.link, summary.to
        ),
        Step::ResumeLink { cluster, link } => {
            format!("ship the tail: resume link {link} of {cluster} (paused when {table} was fenced)")
        }
        Step::ReverseLink { from, to, how: Reverse::Resume { link } } => {
            format!("link back: resume link {link} shipping {table} from {from} to {to}")
        }
        Step::ReverseLink { from, to, how: Reverse::AddFullSync } => {
            format!("link back: add a link shipping {table} from {from} to {to}, with a full sync")
        }
        Step::Finish { summary } => format!(
            "count: what became of the tail (link {}'s conflicts since it was measured, and its journal)",
            summary.link
        ),
        Step::Wait { why } => format!("wait: {why}"),
        Step::Refuse { why } => format!("refused: {why}"),
        Step::Done { summary } => summary.clone(),
    }
}

fn admin(clusters: &[ClusterAddr], name: &str) -> Result<AdminClient> {
    let c = clusters
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::invariant(format!("cluster {name} is not in the list")))?;
    AdminClient::connect(c.metas.clone())
}
