//! `tern dr status` as a pure function: [`assess`] turns what the clusters said ([`Observed`])
//! into a report per table with a health level and the findings behind it. No I/O and no clock:
//! the time of the observation comes with it.
//!
//! The rules, worst first (each is a [`Finding`]; a table's health is its worst finding's):
//! - **unsafe**: no reachable copy is active (clients cannot write, or the active cluster is
//!   lost); two copies active at the same highest epoch (split brain); the active copy's cluster
//!   holds no DR lease for it (its copy refuses client writes).
//! - **degraded**: a cluster is unreachable; an older active copy is not fenced yet; the DR
//!   lease is waived, unused (no voters) or unknown; a standby has no link from the active copy,
//!   or its link is paused, copying, failing, refused for clock offset, of unknown lag, or
//!   further behind than the RPO warning.
//! - notes (healthy): a table without a standby copy (no DR for it).
//!
//! "RPO if you fail over now" is the link's lag ([`LinkReport::lag`]): the worst partition's
//! measured lag plus the age of the measurement; unknown is reported as unknown, never 0.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;
use tern_client::admin::{DrLeaseState, LinkReport};
use tern_core::{DrRole, LinkStatus};

use crate::observe::{ClusterObs, Observed};

/// How bad things are. Ordered: the worst of several is their maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Healthy,
    Degraded,
    Unsafe,
}

impl Health {
    /// The exit status of `tern dr status` (1 is a failed command, 2 a usage error).
    pub fn exit_code(self) -> i32 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 3,
            Health::Unsafe => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unsafe => "unsafe",
        }
    }
}

/// States go to JSON by the names operators read and type (`active`, `syncing-checkpoint`).
fn by_name<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn maybe_by_name<S: serde::Serializer, T: std::fmt::Display>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// What `assess` is told besides the observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusOptions {
    /// A standby further behind than this makes its table degraded.
    pub rpo_warn: Duration,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions { rpo_warn: Duration::from_secs(10) }
    }
}

/// One thing the report says of a table, with how bad it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub health: Health,
    pub what: String,
}

/// A table's copy in one cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum CopyReport {
    /// The cluster did not answer.
    Unreachable { cluster: String, why: String },
    /// The cluster has no serving table of that name.
    Absent { cluster: String },
    Present {
        cluster: String,
        #[serde(serialize_with = "by_name")]
        role: DrRole,
        epoch: u64,
        partitions: u32,
        /// Active copies: the DR lease as its cluster reports it.
        #[serde(skip_serializing_if = "Option::is_none")]
        lease: Option<String>,
    },
}

impl CopyReport {
    pub fn cluster(&self) -> &str {
        match self {
            CopyReport::Unreachable { cluster, .. }
            | CopyReport::Absent { cluster }
            | CopyReport::Present { cluster, .. } => cluster,
        }
    }
}

/// A standby copy and the link that feeds it from the active copy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StandbyReport {
    pub cluster: String,
    /// The link from the active copy (`None`: there is none, or the active copy is unknown).
    pub link_id: Option<u64>,
    #[serde(serialize_with = "maybe_by_name")]
    pub link_status: Option<LinkStatus>,
    /// What failing over to this copy now could lose, in ms (`None`: unknown, see `lag_unknown`).
    pub rpo_ms: Option<u64>,
    pub lag_unknown: Option<String>,
    pub decrees_behind: u64,
    pub bytes_behind: u64,
    /// The oldest partition report the lag rests on (ms before the observation).
    pub measured_ms_ago: Option<u64>,
    /// Batches this copy refused as ahead of its clock.
    pub clock_ahead: u64,
}

