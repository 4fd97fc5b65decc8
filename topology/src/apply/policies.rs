//! Backup policy steps: a policy of the file goes to every cluster that holds a copy of one of
//! its tables, with the tables that cluster holds (only the cluster of a table's ACTIVE copy
//! backs it up, so after a switchover the other cluster's policy takes over); its meta leader
//! runs it (docs/backup.md "Policies and scheduling"). Each step reads each cluster's policy
//! first and changes only what differs, so a re-run does nothing twice.

use std::collections::BTreeMap;

use tern_client::AdminClient;
use tern_client::admin::backup_policy::{BackupPolicy, PolicyTargetInfo};
use tern_core::Result;

use crate::schema::Topology;

/// A policy of the file as each cluster should hold it.
#[derive(Clone, Debug)]
pub(super) struct DesiredPolicy {
    policy: BackupPolicy,
    /// Each cluster holding a copy of one of its tables, with those tables.
    clusters: Vec<(String, Vec<String>)>,
}

fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    Some(h.parse::<u32>().ok()? * 60 + m.parse::<u32>().ok()?)
}

/// The file's policies, by name (validation has checked tables, targets and times).
pub(super) fn desired(t: &Topology) -> BTreeMap<String, DesiredPolicy> {
    let Some(b) = &t.backup else { return BTreeMap::new() };
    let mut out = BTreeMap::new();
    for p in &b.policies {
        let target = b.targets.iter().find(|x| *x.name == *p.target);
        let policy = BackupPolicy {
            name: p.name.value.clone(),
            tables: p.tables.iter().map(|t| t.value.clone()).collect(),
            target: PolicyTargetInfo {
                url: target.map(|x| x.url.value.clone()).unwrap_or_default(),
                endpoint: target.and_then(|x| x.endpoint.as_ref().map(|e| e.value.clone())),
                region: target.and_then(|x| x.region.clone()),
            },
            interval_secs: p.interval.0.as_secs(),
            start_minute: p.start_time.as_ref().and_then(|s| minutes(s)),
            keep_last: p.retention.keep.as_ref().map(|k| **k),
            max_age_secs: p.retention.max_age.as_ref().map(|d| d.0.as_secs()),
            limit_bytes_per_sec: p.max_bytes_per_sec.as_ref().map(|b| b.0),
            paused: false,
            created_at_ms: 0,
        };
        let mut clusters: Vec<(String, Vec<String>)> = Vec::new();
        for c in &t.clusters {
            let held: Vec<String> = policy
                .tables
                .iter()
                .filter(|name| {
                    t.tables.iter().any(|tb| {
                        tb.name.value == **name && tb.copies.iter().any(|cp| *cp.cluster == *c.name)
                    })
                })
                .cloned()
                .collect();
            if !held.is_empty() {
                clusters.push((c.name.value.clone(), held));
            }
        }
        out.insert(policy.name.clone(), DesiredPolicy { policy, clusters });
    }
    out
}

/// The same settings (the paused flag and creation time are the cluster's own).
fn same(a: &BackupPolicy, b: &BackupPolicy) -> bool {
    let norm = |p: &BackupPolicy| BackupPolicy { paused: false, created_at_ms: 0, ..p.clone() };
    norm(a) == norm(b)
}

async fn held(admin: &AdminClient, name: &str) -> Result<Option<BackupPolicy>> {
    let list = admin.list_backup_policies(None).await?;
    Ok(list.policies.into_iter().map(|s| s.policy).find(|p| p.name == name))
}

/// Adds or alters policy `name` in each cluster that should hold it, and removes it from the
/// clusters of the file that hold none of its tables any more.
pub(super) async fn put(
    name: &str,
    want: Option<&DesiredPolicy>,
    admins: &BTreeMap<String, AdminClient>,
) -> Result<String> {
    let want = want.ok_or_else(|| {
        tern_core::Error::invariant(format!("the plan names backup policy {name}, which the file does not"))
    })?;
    let mut done = Vec::new();
    for (cluster, admin) in admins {
        let tables = want.clusters.iter().find(|(c, _)| c == cluster).map(|(_, t)| t.clone());
        let have = held(admin, name).await?;
        match (tables, have) {
            (None, None) => {}
            (None, Some(_)) => {
                admin.remove_backup_policy(name).await?;
                done.push(format!("removed from {cluster} (it holds none of its tables)"));
            }
            (Some(tables), None) => {
                admin.add_backup_policy(&BackupPolicy { tables, ..want.policy.clone() }).await?;
                done.push(format!("added in {cluster}"));
            }
            (Some(tables), Some(have)) => {
                let p = BackupPolicy { tables, paused: have.paused, ..want.policy.clone() };
                if same(&p, &have) {
                    done.push(format!("already in {cluster}"));
                } else {
                    admin.alter_backup_policy(&p).await?;
                    done.push(format!("altered in {cluster}"));
                }
            }
        }
    }
    Ok(if done.is_empty() { "no cluster holds its tables".into() } else { done.join(", ") })
}

/// Removes policy `name` from every cluster of the file that holds it.
pub(super) async fn remove(name: &str, admins: &BTreeMap<String, AdminClient>) -> Result<String> {
    let mut done = Vec::new();
    for (cluster, admin) in admins {
        if held(admin, name).await?.is_some() {
            admin.remove_backup_policy(name).await?;
            done.push(cluster.clone());
        }
    }
    Ok(if done.is_empty() { "already gone".into() } else { format!("removed from {}", done.join(", ")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_goes_to_each_cluster_holding_its_tables_with_those_tables() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/everything.yaml");
        let t = Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let d = desired(&t);
        let nightly = &d["nightly"];
        assert_eq!(nightly.policy.start_minute, Some(150));
        assert_eq!(nightly.policy.keep_last, Some(7));
        assert_eq!(nightly.policy.interval_secs, 86_400);
        assert!(!nightly.clusters.is_empty());
        for (cluster, tables) in &nightly.clusters {
            assert_eq!(tables, &vec!["users".to_string()], "{cluster}");
        }
        assert!(same(
            &nightly.policy,
            &BackupPolicy { paused: true, created_at_ms: 9, ..nightly.policy.clone() }
        ));
    }
}
