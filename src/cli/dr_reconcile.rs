//! `tern dr reconcile`: after `tern dr failover`, ship the old active side's unshipped writes into
//! the new active copy and say what became of them. The decisions live in
//! `tern_runbook::reconcile`; this module parses, calls and prints.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tern_core::{ConflictKind, ReconcileSummary, Timetag};
use tern_runbook::observe::wall_text;

use super::OutputFormat;
use super::common::{duration_arg, runtime};
use super::dr::Clusters;

/// At most this many conflicts are printed (--output json lists every one the command saw).
const PRINTED_CONFLICTS: usize = 20;

/// After a failover, ship the old active side's unshipped writes into the new active copy.
///
/// When the cluster a `tern dr failover` replaced is back (fenced: its copy standby, its link to
/// the new active side paused), reconcile measures its tail — per partition, the decrees it
/// committed that the link had not shipped — and keeps it in the new active cluster's meta state,
/// resumes that link so it ships exactly the tail under last-writer-wins, waits until every
/// partition's tail is confirmed, makes sure a link ships the table back (resumed, or added with
/// a full sync), and reports: writes shipped, applied and lost, with every conflict counted and
/// the conflicts listed with the write that won (a tail write that lost to a newer write of the
/// new side; a new-side write a tail write replaced). The summary is kept next to the failover
/// record and shown by `tern dr status` ("last reconcile").
///
/// Refused when no failover of the table is recorded, when the old side is unreachable, or when
/// its copy is still active (it could take writes). Interrupted, run it again: it goes on from the
/// kept measurement (a write shipped twice changes nothing). Once done, a re-run says there is
/// nothing to reconcile. Asks before acting unless --yes.
///
/// $ tern dr reconcile --table orders --cluster dc1=10.0.1.10:34601 --cluster dc2=10.0.2.10:34601
#[derive(Debug, Args)]
pub struct ReconcileCmd {
    #[command(flatten)]
    clusters: Clusters,
    /// The table to reconcile.
    #[arg(long, env = "TERN_TABLE")]
    table: String,
    /// The old active side (default: the one the table's last failover replaced; given, it must
    /// be that one).
    #[arg(long, env = "TERN_DR_FROM")]
    from: Option<String>,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, env = "TERN_YES")]
    yes: bool,
    /// Observe and print what would be done next, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Give up after this long (a re-run goes on where this one stopped).
    #[arg(long, default_value = "10m", value_parser = duration_arg, value_name = "DURATION", env = "TERN_DR_TIMEOUT")]
    timeout: Duration,
}

impl ReconcileCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        use std::io::IsTerminal;
        let clusters = self.clusters.list()?;
        if let Some(f) = self.from.as_ref().filter(|f| !clusters.iter().any(|c| c.name == **f)) {
            let known: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
            anyhow::bail!("--from {f}: not one of the clusters ({})", known.join(", "));
        }
        if !self.yes && !self.dry_run {
            if !std::io::stdin().is_terminal() {
                anyhow::bail!(
                    "tern dr reconcile ships the old active side's unshipped writes of {} into the active copy, \
                     where newer writes win: stdin is not a terminal to confirm on; pass --yes",
                    self.table
                );
            }
            let q = format!(
                "Ship the old active side's unshipped writes of {} into the active copy (newer writes win)?",
                self.table
            );
            if !super::common::confirm(&q)? {
                anyhow::bail!("not confirmed: nothing changed");
            }
        }
        let opts = tern_runbook::ReconcileOptions {
            from: self.from,
            dry_run: self.dry_run,
            timeout: self.timeout,
            ..Default::default()
        };
        let report = runtime()?
            .block_on(tern_runbook::run_reconcile(&clusters, &self.table, &opts, |line| eprintln!("{line}")))
            .context("tern dr reconcile")?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Text => {
                println!("{}", report.summary);
                if let Some(s) = report.reconcile.as_ref().filter(|_| !report.nothing_to_do) {
                    let listed = ReconcileSummary { conflicts: report.conflicts.clone(), ..s.clone() };
                    print!("{}", reconcile_text(&listed));
                }
            }
        }
        Ok(())
    }
}

fn timetag_text(t: u64) -> String {
    let t = Timetag::from_u64(t);
    format!("{} ({}, cluster {})", t.as_u64(), wall_text(t.physical_ms()), t.cluster().get())
}

/// A reconcile summary, as text: the tail per partition, the counts, the conflicts (bounded).
pub fn reconcile_text(s: &ReconcileSummary) -> String {
    let state = match s.finished_at_ms {
        Some(ms) => format!("finished {}", wall_text(ms)),
        None => "under way (run tern dr reconcile again to finish it)".to_string(),
    };
    let mut out = format!(
        "  reconcile of the failover from {} to {} at epoch {} ({state}), link {}:\n",
        s.from, s.to, s.epoch, s.link
    );
    out.push_str(&format!("    tail: {} decrees", s.tail_decrees()));
    let parts: Vec<String> = s
        .partitions
        .iter()
        .filter_map(|p| p.decrees.map(|(a, b)| format!("partition {} {a}..={b}", p.partition)))
        .collect();
    if !parts.is_empty() {
        out.push_str(&format!(" ({})", parts.join(", ")));
    }
    out.push('\n');
    if s.finished() {
        out.push_str(&format!(
            "    {} writes shipped: {} applied, {} lost to newer writes in {}; {} writes of {} replaced\n",
            s.shipped_puts,
            s.applied(),
            s.lost,
            s.to,
            s.overwritten,
            s.to
        ));
        if s.dropped > 0 {
            out.push_str(&format!(
                "    {} conflicts counted but not listed (journal entries dropped)\n",
                s.dropped
            ));
        }
        let unlisted = (s.lost + s.overwritten).saturating_sub(s.conflicts.len() as u64);
        for c in s.conflicts.iter().take(PRINTED_CONFLICTS) {
            let key = format!(
                "{}/{}",
                tern_core::key::escape(&c.hash_key, 64),
                tern_core::key::escape(&c.sort_key, 64)
            );
            match c.kind {
                ConflictKind::ShippedLost => out.push_str(&format!(
                    "    lost: {key} written {} lost to {}\n",
                    timetag_text(c.tail_timetag),
                    timetag_text(c.other_timetag)
                )),
                ConflictKind::RemoteOverwritten => out.push_str(&format!(
                    "    replaced: {key} of {} written {} by the tail's {}\n",
                    s.to,
                    timetag_text(c.other_timetag),
                    timetag_text(c.tail_timetag)
                )),
            }
        }
        let more = s.conflicts.len().saturating_sub(PRINTED_CONFLICTS) as u64 + unlisted;
        if more > 0 {
            out.push_str(&format!(
                "    … {more} more conflicts: {} listed (--output json), the others only counted (journal entries gone before they were read, or writes judged twice)\n",
                s.conflicts.len()
            ));
        }
        match s.reverse_link {
            Some(id) => out.push_str(&format!(
                "    link back {} -> {}: #{id}{}\n",
                s.to,
                s.from,
                if s.reverse_full_sync { " (full sync)" } else { "" }
            )),
            None => out.push_str(&format!("    no link back {} -> {}\n", s.to, s.from)),
        }
    }
    out
}
