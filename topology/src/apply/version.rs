//! The version rule's second half (issue #26): before its first step, apply compare-and-sets
//! every cluster's topology state version on its meta servers, expecting the version it planned
//! against. Bumps are compare-and-set in each cluster's Raft log, so of two applies planned
//! against the same state exactly one passes a given cluster; the other is refused there and
//! changes nothing. Clusters are bumped in a fixed order (by name), so two applies meet first on
//! the same cluster. A bump that passed on a cluster before a refusal on the next one changes no
//! data: it only invalidates other plans made against that version.

use tern_client::admin::TopologyVersionBump;

use super::ApplyError;
use super::steps::Ctx;
use crate::observed::Observed;
use crate::schema::Topology;

/// The clusters to bump, in order (by name), each with the version `planned` read there. Pure.
pub(super) fn bumps(t: &Topology, planned: &Observed) -> Result<Vec<(String, u64)>, ApplyError> {
    let mut names: Vec<&str> = t.clusters.iter().map(|c| c.name.value.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|n| match planned.topology_versions.get(n) {
            Some(v) => Ok((n.to_string(), *v)),
            None => Err(ApplyError::NoVersion { cluster: n.to_string() }),
        })
        .collect()
}

/// Bumps every cluster of `bumps` in order; stops at the first refusal (an error naming the
/// cluster and the clusters bumped before it).
pub(super) async fn bump_all(ctx: &Ctx<'_>, bumps: &[(String, u64)]) -> Result<(), ApplyError> {
    let mut bumped = Vec::new();
    for (cluster, expect) in bumps {
        let failed =
            |cause| ApplyError::Unreachable { cluster: cluster.clone(), addrs: ctx.addrs(cluster), cause };
        let admin = ctx.admin(cluster).map_err(failed)?;
        match admin.bump_topology_version(*expect).await.map_err(failed)? {
            TopologyVersionBump::Bumped { .. } => bumped.push(cluster.clone()),
            TopologyVersionBump::Refused { why, .. } => {
                return Err(ApplyError::VersionMoved { cluster: cluster.clone(), why, bumped });
            }
        }
    }
    Ok(())
}

/// The refusal's text after "state changed since plan: WHY".
pub(super) fn moved_text(bumped: &[String]) -> String {
    let before = if bumped.is_empty() {
        String::new()
    } else {
        format!(
            " (the topology version of {} was bumped first: that only invalidates other plans)",
            bumped.join(", ")
        )
    };
    format!(
        "another apply changed the deployment since this plan; nothing was changed{before}. Re-plan: tern plan -f FILE, review it, and apply again"
    )
}