/// One table across the clusters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableReport {
    pub table: String,
    pub health: Health,
    /// Where clients write: the active copy at the highest epoch, if one is reachable.
    pub active: Option<String>,
    pub epoch: Option<u64>,
    pub copies: Vec<CopyReport>,
    pub standbys: Vec<StandbyReport>,
    pub findings: Vec<Finding>,
    /// The newest unplanned failover of the table any reachable cluster keeps a record of
    /// (`tern dr failover`), with what the old side may have lost.
    pub last_failover: Option<tern_core::FailoverRecord>,
    /// What `tern dr reconcile` did after that failover (kept by the cluster it promoted), if it
    /// ran.
    pub last_reconcile: Option<tern_core::ReconcileSummary>,
    /// The backup policies that back the table up, with their last run (empty: none does).
    pub backups: Vec<BackupRow>,
}

/// A backup policy of one cluster that backs a table up (the cluster of its active copy), and
/// its last run of that table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupRow {
    pub cluster: String,
    pub policy: String,
    pub target: String,
    pub interval_secs: u64,
    pub paused: bool,
    /// The last run's outcome: `never`, `running`, `succeeded` or `failed`.
    pub last_run: String,
    pub error: Option<String>,
    /// The newest backup, when the last run made one.
    pub newest_backup: Option<String>,
    /// Its age when observed, in ms.
    pub newest_age_ms: Option<u64>,
    pub next_due_ms: Option<u64>,
}

/// A cluster as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    pub metas: Vec<String>,
    pub unreachable: Option<String>,
    /// The DR lease in one line.
    pub lease: String,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrStatus {
    pub at_ms: u64,
    pub health: Health,
    pub clusters: Vec<ClusterReport>,
    pub tables: Vec<TableReport>,
    /// The newest drill any reachable cluster keeps the report of (`tern dr drill`): the
    /// figures the runbook quotes. Not a health input.
    pub last_drill: Option<crate::DrillReport>,
}

/// The newest drill report the clusters keep that this build reads.
fn last_drill(obs: &Observed) -> Option<crate::DrillReport> {
    obs.clusters
        .iter()
        .filter(|c| c.unreachable.is_none())
        .flat_map(|c| c.drills.iter())
        .max_by_key(|d| d.started_ms)
        .and_then(|d| serde_json::from_str(&d.report_json).ok())
}

/// Judges what the clusters said. `table`: only that table (a name no cluster has is a report
/// with no tables, the caller says so; unless a cluster is unreachable, see below).
pub fn assess(obs: &Observed, table: Option<&str>, opts: &StatusOptions) -> DrStatus {
    let mut names: BTreeSet<&str> = obs
        .clusters
        .iter()
        .flat_map(|c| c.tables.iter().map(|t| t.name.as_str()))
        .filter(|n| table.is_none_or(|t| t == *n))
        .collect();
    // A table asked for by name that no reachable cluster has may be in one that is not: it
    // is reported (unsafe: no reachable active copy), not dropped.
    if let Some(t) = table
        && names.is_empty()
        && obs.clusters.iter().any(|c| c.unreachable.is_some())
    {
        names.insert(t);
    }
    let tables: Vec<TableReport> = names.into_iter().map(|n| assess_table(obs, n, opts)).collect();
    let clusters = obs.clusters.iter().map(cluster_report).collect();
    // What cannot be seen is not healthy: a cluster that did not answer degrades the report
    // even when no table shows it (it may hold tables no other cluster has), none answering
    // makes it unsafe.
    let unreachable = obs.clusters.iter().filter(|c| c.unreachable.is_some()).count();
    let seen = match unreachable {
        0 => Health::Healthy,
        n if n == obs.clusters.len() => Health::Unsafe,
        _ => Health::Degraded,
    };
    let health = tables.iter().map(|t| t.health).chain([seen]).max().unwrap_or_default();
    DrStatus { at_ms: obs.at_ms, health, clusters, tables, last_drill: last_drill(obs) }
}

fn cluster_report(c: &ClusterObs) -> ClusterReport {
    let lease = match (&c.unreachable, &c.lease) {
        (Some(_), _) => "unknown (unreachable)".to_string(),
        (None, Err(why)) => format!("unknown: {why}"),
        (None, Ok(l)) => lease_line(l),
    };
    ClusterReport {
        cluster: c.name.clone(),
        metas: c.metas.clone(),
        unreachable: c.unreachable.clone(),
        lease,
    }
}

