//! Bringing a started local deployment into service, through the admin client only: wait for
//! the replica servers to join, create the table, link every pair of clusters both ways (with
//! rollback), make the table a standby in all but the first cluster, and wait for the links to
//! start shipping. Each step is idempotent, so `up` on an existing directory repeats them
//! harmlessly; each wait reports what it waits for and has a deadline.

use std::time::Duration;

use tern_client::AdminClient;
use tern_client::admin::{LinkReport, NewLink};
use tern_core::{DrRole, Error, ErrorCode, LinkMode, LinkStatus, Result};
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

/// Creates `table` in `c` unless it exists (dropped or not). Returns whether it created it.
pub async fn ensure_table(c: &ClusterState, table: &str, partitions: u32, replicas: u32) -> Result<bool> {
    let admin = admin(c)?;
    if admin.list_tables().await?.iter().any(|t| t.name == table) {
        return Ok(false);
    }
    admin.create_table(table, partitions, replicas).await?;
    Ok(true)
}

/// Whether `links` hold a live link on `table` to cluster `to`.
fn links_to(links: &[LinkReport], table: &str, to: &str) -> bool {
    links
        .iter()
        .map(|l| &l.link)
        .any(|l| l.remote_cluster == to && l.table_name == table && l.status != LinkStatus::Removed)
}

/// Links `table` of `a` and `b` both ways, unless they are. A missing pair is added with
/// rollback (`AdminClient::add_two_way`); a pair missing one direction (left by an older
/// version) gets that one. Returns whether anything was added.
pub async fn link_pair(a: &ClusterState, b: &ClusterState, table: &str) -> Result<bool> {
    let (admin_a, admin_b) = (admin(a)?, admin(b)?);
    let ab = links_to(&admin_a.links(None).await?, table, &b.name);
    let ba = links_to(&admin_b.links(None).await?, table, &a.name);
    let link = |to: &ClusterState| NewLink {
        table: table.to_string(),
        remote_cluster: to.name.clone(),
        remote_metas: to.meta_addrs(),
        remote_table: None,
        full_sync: false,
        max_bytes_per_sec: 0,
        mode: LinkMode::TwoWay,
    };
    match (ab, ba) {
        (true, true) => return Ok(false),
        (false, false) => {
            admin_a.add_two_way(&link(b)).await?;
        }
        (false, true) => {
            admin_a.add_link(&link(b)).await?;
        }
        (true, false) => {
            admin_b.add_link(&link(a)).await?;
        }
    }
    Ok(true)
}

/// Makes `table` a standby in `c` at epoch 1, the first time only: a compare-and-set from
/// epoch 0, so a later run, or a role an operator changed, is left alone. Returns whether it
/// changed the role.
pub async fn make_standby(c: &ClusterState, table: &str) -> Result<bool> {
    match admin(c)?.set_table_role(table, DrRole::Standby, 1, Some(0)).await {
        Ok(_) => Ok(true),
        Err(e) if e.code() == ErrorCode::EpochConflict => Ok(false),
        Err(e) => Err(e),
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
