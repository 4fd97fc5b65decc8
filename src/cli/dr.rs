//! `tern dr`: the disaster-recovery runbook. The rules live in crate `tern-runbook`; this
//! module parses the flags, calls it and prints.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tern_runbook::observe::ClusterAddr;
use tern_runbook::status::{CopyReport, DrStatus, Health, StatusOptions, TableReport};

use super::common::{duration_arg, human_ms, repeated, runtime};
use super::{Exit, OutputFormat};

/// Disaster recovery: the state of every table's copies across clusters (status), a planned
/// move of the active role (switchover), an unplanned one (failover), shipping the old side's
/// unshipped writes after it (reconcile), comparing copies (verify), a rehearsal of both on a
/// scratch table (drill).
#[derive(Debug, Subcommand)]
pub enum DrCmd {
    Status(StatusCmd),
    Switchover(SwitchoverCmd),
    Failover(FailoverCmd),
    Reconcile(super::dr_reconcile::ReconcileCmd),
    Verify(VerifyCmd),
    Drill(DrillCmd),
}

/// Where each table is active, how far behind each standby is, and what is wrong.
///
/// Per table: every cluster's copy (role and epoch, or unreachable), the DR lease of the
/// active copy's cluster, and per standby the link from the active copy: its state, what a
/// failover now could lose ("RPO now": the worst partition's lag plus the age of that
/// measurement; "unknown" when it cannot be told, never 0), decrees and bytes behind.
///
/// The exit status says how healthy it all is, for alerts: 0 healthy, 3 degraded (a cluster
/// unreachable, a link paused, failing, far behind or of unknown lag, a lease waived or
/// unused), 4 unsafe (no reachable active copy, two active copies at one epoch, an active copy
/// without its DR lease), 1 if the command itself failed.
///
/// $ tern dr status --cluster dc1=10.0.1.10:34601 --cluster dc2=10.0.2.10:34601
///
/// $ tern dr status --dir tern-local --table demo     # the deployment of `tern up`
#[derive(Debug, Args)]
pub struct StatusCmd {
    #[command(flatten)]
    clusters: Clusters,
    /// Only this table.
    #[arg(long)]
    table: Option<String>,
    /// A standby further behind than this makes its table degraded.
    #[arg(long, default_value = "10s", value_parser = duration_arg, value_name = "DURATION")]
    rpo_warn: Duration,
    /// How long to wait for each cluster before reporting it unreachable.
    #[arg(long, default_value = "5s", value_parser = duration_arg, value_name = "DURATION")]
    timeout: Duration,
}

impl DrCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        match self {
            DrCmd::Status(s) => s.run(output),
            DrCmd::Switchover(s) => s.run(output),
            DrCmd::Failover(f) => f.run(output),
            DrCmd::Reconcile(r) => r.run(output),
            DrCmd::Verify(v) => v.run(output),
            DrCmd::Drill(d) => d.run(output),
        }
    }
}

/// The clusters of the deployment.
#[derive(Debug, Args)]
pub struct Clusters {
    /// A cluster as NAME=META[,META...] (its name as its meta servers report it); give every
    /// cluster of the deployment. Without any, the clusters of the local deployment in --dir.
    #[arg(long = "cluster", value_name = "NAME=ADDRS", value_parser = super::proxy::cluster_arg)]
    clusters: Vec<(String, Vec<String>)>,
    /// The directory of a local deployment (`tern up --dir`), read when no --cluster is given.
    #[arg(long, default_value = "tern-local", env = "TERN_LOCAL_DIR")]
    dir: PathBuf,
}

