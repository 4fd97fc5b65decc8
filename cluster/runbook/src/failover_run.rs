//! Carries out a failover: observe, ask [`next_step`], do it (promises through the voter client,
//! the lease wait on this process's clock, role changes through the admin client), say what
//! was done with its duration, repeat. Before the promotion it takes what the target knows of
//! the old side ([`loss_report`]) and keeps it in the target's meta state. Interrupting it is
//! safe: the promises only raise voters' floors, and a new run starts over from what it sees.

use std::time::{Duration, Instant};

use serde::Serialize;
use tern_client::Pool;
use tern_client::admin::AdminClient;
use tern_client::voter::{PromiseAsk, ask_promise};
use tern_core::{DrRole, Error, FailoverRecord, Result};

use crate::failover::{FailoverRules, Promised, Step, loss_report, next_step, old_side_promised};
use crate::observe::{ClusterAddr, Observed, observe, wall_ms};

/// How a failover runs.
#[derive(Clone, Debug)]
pub struct FailoverOptions {
    pub force: bool,
    pub unsafe_without_lease: bool,
    /// The DR voters (name, address); empty: as the target cluster's meta leader lists them.
    pub voters: Vec<(String, String)>,
    /// For each cluster's answers.
    pub observe_deadline: Duration,
    /// For each voter's answer.
    pub voter_deadline: Duration,
    /// Give up after this long.
    pub timeout: Duration,
    /// Observe and say what would be done first, change nothing (not even the voters' floors).
    pub dry_run: bool,
}

impl Default for FailoverOptions {
    fn default() -> Self {
        FailoverOptions {
            force: false,
            unsafe_without_lease: false,
            voters: Vec::new(),
            observe_deadline: Duration::from_secs(2),
            voter_deadline: Duration::from_secs(1),
            timeout: Duration::from_secs(120),
            dry_run: false,
        }
    }
}

/// One step carried out, and how long it took.
#[derive(Clone, Debug, Serialize)]
pub struct StepTaken {
    pub what: String,
    pub took_ms: u64,
}

/// What a failover did.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverReport {
    pub table: String,
    pub to: String,
    pub from: Option<String>,
    pub epoch: Option<u64>,
    pub steps: Vec<StepTaken>,
    /// From the command's start to the promotion, when this run promoted.
    pub promoted_after_ms: Option<u64>,
    /// Of that, waiting for the old copy's DR lease.
    pub lease_wait_ms: Option<u64>,
    /// What the old side may have lost (kept in the target's meta state).
    pub loss: Option<FailoverRecord>,
    pub summary: String,
}

/// The voters: as given, else as the target's meta leader lists them (names and addresses).
fn voters_of(obs: &Observed, to: &str, given: &[(String, String)]) -> Vec<(String, String)> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let Some(Ok(l)) = obs.clusters.iter().find(|c| c.name == to).map(|c| &c.lease) else {
        return Vec::new();
    };
    l.voters
        .iter()
        .map(|v| {
            let addr = l.grants.iter().find(|g| g.voter == *v).map(|g| g.addr.clone()).unwrap_or_default();
            (v.clone(), addr)
        })
        .collect()
}

