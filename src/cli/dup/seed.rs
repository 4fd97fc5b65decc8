//! `tern dup add … --seed-from-backup [ID]`: parses the seed's flags, runs
//! `tern_restore::seed::run`, shows progress and prints what it did. The work and its order are
//! in `backup/restore/src/seed/` (docs/backup.md, "Seeding a duplication peer").

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tern_backup::TargetSpec;
use tern_backup::model::BackupId;
use tern_client::admin::AdminClient;
use tern_client::{ClientOptions, TernClient};
use tern_restore::seed::{SeedEvent, SeedRequest, SeedSummary, plan::Step};

use crate::cli::OutputFormat;

/// Where the backups are, and how the seed's restore runs (used with --seed-from-backup).
#[derive(Debug, Args, Clone)]
pub struct SeedArgs {
    /// Seed the remote table from a backup of this table: the newest one in --target, or the
    /// one named. The remote table (which must not exist yet) is created and restored from
    /// it, and the link ships the log from each partition's backup decree on, so only the
    /// writes made since the backup cross the link. Refused if the source's log no longer
    /// reaches back to the backup (take a fresh backup, or use --full-sync). Run it again to
    /// finish an interrupted seed.
    #[arg(long, value_name = "ID", num_args = 0..=1, env = "TERN_DUP_SEED_FROM_BACKUP")]
    pub seed_from_backup: Option<Option<String>>,
    /// Where the backups are: `s3://bucket/prefix`, or an absolute directory.
    #[arg(long, env = "TERN_BACKUP_TARGET", value_name = "URL")]
    pub target: Option<String>,
    /// An S3-compatible server (`http://127.0.0.1:9000`), addressed path-style.
    #[arg(long, env = "TERN_BACKUP_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// The S3 region (else `AWS_REGION`, the profile's, or us-east-1).
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Access key id (with --secret-access-key; else `AWS_ACCESS_KEY_ID`, then the profile).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", value_name = "KEY", requires = "secret_access_key")]
    pub access_key_id: Option<String>,
    /// Secret access key (with --access-key-id).
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        value_name = "SECRET",
        requires = "access_key_id"
    )]
    pub secret_access_key: Option<String>,
    /// The remote table's partition count when the seed creates it (default: the backup's).
    /// Records are routed by hash key, by the restore and by the link alike.
    #[arg(long, value_name = "N", env = "TERN_DUP_REMOTE_PARTITIONS")]
    pub remote_partitions: Option<u32>,
    /// Replicas per partition of the remote table the seed creates.
    #[arg(long, value_name = "N", default_value_t = 3, env = "TERN_DUP_REMOTE_REPLICAS")]
    pub remote_replicas: u32,
    /// The restore's download limit in megabits per second (N × 125,000 bytes/s, like `tern
    /// backup now --limit-mbps`); default: unlimited.
    #[arg(long, value_name = "MBPS", env = "TERN_DUP_SEED_LIMIT_MBPS")]
    pub seed_limit_mbps: Option<f64>,
    /// Where the restore downloads a partition at a time (default: the system's temporary
    /// directory).
    #[arg(long, value_name = "DIR", env = "TERN_DUP_SEED_WORK_DIR")]
    pub seed_work_dir: Option<PathBuf>,
    /// Check and show the steps a seed would take, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl SeedArgs {
    pub fn wanted(&self) -> bool {
        self.seed_from_backup.is_some()
    }

    fn spec(&self) -> anyhow::Result<TargetSpec> {
        let url = self.target.clone().context(
            "--seed-from-backup needs the backups' --target (or TERN_BACKUP_TARGET), e.g. s3://bucket/prefix",
        )?;
        let spec = TargetSpec {
            url: url.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        };
        spec.kind().map_err(|e| anyhow::anyhow!("--target {url:?}: {e}"))?;
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            anyhow::bail!("--endpoint {e:?}: expected http://host:port or https://host:port");
        }
        Ok(spec)
    }
}

/// What `add` passes on: the link's side of the request.
pub struct LinkSide {
    pub table: String,
    pub to: String,
    pub to_meta: Vec<String>,
    pub remote_table: String,
    pub max_bytes_per_sec: u64,
    pub meta: Vec<String>,
}

