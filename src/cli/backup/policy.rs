//! `tern backup policy`: scheduled backups kept by the meta servers (docs/backup.md "Policies
//! and scheduling"). Parse, call the admin client, print.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use tern_client::AdminClient;
use tern_client::admin::backup_policy::{
    BackupOpInfo, BackupPolicy, PolicyList, PolicyRun, PolicyRunOutcome, PolicyStatus, PolicyTargetInfo,
};

use super::super::OutputFormat;
use crate::cli::common::{MetaAddrs, confirm, duration_arg, human_ms, runtime};

/// Backup policies: tables backed up on a schedule to a target, with retention. The meta
/// leader of the cluster runs them (only for tables whose copy in this cluster is the active
/// one), then deletes backups past the retention and the files no kept backup uses.
///
/// Credentials are never stored in a policy: the meta servers open the target with their own
/// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION in their environment, or AWS_PROFILE),
/// and the replica servers, which upload, with theirs.
///
/// Examples (with TERN_META=127.0.0.1:34601 set):
///
/// $ tern backup policy add nightly --table users,orders --target s3://backups/tern --endpoint http://127.0.0.1:9000 --every 1d --at 02:30 --keep-last 7
///
/// $ tern backup policy list
///
/// $ tern backup policy pause nightly
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    Add(Box<AddCmd>),
    Alter(Box<AlterCmd>),
    List(ListCmd),
    /// Show a policy: settings, each table's last run (outcome, backup id) and next due time,
    /// its last retention run, and the operations it has in use.
    Describe(NameCmd),
    /// Pause a policy: no new runs (a running one finishes).
    Pause(NameCmd),
    /// Resume a paused policy: its next slot runs (a missed one runs once, not once per slot).
    Resume(NameCmd),
    Remove(RemoveCmd),
}

/// The settings of a policy (all required to add one, any to alter one).
#[derive(Debug, Args)]
pub struct PolicyFlags {
    /// Tables to back up, comma-separated (tables of this cluster).
    #[arg(long = "table", value_delimiter = ',', value_name = "TABLE,...")]
    tables: Option<Vec<String>>,
    /// `s3://bucket/prefix`, or an absolute directory (of the replica servers' hosts).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// An S3-compatible server (`http://127.0.0.1:9000`). Leave out for AWS.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The S3 region.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// How often to back up (`1h`, `1d`; at least 1m).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    every: Option<Duration>,
    /// Align runs to this UTC time of day (`HH:MM`); default: to when the policy is added.
    #[arg(long, value_parser = hhmm, value_name = "HH:MM")]
    at: Option<u32>,
    /// Keep the newest N backups of each table.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_last: Option<u32>,
    /// Keep backups younger than this (`7d`). The newest backup of a table is always kept.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    max_age: Option<Duration>,
    /// Upload bandwidth per primary, in megabits per second (N × 125,000 bytes/s).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit_mbps: Option<u64>,
}

/// Add a backup policy. Refused (named) if the name exists, a table is unknown, the interval
/// is under 1m or there is no retention rule (--keep-last and/or --max-age).
///
/// $ tern backup policy add hourly --table users --target s3://backups/tern --every 1h --keep-last 24 --meta HOST:PORT
#[derive(Debug, Args)]
pub struct AddCmd {
    /// The policy's name (`[A-Za-z0-9_.-]`, up to 64).
    name: String,
    #[command(flatten)]
    flags: PolicyFlags,
    /// Add it paused (resume it with `tern backup policy resume`).
    #[arg(long)]
    paused: bool,
    #[command(flatten)]
    meta: MetaAddrs,
}

/// Change a policy: the flags given replace those settings, the others stay.
///
/// $ tern backup policy alter hourly --keep-last 48 --meta HOST:PORT
#[derive(Debug, Args)]
pub struct AlterCmd {
    name: String,
    #[command(flatten)]
    flags: PolicyFlags,
    /// Clear the start time (runs aligned to when the policy was added).
    #[arg(long, conflicts_with = "at")]
    no_at: bool,
    #[command(flatten)]
    meta: MetaAddrs,
}

/// List the policies with each table's last run and when it is next due.
#[derive(Debug, Args)]
pub struct ListCmd {
    #[command(flatten)]
    meta: MetaAddrs,
}

/// A policy by name.
#[derive(Debug, Args)]
pub struct NameCmd {
    name: String,
    #[command(flatten)]
    meta: MetaAddrs,
}

/// Remove a policy: nothing runs for it any more; the backups it took stay in the target.
///
/// $ tern backup policy remove hourly --yes --meta HOST:PORT
#[derive(Debug, Args)]
pub struct RemoveCmd {
    name: String,
    /// Do not ask.
    #[arg(long)]
    yes: bool,
    /// Say what would be removed, change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    meta: MetaAddrs,
}