impl Clusters {
    pub(super) fn list(&self) -> anyhow::Result<Vec<ClusterAddr>> {
        if !self.clusters.is_empty() {
            if let Some(name) = repeated(self.clusters.iter().map(|(n, _)| n.as_str())) {
                anyhow::bail!("--cluster {name} is given twice");
            }
            return Ok(self
                .clusters
                .iter()
                .map(|(name, metas)| ClusterAddr { name: name.clone(), metas: metas.clone() })
                .collect());
        }
        let state = tern_topology::local::State::read(&self.dir).with_context(|| {
            format!("no --cluster given, and no local deployment in {} to take them from", self.dir.display())
        })?;
        if state.clusters.is_empty() {
            anyhow::bail!("the local deployment in {} lists no clusters", self.dir.display());
        }
        Ok(state
            .clusters
            .iter()
            .map(|c| ClusterAddr { name: c.name.clone(), metas: c.meta_addrs() })
            .collect())
    }
}

impl StatusCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let clusters = self.clusters.list()?;
        let now = tern_runbook::observe::wall_ms();
        let obs = runtime()?.block_on(tern_runbook::observe(&clusters, self.timeout, now));
        let status =
            tern_runbook::assess(&obs, self.table.as_deref(), &StatusOptions { rpo_warn: self.rpo_warn });
        if let Some(t) = &self.table
            && status.tables.is_empty()
        {
            anyhow::bail!("no reachable cluster has a table named {t:?}");
        }
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
            OutputFormat::Text => print!("{}", to_text(&status)),
        }
        match status.health {
            Health::Healthy => Ok(()),
            h => Err(Exit(h.exit_code() as u8).into()),
        }
    }
}

/// Move a table's active role to another cluster, planned, losing nothing.
///
/// Stops client writes on the active copy (it becomes standby at the next epoch), waits until
/// the link to --to has shipped everything (the drain; past --drain-timeout it is rolled back
/// and the old side is active again), makes sure a link ships the table back from --to, then
/// makes --to active at the next epoch; proxies route clients there. Clients see writes
/// refused as unavailable from the stop to the promotion: the time is printed.
///
/// Interrupted (Ctrl-C, a lost terminal), run it again: it finds the step it stopped at and
/// finishes.
///
/// $ tern dr switchover --table orders --to dc2 --cluster dc1=10.0.1.10:34601 --cluster dc2=10.0.2.10:34601
#[derive(Debug, Args)]
pub struct SwitchoverCmd {
    #[command(flatten)]
    clusters: Clusters,
    /// The table to move.
    #[arg(long)]
    table: String,
    /// The cluster whose copy becomes active.
    #[arg(long)]
    to: String,
    /// How long the drain may take before the switchover is rolled back.
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    drain_timeout: Duration,
    /// How long replica servers may take to hear of a role change: a few of their beacon
    /// intervals (`tern replica --beacon-interval`, 1 s by default).
    #[arg(long, default_value = "3s", value_parser = duration_arg, value_name = "DURATION")]
    propagation: Duration,
}

impl SwitchoverCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let clusters = self.clusters.list()?;
        let opts = tern_runbook::SwitchoverOptions {
            drain_timeout: self.drain_timeout,
            propagation: self.propagation,
            ..Default::default()
        };
        let report = runtime()?
            .block_on(tern_runbook::run_switchover(&clusters, &self.table, &self.to, opts, |line| {
                eprintln!("{line}")
            }))
            .context("tern dr switchover")?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Text => {
                println!("{}", report.summary);
                if let Some(ms) = report.write_unavailable_ms {
                    println!("client writes were refused for {} (stop to promotion)", human_ms(ms));
                }
            }
        }
        if report.rolled_back {
            return Err(Exit(super::EXIT_FAILED).into());
        }
        Ok(())
    }
}

