//! What `tern backup` prints: text for people, one JSON document for scripts, and the
//! progress bar (stderr, on a terminal only).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tern_backup::TakeProgress;
use tern_backup::model::{BackupDescription, BackupId, Problem, VerifyMode, VerifyReport};
use tern_backup::take::TakeSummary;

use super::super::OutputFormat;
use crate::cli::common::human_bytes;

fn print_json(v: Value) {
    println!("{v}");
}

/// The progress bar of `tern backup now`: bytes handled (uploaded or found stored) of the
/// bytes the primaries reported so far; partitions and files in its message.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new(show: bool) -> Bar {
        if !show {
            return Bar(None);
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:32}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Bar(Some(bar))
    }

    pub fn update(&self, p: &TakeProgress) {
        if let Some(bar) = &self.0 {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            bar.set_message(format!(
                "partitions {}/{}, files {}/{}",
                p.partitions_done, p.partitions_total, p.files_done, p.files_total
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

pub fn taken(fmt: OutputFormat, s: &TakeSummary) {
    let m = &s.manifest;
    let decrees: Vec<u64> = m.partitions.iter().map(|p| p.decree).collect();
    match fmt {
        OutputFormat::Json => print_json(json!({
            "backup_id": m.backup_id.to_string(),
            "cluster": m.cluster,
            "table": m.table.name,
            "partitions": m.table.partition_count,
            "files_uploaded": s.files_uploaded,
            "files_skipped": s.files_skipped,
            "bytes_uploaded": s.bytes_uploaded,
            "bytes_skipped": s.bytes_skipped,
            "retries": s.retries,
            "resumed_partitions": s.resumed_partitions,
            "duration_ms": s.elapsed.as_millis() as u64,
            "decrees": decrees,
        })),
        OutputFormat::Text => {
            println!("backup {} complete", m.backup_id);
            println!(
                "  table       {} ({} partitions) of cluster {}",
                m.table.name, m.table.partition_count, m.cluster
            );
            println!(
                "  files       {} uploaded ({}), {} already stored ({})",
                s.files_uploaded,
                human_bytes(s.bytes_uploaded),
                s.files_skipped,
                human_bytes(s.bytes_skipped)
            );
            println!("  duration    {:.1} s", s.elapsed.as_secs_f64());
            if s.retries > 0 || s.resumed_partitions > 0 {
                println!(
                    "  partitions  {} re-run on a new primary, {} kept from the interrupted run",
                    s.retries, s.resumed_partitions
                );
            }
            let list =
                decrees.iter().enumerate().map(|(i, d)| format!("{i}:{d}")).collect::<Vec<_>>().join(" ");
            println!("  decrees     {list}");
        }
    }
}

/// One table's last scheduled run, of a policy on the listed target.
pub struct PolicyTableRun {
    pub policy: String,
    pub run: tern_client::admin::backup_policy::PolicyRun,
}

pub fn list(fmt: OutputFormat, ids: &[BackupId], runs: &[PolicyTableRun]) {
    match fmt {
        OutputFormat::Json => print_json(json!({
            "backups": ids.iter().map(|id| json!({
                "id": id.to_string(),
                "table": id.table(),
                "created_at": id.created_at().to_rfc3339(),
            })).collect::<Vec<_>>(),
            "policy_runs": runs.iter().map(|r| json!({ "policy": r.policy, "run": r.run })).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            if ids.is_empty() {
                println!("no backups");
            }
            for id in ids {
                println!("{id}  {}  {}", id.table(), id.created_at().format("%Y-%m-%d %H:%M:%S UTC"));
            }
            for r in runs {
                println!(
                    "policy {} table {}: {}",
                    r.policy,
                    r.run.table.as_deref().unwrap_or("(retention)"),
                    super::policy::outcome(&r.run)
                );
            }
        }
    }
}

pub fn describe(fmt: OutputFormat, d: &BackupDescription) -> anyhow::Result<()> {
    let m = &d.manifest;
    match fmt {
        OutputFormat::Json => {
            let mut v = serde_json::to_value(m)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("file_count".into(), json!(d.file_count));
                o.insert("distinct_files".into(), json!(d.distinct_files));
                o.insert("total_bytes".into(), json!(d.total_bytes));
            }
            print_json(v);
        }
        OutputFormat::Text => {
            println!("backup {}", m.backup_id);
            println!("  table       {} ({} partitions)", m.table.name, m.table.partition_count);
            if let Some(ttl) = m.table.default_ttl_secs {
                println!("  default TTL {ttl} s");
            }
            println!("  cluster     {}", m.cluster);
            println!("  created     {} by {}", m.created_at.format("%Y-%m-%d %H:%M:%S UTC"), m.tool_version);
            println!(
                "  files       {} ({} distinct), {}",
                d.file_count,
                d.distinct_files,
                human_bytes(d.total_bytes)
            );
            for p in &m.partitions {
                let bytes: u64 = p.files.iter().map(|f| f.size_bytes).sum();
                let timetags = p.timetags.map_or("unknown".to_string(), |t| format!("{}..{}", t.min, t.max));
                println!(
                    "  partition {:<3} decree {:<10} {:>3} files {:>10}  timetags {timetags}",
                    p.index,
                    p.decree,
                    p.files.len(),
                    human_bytes(bytes)
                );
            }
        }
    }
    Ok(())
}

fn problem(p: &Problem) -> String {
    match p {
        Problem::Missing => "missing".into(),
        Problem::WrongSize { expected, actual } => format!("{actual} bytes instead of {expected}"),
        Problem::WrongChecksum { actual } => format!("content hashes to {actual}"),
    }
}

pub fn verify(fmt: OutputFormat, r: &VerifyReport) {
    let mode = match r.mode {
        VerifyMode::Sizes => "sizes",
        VerifyMode::Deep => "deep",
    };
    match fmt {
        OutputFormat::Json => print_json(json!({
            "backup_id": r.backup_id.to_string(),
            "mode": mode,
            "intact": r.is_ok(),
            "objects_checked": r.objects_checked,
            "bytes_checked": r.bytes_checked,
            "damaged": r.damaged.iter().map(|d| json!({
                "object": d.object,
                "problem": problem(&d.problem),
                "used_by": d.used_by,
            })).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            if r.is_ok() {
                println!(
                    "backup {} intact: {} objects checked ({mode}{})",
                    r.backup_id,
                    r.objects_checked,
                    if r.mode == VerifyMode::Deep {
                        format!(", {}", human_bytes(r.bytes_checked))
                    } else {
                        String::new()
                    }
                );
            } else {
                println!(
                    "backup {} DAMAGED: {} of {} objects ({mode}):",
                    r.backup_id,
                    r.damaged.len(),
                    r.objects_checked
                );
                for d in &r.damaged {
                    println!("  {d}");
                }
            }
        }
    }
}
