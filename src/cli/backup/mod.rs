//! `tern backup`: take, list, describe and verify backups of tables in S3-compatible storage
//! (docs/backup.md). The coordinator lives in `tern_backup::take` and talks to the cluster
//! through `tern_client::AdminClient`; this module parses the flags, calls it and prints.

mod ops;
mod policy;
mod print;
pub(crate) mod restore;

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use tern_backup::model::{BackupId, VerifyMode};
use tern_backup::{ObjectStore, TakeOptions, TargetSpec};
use tern_client::AdminClient;

use super::common::{MetaAddrs, runtime};
use super::{Exit, OutputFormat};

/// Exit status of `tern backup verify` when the backup is damaged (missing or wrong objects).
pub const EXIT_DAMAGED: u8 = 3;

/// Snapshots of tables in S3-compatible storage (or a local directory): take one now, list,
/// describe and verify them. Each partition's primary uploads its own RocksDB checkpoint;
/// files are content-addressed, so a backup uploads only files not already stored.
#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    Now(NowCmd),
    List(ListCmd),
    Describe(DescribeCmd),
    Verify(VerifyCmd),
    Restore(Box<restore::RestoreArgs>),
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
}

/// Where backups are, and how to reach it.
///
/// Credentials: `--access-key-id` and `--secret-access-key` (or `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` in this command's environment). When given, `tern backup now`
/// passes them to the replica servers in its requests; when not, this command and the servers
/// each use their own credentials (environment, then `~/.aws` profile files).
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// `s3://bucket/prefix`, or an absolute directory (`file:///dir` or `/dir`).
    #[arg(long, env = "TERN_BACKUP_TARGET", value_name = "URL")]
    target: String,
    /// An S3-compatible server (`http://127.0.0.1:9000`), addressed path-style. Leave out for AWS.
    #[arg(long, env = "TERN_BACKUP_ENDPOINT", value_name = "URL")]
    endpoint: Option<String>,
    /// The S3 region (else `AWS_REGION`, the profile's, or us-east-1).
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    region: Option<String>,
    /// Access key id (with --secret-access-key).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", value_name = "KEY", requires = "secret_access_key")]
    access_key_id: Option<String>,
    /// Secret access key (with --access-key-id).
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        value_name = "SECRET",
        requires = "access_key_id"
    )]
    secret_access_key: Option<String>,
}

impl TargetArgs {
    fn spec(&self) -> anyhow::Result<TargetSpec> {
        let spec = TargetSpec {
            url: self.target.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        };
        spec.kind().map_err(|e| anyhow::anyhow!("--target {:?}: {e}", self.target))?;
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            anyhow::bail!("--endpoint {e:?}: expected http://host:port or https://host:port");
        }
        Ok(spec)
    }

    /// Opens the target and checks it (bucket exists, credentials accepted).
    pub(super) async fn open(&self) -> anyhow::Result<(TargetSpec, Arc<dyn ObjectStore>)> {
        let spec = self.spec()?;
        let store = tern_backup::open_target(&spec)
            .await
            .with_context(|| format!("open backup target {}", spec.url))?;
        Ok((spec, store))
    }
}

/// Take a backup of a table now.
///
/// Each partition's primary takes a RocksDB checkpoint at a recorded decree and uploads the
/// files not already stored; the manifest is written last, once every file is there, so an
/// interrupted backup does not exist (`--resume ID` finishes it). A partition whose primary
/// moves or fails is run again on the new primary, a few times. Prints the backup id, the
/// files uploaded and skipped, bytes, duration and each partition's decree.
///
/// $ tern backup now --table users --target s3://backups/tern --endpoint http://127.0.0.1:9000 --meta 127.0.0.1:34601
#[derive(Debug, Args)]
pub struct NowCmd {
    /// The table to back up.
    #[arg(long, env = "TERN_TABLE")]
    table: String,
    #[command(flatten)]
    target: TargetArgs,
    /// Upload bandwidth of each replica server, in megabits per second (N × 125,000 bytes/s),
    /// shared by the partitions it uploads at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit_mbps: Option<u64>,
    /// Partitions backed up at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Attempts per partition (on its current primary each time) before the backup fails.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
    /// Finish an interrupted backup (its intent is still stored): partitions it finished are
    /// kept, the others taken again.
    #[arg(long, value_name = "ID")]
    resume: Option<String>,
    /// No progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    meta: MetaAddrs,
}