/// Unplanned failover: make --to's copy of a table active when the active cluster is lost.
///
/// Observes every cluster (the lost one is reported unreachable), asks the DR voters to promise
/// that the old active copy gets no DR lease any more and waits until its last lease has
/// certainly expired (from then on the old side refuses client writes, also when it comes
/// back: the fencing), then makes --to active at the next epoch (compare-and-set); proxies
/// route clients there. Each step is printed with its duration. Then the loss report: per
/// partition of the old copy, what it had committed that --to had not applied (exact when the
/// old side answers; otherwise bounds from what --to knows, and "unknown" where nothing is
/// known, never 0). It is kept in --to's meta state and shown by `tern dr status`.
///
/// Refused when the old active copy is reachable and serving (use `tern dr switchover`, which
/// loses nothing) unless --force. Asks for confirmation unless --yes.
///
/// $ tern dr failover --table orders --to dc2 --cluster dc1=10.0.1.10:34601 --cluster dc2=10.0.2.10:34601
#[derive(Debug, Args)]
pub struct FailoverCmd {
    #[command(flatten)]
    clusters: Clusters,
    /// The table to fail over.
    #[arg(long)]
    table: String,
    /// The cluster whose copy becomes active.
    #[arg(long)]
    to: String,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, env = "TERN_YES")]
    yes: bool,
    /// Fail over even though the old active copy is reachable and serving (its writes since
    /// the last shipped one are lost).
    #[arg(long)]
    force: bool,
    /// Promote without waiting for the old copy's DR lease (no voters, or a lease not used or
    /// waived): the old side may still take writes, a split brain.
    #[arg(long)]
    unsafe_without_lease: bool,
    /// The DR voters as NAME=HOST:PORT, comma-separated; by default as --to's meta leader
    /// lists them (the addresses its lease renewals go to).
    #[arg(long, env = "TERN_DR_VOTERS", value_name = "NAME=ADDR,...", value_delimiter = ',',
          value_parser = super::drlease::voter_arg)]
    dr_voters: Vec<(String, String)>,
    /// Give up after this long (a re-run starts over from what it sees).
    #[arg(long, default_value = "2m", value_parser = duration_arg, value_name = "DURATION")]
    timeout: Duration,
    /// Observe and print what would be done, change nothing (no promises asked either).
    #[arg(long)]
    dry_run: bool,
}

impl FailoverCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        use std::io::IsTerminal;
        let clusters = self.clusters.list()?;
        super::drlease::check_voters(&self.dr_voters)?;
        if !clusters.iter().any(|c| c.name == self.to) {
            let known: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
            anyhow::bail!("--to {}: not one of the clusters ({})", self.to, known.join(", "));
        }
        if !self.yes && !self.dry_run {
            if !std::io::stdin().is_terminal() {
                anyhow::bail!(
                    "tern dr failover makes {} active in {} and may lose the old side's unshipped writes: \
                     stdin is not a terminal to confirm on; pass --yes",
                    self.table,
                    self.to
                );
            }
            let q = format!(
                "Fail {} over to {}? Writes the old active cluster did not ship are lost until reconciled.",
                self.table, self.to
            );
            if !super::common::confirm(&q)? {
                anyhow::bail!("not confirmed: nothing changed");
            }
        }
        let opts = tern_runbook::FailoverOptions {
            force: self.force,
            unsafe_without_lease: self.unsafe_without_lease,
            voters: self.dr_voters,
            timeout: self.timeout,
            dry_run: self.dry_run,
            ..Default::default()
        };
        let report = runtime()?
            .block_on(tern_runbook::run_failover(&clusters, &self.table, &self.to, &opts, |line| {
                eprintln!("{line}")
            }))
            .context("tern dr failover")?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Text => {
                println!("{}", report.summary);
                if let Some(ms) = report.promoted_after_ms {
                    let wait = report
                        .lease_wait_ms
                        .map(|w| format!(", of which {} waiting for the old lease", human_ms(w)));
                    println!(
                        "promoted {} after the command started{}",
                        human_ms(ms),
                        wait.unwrap_or_default()
                    );
                }
                if let Some(loss) = &report.loss {
                    print!("{}", loss_text(loss));
                }
            }
        }
        Ok(())
    }
}