fn lease_line(l: &DrLeaseState) -> String {
    if !l.used {
        return "not used (no DR voters)".into();
    }
    let granted = l.grants.iter().filter(|g| g.granted).count();
    let mut line = format!("{granted} of {} voters grant it (majority {})", l.voters.len(), l.majority);
    if let Some((why, _)) = &l.waiver {
        line.push_str(&format!("; WAIVED: {why}"));
    }
    line
}

fn copy_of(c: &ClusterObs, table: &str) -> CopyReport {
    let cluster = c.name.clone();
    if let Some(why) = &c.unreachable {
        return CopyReport::Unreachable { cluster, why: why.clone() };
    }
    match c.tables.iter().find(|t| t.name == table) {
        None => CopyReport::Absent { cluster },
        Some(t) => {
            let lease = (t.role == DrRole::Active).then(|| table_lease(&c.lease, table).1);
            CopyReport::Present { cluster, role: t.role, epoch: t.epoch, partitions: t.partitions, lease }
        }
    }
}

/// The active copy's lease: how bad its state is, and a line saying it.
fn table_lease(lease: &Result<DrLeaseState, String>, table: &str) -> (Health, String) {
    let l = match lease {
        Err(why) => return (Health::Degraded, format!("unknown: {why}")),
        Ok(l) => l,
    };
    if !l.used {
        return (
            Health::Degraded,
            "not used: the cluster has no DR voters, so nothing stops a cut-off active copy from taking writes after a failover".into(),
        );
    }
    if let Some((why, _)) = &l.waiver {
        return (Health::Degraded, format!("waived ({why}): a cut-off active copy keeps taking writes"));
    }
    match l.tables.iter().find(|t| t.table == table) {
        Some(t) if t.lease_left_ms > 0 => (Health::Healthy, format!("held, {} ms left", t.lease_left_ms)),
        Some(t) => (Health::Unsafe, format!("not held: the copy refuses client writes ({})", t.detail)),
        None => (Health::Unsafe, "not held: the cluster reports no lease for the table".into()),
    }
}

