//! `apply`: carries out a [`Plan`] through the typed admin client, step by step, in the plan's
//! order, saying what each step did and how long it took.
//!
//! Rules, in the order they are checked (nothing is changed when one refuses):
//! 1. **Compare-and-set on the state version.** [`check`] refuses a plan whose version is not
//!    the one the operator expected (`tern apply --expect-version V`, printed by `tern plan`),
//!    and [`execute`] reads the deployment again right before the first step and refuses if its
//!    version moved since the plan ("state changed since plan; run tern plan again"). The
//!    version is a digest of what was read (`Observed::digest`), each cluster's topology state
//!    version included. Then, before the first step, [`execute`] compare-and-sets every
//!    cluster's topology version on its meta servers (by cluster name, expecting the planned
//!    one; [`version`]): of two applies that read the same state, the second is refused there
//!    ("state changed since plan", re-plan) and changes nothing (docs/topology.md).
//! 2. **Blocked steps** (what apply cannot do yet) are refused, each with its reason.
//! 3. **Destructive steps** are refused without `allow_destructive`, each named.
//!
//! Every step checks the state before acting (a table that exists is not created again, a
//! link that is there is not added again), so a re-run after an interruption finishes the job
//! and a second run finds nothing to do.

mod observe;
mod policies;
mod steps;
#[cfg(test)]
mod tests;
mod version;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::observe::observe;
use crate::plan::{Plan, Step, describe};
use crate::schema::Topology;

/// Why apply (or observing for a plan) stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A cluster of the file did not answer.
    #[error("cluster {cluster} (meta servers {addrs}) did not answer: {cause}")]
    Unreachable { cluster: String, addrs: String, cause: tern_core::Error },
    /// The file's meta servers of a cluster belong to another cluster.
    #[error(
        "the meta servers {addrs} of cluster {cluster} belong to cluster {actual:?}: check the file's meta-servers"
    )]
    WrongCluster { cluster: String, addrs: String, actual: String },
    /// Port 0 is for local runs (`tern up` picks the port).
    #[error(
        "cluster {cluster}: meta server {addr}{at} has port 0, which only `tern up` resolves: give the running deployment's addresses"
    )]
    PortZero { cluster: String, addr: String, at: String },
    /// The deployment moved since the plan.
    #[error(
        "state changed since plan (planned against version {planned}, the deployment is now at version {now}); run tern plan again"
    )]
    StateChanged { planned: String, now: String },
    /// A cluster's meta servers refused the compare-and-set of its topology version: another
    /// apply bumped it since the plan. `bumped`: the clusters bumped before it (no data changed).
    #[error("state changed since plan: {why}; {}", version::moved_text(bumped))]
    VersionMoved { cluster: String, why: String, bumped: Vec<String> },
    /// The plan was made without reading a cluster's topology version (a bug: observe reads it).
    #[error("the plan has no topology version for cluster {cluster}: run tern plan again")]
    NoVersion { cluster: String },
    /// Steps apply will not run; nothing was changed.
    #[error("{}", refused_text(blocked, destructive))]
    Refused {
        /// `step: why apply cannot do it yet`.
        blocked: Vec<String>,
        /// `step: why it is destructive`; empty when `--allow-destructive` was given.
        destructive: Vec<String>,
    },
    /// A step failed; the steps before it are done.
    #[error(
        "step {index} of {total} ({step}) failed: {cause}\n{done} step(s) before it were done; fix the cause and run tern apply again: it goes on from there"
    )]
    StepFailed { index: usize, total: usize, done: usize, step: String, cause: tern_core::Error },
}

fn refused_text(blocked: &[String], destructive: &[String]) -> String {
    let mut out = String::from("refused, nothing was changed:");
    if !blocked.is_empty() {
        out.push_str(&format!("\n{} step(s) that apply cannot do yet:", blocked.len()));
        for b in blocked {
            out.push_str(&format!("\n  {b}"));
        }
    }
    if !destructive.is_empty() {
        out.push_str(&format!("\n{} destructive step(s) need --allow-destructive:", destructive.len()));
        for d in destructive {
            out.push_str(&format!("\n  {d}"));
        }
    }
    out
}