/// Rehearse recovery and measure real RPO and RTO, on a scratch table only.
///
/// Creates a scratch table `_drill_<time>` (or --table, which must start with `_drill_` and
/// must not exist) in --from and --to with a two-way link, --from active; runs a generated
/// load (--writers writers over their own keys, straight to the clusters or through --proxy)
/// recording every acknowledged write; switches over --from -> --to and back with the
/// switchover of `tern dr switchover`, measuring how long the writers saw writes refused, and
/// reads every acknowledged key back (zero loss); then simulates the loss of --from: pauses the
/// link --from -> --to while the load goes on and fails over to --to with the failover of
/// `tern dr failover --force` (fenced by the scratch table's DR lease, as any failover),
/// measuring the RTO (the loss to the first write --to acknowledged) and the RPO (the
/// acknowledged writes --to lacks), checked against the failover's loss report. Finally the
/// scratch tables and their links are removed, also after a failure or Ctrl-C (what could not
/// be removed is printed). Other tables are not touched. Restoring a backup is not part of the
/// drill yet (the report says "skipped").
///
/// Exit status 0 when every check passed, 1 otherwise. --report FILE keeps the report as JSON
/// (it is not kept in the meta state yet).
///
/// $ tern dr drill --from dc1 --to dc2 --cluster dc1=10.0.1.10:34601 --cluster dc2=10.0.2.10:34601 --report drill.json
#[derive(Debug, Args)]
pub struct DrillCmd {
    #[command(flatten)]
    clusters: Clusters,
    /// The scratch table (must start with `_drill_` and not exist); by default `_drill_<wall ms>`.
    #[arg(long, env = "TERN_DRILL_TABLE")]
    table: Option<String>,
    /// The cluster whose copy starts active (its loss is simulated).
    #[arg(long, env = "TERN_DRILL_FROM")]
    from: String,
    /// The cluster that takes over.
    #[arg(long, env = "TERN_DRILL_TO")]
    to: String,
    /// Write through this proxy (HOST:PORT) instead of straight to the clusters.
    #[arg(long, env = "TERN_DRILL_PROXY")]
    proxy: Option<String>,
    /// Concurrent writers of the load.
    #[arg(long, default_value_t = 4, env = "TERN_DRILL_WRITERS")]
    writers: u32,
    /// Keys each writer overwrites during the switchovers.
    #[arg(long, default_value_t = 200, env = "TERN_DRILL_KEYS")]
    keys_per_writer: u32,
    /// Acknowledged writes to wait for around each step.
    #[arg(long, default_value_t = 200, env = "TERN_DRILL_ACKS")]
    acks_per_phase: u64,
    /// Partitions and replicas of the scratch table.
    #[arg(long, default_value_t = 4, env = "TERN_DRILL_PARTITIONS")]
    partitions: u32,
    #[arg(long, default_value_t = 3, env = "TERN_DRILL_REPLICAS")]
    replicas: u32,
    /// How long each wait of the drill may take (the links to start, writes to come back).
    #[arg(long, default_value = "60s", value_parser = duration_arg, value_name = "DURATION", env = "TERN_DRILL_WAIT")]
    wait_timeout: Duration,
    /// The switchovers' drain timeout (see `tern dr switchover`).
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    drain_timeout: Duration,
    /// How long replica servers may take to hear of a role change (see `tern dr switchover`).
    #[arg(long, default_value = "3s", value_parser = duration_arg, value_name = "DURATION")]
    propagation: Duration,
    /// The DR voters for the failover, as NAME=HOST:PORT (see `tern dr failover`).
    #[arg(long, env = "TERN_DR_VOTERS", value_name = "NAME=ADDR,...", value_delimiter = ',',
          value_parser = super::drlease::voter_arg)]
    dr_voters: Vec<(String, String)>,
    /// Fail over without waiting for the old copy's DR lease (clusters without DR voters): the
    /// drill's old side keeps taking the scratch table's writes until it is fenced.
    #[arg(long)]
    unsafe_without_lease: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, env = "TERN_DRILL_REPORT")]
    report: Option<PathBuf>,
}