/// List the complete backups in a target, oldest first (an interrupted backup is not listed:
/// without its manifest it does not exist). With --meta, also each backup policy of that
/// cluster on this target with its tables' last runs.
#[derive(Debug, Args)]
pub struct ListCmd {
    #[command(flatten)]
    target: TargetArgs,
    /// Meta servers of a cluster whose backup policies' last runs to show too.
    #[arg(long = "meta", env = "TERN_META", value_delimiter = ',', value_name = "ADDRS")]
    meta: Option<Vec<String>>,
}

/// Show a backup's manifest: table, cluster, each partition's decree and files, sizes.
#[derive(Debug, Args)]
pub struct DescribeCmd {
    /// The backup id (as `tern backup list` prints it).
    id: String,
    #[command(flatten)]
    target: TargetArgs,
}

/// Check that every object of a backup is stored with the right size (`--deep`: and the right
/// SHA-256, downloading everything).
///
/// Exit status: 0 intact, 3 damaged (each damaged object is named, with the partitions and
/// files that use it), 1 if it could not be checked (no such backup, target unreachable).
#[derive(Debug, Args)]
pub struct VerifyCmd {
    /// The backup id.
    id: String,
    /// Download every object and check its SHA-256.
    #[arg(long)]
    deep: bool,
    #[command(flatten)]
    target: TargetArgs,
}

fn backup_id(flag: &str, s: &str) -> anyhow::Result<BackupId> {
    s.parse().map_err(|e| anyhow::anyhow!("{flag} {s:?}: {e}"))
}

impl BackupCmd {
    pub fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        match self {
            BackupCmd::Now(c) => c.run(fmt),
            BackupCmd::List(c) => runtime()?.block_on(async {
                let (spec, store) = c.target.open().await?;
                let ids = tern_backup::model::list_backups(&*store).await.context("list backups")?;
                let runs = match &c.meta {
                    Some(m) => policy::runs_on_target(m, &spec).await,
                    None => Vec::new(),
                };
                print::list(fmt, &ids, &runs);
                Ok(())
            }),
            BackupCmd::Describe(c) => {
                let id = backup_id("backup id", &c.id)?;
                runtime()?.block_on(async {
                    let (_, store) = c.target.open().await?;
                    let d = tern_backup::model::describe(&*store, &id)
                        .await
                        .with_context(|| format!("describe backup {id}"))?;
                    print::describe(fmt, &d)
                })
            }
            BackupCmd::Verify(c) => {
                let id = backup_id("backup id", &c.id)?;
                let mode = if c.deep { VerifyMode::Deep } else { VerifyMode::Sizes };
                let report = runtime()?.block_on(async {
                    let (_, store) = c.target.open().await?;
                    tern_backup::model::verify(&*store, &id, mode, None)
                        .await
                        .with_context(|| format!("verify backup {id}"))
                })?;
                print::verify(fmt, &report);
                if report.is_ok() { Ok(()) } else { Err(Exit(EXIT_DAMAGED).into()) }
            }
            BackupCmd::Restore(args) => restore::run(*args, fmt),
            BackupCmd::Policy(c) => c.run(fmt),
        }
    }
}

impl NowCmd {
    fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        tern_backup::model::layout::validate_table(&self.table)
            .map_err(|e| anyhow::anyhow!("--table: {e}"))?;
        let resume = self.resume.as_deref().map(|s| backup_id("--resume", s)).transpose()?;
        let opts = TakeOptions {
            concurrency: self.concurrency as usize,
            max_attempts: self.attempts,
            limit_bytes_per_sec: self.limit_mbps.map(|m| m.saturating_mul(125_000)),
            resume,
            tool_version: format!("tern {}", env!("CARGO_PKG_VERSION")),
        };
        let show_bar = !self.no_progress && fmt == OutputFormat::Text && std::io::stderr().is_terminal();
        runtime()?.block_on(async {
            let (spec, store) = self.target.open().await?;
            let admin =
                AdminClient::connect(self.meta.meta.clone()).context("connect to the meta servers")?;
            let bar = print::Bar::new(show_bar);
            let on_progress = |p: &tern_backup::TakeProgress| bar.update(p);
            let take = async {
                tern_backup::take_backup(&admin, store, &spec, &self.table, &opts, &on_progress)
                    .await
                    .map_err(anyhow::Error::new)
            };
            let resumed = opts.resume.as_ref().map(|id| id.to_string());
            let kind = tern_client::admin::backup_policy::BackupOpKind::Backup;
            let result = ops::while_registered(&admin, kind, &spec, &self.table, resumed, take).await;
            bar.finish();
            let summary = result.with_context(|| format!("back up table {}", self.table))?;
            print::taken(fmt, &summary);
            Ok(())
        })
    }
}
