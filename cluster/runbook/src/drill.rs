//! `tern dr drill` as pure pieces: which scratch table a drill may use, what the load generator
//! saw turned into figures (write unavailability, RTO, RPO), the checks of those figures against
//! what the clusters hold and what the failover's loss report says, and the report itself. The
//! executor ([`crate::run_drill`]) creates the scratch table, runs the load and the existing
//! switchover and failover executors, and feeds what it saw to these functions.
//!
//! Every time here is milliseconds since the drill started (the executor's monotonic clock),
//! except the `*_wall_ms` fields, which are wall-clock times comparable with timetags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tern_core::{FailoverRecord, Timetag};

/// Scratch tables are named with this prefix; a drill never touches another table.
pub const SCRATCH_PREFIX: &str = "_drill_";

/// How far a primary's clock (the timetags) may be ahead of the load generator's wall clock
/// when a lost write is compared with the loss report's timetag bound: the HLC's drift on one
/// machine, the allowance the failover e2e test uses too.
pub const CLOCK_ALLOWANCE_MS: u64 = 500;

/// The scratch table's name for a drill started at `wall_ms`.
pub fn scratch_name(wall_ms: u64) -> String {
    format!("{SCRATCH_PREFIX}{wall_ms}")
}

/// Whether `name` may be used as the scratch table, given the tables each cluster has (serving
/// ones; `(cluster, tables)`). A drill only creates its table: one that exists already (a
/// leftover of an interrupted drill, or client data) is refused, never reused.
pub fn check_scratch<'a>(
    name: &str,
    existing: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Result<(), String> {
    if !name.starts_with(SCRATCH_PREFIX) || name.len() == SCRATCH_PREFIX.len() {
        return Err(format!(
            "--table {name}: a drill only uses a scratch table named {SCRATCH_PREFIX}<something>, never a table with client data"
        ));
    }
    for (cluster, tables) in existing {
        if tables.iter().any(|t| t == name) {
            return Err(format!(
                "table {name} exists in {cluster} already (left by an interrupted drill?): a drill creates its own scratch table; drop it with `tern table drop {name}` in every cluster, or give another --table"
            ));
        }
    }
    Ok(())
}

/// One acknowledged write as the load generator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub hash_key: String,
    /// The value written: the writer's sequence number (each writer owns its keys and writes
    /// them in order, so a newer value of a key is a larger number).
    pub seq: u64,
    /// Sent and acknowledged, ms since the drill started.
    pub sent_ms: u64,
    pub acked_ms: u64,
    /// The wall clock when it was acknowledged (for the timetag bounds).
    pub acked_wall_ms: u64,
    /// Which target took it: an index into the drill's targets (the clusters, or the proxy).
    pub target: usize,
}

/// The longest stretch without any acknowledged write between `start_ms` and the first write
/// acknowledged that was sent at or after `end_ms` (the writers' view of an operation that ran
/// from `start_ms` to `end_ms`). `acks` in any order. `None` when no write was acknowledged
/// after `end_ms` (the writers never saw writes come back).
pub fn unavailability_ms(acks: &[Ack], start_ms: u64, end_ms: u64) -> Option<u64> {
    let back = acks.iter().filter(|a| a.sent_ms >= end_ms).map(|a| a.acked_ms).min()?;
    let before = acks.iter().filter(|a| a.acked_ms <= start_ms).map(|a| a.acked_ms).max().unwrap_or(start_ms);
    let mut points: Vec<u64> =
        acks.iter().filter(|a| a.acked_ms > start_ms && a.acked_ms <= back).map(|a| a.acked_ms).collect();
    points.push(before);
    points.sort_unstable();
    points.windows(2).map(|w| w[1] - w[0]).max().or(Some(0))
}

/// The recovery time of a simulated loss at `loss_ms`: until the first write acknowledged by the
/// new side (`on_new(ack)`) that was sent after the loss. `None`: none was.
pub fn rto_ms(acks: &[Ack], loss_ms: u64, on_new: impl Fn(&Ack) -> bool) -> Option<u64> {
    acks.iter().filter(|a| a.sent_ms >= loss_ms && on_new(a)).map(|a| a.acked_ms - loss_ms).min()
}

/// Per key, the newest acknowledged value.
pub fn latest(acks: &[Ack]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for a in acks {
        let e = out.entry(a.hash_key.clone()).or_insert(a.seq);
        *e = (*e).max(a.seq);
    }
    out
}