fn hhmm(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a UTC time HH:MM (00:00 to 23:59)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || s.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn connect(meta: &MetaAddrs) -> anyhow::Result<AdminClient> {
    AdminClient::connect(meta.meta.clone()).context("connect to the meta servers")
}

impl PolicyFlags {
    fn apply(self, p: &mut BackupPolicy) {
        if let Some(t) = self.tables {
            p.tables = t;
        }
        if let Some(t) = self.target {
            p.target.url = t;
        }
        if self.endpoint.is_some() {
            p.target.endpoint = self.endpoint;
        }
        if self.region.is_some() {
            p.target.region = self.region;
        }
        if let Some(d) = self.every {
            p.interval_secs = d.as_secs();
        }
        if self.at.is_some() {
            p.start_minute = self.at;
        }
        if self.keep_last.is_some() {
            p.keep_last = self.keep_last;
        }
        if let Some(d) = self.max_age {
            p.max_age_secs = Some(d.as_secs());
        }
        if let Some(m) = self.limit_mbps {
            p.limit_bytes_per_sec = Some(m.saturating_mul(125_000));
        }
    }
}

impl PolicyCmd {
    pub fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        let rt = runtime()?;
        match self {
            PolicyCmd::Add(c) => {
                let c = *c;
                let mut p = BackupPolicy {
                    name: c.name,
                    tables: Vec::new(),
                    target: PolicyTargetInfo { url: String::new(), endpoint: None, region: None },
                    interval_secs: 0,
                    start_minute: None,
                    keep_last: None,
                    max_age_secs: None,
                    limit_bytes_per_sec: None,
                    paused: c.paused,
                    created_at_ms: 0,
                };
                anyhow::ensure!(c.flags.tables.is_some(), "--table: name the tables to back up");
                anyhow::ensure!(c.flags.target.is_some(), "--target: say where backups go");
                anyhow::ensure!(c.flags.every.is_some(), "--every: say how often (at least 1m)");
                anyhow::ensure!(
                    c.flags.keep_last.is_some() || c.flags.max_age.is_some(),
                    "--keep-last and/or --max-age: a policy needs a retention rule"
                );
                c.flags.apply(&mut p);
                let admin = connect(&c.meta)?;
                let s = rt.block_on(admin.add_backup_policy(&p))?;
                print_status(fmt, &s, &[], "added");
            }
            PolicyCmd::Alter(c) => {
                let c = *c;
                let admin = connect(&c.meta)?;
                rt.block_on(async {
                    let list = admin.list_backup_policies(Some(&c.name)).await?;
                    let mut p = list
                        .policies
                        .into_iter()
                        .next()
                        .map(|s| s.policy)
                        .ok_or_else(|| anyhow::anyhow!("no backup policy {:?}", c.name))?;
                    c.flags.apply(&mut p);
                    if c.no_at {
                        p.start_minute = None;
                    }
                    let s = admin.alter_backup_policy(&p).await?;
                    print_status(fmt, &s, &[], "altered");
                    anyhow::Ok(())
                })?;
            }
            PolicyCmd::List(c) => {
                let list = rt.block_on(connect(&c.meta)?.list_backup_policies(None))?;
                print_list(fmt, &list);
            }
            PolicyCmd::Describe(c) => {
                let list = rt.block_on(connect(&c.meta)?.list_backup_policies(Some(&c.name)))?;
                for s in &list.policies {
                    print_status(fmt, s, &list.ops, "");
                }
            }
            PolicyCmd::Pause(c) => {
                let s = rt.block_on(connect(&c.meta)?.set_backup_policy_paused(&c.name, true))?;
                print_status(fmt, &s, &[], "paused: nothing runs until it is resumed");
            }
            PolicyCmd::Resume(c) => {
                let s = rt.block_on(connect(&c.meta)?.set_backup_policy_paused(&c.name, false))?;
                print_status(fmt, &s, &[], "resumed");
            }
            PolicyCmd::Remove(c) => {
                let admin = connect(&c.meta)?;
                // Fails, naming it, if there is no such policy.
                rt.block_on(admin.list_backup_policies(Some(&c.name)))?;
                let what = format!("remove backup policy {} (its backups stay in the target)", c.name);
                if c.dry_run {
                    match fmt {
                        OutputFormat::Json => {
                            println!("{}", json!({ "dry_run": true, "would_remove": c.name }))
                        }
                        OutputFormat::Text => println!("would {what}"),
                    }
                    return Ok(());
                }
                if !c.yes && !confirm(&what)? {
                    anyhow::bail!("not removed (pass --yes to skip the question)");
                }
                rt.block_on(admin.remove_backup_policy(&c.name))?;
                match fmt {
                    OutputFormat::Json => println!("{}", json!({ "removed": c.name })),
                    OutputFormat::Text => println!("backup policy {} removed", c.name),
                }
            }
        }
        Ok(())
    }
}