impl DrillCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let clusters = self.clusters.list()?;
        super::drlease::check_voters(&self.dr_voters)?;
        let opts = tern_runbook::DrillOptions {
            from: self.from,
            to: self.to,
            table: self.table,
            proxy: self.proxy,
            writers: self.writers.max(1),
            keys_per_writer: self.keys_per_writer,
            partitions: self.partitions,
            replicas: self.replicas,
            acks_per_phase: self.acks_per_phase,
            wait_timeout: self.wait_timeout,
            switchover: tern_runbook::SwitchoverOptions {
                drain_timeout: self.drain_timeout,
                propagation: self.propagation,
                ..Default::default()
            },
            failover: tern_runbook::FailoverOptions {
                unsafe_without_lease: self.unsafe_without_lease,
                voters: self.dr_voters,
                ..Default::default()
            },
            ..Default::default()
        };
        let cancel = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let rt = runtime()?;
        let report = rt
            .block_on(tern_runbook::run_drill(&clusters, &opts, cancel, |line| eprintln!("{line}")))
            .context("tern dr drill")?;
        rt.block_on(record_drill(&clusters, &report));
        if let Some(path) = &self.report {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("write the drill report to {}", path.display()))?;
        }
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Text => print!("{}", drill_text(&report)),
        }
        if !report.passed {
            return Err(Exit(super::EXIT_FAILED).into());
        }
        Ok(())
    }
}

/// A drill's report, as text.
fn drill_text(r: &tern_runbook::DrillReport) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "not measured".to_string(), human_ms);
    let mut out = format!(
        "drill on scratch table {} ({} -> {}), {} writers via {}: {} writes acknowledged, {} refused or failed, {}\n",
        r.table,
        r.from,
        r.to,
        r.writers,
        r.load_via,
        r.writes_acked,
        r.write_errors,
        human_ms(r.took_ms)
    );
    for s in &r.switchovers {
        out.push_str(&format!(
            "  switchover {} -> {}: writes unavailable {} as the writers saw it ({} stop to promotion){}\n",
            s.from,
            s.to,
            opt(s.write_unavailable_ms),
            opt(s.stop_to_promote_ms),
            if s.rolled_back { ", ROLLED BACK" } else { "" }
        ));
    }
    match &r.zero_loss {
        Some(z) => out.push_str(&format!(
            "  zero loss: {} ({} keys read back from {}, {} lost){}\n",
            if z.passed { "passed" } else { "FAILED" },
            z.keys_checked,
            z.cluster,
            z.keys_lost,
            z.examples.first().map(|e| format!("; e.g. {e}")).unwrap_or_default()
        )),
        None => out.push_str("  zero loss: not checked\n"),
    }
    out.push_str(&format!(
        "  failover: RTO {} (loss to the first write {} acknowledged; the failover promoted after {})\n",
        opt(r.failover_rto_ms),
        r.to,
        opt(r.failover_promoted_after_ms)
    ));
    match &r.loss {
        Some(l) => {
            out.push_str(&format!(
                "  RPO: {} of {} acknowledged writes lost, over {}\n",
                l.writes_lost,
                l.writes_checked,
                human_ms(l.lost_span_ms)
            ));
            out.push_str(&format!(
                "  loss check: {} (the loss report says {} decrees lost; {} lost writes outside it){}\n",
                if l.passed { "passed" } else { "FAILED" },
                l.reported_decrees.map_or_else(|| "unknown".to_string(), |d| d.to_string()),
                l.outside_report,
                l.examples.first().map(|e| format!("; e.g. {e}")).unwrap_or_default()
            ));
        }
        None => out.push_str("  loss check: not done\n"),
    }
    out.push_str(&format!("  backup restore: {}\n", r.backup_restore));
    match r.cleaned_up {
        Some(true) => out.push_str("  cleanup: scratch tables and links removed\n"),
        Some(false) => out.push_str(&format!("  cleanup: INCOMPLETE, left: {}\n", r.left_behind.join("; "))),
        None => out.push_str("  cleanup: not done\n"),
    }
    if let Some(e) = &r.error {
        out.push_str(&format!("  stopped early: {e}\n"));
    }
    out.push_str(&format!("{}\n", r.summary));
    out
}