fn assess_table(obs: &Observed, table: &str, opts: &StatusOptions) -> TableReport {
    let copies: Vec<CopyReport> = obs.clusters.iter().map(|c| copy_of(c, table)).collect();
    let mut findings = Vec::new();
    let mut note = |health, what: String| findings.push(Finding { health, what });
    for c in &copies {
        if let CopyReport::Unreachable { cluster, why } = c {
            note(
                Health::Degraded,
                format!("cluster {cluster} is unreachable ({why}): its copy, if any, is not seen"),
            );
        }
    }
    let actives: Vec<(&str, u64)> = copies
        .iter()
        .filter_map(|c| match c {
            CopyReport::Present { cluster, role: DrRole::Active, epoch, .. } => {
                Some((cluster.as_str(), *epoch))
            }
            _ => None,
        })
        .collect();
    let top = actives.iter().map(|(_, e)| *e).max();
    let at_top: Vec<&str> = actives.iter().filter(|(_, e)| Some(*e) == top).map(|(c, _)| *c).collect();
    let active = match at_top.as_slice() {
        [] => {
            note(Health::Unsafe, "no reachable copy is active: clients cannot write".into());
            None
        }
        [one] => Some(*one),
        several => {
            note(
                Health::Unsafe,
                format!(
                    "split brain: copies in {} are all active at epoch {}",
                    several.join(" and "),
                    top.unwrap_or(0)
                ),
            );
            None
        }
    };
    for (c, e) in actives.iter().filter(|(_, e)| Some(*e) != top) {
        note(
            Health::Degraded,
            format!(
                "{c} is still active at epoch {e}, below epoch {}: a proxy fences it when it reaches it (its DR lease keeps it from taking writes meanwhile)",
                top.unwrap_or(0)
            ),
        );
    }
    let active_obs = active.and_then(|a| obs.clusters.iter().find(|c| c.name == a));
    if let Some(a) = active_obs {
        let (health, line) = table_lease(&a.lease, table);
        if health > Health::Healthy {
            note(health, format!("DR lease of {} for this table: {line}", a.name));
        }
    }
    let mut standbys = Vec::new();
    for c in &copies {
        let CopyReport::Present { cluster, epoch, role, .. } = c else { continue };
        if Some(cluster.as_str()) == active || (*role == DrRole::Active && Some(*epoch) == top) {
            continue;
        }
        let link = active_obs.and_then(|a| a.link_to(table, cluster));
        let s = standby(cluster, link);
        if let Some(a) = active_obs {
            for (health, what) in standby_findings(&a.name, &s, link, opts) {
                note(health, what);
            }
        }
        standbys.push(s);
    }
    if standbys.is_empty() && !copies.iter().any(|c| matches!(c, CopyReport::Unreachable { .. })) {
        note(Health::Healthy, "no standby copy: this table has no disaster recovery".into());
    }
    let backups = backup_rows(obs, table, &mut note);
    let health = findings.iter().map(|f| f.health).max().unwrap_or_default();
    TableReport {
        table: table.to_string(),
        health,
        active: active.map(str::to_string),
        epoch: active.and(top),
        copies,
        standbys,
        findings,
        last_failover: obs
            .clusters
            .iter()
            .flat_map(|c| c.failovers.iter())
            .filter(|r| r.table == table)
            .max_by_key(|r| (r.epoch, r.at_ms))
            .cloned(),
        last_reconcile: crate::reconcile::last_failover(obs, table)
            .and_then(|(c, r)| c.reconciles.iter().find(|s| s.table == table && s.epoch == r.epoch).cloned()),
        backups,
    }
}

/// The policies of reachable clusters that back `table` up there (not those that skip it, e.g.
/// on a standby copy), with findings: a failed last run degrades the table, as does a last
/// backup older than two intervals (late). No policy is no finding (not every table needs one).
fn backup_rows(obs: &Observed, table: &str, note: &mut impl FnMut(Health, String)) -> Vec<BackupRow> {
    use tern_client::admin::backup_policy::PolicyRunOutcome;
    let mut rows = Vec::new();
    for c in obs.clusters.iter().filter(|c| c.unreachable.is_none()) {
        for p in &c.backup_policies {
            let Some(run) = p.runs.iter().find(|r| r.table.as_deref() == Some(table)) else { continue };
            if run.skipped.is_some() {
                continue;
            }
            let (last_run, error) = match &run.outcome {
                PolicyRunOutcome::Never => ("never", None),
                PolicyRunOutcome::Running => ("running", None),
                PolicyRunOutcome::Succeeded => ("succeeded", None),
                PolicyRunOutcome::Failed(e) => ("failed", Some(e.clone())),
            };
            let made = matches!(run.outcome, PolicyRunOutcome::Succeeded);
            let newest_backup = if made { run.backup_id.clone() } else { None };
            let newest_age_ms = if made { run.ended_ms.map(|t| obs.at_ms.saturating_sub(t)) } else { None };
            let name = &p.policy.name;
            if let Some(e) = &error {
                note(
                    Health::Degraded,
                    format!("backup policy {name} in {}: the last backup failed: {e}", c.name),
                );
            }
            let late_ms = p.policy.interval_secs.saturating_mul(2_000);
            if !p.policy.paused
                && let Some(age) = newest_age_ms
                && age > late_ms
            {
                note(
                    Health::Degraded,
                    format!(
                        "backup policy {name} in {}: the newest backup is {} old (late)",
                        c.name,
                        ms_text(age)
                    ),
                );
            }
            rows.push(BackupRow {
                cluster: c.name.clone(),
                policy: name.clone(),
                target: p.policy.target.url.clone(),
                interval_secs: p.policy.interval_secs,
                paused: p.policy.paused,
                last_run: last_run.to_string(),
                error,
                newest_backup,
                newest_age_ms,
                next_due_ms: run.next_due_ms,
            });
        }
    }
    rows
}

