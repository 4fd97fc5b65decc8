//! Reading the running deployment a topology file describes: every cluster of the file through
//! its admin client (`cluster_name`, `topology_version`, `list_tables`, `links(None)`, `list_backup_policies`), every proxy with a real
//! port through `ProxyAdminClient`. The only I/O of `tern plan`.

use std::collections::BTreeMap;
use std::time::Duration;

use tern_client::AdminClient;
use tern_client::admin::backup_policy::BackupPolicy;
use tern_client::admin::{LinkReport, ProxyAdminClient, ProxyStatus, TableInfo};

use super::ApplyError;
use crate::observed::{Observed, observed_from, policies_from};
use crate::schema::{Cluster, Topology};

/// Whether `addr` (`HOST:PORT`) has port 0, which only `tern up` resolves.
fn port_zero(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(_, p)| p == "0")
}

/// The meta server addresses of `c`, refused if one has port 0.
pub(crate) fn metas_of(c: &Cluster) -> Result<Vec<String>, ApplyError> {
    let metas: Vec<String> = c.meta_servers.iter().map(|m| m.value.clone()).collect();
    if let Some(m) = c.meta_servers.iter().find(|m| port_zero(m)) {
        let at = m.pos.map(|p| format!(" (line {}, column {})", p.line, p.column)).unwrap_or_default();
        return Err(ApplyError::PortZero { cluster: c.name.value.clone(), addr: m.value.clone(), at });
    }
    Ok(metas)
}

/// Asks every cluster of `t` (each call within `deadline`) and the proxies that have a real
/// port. A cluster that does not answer, or whose meta servers belong to another cluster, is an
/// error naming it and its addresses: planning it as empty would plan to create what exists.
/// A proxy that does not answer is left out (the plan notes that its settings are not planned).
pub async fn observe(t: &Topology, deadline: Duration) -> Result<Observed, ApplyError> {
    let mut answers: Vec<(String, Vec<TableInfo>, Vec<LinkReport>)> = Vec::new();
    let mut policies: Vec<(String, Vec<BackupPolicy>)> = Vec::new();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    for c in &t.clusters {
        let metas = metas_of(c)?;
        let unreachable = |cause: tern_core::Error| ApplyError::Unreachable {
            cluster: c.name.value.clone(),
            addrs: metas.join(","),
            cause,
        };
        let admin = AdminClient::connect(metas.clone()).map_err(unreachable)?.with_deadline(deadline);
        let name = admin.cluster_name().await.map_err(unreachable)?;
        if name != *c.name {
            return Err(ApplyError::WrongCluster {
                cluster: c.name.value.clone(),
                addrs: metas.join(","),
                actual: name,
            });
        }
        versions.insert(c.name.value.clone(), admin.topology_version().await.map_err(unreachable)?);
        let tables = admin.list_tables().await.map_err(unreachable)?;
        let links = admin.links(None).await.map_err(unreachable)?;
        let held = admin.list_backup_policies(None).await.map_err(unreachable)?;
        policies.push((c.name.value.clone(), held.policies.into_iter().map(|s| s.policy).collect()));
        answers.push((c.name.value.clone(), tables, links));
    }
    let mut proxies: Vec<(String, ProxyStatus)> = Vec::new();
    for p in &t.proxies {
        if port_zero(&p.listen) {
            continue;
        }
        let Ok(client) = ProxyAdminClient::new(vec![p.listen.value.clone()]) else { continue };
        if let Ok(Ok(s)) = tokio::time::timeout(deadline, client.status()).await {
            proxies.push((p.name.value.clone(), s));
        }
    }
    let clusters: Vec<(&str, &[TableInfo], &[LinkReport])> =
        answers.iter().map(|(n, t, l)| (n.as_str(), t.as_slice(), l.as_slice())).collect();
    let proxies: Vec<(&str, &ProxyStatus)> = proxies.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let mut observed = observed_from(&clusters, Some(&proxies));
    let policies: Vec<(&str, &[BackupPolicy])> =
        policies.iter().map(|(n, p)| (n.as_str(), p.as_slice())).collect();
    observed.backup_policies = policies_from(&policies);
    observed.topology_versions = versions;
    Ok(observed.versioned())
}