/// A failover's loss report, as text: per partition, or why it is unknown.
fn loss_text(r: &tern_core::FailoverRecord) -> String {
    let kind = if r.exact { "exact, from the old side" } else { "bounds, from what the promoted side knew" };
    let mut out = format!(
        "  failover from {} to {} at epoch {} ({}); loss report ({kind}):\n",
        r.from,
        r.to,
        r.epoch,
        tern_runbook::observe::wall_text(r.at_ms)
    );
    if let Some(why) = &r.unknown {
        out.push_str(&format!("    unknown: {why}\n"));
        return out;
    }
    let total = r.decrees_lost().map_or_else(|| "unknown".to_string(), |n| n.to_string());
    out.push_str(&format!("    decrees lost: {total}\n"));
    if let Some(end) = r.writes_end_before_ms {
        out.push_str(&format!(
            "    the old side took no write after {} (its DR lease had expired)\n",
            tern_runbook::observe::wall_text(end)
        ));
    }
    for p in &r.partitions {
        let decrees = match &p.decrees {
            Ok(None) => "nothing lost".to_string(),
            Ok(Some((a, b))) => format!("decrees {a}..={b} lost ({})", b - a + 1),
            Err(why) => format!("decrees unknown ({why})"),
        };
        let after = match &p.applied_through_timetag {
            Ok(t) => {
                let t = tern_core::Timetag::from_u64(*t);
                format!(
                    "writes with timetags after {} ({}) may be lost",
                    t.as_u64(),
                    tern_runbook::observe::wall_text(t.physical_ms())
                )
            }
            Err(why) => format!("timetags unknown ({why})"),
        };
        out.push_str(&format!("    partition {}: {decrees}; {after}\n", p.partition));
    }
    out
}

/// Compare two clusters' copies of a table: exit 0 if they hold the same records, 3 if not.
///
/// Both copies are scanned once and their records digested per hash-key bucket (4096 buckets,
/// independent of the partition count, so copies with different partition counts compare);
/// the buckets that differ are scanned again for their keys; the differing keys are read again
/// a few times (--retries, --retry-wait) so a write duplication is still carrying is not
/// reported. Prints the differing keys (at most --max-keys) with what each side holds (a digest
/// of the value, or nothing). Records are compared by hash key, sort key and value (not TTL).
///
/// $ tern dr verify --table orders --between dc1 dc2
#[derive(Debug, Args)]
pub struct VerifyCmd {
    #[command(flatten)]
    clusters: Clusters,
    /// The table to compare.
    #[arg(long)]
    table: String,
    /// The two clusters whose copies are compared.
    #[arg(long, num_args = 2, value_names = ["A", "B"], required = true)]
    between: Vec<String>,
    /// List at most this many differing keys (all are counted).
    #[arg(long, default_value_t = 100)]
    max_keys: usize,
    /// Read differing keys again this many times before reporting them.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Between those reads.
    #[arg(long, default_value = "2s", value_parser = duration_arg, value_name = "DURATION")]
    retry_wait: Duration,
}