fn utc(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn every(p: &BackupPolicy) -> String {
    let at = p.start_minute.map(|m| format!(" at {:02}:{:02} UTC", m / 60, m % 60)).unwrap_or_default();
    format!("every {}{at}", human_ms(p.interval_secs * 1000))
}

fn retention(p: &BackupPolicy) -> String {
    let mut rules = Vec::new();
    if let Some(n) = p.keep_last {
        rules.push(format!("newest {n}"));
    }
    if let Some(s) = p.max_age_secs {
        rules.push(format!("younger than {}", human_ms(s * 1000)));
    }
    format!("keep {}", rules.join(" and "))
}

pub(super) fn outcome(r: &PolicyRun) -> String {
    match &r.outcome {
        PolicyRunOutcome::Never => "never ran".into(),
        PolicyRunOutcome::Running => format!("running since {}", utc(r.started_ms.unwrap_or(0))),
        PolicyRunOutcome::Succeeded => format!(
            "succeeded {}{}",
            utc(r.ended_ms.unwrap_or(0)),
            r.backup_id.as_ref().map(|b| format!(": {b}")).unwrap_or_default()
        ),
        PolicyRunOutcome::Failed(e) => format!("FAILED {}: {e}", utc(r.ended_ms.unwrap_or(0))),
    }
}

fn print_status(fmt: OutputFormat, s: &PolicyStatus, ops: &[BackupOpInfo], verb: &str) {
    let p = &s.policy;
    if fmt == OutputFormat::Json {
        let ops: Vec<_> = ops.iter().filter(|o| o.policy.as_deref() == Some(p.name.as_str())).collect();
        println!("{}", json!({ "policy": p, "runs": s.runs, "retention": s.retention, "ops": ops }));
        return;
    }
    if !verb.is_empty() {
        println!("backup policy {} {verb}", p.name);
    } else {
        println!("backup policy {}{}", p.name, if p.paused { " (PAUSED)" } else { "" });
    }
    let endpoint = p.target.endpoint.as_ref().map(|e| format!(" at {e}")).unwrap_or_default();
    println!("  target     {}{endpoint}", p.target.url);
    println!("  schedule   {}{}", every(p), if p.paused { ", paused" } else { "" });
    println!("  retention  {}", retention(p));
    if let Some(l) = p.limit_bytes_per_sec {
        println!("  bandwidth  {} bytes/s per primary", l);
    }
    for r in &s.runs {
        let t = r.table.as_deref().unwrap_or("");
        let due = match (&r.skipped, r.next_due_ms) {
            (Some(why), _) => format!("; not backed up here: {why}"),
            (None, Some(ms)) => format!("; next {}", utc(ms)),
            (None, None) => String::new(),
        };
        println!("  table {t:<12} {}{due}", outcome(r));
    }
    if let Some(r) = &s.retention {
        println!(
            "  retention run  {}{}",
            outcome(r),
            if r.summary.is_empty() { String::new() } else { format!(" ({})", r.summary) }
        );
    }
    for o in ops.iter().filter(|o| o.policy.as_deref() == Some(p.name.as_str())) {
        println!(
            "  in use     {:?} {} by {} since {}",
            o.kind,
            o.table.as_deref().unwrap_or(""),
            o.holder,
            utc(o.started_ms)
        );
    }
}

fn print_list(fmt: OutputFormat, list: &PolicyList) {
    if fmt == OutputFormat::Json {
        println!("{}", serde_json::to_value(list).unwrap_or_default());
        return;
    }
    if list.policies.is_empty() {
        println!("no backup policies (add one with `tern backup policy add`)");
    }
    for s in &list.policies {
        print_status(fmt, s, &list.ops, "");
    }
}

/// The last runs of the policies of the cluster at `meta` whose target is `target` (for
/// `tern backup list --meta`). A cluster that cannot be asked shows nothing, with a warning.
pub(super) async fn runs_on_target(
    meta: &[String],
    target: &tern_backup::TargetSpec,
) -> Vec<super::print::PolicyTableRun> {
    let key = |url: &str, endpoint: Option<&str>| {
        (url.trim_end_matches('/').to_string(), endpoint.unwrap_or("").trim_end_matches('/').to_string())
    };
    let want = key(&target.url, target.endpoint.as_deref());
    let list = match AdminClient::connect(meta.to_vec()) {
        Ok(a) => a.list_backup_policies(None).await,
        Err(e) => Err(e),
    };
    let list = match list {
        Ok(l) => l,
        Err(e) => {
            eprintln!("warning: no backup policy runs shown: {e}");
            return Vec::new();
        }
    };
    list.policies
        .into_iter()
        .filter(|s| key(&s.policy.target.url, s.policy.target.endpoint.as_deref()) == want)
        .flat_map(|s| {
            let name = s.policy.name.clone();
            s.runs
                .into_iter()
                .chain(s.retention)
                .map(move |run| super::print::PolicyTableRun { policy: name.clone(), run })
        })
        .collect()
}
