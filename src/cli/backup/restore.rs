//! `tern backup restore ID --table NEW`: parses flags, calls `tern_restore::run`, prints the
//! progress and the summary. The work is in `backup/restore/` (docs/backup.md, "Restore").

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tern_backup::model::BackupId;
use tern_client::admin::AdminClient;
use tern_client::{ClientOptions, TernClient};
use tern_restore::{RestoreProgress, RestoreRequest, RestoreSummary};

use crate::cli::OutputFormat;
use crate::cli::common::{MetaAddrs, init_logging, runtime};

/// Restore a backup into a new table. The table serves nobody until the restore is complete; an
/// interrupted restore resumes when run again with the same arguments (drop the table to
/// abandon it).
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup's id (`tern backup list`), e.g. 20261207T193000Z-users-0a1b2c3d.
    pub id: String,
    /// The new table's name (it must not exist, unless it is this backup's interrupted restore).
    #[arg(long, env = "TERN_RESTORE_TABLE")]
    pub table: String,
    /// The new table's partition count (default: the backup's). Records are routed by hash key,
    /// so any count works.
    #[arg(long, env = "TERN_RESTORE_PARTITIONS")]
    pub partitions: Option<u32>,
    /// Replicas per partition.
    #[arg(long, default_value_t = 3, env = "TERN_RESTORE_REPLICAS")]
    pub replicas: u32,
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// Download bandwidth limit in megabits per second (N × 125,000 bytes/s, like `tern backup
    /// now --limit-mbps`); default: unlimited.
    #[arg(long, env = "TERN_RESTORE_LIMIT_MBPS")]
    pub limit_mbps: Option<f64>,
    /// Restore requests in flight at once.
    #[arg(long, default_value_t = 8, env = "TERN_RESTORE_CONCURRENCY")]
    pub concurrency: usize,
    /// Where a partition's files are downloaded while it is restored (default: the system's
    /// temporary directory).
    #[arg(long, env = "TERN_RESTORE_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub meta: MetaAddrs,
}

impl RestoreArgs {
    fn request(&self) -> anyhow::Result<RestoreRequest> {
        let backup: BackupId = self.id.parse().with_context(|| format!("backup id {:?}", self.id))?;
        let limit_bytes_per_sec = match self.limit_mbps {
            None => None,
            Some(m) if m.is_finite() && m > 0.0 => Some(((m * 125_000.0) as u64).max(1)),
            Some(m) => {
                anyhow::bail!("--limit-mbps must be a positive number of megabits per second, not {m}")
            }
        };
        if self.concurrency == 0 {
            anyhow::bail!("--concurrency must be at least 1");
        }
        if self.partitions == Some(0) {
            anyhow::bail!("--partitions must be at least 1");
        }
        tern_core::table::check_table_name(&self.table).context("--table")?;
        let work_dir = self.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("tern-restore"));
        Ok(RestoreRequest {
            backup,
            table: self.table.clone(),
            partitions: self.partitions,
            replicas: self.replicas,
            limit_bytes_per_sec,
            concurrency: self.concurrency,
            work_dir,
        })
    }
}

/// Runs `tern backup restore`.
pub fn run(args: RestoreArgs, output: OutputFormat) -> anyhow::Result<()> {
    init_logging("warn");
    let req = args.request()?;
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let (spec, store) = args.target.open().await?;
        let admin = AdminClient::connect(args.meta.meta.clone())?;
        let opts = ClientOptions { timeout: Duration::from_secs(60), ..ClientOptions::new(args.meta.meta.clone()) };
        let client = Arc::new(TernClient::for_restore(opts)?);
        let bar = Bar::new(output == OutputFormat::Text && std::io::stderr().is_terminal());
        let sink = bar.sink();
        // Registered on the target: retention keeps this backup while it is read.
        let restore = async { tern_restore::run(store, &admin, client, &req, sink).await.map_err(anyhow::Error::new) };
        let kind = tern_client::admin::backup_policy::BackupOpKind::Restore;
        let r = super::ops::while_registered(&admin, kind, &spec, &req.table, Some(req.backup.to_string()), restore)
            .await;
        bar.finish();
        r.with_context(|| {
            format!(
                "restore backup {} into table {} (the table serves nobody until a restore completes: run the same \
                 command again to resume, or `tern table drop {}` to abandon it)",
                req.backup, req.table, req.table
            )
        })
    })?;
    print_summary(&summary, output);
    Ok(())
}

/// An indicatif bar on a terminal: bytes downloaded of the backup, records sent, rate, ETA.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new(on: bool) -> Bar {
        Bar(on.then(new_bar))
    }

    fn sink(&self) -> Arc<dyn Fn(&RestoreProgress) + Send + Sync> {
        let bar = self.0.clone();
        Arc::new(move |p: &RestoreProgress| {
            if let Some(bar) = &bar {
                show_progress(bar, p, "");
            }
        })
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// The bar of a restore: bytes of the backup downloaded, rate, ETA, and a message.
pub(crate) fn new_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// A restore's progress on `bar`: bytes downloaded, and `"{prefix}partition i/n, r records"`.
pub(crate) fn show_progress(bar: &indicatif::ProgressBar, p: &RestoreProgress, prefix: &str) {
    bar.set_length(p.bytes_total);
    bar.set_position(p.bytes_done.min(p.bytes_total));
    bar.set_message(format!(
        "{prefix}partition {}/{}, {} records",
        (p.partitions_done + 1).min(p.partitions_total),
        p.partitions_total,
        p.records_sent
    ));
}

fn print_summary(s: &RestoreSummary, output: OutputFormat) {
    match output {
        OutputFormat::Json => {
            let v = serde_json::json!({
                "backup": s.backup,
                "table": s.table,
                "source_partitions": s.source_partitions,
                "partitions": s.partitions,
                "resumed": s.resumed,
                "files": s.files,
                "bytes_downloaded": s.bytes_downloaded,
                "records": s.records,
                "live": s.live,
                "expired": s.expired,
                "tombstones": s.tombstones,
                "applied": s.applied,
                "superseded": s.superseded,
                "elapsed_ms": s.elapsed.as_millis() as u64,
            });
            println!("{v}");
        }
        OutputFormat::Text => {
            let secs = s.elapsed.as_secs_f64().max(1e-3);
            println!(
                "restored backup {} into table {} ({} partitions, from {}){}",
                s.backup,
                s.table,
                s.partitions,
                s.source_partitions,
                if s.resumed { ", resuming an earlier run" } else { "" }
            );
            println!(
                "  {} records ({} live, {} expired, {} tombstones): {} applied, {} met a newer record",
                s.records, s.live, s.expired, s.tombstones, s.applied, s.superseded
            );
            println!(
                "  {} files, {} bytes downloaded in {:.1} s ({:.0} records/s); the table serves",
                s.files,
                s.bytes_downloaded,
                secs,
                s.records as f64 / secs
            );
        }
    }
}
