//! The steps for backup policies and proxies. Backup policies are applied to every cluster
//! holding a copy of their tables (`apply/policies.rs`); proxies are planned only: a proxy takes
//! its settings from its flags when it starts.

use std::collections::BTreeMap;
use std::time::Duration;

use super::tables::rate;
use super::{Action, Change, Step};
use crate::observed::{Observed, ObservedPolicy, ObservedProxy};
use crate::schema::{Proxy, Topology};
use crate::units::HumanDuration;

const RESTART_PROXY: &str =
    "a proxy takes these settings from its flags when it starts: restart it with them";

/// The file's backup policies, with their targets resolved, by name.
pub(crate) fn desired_policies(t: &Topology) -> BTreeMap<String, ObservedPolicy> {
    let Some(b) = &t.backup else { return BTreeMap::new() };
    b.policies
        .iter()
        .map(|p| {
            let target = b.targets.iter().find(|t| *t.name == *p.target);
            let policy = ObservedPolicy {
                tables: p.tables.iter().map(|t| t.value.clone()).collect(),
                url: target.map(|t| t.url.value.clone()).unwrap_or_default(),
                endpoint: target.and_then(|t| t.endpoint.as_ref().map(|e| e.value.clone())),
                interval: p.interval.0,
                start_time: p.start_time.as_ref().map(|s| s.value.clone()),
                keep: p.retention.keep.as_ref().map(|k| **k),
                max_age: p.retention.max_age.as_ref().map(|d| d.0),
                max_bytes_per_sec: p.max_bytes_per_sec.as_ref().map_or(0, |b| b.0),
            };
            (p.name.value.clone(), policy)
        })
        .collect()
}

/// What a proxy of the file would report.
pub(crate) fn desired_proxy(p: &Proxy) -> ObservedProxy {
    ObservedProxy {
        dr_voter: p.dr_voter,
        auto_failover: p
            .auto_failover
            .iter()
            .map(|f| (f.table.value.clone(), (f.after.0, f.rpo_budget.0)))
            .collect(),
    }
}

fn dur(d: Option<Duration>) -> String {
    d.map_or("none".to_string(), |d| HumanDuration(d).to_string())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("none".to_string(), T::to_string)
}

/// Tables as a set: clusters report a policy's tables in their own order.
fn sorted(tables: &[String]) -> String {
    let mut t = tables.to_vec();
    t.sort();
    t.join(",")
}

fn policy_changes(have: &ObservedPolicy, want: &ObservedPolicy) -> Vec<Change> {
    let fields = [
        ("tables", sorted(&have.tables), sorted(&want.tables)),
        ("url", have.url.clone(), want.url.clone()),
        ("endpoint", opt(&have.endpoint), opt(&want.endpoint)),
        ("interval", dur(Some(have.interval)), dur(Some(want.interval))),
        ("start-time", opt(&have.start_time), opt(&want.start_time)),
        ("retention.keep", opt(&have.keep), opt(&want.keep)),
        ("retention.max-age", dur(have.max_age), dur(want.max_age)),
        ("max-bytes-per-sec", rate(have.max_bytes_per_sec), rate(want.max_bytes_per_sec)),
    ];
    fields
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(f, from, to)| Change { field: f.to_string(), from, to })
        .collect()
}

pub(super) fn policies(desired: &Topology, observed: &Observed, steps: &mut Vec<Step>) {
    let want = desired_policies(desired);
    for (name, p) in &want {
        match observed.backup_policies.get(name) {
            None => steps.push(Step::new(Action::AddPolicy {
                policy: name.clone(),
                tables: p.tables.clone(),
                url: p.url.clone(),
            })),
            Some(have) => {
                let changes = policy_changes(have, p);
                if !changes.is_empty() {
                    steps.push(Step::new(Action::AlterPolicy { policy: name.clone(), changes }));
                }
            }
        }
    }
    for (name, p) in &observed.backup_policies {
        if !want.contains_key(name) {
            steps.push(Step::new(Action::RemovePolicy { policy: name.clone() }).destructive(format!(
                "no new backups of {} are taken (existing ones stay until their retention ends)",
                p.tables.join(", ")
            )));
        }
    }
}

pub(super) fn proxies(
    desired: &Topology,
    observed: &Observed,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) {
    let Some(seen) = &observed.proxies else {
        if !desired.proxies.is_empty() {
            notes.push("the proxies were not asked: their settings are not planned".to_string());
        }
        return;
    };
    for p in &desired.proxies {
        let Some(have) = seen.get(p.name.as_str()) else {
            notes.push(format!("proxy {} did not answer: its settings are not planned", *p.name));
            continue;
        };
        let want = desired_proxy(p);
        let mut changes = Vec::new();
        if have.dr_voter != want.dr_voter {
            changes.push(Change {
                field: "dr-voter".into(),
                from: have.dr_voter.to_string(),
                to: want.dr_voter.to_string(),
            });
        }
        let show = |f: Option<&(Duration, Duration)>| {
            f.map_or("off".to_string(), |(a, r)| {
                format!("after {}, rpo-budget {}", HumanDuration(*a), HumanDuration(*r))
            })
        };
        let tables: std::collections::BTreeSet<&String> =
            have.auto_failover.keys().chain(want.auto_failover.keys()).collect();
        for t in tables {
            let (a, b) = (have.auto_failover.get(t), want.auto_failover.get(t));
            if a != b {
                changes.push(Change { field: format!("auto-failover.{t}"), from: show(a), to: show(b) });
            }
        }
        if !changes.is_empty() {
            steps.push(
                Step::new(Action::ChangeProxy { proxy: p.name.value.clone(), changes })
                    .blocked(RESTART_PROXY),
            );
        }
    }
}