/// What reading every acknowledged key back found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZeroLossCheck {
    /// Where it was read.
    pub cluster: String,
    pub keys_checked: u64,
    /// Keys whose newest acknowledged value (or a newer one) is not there.
    pub keys_lost: u64,
    /// A few of them, for the operator.
    pub examples: Vec<String>,
    pub passed: bool,
}

/// Compares the newest acknowledged value of each key with what was read back (`found`: the
/// value read, `None` when the key is absent). A value at least as new passes: a write that
/// timed out may have been applied after the acknowledged one.
pub fn zero_loss(
    cluster: &str,
    latest: &BTreeMap<String, u64>,
    found: &BTreeMap<String, Option<u64>>,
) -> ZeroLossCheck {
    let mut c = ZeroLossCheck { cluster: cluster.to_string(), ..Default::default() };
    for (key, seq) in latest {
        c.keys_checked += 1;
        let got = found.get(key).copied().flatten();
        if got.is_none_or(|g| g < *seq) {
            c.keys_lost += 1;
            if c.examples.len() < 10 {
                c.examples.push(format!("{key}: acknowledged {seq}, read {got:?}"));
            }
        }
    }
    c.passed = c.keys_lost == 0 && c.keys_checked > 0;
    c
}

/// What the simulated loss lost, and whether the failover's loss report accounts for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossCheck {
    /// Acknowledged writes (each a fresh key) checked on the promoted side.
    pub writes_checked: u64,
    /// Of them, absent there: the real RPO in writes.
    pub writes_lost: u64,
    /// From the first lost write's sending to the last one's acknowledgement: the real RPO in
    /// time (0 when nothing was lost).
    pub lost_span_ms: u64,
    /// The decrees the loss report says were lost, in total (`None`: unknown somewhere).
    pub reported_decrees: Option<u64>,
    /// Lost writes in a partition the report says lost nothing or does not know about, or
    /// acknowledged before the partition's reported timetag bound.
    pub outside_report: u64,
    /// A few of them, with why.
    pub examples: Vec<String>,
    /// Of the lost writes, those in partitions whose decrees the report only bounds (its last
    /// report from the old side predates the end of its writes): checked by the timetag bound.
    pub timetag_bound_only: u64,
    /// Lost writes per partition (the report's decree ranges may hold several writes each: a
    /// decree is a batch).
    pub lost_by_partition: BTreeMap<u32, u64>,
    pub passed: bool,
}

/// Checks every acknowledged write that `found` lacks against the failover's loss report: it
/// must fall in a partition whose reported decree range is not empty (or whose decrees the
/// report only bounds or does not know, with a timetag bound), acknowledged after that
/// partition's applied-through timetag (less [`CLOCK_ALLOWANCE_MS`]). `partition_of` maps a
/// hash key to its partition. The check fails when nothing was checked or the report is missing.
pub fn check_loss(
    acks: &[&Ack],
    found: &BTreeMap<String, bool>,
    report: Option<&FailoverRecord>,
    partition_of: impl Fn(&str) -> u32,
) -> LossCheck {
    let mut c = LossCheck { writes_checked: acks.len() as u64, ..Default::default() };
    let (mut first_sent, mut last_acked) = (u64::MAX, 0);
    fn note(c: &mut LossCheck, why: String) {
        c.outside_report += 1;
        if c.examples.len() < 10 {
            c.examples.push(why);
        }
    }
    for a in acks {
        if found.get(&a.hash_key).copied().unwrap_or(false) {
            continue;
        }
        c.writes_lost += 1;
        first_sent = first_sent.min(a.sent_ms);
        last_acked = last_acked.max(a.acked_ms);
        let p = partition_of(&a.hash_key);
        *c.lost_by_partition.entry(p).or_default() += 1;
        let Some(r) = report else { continue };
        let Some(pl) = r.partitions.iter().find(|x| x.partition == p) else {
            note(&mut c, format!("{}: partition {p} is not in the loss report", a.hash_key));
            continue;
        };
        match (&pl.decrees, &pl.applied_through_timetag) {
            (Ok(Some(_)), _) => {}
            (Ok(None), _) => {
                note(&mut c, format!("{}: the report says partition {p} lost nothing", a.hash_key))
            }
            // Decrees only bounded ("at least …") or unknown: the timetag bound is the claim.
            (Err(_), Ok(_)) => c.timetag_bound_only += 1,
            (Err(why), Err(t)) => {
                note(&mut c, format!("{}: partition {p}'s loss is unknown ({why}; {t})", a.hash_key))
            }
        }
        if let Ok(t) = pl.applied_through_timetag {
            let bound = Timetag::from_u64(t).physical_ms();
            if a.acked_wall_ms + CLOCK_ALLOWANCE_MS < bound {
                note(
                    &mut c,
                    format!(
                        "{}: acknowledged at {} ms, before partition {p}'s applied-through timetag ({bound} ms)",
                        a.hash_key, a.acked_wall_ms
                    ),
                );
            }
        }
    }
    if c.writes_lost > 0 {
        c.lost_span_ms = last_acked.saturating_sub(first_sent);
    }
    c.reported_decrees = report.and_then(|r| r.decrees_lost());
    c.passed = report.is_some() && c.writes_checked > 0 && c.outside_report == 0;
    c
}

