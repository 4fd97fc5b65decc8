//! `tern plan` and `tern apply`: a topology file against the running deployment. The work is
//! in `tern_topology` (observe, `plan`, `apply::execute`); this module parses the flags, calls
//! it and prints.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tern_topology::apply::{self, ApplyOptions, Progress};
use tern_topology::{Plan, Topology};

use super::common::{confirm, duration_arg, human_ms, runtime};
use super::{EXIT_FAILED, Exit, OutputFormat};

/// Exit status of `tern plan` when the deployment differs from the file.
pub const EXIT_CHANGES: u8 = 3;

/// The topology file and how long each cluster may take to answer.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The topology file (YAML; see docs/topology.md).
    #[arg(short = 'f', long = "file", env = "TERN_TOPOLOGY", value_name = "FILE")]
    file: PathBuf,
    /// How long each call to a cluster may keep trying before the cluster is reported
    /// unreachable.
    #[arg(long, default_value = "5s", value_parser = duration_arg, value_name = "DURATION", env = "TERN_TIMEOUT")]
    timeout: Duration,
}

impl FileArgs {
    /// The validated file; every problem printed, one per line, with `file:line:column`.
    fn load(&self) -> anyhow::Result<Topology> {
        load(&self.file)
    }

    /// The file and the plan against the running deployment.
    fn plan(&self, rt: &tokio::runtime::Runtime) -> anyhow::Result<(Topology, Plan)> {
        let t = self.load()?;
        let observed = rt.block_on(apply::observe(&t, self.timeout))?;
        let plan = tern_topology::plan(&t, &observed);
        Ok((t, plan))
    }
}

/// The validated topology file at `path`; every problem printed, one per line, with
/// `file:line:column`, and exit status 1.
pub fn load(path: &std::path::Path) -> anyhow::Result<Topology> {
    Topology::load(path).map_err(|problems| {
        eprintln!("{problems}");
        eprintln!("error: {} is not a valid topology ({} problem(s))", path.display(), problems.len());
        Exit(EXIT_FAILED).into()
    })
}

/// Show what `tern apply` would change to make the running deployment match a topology file.
///
/// Reads the file (every problem is printed with file:line:column), asks every cluster of the
/// file (its meta servers) and every proxy with a real port, and prints the steps apply would
/// run, in order, Terraform-like: `+` create, `~` change, `-` destroy, with what makes a step
/// destructive and what apply cannot do yet. It also prints the state version it planned
/// against: pass it to `tern apply --expect-version` so that apply refuses if the deployment
/// changed in between.
///
/// Exit status: 0 the deployment matches the file; 3 changes are pending; 1 the file is
/// invalid, a cluster did not answer, or the command failed otherwise (2: bad flags).
///
/// $ tern plan -f deploy.yaml
///
/// $ tern plan -f deploy.yaml --output json | jq .version
#[derive(Debug, Args)]
pub struct PlanCmd {
    #[command(flatten)]
    file: FileArgs,
}

impl PlanCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let rt = runtime()?;
        let (_, plan) = self.file.plan(&rt)?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            OutputFormat::Text => {
                print!("{}", plan.render());
                if !plan.is_empty() {
                    println!(
                        "\nTo apply exactly this: tern apply -f {} --expect-version {}",
                        self.file.file.display(),
                        plan.version
                    );
                }
            }
        }
        if plan.is_empty() { Ok(()) } else { Err(Exit(EXIT_CHANGES).into()) }
    }
}

/// Make the running deployment match a topology file, idempotently.
///
/// Plans as `tern plan` does, prints the plan, asks for confirmation (unless --yes), then runs
/// each step through the clusters' admin API, printing it with its result and how long it
/// took. Before the first step it reads the deployment again and refuses if it changed since
/// the plan ("state changed since plan; run tern plan again"); with --expect-version it also
/// refuses a plan made at another version than the one you reviewed. The version is a digest
/// of what was read, each cluster's topology version included; before the first step apply
/// compare-and-sets every cluster's topology version on its meta servers, so of two applies
/// planned against the same state only one runs: the other is refused ("state changed since
/// plan") with nothing changed, and you re-plan.
///
/// Refused, with nothing changed: destructive steps (drop a table, remove a link, move an
/// active copy) without --allow-destructive, and steps apply cannot do yet (change a table's
/// partitions, replicas or default TTL; backup policies; proxy settings), always, with the
/// reason. Moving an active copy goes through the DR switchover (stop writes, drain, promote),
/// as `tern dr switchover` does.
///
/// Every step checks the state before acting: a second apply changes nothing, and an
/// interrupted apply is finished by running it again.
///
/// Exit status: 0 applied, or nothing to do; 1 refused or failed (the message says which step
/// and why); 2 bad flags.
///
/// $ tern apply -f deploy.yaml
///
/// $ tern apply -f deploy.yaml --expect-version 3f2a9c0d1e4b5a67 --yes
#[derive(Debug, Args)]
pub struct ApplyCmd {
    #[command(flatten)]
    file: FileArgs,
    /// Run destructive steps too (drop tables, remove links, move active copies).
    #[arg(long, env = "TERN_ALLOW_DESTRUCTIVE")]
    allow_destructive: bool,
    /// Apply only if the deployment is still at this state version (printed by `tern plan`).
    #[arg(long, value_name = "VERSION", env = "TERN_EXPECT_VERSION")]
    expect_version: Option<String>,
    /// Do not ask for confirmation (for scripts).
    #[arg(long, short = 'y', env = "TERN_YES")]
    yes: bool,
    /// How long a switchover's drain may take before it is rolled back (move-active steps).
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    drain_timeout: Duration,
}

impl ApplyCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let rt = runtime()?;
        let (t, plan) = self.file.plan(&rt)?;
        let text = output == OutputFormat::Text;
        if text {
            print!("{}", plan.render());
        }
        apply::check(&plan, self.expect_version.as_deref(), self.allow_destructive)?;
        if plan.is_empty() {
            if !text {
                println!("{}", serde_json::json!({ "version": plan.version, "steps": [] }));
            }
            return Ok(());
        }
        if !self.yes {
            if !std::io::stdin().is_terminal() {
                anyhow::bail!(
                    "not applied: stdin is not a terminal to confirm on; pass --yes to apply without asking"
                );
            }
            if !confirm(&format!("Apply these {} steps?", plan.steps.len()))? {
                anyhow::bail!("not applied");
            }
        }
        let opts = ApplyOptions {
            allow_destructive: self.allow_destructive,
            deadline: self.file.timeout.max(Duration::from_secs(10)),
            switchover: tern_runbook::SwitchoverOptions {
                drain_timeout: self.drain_timeout,
                ..Default::default()
            },
        };
        let say = |p: Progress<'_>| {
            let line = match p {
                Progress::Start { index, total, step } => {
                    format!("[{index}/{total}] {} ...", tern_topology::plan::describe(&step.action))
                }
                Progress::Done { index, total, outcome, took_ms, .. } => {
                    format!("[{index}/{total}] done in {took_ms} ms: {outcome}")
                }
                Progress::Note(line) => format!("    {line}"),
            };
            // Text: progress is the output. JSON: one document on stdout, progress on stderr.
            if text { println!("{line}") } else { eprintln!("{line}") }
        };
        if text {
            println!("\nApplying {} steps (state version {}):", plan.steps.len(), plan.version);
        }
        let report = rt.block_on(apply::execute(&t, &plan, &opts, say))?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Text => {
                println!("Apply complete: {} steps in {}.", report.steps.len(), human_ms(report.took_ms))
            }
        }
        Ok(())
    }
}