/// Fails `table` over to `to`. `say` hears each step as it starts and ends.
pub async fn run_failover(
    clusters: &[ClusterAddr],
    table: &str,
    to: &str,
    opts: &FailoverOptions,
    mut say: impl FnMut(&str),
) -> Result<FailoverReport> {
    let started = Instant::now();
    let mut report = FailoverReport {
        table: table.to_string(),
        to: to.to_string(),
        from: None,
        epoch: None,
        steps: Vec::new(),
        promoted_after_ms: None,
        lease_wait_ms: None,
        loss: None,
        summary: String::new(),
    };
    let pool = Pool::new();
    let mut promised: Option<Promised<Instant>> = None;
    let mut lease_wait_start: Option<Instant> = None;
    let mut waited = false;
    let mut first = true;
    loop {
        if started.elapsed() > opts.timeout {
            return Err(Error::Timeout(format!(
                "failover of {table} to {to} did not finish in {:?}; run it again to go on",
                opts.timeout
            )));
        }
        let t0 = Instant::now();
        // A lost cluster costs the whole deadline each time: after the first look, a shorter one
        // (the clusters that answer do so in milliseconds).
        let deadline =
            if first { opts.observe_deadline } else { opts.observe_deadline.min(Duration::from_secs(1)) };
        let obs = observe(clusters, deadline, wall_ms()).await;
        if first {
            let took_ms = t0.elapsed().as_millis() as u64;
            let what: Vec<String> = obs
                .clusters
                .iter()
                .map(|c| match (&c.unreachable, c.tables.iter().find(|t| t.name == table)) {
                    (Some(why), _) => format!("{} unreachable ({why})", c.name),
                    (None, Some(t)) => format!("{} {} at epoch {}", c.name, t.role, t.epoch),
                    (None, None) => format!("{} has no copy", c.name),
                })
                .collect();
            say(&format!("observe: {}", what.join("; ")));
            say(&format!("  done in {took_ms} ms"));
            report.steps.push(StepTaken { what: format!("observe: {}", what.join("; ")), took_ms });
            first = false;
        }
        // Each step's own duration, not the look before it.
        let t0 = Instant::now();
        let voters = voters_of(&obs, to, &opts.voters);
        let mut names: Vec<String> = voters.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        let rules = FailoverRules {
            force: opts.force,
            unsafe_without_lease: opts.unsafe_without_lease,
            voters: names.clone(),
        };
        let step = next_step(&obs, table, to, &rules, promised.as_ref(), Instant::now());
        if opts.dry_run {
            let next = match &step {
                Step::Refuse { .. } | Step::Done { .. } => None,
                Step::AskPromises { old, epoch } => Some(format!(
                    "ask {} DR voters ({}) to promise no lease below epoch {epoch} (replacing {old}), wait for {old}'s lease to expire, then make {table} in {to} active at epoch {epoch}",
                    voters.len(),
                    names.join(", ")
                )),
                Step::WaitLease { why, .. } => Some(format!("wait: {why}")),
                Step::Promote { cluster, epoch, .. } => {
                    Some(format!("make {table} in {cluster} active at epoch {epoch}"))
                }
                Step::Fence { cluster, epoch, .. } => {
                    Some(format!("make {table} in {cluster} standby at epoch {epoch}"))
                }
            };
            if let Some(next) = next {
                report.summary = format!("dry run, nothing changed; next: {next}");
                return Ok(report);
            }
        }
        match step {
            Step::Refuse { why } => {
                return Err(Error::InvalidArgument(format!("failover of {table} to {to} refused: {why}")));
            }
            Step::Done { summary } => {
                report.summary = summary;
                return Ok(report);
            }
            Step::AskPromises { old, epoch } => {
                let what = format!(
                    "promises: asking {} DR voters ({}) for no lease below epoch {epoch} (replacing {old})",
                    voters.len(),
                    names.join(", ")
                );
                say(&what);
                let ask = PromiseAsk {
                    table: table.to_string(),
                    cluster: old.clone(),
                    epoch,
                    voters: names.clone(),
                    promoter: format!("tern dr failover --to {to}"),
                };
                let asks = voters.iter().map(|(name, addr)| {
                    let (pool, ask) = (&pool, &ask);
                    async move {
                        let answer = if addr.is_empty() {
                            Err(format!(
                                "no address known (the meta leader of {to} never renewed with it; give --dr-voters)"
                            ))
                        } else {
                            ask_promise(pool, addr, ask, opts.voter_deadline).await
                        };
                        (name.clone(), Instant::now(), answer)
                    }
                });
                let answers = futures::future::join_all(asks).await;
                let granted =
                    tern_drlease::granted_epoch(answers.iter().filter_map(|(_, _, a)| a.as_ref().ok()));
                let granted_epoch = granted.max(promised.as_ref().and_then(|p| p.granted_epoch));
                let (promises, not) = tern_drlease::tally_promises(answers);
                let took_ms = t0.elapsed().as_millis() as u64;
                let got: Vec<&str> = promises.iter().map(|p| p.voter.as_str()).collect();
                say(&format!("  {} promised ({}); {}", got.len(), got.join(", "), describe_not(&not)));
                say(&format!("  done in {took_ms} ms"));
                report.steps.push(StepTaken { what, took_ms });
                if let Some(g) = granted_epoch.filter(|g| *g >= epoch) {
                    say(&format!(
                        "  the voters last granted {table} in {old} at epoch {g}: asking again above it"
                    ));
                }
                report.from = Some(old);
                report.epoch = Some(epoch);
                promised = Some(Promised { epoch, promises, not, granted_epoch });
                lease_wait_start = Some(Instant::now());
            }
            Step::WaitLease { until, why } => {
                say(&format!("fence: waiting until the old copy's DR lease has certainly expired: {why}"));
                tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
                let took_ms = t0.elapsed().as_millis() as u64;
                say(&format!("  done in {took_ms} ms"));
                report.steps.push(StepTaken { what: format!("fence: {why}"), took_ms });
                waited = true;
            }
            Step::Promote { cluster, epoch, expect, note } => {
                if let Some(n) = &note {
                    say(&format!("WARNING: {n}"));
                }
                let promised_epoch = promised.as_ref().map(|p| p.epoch);
                let old = old_side_promised(&obs, table, to, promised_epoch).map(|c| c.name.clone()).ok();
                if let (Some(start), false, None) = (lease_wait_start, waited, &note) {
                    // The lease ran out while this run looked again (a lost cluster takes the
                    // observation deadline): the fence is in place all the same.
                    let what = format!(
                        "fence: {}'s last DR lease had certainly expired {} ms after the promises",
                        old.as_deref().unwrap_or("the old side"),
                        start.elapsed().as_millis()
                    );
                    say(&what);
                    report.steps.push(StepTaken { what, took_ms: 0 });
                    waited = true;
                }
                let admin = admin(clusters, &cluster)?.with_deadline(opts.observe_deadline);
                // What the target knows of the old side, taken before the promotion.
                let incoming = admin.incoming(Some(table)).await.unwrap_or_default();
                let writes_end = promised.as_ref().and(Some(wall_ms())).filter(|_| note.is_none());
                let what = format!("promote: {table} in {cluster} becomes active at epoch {epoch}");
                say(&what);
                admin.set_table_role(table, DrRole::Active, epoch, Some(expect)).await?;
                let took_ms = t0.elapsed().as_millis() as u64;
                say(&format!("  done in {took_ms} ms"));
                report.steps.push(StepTaken { what, took_ms });
                report.promoted_after_ms = Some(started.elapsed().as_millis() as u64);
                report.lease_wait_ms = lease_wait_start.map(|s| s.elapsed().as_millis() as u64);
                report.epoch = Some(epoch);
                if let Some(old) = old {
                    let mut loss = loss_report(&obs, table, &old, &cluster, epoch, &incoming, writes_end);
                    loss.took_ms = started.elapsed().as_millis() as u64;
                    match admin.record_failover(&loss).await {
                        Ok(()) => say(&format!("loss report kept in {cluster}'s meta state (epoch {epoch})")),
                        Err(e) => {
                            say(&format!("WARNING: the loss report could not be kept in {cluster}: {e}"))
                        }
                    }
                    report.from = Some(old);
                    report.loss = Some(loss);
                }
            }
            Step::Fence { cluster, epoch, expect } => {
                let what = format!("fence: {table} in {cluster} becomes standby at epoch {epoch}");
                say(&what);
                let a = admin(clusters, &cluster)?;
                a.set_table_role(table, DrRole::Standby, epoch, Some(expect)).await?;
                // Its unshipped tail waits for tern dr reconcile (as when its meta leader or a
                // proxy fences it).
                for l in a.links(Some(table)).await.unwrap_or_default() {
                    if l.link.status == tern_core::LinkStatus::Shipping
                        && a.pause_link(l.link.id).await.is_ok()
                    {
                        say(&format!(
                            "  link {} of {cluster} paused: tern dr reconcile ships its tail",
                            l.link.id
                        ));
                    }
                }
                let took_ms = t0.elapsed().as_millis() as u64;
                say(&format!("  done in {took_ms} ms"));
                report.steps.push(StepTaken { what, took_ms });
            }
        }
    }
}

fn describe_not(not: &[String]) -> String {
    if not.is_empty() { "every voter answered".to_string() } else { format!("not: {}", not.join("; ")) }
}

fn admin(clusters: &[ClusterAddr], name: &str) -> Result<AdminClient> {
    let c = clusters
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::invariant(format!("cluster {name} is not in the list")))?;
    AdminClient::connect(c.metas.clone())
}