impl VerifyCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let clusters = self.clusters.list()?;
        let find = |name: &str| {
            clusters.iter().find(|c| c.name == name).cloned().with_context(|| {
                let known: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
                format!("--between {name}: not one of the clusters ({})", known.join(", "))
            })
        };
        let (left, right) = (find(&self.between[0])?, find(&self.between[1])?);
        if left.name == right.name {
            anyhow::bail!("--between names {} twice: give two different clusters", left.name);
        }
        let opts = tern_runbook::VerifyOptions {
            max_keys: self.max_keys,
            retries: self.retries,
            retry_wait: self.retry_wait,
        };
        let report = runtime()?
            .block_on(tern_runbook::run_verify(&left, &right, &self.table, opts, |line| eprintln!("{line}")))
            .context("tern dr verify")?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Text => {
                let r = &report;
                println!(
                    "{}: {} records in {}, {} in {}; {} keys differ{} ({} keys/s)",
                    r.table,
                    r.left_records,
                    r.left,
                    r.right_records,
                    r.right,
                    r.differing_keys,
                    in_flight_note(r),
                    r.keys_per_sec
                );
                for d in &r.differences {
                    let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
                    println!(
                        "  {} / {}: {} {} | {} {}",
                        d.hash_key,
                        d.sort_key,
                        r.left,
                        side(&d.left),
                        r.right,
                        side(&d.right)
                    );
                }
                if r.differing_keys > r.differences.len() {
                    println!("  … and {} more", r.differing_keys - r.differences.len());
                }
            }
        }
        if report.differing_keys > 0 {
            return Err(Exit(3).into());
        }
        Ok(())
    }
}

/// What the first pass saw that turned out to be writes still on their way.
fn in_flight_note(r: &tern_runbook::VerifyReport) -> String {
    if r.settled_keys > 0 {
        format!(" ({} more were in flight and arrived)", r.settled_keys)
    } else if r.differing_buckets > 0 && r.differing_keys == 0 {
        " (what the first pass saw differ was in flight and arrived)".to_string()
    } else {
        String::new()
    }
}

fn to_text(s: &DrStatus) -> String {
    let mut out = String::new();
    for c in &s.clusters {
        match &c.unreachable {
            Some(why) => {
                out.push_str(&format!("cluster {} ({}): UNREACHABLE: {why}\n", c.cluster, c.metas.join(",")))
            }
            None => out.push_str(&format!(
                "cluster {} ({}): DR lease {}\n",
                c.cluster,
                c.metas.join(","),
                c.lease
            )),
        }
    }
    if s.tables.is_empty() {
        out.push_str("no tables\n");
    }
    for t in &s.tables {
        out.push_str(&table_text(t));
    }
    if let Some(d) = &s.last_drill {
        out.push_str(&last_drill_text(d));
    }
    out.push_str(&format!("\noverall: {}\n", s.health.name().to_uppercase()));
    out
}

/// The newest drill in one line: when, which way, and the figures it measured.
fn last_drill_text(d: &tern_runbook::DrillReport) -> String {
    let verdict = if d.passed { "passed" } else { "FAILED" };
    let mut figures: Vec<String> = d
        .switchovers
        .iter()
        .map(|s| match s.write_unavailable_ms {
            Some(ms) => format!("switchover {}->{} {ms} ms unavailable", s.from, s.to),
            None => format!("switchover {}->{} unmeasured", s.from, s.to),
        })
        .collect();
    if let Some(z) = &d.zero_loss {
        figures.push(format!("{} of {} keys lost", z.keys_lost, z.keys_checked));
    }
    if let Some(rto) = d.failover_rto_ms {
        figures.push(format!("failover RTO {rto} ms"));
    }
    if let Some(l) = &d.loss {
        figures.push(format!(
            "RPO {} writes over {} ms ({} outside the loss report)",
            l.writes_lost, l.lost_span_ms, l.outside_report
        ));
    }
    format!(
        "\nlast drill: {} {} -> {} {verdict}: {}\n",
        tern_runbook::observe::wall_text(d.started_wall_ms),
        d.from,
        d.to,
        figures.join(", ")
    )
}

