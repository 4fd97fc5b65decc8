//! The waits of a local deployment, through the admin client only: the replica servers joined,
//! a listener accepting connections, the duplication links started, the DR leases held. (The
//! tables, roles and links themselves are made by `apply`.) Each wait has a deadline and says
//! what it waited for.

use std::time::Duration;

use tern_client::AdminClient;
use tern_core::{Error, LinkStatus, Result};
use tokio::time::Instant;

use super::state::ClusterState;

const POLL: Duration = Duration::from_millis(200);

pub fn admin(c: &ClusterState) -> Result<AdminClient> {
    AdminClient::connect(c.meta_addrs())
}

/// Waits until `replicas` replica servers of `c` are alive.
pub async fn wait_joined(c: &ClusterState, replicas: usize, within: Duration) -> Result<()> {
    // One call keeps trying for no longer than the whole wait.
    let admin = admin(c)?.with_deadline(within.min(Duration::from_secs(10)));
    let deadline = Instant::now() + within;
    loop {
        let status = admin.cluster_status().await;
        let alive = |s: &tern_client::admin::ClusterStatus| s.nodes.iter().filter(|n| n.alive).count();
        match status {
            Ok(s) if alive(&s) >= replicas => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            Ok(s) => {
                return Err(Error::Timeout(format!(
                    "only {} of {replicas} replica servers joined",
                    alive(&s)
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until every partition of every shipping link of `c` has started: a link ships what
/// is written after that, so the deployment is ready for a first write only then.
pub async fn wait_links_started(c: &ClusterState, within: Duration) -> Result<()> {
    let admin = admin(c)?;
    let deadline = Instant::now() + within;
    loop {
        let links = admin.links(None).await?;
        let started = links
            .iter()
            .map(|l| &l.link)
            .filter(|l| l.status == LinkStatus::Shipping)
            .all(|l| l.started.iter().all(|s| *s));
        if started {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "the duplication links of cluster {} did not start within {} s",
                c.name,
                within.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every active table of `c` holds the cluster's DR lease (a cluster without DR
/// voters has none to wait for): only then does a first write succeed at once.
pub async fn wait_dr_lease(c: &ClusterState, within: Duration) -> Result<()> {
    let admin = admin(c)?;
    let deadline = Instant::now() + within;
    loop {
        let lease = admin.dr_lease().await?;
        let missing: Vec<String> = lease
            .tables
            .iter()
            .filter(|t| lease.waiver.is_none() && t.lease_left_ms == 0)
            .map(|t| format!("{}: {}", t.table, t.detail))
            .collect();
        if !lease.used || missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "cluster {} did not get its DR lease within {} s ({})",
                c.name,
                within.as_secs(),
                missing.join("; ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until something accepts TCP connections on `addr` (`what` names it in the error).
pub async fn wait_listening(addr: &str, what: &str, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::Timeout(format!(
                    "{what} did not listen on {addr} within {} s: {e}",
                    within.as_secs()
                )));
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