pub async fn run(fmt: OutputFormat, link: LinkSide, s: &SeedArgs) -> anyhow::Result<()> {
    let backup = match s.seed_from_backup.clone().flatten().filter(|b| !b.trim().is_empty()) {
        Some(id) => Some(id.parse::<BackupId>().with_context(|| format!("--seed-from-backup {id:?}"))?),
        None => None,
    };
    let limit_bytes_per_sec = match s.seed_limit_mbps {
        None => None,
        Some(m) if m.is_finite() && m > 0.0 => Some(((m * 125_000.0) as u64).max(1)),
        Some(m) => {
            anyhow::bail!("--seed-limit-mbps must be a positive number of megabits per second, not {m}")
        }
    };
    if s.remote_partitions == Some(0) {
        anyhow::bail!("--remote-partitions must be at least 1");
    }
    tern_core::table::check_table_name(&link.remote_table).context("--remote-table")?;
    let spec = s.spec()?;
    let store =
        tern_backup::open_target(&spec).await.with_context(|| format!("open backup target {}", spec.url))?;
    let source = AdminClient::connect(link.meta.clone())?;
    let remote = AdminClient::connect(link.to_meta.clone())?;
    let opts = ClientOptions { timeout: Duration::from_secs(60), ..ClientOptions::new(link.to_meta.clone()) };
    let remote_client = Arc::new(TernClient::for_restore(opts)?);
    let req = SeedRequest {
        table: link.table.clone(),
        remote_cluster: link.to.clone(),
        remote_metas: link.to_meta.clone(),
        remote_table: link.remote_table.clone(),
        backup,
        partitions: s.remote_partitions,
        replicas: s.remote_replicas,
        max_bytes_per_sec: link.max_bytes_per_sec,
        limit_bytes_per_sec,
        concurrency: 8,
        work_dir: s.seed_work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("tern-seed")),
        dry_run: s.dry_run,
        hold_timeout: Duration::from_secs(30),
        target: spec.url.clone(),
    };
    let bar = Bar::new(fmt == OutputFormat::Text && std::io::stderr().is_terminal());
    let r = tern_restore::seed::run(store, &source, &remote, remote_client, &req, bar.sink()).await;
    bar.finish();
    let summary = r.with_context(|| {
        format!(
            "seed table {} of cluster {} from a backup of table {} (run the same command again to finish an interrupted seed)",
            link.remote_table, link.to, link.table
        )
    })?;
    print(fmt, &summary);
    Ok(())
}

fn step_text(s: Step) -> &'static str {
    match s {
        Step::CheckLog => "check that the source's logs reach back to the backup",
        Step::CreateRemoteTable => "create the remote table, restoring (it serves nobody until the end)",
        Step::AddLink => "add the link paused at the backup's decrees (the source holds that log)",
        Step::ConfirmHold => "wait until every source replica holds the log for the link",
        Step::Restore => "restore the backup into the remote table",
        Step::StartShipping => "start shipping from each backup decree + 1",
    }
}

/// A spinner for the steps and a bar for the restore, on a terminal.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new(on: bool) -> Bar {
        Bar(on.then(crate::cli::backup::restore::new_bar))
    }

    fn sink(&self) -> tern_restore::seed::EventFn {
        let bar = self.0.clone();
        Arc::new(move |e: &SeedEvent| {
            let Some(bar) = &bar else { return };
            match e {
                SeedEvent::Step(s) => bar.set_message(step_text(*s)),
                SeedEvent::Restore(p) => crate::cli::backup::restore::show_progress(bar, p, "restoring "),
            }
        })
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn print(fmt: OutputFormat, s: &SeedSummary) {
    match fmt {
        OutputFormat::Json => {
            let restore = s.restore.as_ref().map(|r| {
                serde_json::json!({
                    "partitions": r.partitions,
                    "resumed": r.resumed,
                    "records": r.records,
                    "applied": r.applied,
                    "superseded": r.superseded,
                    "bytes_downloaded": r.bytes_downloaded,
                    "elapsed_ms": r.elapsed.as_millis() as u64,
                })
            });
            let v = serde_json::json!({
                "backup": s.backup,
                "table": s.table,
                "remote_cluster": s.remote_cluster,
                "remote_table": s.remote_table,
                "link": s.link,
                "decrees": s.decrees,
                "dry_run": s.dry_run,
                "steps": s.steps,
                "restore": restore,
            });
            println!("{v}");
        }
        OutputFormat::Text => {
            let verb = if s.dry_run { "would seed" } else { "seeded" };
            println!(
                "{verb} table {} of cluster {} from backup {} of table {}{}",
                s.remote_table,
                s.remote_cluster,
                s.backup,
                s.table,
                s.link.map_or_else(String::new, |l| format!(" (link {l})"))
            );
            if s.steps.is_empty() {
                println!("  nothing left to do: the link ships");
            }
            for step in &s.steps {
                println!("  {} {}", if s.dry_run { "-" } else { "✓" }, step_text(*step));
            }
            if let Some(r) = &s.restore {
                println!(
                    "  restored {} records into {} partitions ({} applied, {} met a newer record{})",
                    r.records,
                    r.partitions,
                    r.applied,
                    r.superseded,
                    if r.resumed { ", resuming an earlier run" } else { "" }
                );
            }
            println!("  shipping starts after decrees {:?} (per source partition)", s.decrees);
        }
    }
}
