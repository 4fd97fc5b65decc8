//! Carries out a switchover: observe, ask [`next_step`], do it through the admin client, say
//! what was done, repeat. The drain has a deadline; past it the stopped side is made active
//! again ([`rollback_step`]). Interrupting it at any point is safe: a new run finds the state and
//! goes on from there (see `switchover.rs`).

use std::time::{Duration, Instant};

use serde::Serialize;
use tern_client::admin::{AdminClient, NewLink};
use tern_core::{DrRole, Error, LinkMode, Result};

use crate::observe::{ClusterAddr, observe, wall_ms};
use crate::switchover::{Drain, Step, next_step, rollback_step};

/// How a switchover runs.
#[derive(Clone, Copy, Debug)]
pub struct SwitchoverOptions {
    /// How long the drain may take before the switchover is rolled back.
    pub drain_timeout: Duration,
    /// How long replica servers may take to hear of a role change (a few beacon intervals).
    pub propagation: Duration,
    /// Between observations while waiting.
    pub poll: Duration,
    /// For each cluster's answers.
    pub observe_deadline: Duration,
}

impl Default for SwitchoverOptions {
    fn default() -> Self {
        SwitchoverOptions {
            drain_timeout: Duration::from_secs(30),
            propagation: Duration::from_secs(3),
            poll: Duration::from_millis(250),
            observe_deadline: Duration::from_secs(5),
        }
    }
}

/// One step carried out, and how long it took.
#[derive(Clone, Debug, Serialize)]
pub struct StepDone {
    pub step: Step,
    pub took_ms: u64,
}

/// What a switchover did.
#[derive(Clone, Debug, Serialize)]
pub struct SwitchoverReport {
    pub table: String,
    pub to: String,
    pub steps: Vec<StepDone>,
    /// From writes stopped to the new copy active, when this run did both.
    pub write_unavailable_ms: Option<u64>,
    pub rolled_back: bool,
    pub summary: String,
}

/// Moves `table`'s active role to `to`. `say` hears each step as it starts and ends.
pub async fn run_switchover(
    clusters: &[ClusterAddr],
    table: &str,
    to: &str,
    opts: SwitchoverOptions,
    mut say: impl FnMut(&str),
) -> Result<SwitchoverReport> {
    let started = Instant::now();
    let mut report = SwitchoverReport {
        table: table.to_string(),
        to: to.to_string(),
        steps: Vec::new(),
        write_unavailable_ms: None,
        rolled_back: false,
        summary: String::new(),
    };
    let mut drain: Option<(Drain, Instant)> = None;
    let mut stopped_at: Option<Instant> = None;
    let mut last_wait = String::new();
    loop {
        let obs = observe(clusters, opts.observe_deadline, wall_ms()).await;
        let step = next_step(&obs, table, to, drain.map(|(d, _)| d));
        match &step {
            Step::Refuse { why } => {
                return Err(Error::InvalidArgument(format!("switchover of {table} to {to} stopped: {why}")));
            }
            Step::Done { summary } => {
                report.summary = summary.clone();
                return Ok(report);
            }
            Step::Wait { why } => {
                let (_, since) = *drain.get_or_insert_with(|| {
                    (
                        Drain { since_ms: wall_ms(), propagation_ms: opts.propagation.as_millis() as u64 },
                        Instant::now(),
                    )
                });
                if *why != last_wait {
                    say(&format!("waiting: {why}"));
                    last_wait = why.clone();
                }
                if since.elapsed() > opts.drain_timeout {
                    return roll_back(clusters, table, to, &obs, report, &mut say).await;
                }
                tokio::time::sleep(opts.poll).await;
                continue;
            }
            _ => {}
        }
        let t0 = Instant::now();
        say(&describe(&step, table));
        execute(clusters, table, &step).await?;
        let took_ms = t0.elapsed().as_millis() as u64;
        say(&format!("  done in {took_ms} ms"));
        match &step {
            Step::StopWrites { .. } => {
                stopped_at = Some(t0);
                drain = Some((
                    Drain { since_ms: wall_ms(), propagation_ms: opts.propagation.as_millis() as u64 },
                    Instant::now(),
                ));
            }
            Step::Promote { .. } => {
                report.write_unavailable_ms = stopped_at.map(|s| s.elapsed().as_millis() as u64);
            }
            _ => {}
        }
        report.steps.push(StepDone { step, took_ms });
        if started.elapsed() > opts.drain_timeout * 4 {
            return Err(Error::Timeout(format!(
                "switchover of {table} to {to} did not finish in {:?}; run it again to go on",
                started.elapsed()
            )));
        }
    }
}

async fn roll_back(
    clusters: &[ClusterAddr],
    table: &str,
    to: &str,
    obs: &crate::Observed,
    mut report: SwitchoverReport,
    say: &mut impl FnMut(&str),
) -> Result<SwitchoverReport> {
    let Some(step) = rollback_step(obs, table, to) else {
        return Err(Error::Timeout(format!(
            "switchover of {table} to {to}: the drain did not finish in time and there is nothing to roll back; run it again"
        )));
    };
    say(&format!("the drain did not finish in time: rolling back ({})", describe(&step, table)));
    let t0 = Instant::now();
    execute(clusters, table, &step).await?;
    report.steps.push(StepDone { step, took_ms: t0.elapsed().as_millis() as u64 });
    report.rolled_back = true;
    report.summary = format!("rolled back: {table} is active where it was, nothing was promoted");
    Ok(report)
}

fn describe(step: &Step, table: &str) -> String {
    match step {
        Step::StopWrites { cluster, epoch, .. } => {
            format!("stop client writes: {table} in {cluster} becomes standby at epoch {epoch}")
        }
        Step::Promote { cluster, epoch, .. } => {
            format!("promote: {table} in {cluster} becomes active at epoch {epoch}")
        }
        Step::AddReverseLink { from, to } => {
            format!("add the link shipping {table} from {from} back to {to}")
        }
        Step::Wait { why } => format!("waiting: {why}"),
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

async fn execute(clusters: &[ClusterAddr], table: &str, step: &Step) -> Result<()> {
    match step {
        Step::StopWrites { cluster, epoch, expect } => {
            admin(clusters, cluster)?.set_table_role(table, DrRole::Standby, *epoch, Some(*expect)).await?;
        }
        Step::Promote { cluster, epoch, expect } => {
            admin(clusters, cluster)?.set_table_role(table, DrRole::Active, *epoch, Some(*expect)).await?;
        }
        Step::AddReverseLink { from, to } => {
            let remote = clusters
                .iter()
                .find(|c| c.name == *to)
                .ok_or_else(|| Error::invariant(format!("cluster {to} is not in the list")))?;
            let link = NewLink {
                table: table.to_string(),
                remote_cluster: to.clone(),
                remote_metas: remote.metas.clone(),
                remote_table: None,
                full_sync: false,
                max_bytes_per_sec: 0,
                mode: LinkMode::OneWay,
            };
            admin(clusters, from)?.add_link(&link).await?;
        }
        Step::Wait { .. } | Step::Refuse { .. } | Step::Done { .. } => {}
    }
    Ok(())
}