fn ms_text(ms: u64) -> String {
    match ms {
        ms if ms < 120_000 => format!("{} s", ms / 1000),
        ms if ms < 7_200_000 => format!("{} min", ms / 60_000),
        ms => format!("{} h", ms / 3_600_000),
    }
}

fn standby(cluster: &str, link: Option<&LinkReport>) -> StandbyReport {
    let mut s = StandbyReport {
        cluster: cluster.to_string(),
        link_id: None,
        link_status: None,
        rpo_ms: None,
        lag_unknown: None,
        decrees_behind: 0,
        bytes_behind: 0,
        measured_ms_ago: None,
        clock_ahead: 0,
    };
    let Some(l) = link else {
        s.lag_unknown = Some("no link from the active copy".into());
        return s;
    };
    let totals = l.totals();
    s.link_id = Some(l.link.id);
    s.link_status = Some(l.link.status);
    match l.lag() {
        Ok(d) => s.rpo_ms = Some(d.as_millis() as u64),
        Err(why) => s.lag_unknown = Some(why),
    }
    s.decrees_behind = totals.decrees_behind;
    s.bytes_behind = totals.bytes_behind;
    s.measured_ms_ago = l.partitions.iter().filter_map(|p| p.reported_ms_ago).max();
    s.clock_ahead = l.partitions.iter().map(|p| p.clock_ahead).sum();
    s
}

fn standby_findings(
    active: &str,
    s: &StandbyReport,
    link: Option<&LinkReport>,
    opts: &StatusOptions,
) -> Vec<(Health, String)> {
    let to = &s.cluster;
    let Some(l) = link else {
        return vec![(
            Health::Degraded,
            format!(
                "no link from {active} to {to}: the standby receives no writes (add one with tern dup add)"
            ),
        )];
    };
    let mut out = Vec::new();
    match l.link.status {
        LinkStatus::Paused => {
            out.push((Health::Degraded, format!("link {active}->{to} is paused: the standby falls behind")))
        }
        LinkStatus::Init | LinkStatus::SyncingCheckpoint => out.push((
            Health::Degraded,
            format!("link {active}->{to} is {}: the standby is not complete yet", l.link.status),
        )),
        LinkStatus::Shipping | LinkStatus::Removed => {}
    }
    if let Some(why) = &s.lag_unknown {
        out.push((Health::Degraded, format!("lag of {active}->{to} is unknown: {why}")));
    }
    if let Some(rpo) = s.rpo_ms.filter(|ms| *ms > opts.rpo_warn.as_millis() as u64) {
        out.push((
            Health::Degraded,
            format!(
                "{to} is {:.1} s behind {active} (more than the {:.1} s RPO warning)",
                rpo as f64 / 1000.0,
                opts.rpo_warn.as_secs_f64()
            ),
        ));
    }
    let failing: Vec<&str> = l.partitions.iter().filter_map(|p| p.last_error.as_deref()).collect();
    if let Some(last) = failing.first() {
        out.push((
            Health::Degraded,
            format!("link {active}->{to}: {} partition(s) failing, e.g. {last}", failing.len()),
        ));
    }
    if failing.iter().any(|e| e.contains("CLOCK_AHEAD") || e.contains("maximum clock offset")) {
        out.push((
            Health::Degraded,
            format!(
                "clock offset: {to} refuses {active}'s writes as ahead of its clock (the clocks differ by more than the maximum offset; fix the clock, or raise tern replica --max-clock-offset)"
            ),
        ));
    } else if s.clock_ahead > 0 {
        out.push((
            Health::Healthy,
            format!("{to} refused {} batch(es) as ahead of its clock earlier (not now)", s.clock_ahead),
        ));
    }
    out
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