impl ApplyError {
    /// Whether running the same command again may succeed without changing anything else
    /// (a cluster back, a transient failure); after `StateChanged`, plan again first.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApplyError::Unreachable { .. } => true,
            ApplyError::StepFailed { cause, .. } => cause.is_retryable(),
            ApplyError::WrongCluster { .. }
            | ApplyError::PortZero { .. }
            | ApplyError::StateChanged { .. }
            | ApplyError::VersionMoved { .. }
            | ApplyError::NoVersion { .. }
            | ApplyError::Refused { .. } => false,
        }
    }
}

/// How apply runs.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Run destructive steps (drop a table, remove a link, move an active copy).
    pub allow_destructive: bool,
    /// How long each call to a cluster may keep trying.
    pub deadline: Duration,
    /// How a `move-active` step's switchover runs.
    pub switchover: tern_runbook::SwitchoverOptions,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            allow_destructive: false,
            deadline: Duration::from_secs(10),
            switchover: tern_runbook::SwitchoverOptions::default(),
        }
    }
}

/// What apply tells its caller as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// Step `index` (from 1) of `total` starts.
    Start { index: usize, total: usize, step: &'a Step },
    /// It is done: what it did, and how long it took.
    Done { index: usize, total: usize, step: &'a Step, outcome: &'a str, took_ms: u64 },
    /// A line from inside a long step (a switchover's drain).
    Note(&'a str),
}

/// One step carried out.
#[derive(Clone, Debug, Serialize)]
pub struct StepDone {
    /// The step, as the plan describes it.
    pub step: String,
    /// What it did ("created", "already there: link 4", ...).
    pub outcome: String,
    pub took_ms: u64,
}

/// What an apply did.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    /// The state version it planned against.
    pub version: String,
    pub steps: Vec<StepDone>,
    pub took_ms: u64,
}

/// Checks a plan before anything runs: its version is `expect_version` (when given), no step is
/// blocked, and no step is destructive unless `allow_destructive`. Pure.
pub fn check(plan: &Plan, expect_version: Option<&str>, allow_destructive: bool) -> Result<(), ApplyError> {
    if let Some(v) = expect_version
        && v != plan.version
    {
        return Err(ApplyError::StateChanged { planned: v.to_string(), now: plan.version.clone() });
    }
    let blocked: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| s.blocked.as_ref().map(|why| format!("{}: {why}", describe(&s.action))))
        .collect();
    let destructive: Vec<String> = if allow_destructive {
        Vec::new()
    } else {
        plan.steps
            .iter()
            .filter_map(|s| s.destructive.as_ref().map(|why| format!("{}: {why}", describe(&s.action))))
            .collect()
    };
    if blocked.is_empty() && destructive.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Refused { blocked, destructive })
    }
}

/// Carries out `plan` (made from `t`): reads the deployment again and refuses if its version
/// is not the plan's, [`check`]s the plan, compare-and-sets every cluster's topology version
/// (a refusal stops it before any step: `VersionMoved`), then runs every step in order. A plan
/// without steps bumps nothing. `say` hears each step
/// start and end. Stops at the first failing step (the ones before it stay done; a re-run goes
/// on from there).
pub async fn execute(
    t: &Topology,
    plan: &Plan,
    opts: &ApplyOptions,
    mut say: impl FnMut(Progress<'_>),
) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    let now = observe(t, opts.deadline).await?;
    if now.version != plan.version {
        return Err(ApplyError::StateChanged { planned: plan.version.clone(), now: now.version });
    }
    check(plan, None, opts.allow_destructive)?;
    let ctx = steps::Ctx::new(t, plan, &now, opts)?;
    if !plan.steps.is_empty() {
        version::bump_all(&ctx, &version::bumps(t, &now)?).await?;
    }
    let total = plan.steps.len();
    let mut done = Vec::with_capacity(total);
    for (i, step) in plan.steps.iter().enumerate() {
        let index = i + 1;
        say(Progress::Start { index, total, step });
        let t0 = Instant::now();
        let outcome = ctx.run(step, &mut say).await.map_err(|cause| ApplyError::StepFailed {
            index,
            total,
            done: i,
            step: describe(&step.action),
            cause,
        })?;
        let took_ms = t0.elapsed().as_millis() as u64;
        say(Progress::Done { index, total, step, outcome: &outcome, took_ms });
        done.push(StepDone { step: describe(&step.action), outcome, took_ms });
    }
    Ok(ApplyReport {
        version: plan.version.clone(),
        steps: done,
        took_ms: started.elapsed().as_millis() as u64,
    })
}