/// Keeps the drill's report in both clusters' meta states (`tern dr status` shows the newest),
/// as far as they answer: a cluster that does not is named, the drill's result stands.
async fn record_drill(clusters: &[ClusterAddr], report: &tern_runbook::DrillReport) {
    let json = match serde_json::to_string(report) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("warning: the drill report was not kept in the clusters: {e}");
            return;
        }
    };
    let record = tern_client::admin::DrillRecord {
        started_ms: report.started_wall_ms,
        from: report.from.clone(),
        to: report.to.clone(),
        passed: report.passed,
        report_json: json,
    };
    for c in clusters.iter().filter(|c| c.name == report.from || c.name == report.to) {
        let kept = match tern_client::AdminClient::connect(c.metas.clone()) {
            Ok(admin) => admin.with_deadline(Duration::from_secs(5)).record_drill(&record).await,
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            eprintln!("warning: the drill report was not kept in cluster {}: {e}", c.name);
        }
    }
}

fn table_text(t: &TableReport) -> String {
    let active = match (&t.active, t.epoch) {
        (Some(a), Some(e)) => format!("active in {a} at epoch {e}"),
        _ => "no active copy".to_string(),
    };
    let mut out = format!("\ntable {}: {active} — {}\n", t.table, t.health.name().to_uppercase());
    for c in &t.copies {
        let line = match c {
            CopyReport::Unreachable { cluster, .. } => format!("  {cluster:<10} unreachable"),
            CopyReport::Absent { cluster } => format!("  {cluster:<10} no copy"),
            CopyReport::Present { cluster, role, epoch, partitions, lease } => {
                let lease = lease.as_ref().map(|l| format!(", lease {l}")).unwrap_or_default();
                format!("  {cluster:<10} {role:<8} epoch {epoch}, {partitions} partitions{lease}")
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    for s in &t.standbys {
        let link = match (s.link_id, s.link_status) {
            (Some(id), Some(st)) => format!("link #{id} {st}"),
            _ => "no link".to_string(),
        };
        let rpo = match (s.rpo_ms, &s.lag_unknown) {
            (Some(ms), _) => human_ms(ms),
            (None, Some(why)) => format!("unknown ({why})"),
            (None, None) => "unknown".to_string(),
        };
        let measured =
            s.measured_ms_ago.map(|ms| format!(", measured {} ago", human_ms(ms))).unwrap_or_default();
        out.push_str(&format!(
            "  -> {}: {link}, RPO now {rpo}, {} decrees / {} bytes behind{measured}\n",
            s.cluster, s.decrees_behind, s.bytes_behind
        ));
    }
    if t.backups.is_empty() {
        out.push_str("  backups: no policy backs this table up (tern backup policy add)\n");
    }
    for b in &t.backups {
        let newest = match (&b.newest_backup, b.newest_age_ms) {
            (Some(id), Some(age)) => format!("newest {id}, {} old", human_ms(age)),
            _ => match &b.error {
                Some(e) => format!("last run FAILED: {e}"),
                None => format!("last run {}", b.last_run),
            },
        };
        let paused = if b.paused { ", PAUSED" } else { "" };
        out.push_str(&format!(
            "  backups: policy {} in {} -> {} every {}{paused}: {newest}\n",
            b.policy,
            b.cluster,
            b.target,
            human_ms(b.interval_secs * 1000)
        ));
    }
    if let Some(r) = &t.last_failover {
        out.push_str("  last failover:\n");
        out.push_str(&loss_text(r).lines().map(|l| format!("  {l}\n")).collect::<String>());
    }
    if let Some(r) = &t.last_reconcile {
        out.push_str("  last reconcile:\n");
        let text = super::dr_reconcile::reconcile_text(r);
        out.push_str(&text.lines().map(|l| format!("  {l}\n")).collect::<String>());
    }
    for f in &t.findings {
        let mark = match f.health {
            Health::Healthy => "note",
            Health::Degraded => "DEGRADED",
            Health::Unsafe => "UNSAFE",
        };
        out.push_str(&format!("  {mark}: {}\n", f.what));
    }
    out
}