/// One switchover of the drill, as the writers saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverFigures {
    pub from: String,
    pub to: String,
    /// The longest stretch without an acknowledged write, from the switchover's start to the
    /// first write acknowledged after it (`None`: writes never came back).
    pub write_unavailable_ms: Option<u64>,
    /// What the switchover executor measured: from writes stopped to the promotion.
    pub stop_to_promote_ms: Option<u64>,
    pub took_ms: u64,
    pub rolled_back: bool,
}

/// One step of the drill and how long it took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillStep {
    pub what: String,
    pub took_ms: u64,
    /// `ok`, `failed: why`, or `skipped: why`.
    pub outcome: String,
}

/// What a drill measured and checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReport {
    pub table: String,
    pub from: String,
    pub to: String,
    /// Wall clock at the start.
    pub started_wall_ms: u64,
    pub took_ms: u64,
    /// Where the load went: `clusters` (each writer to the active cluster, moving to the other
    /// on a refusal) or `proxy ADDR`.
    pub load_via: String,
    pub writers: u32,
    pub writes_acked: u64,
    pub write_errors: u64,
    pub steps: Vec<DrillStep>,
    pub switchovers: Vec<SwitchoverFigures>,
    pub zero_loss: Option<ZeroLossCheck>,
    /// From the simulated loss to the first write the promoted side acknowledged.
    pub failover_rto_ms: Option<u64>,
    /// What the failover executor measured: from its start to the promotion.
    pub failover_promoted_after_ms: Option<u64>,
    pub loss: Option<LossCheck>,
    /// The failover's loss report (also kept in the promoted cluster's meta state).
    pub loss_report: Option<FailoverRecord>,
    pub backup_restore: String,
    /// Whether the scratch tables are gone: `None` until cleaned up.
    pub cleaned_up: Option<bool>,
    /// What cleanup could not remove.
    pub left_behind: Vec<String>,
    /// Why the drill stopped early, if it did.
    pub error: Option<String>,
    /// Every check passed.
    pub passed: bool,
    pub summary: String,
}

/// The line the report carries for the part of the drill that does not exist yet.
pub const BACKUP_SKIPPED: &str = "skipped: backups not wired into drill yet";

impl DrillReport {
    /// Whether every check passed: both switchovers done without rollback, nothing lost by
    /// them, the failover measured and its loss report accounting for what was lost, and the
    /// scratch tables removed.
    pub fn judge(&mut self) {
        let switched = self.switchovers.len() == 2 && self.switchovers.iter().all(|s| !s.rolled_back);
        let zero = self.zero_loss.as_ref().is_some_and(|z| z.passed);
        let failed_over = self.failover_rto_ms.is_some();
        let loss = self.loss.as_ref().is_some_and(|l| l.passed);
        let clean = self.cleaned_up == Some(true);
        self.passed = switched && zero && failed_over && loss && clean;
        let mut wrong = Vec::new();
        if !switched {
            wrong.push("the switchovers did not both complete");
        }
        if !zero {
            wrong.push("the zero-loss check did not pass");
        }
        if !failed_over {
            wrong.push("no RTO was measured");
        }
        if !loss {
            wrong.push("the loss check did not pass");
        }
        if !clean {
            wrong.push("cleanup did not finish");
        }
        if let Some(e) = &self.error {
            self.passed = false;
            wrong.insert(0, e.as_str());
        }
        self.summary = if self.passed {
            "drill passed".to_string()
        } else {
            format!("drill FAILED: {}", wrong.join("; "))
        };
    }
}

#[cfg(test)]
#[path = "drill_tests.rs"]
mod tests;
