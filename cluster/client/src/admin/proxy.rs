//! A proxy's status (`ProxyAdmin.Status`): what it routes where, every copy's health and lag,
//! and its last failover decisions.

use std::time::Duration;

use tern_core::{Error, Result};
use tern_proto::pb;
use tern_proto::pb::proxy_admin_client::ProxyAdminClient as PbProxyAdminClient;

use super::ProxyStatus;
use super::convert::proxy_status_from_pb;
use crate::Pool;
use crate::transport::error_of;

/// How long one proxy may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Talks to proxies (`tern proxy`): with several addresses, the first that answers.
#[derive(Debug)]
pub struct ProxyAdminClient {
    addrs: Vec<String>,
    pool: Pool,
}

impl ProxyAdminClient {
    pub fn new(addrs: Vec<String>) -> Result<ProxyAdminClient> {
        if addrs.is_empty() {
            return Err(Error::InvalidArgument("no proxy address given".into()));
        }
        Ok(ProxyAdminClient { addrs, pool: Pool::new() })
    }

    /// The status of the first proxy that answers; if none does, why not, per proxy.
    pub async fn status(&self) -> Result<ProxyStatus> {
        let mut errors = Vec::new();
        for addr in &self.addrs {
            match self.status_of(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        Err(Error::Unavailable(format!("no proxy answered: {}", errors.join("; "))))
    }

    async fn status_of(&self, addr: &str) -> Result<ProxyStatus> {
        let mut c = PbProxyAdminClient::new(self.pool.channel(addr)?);
        let r = tokio::time::timeout(ANSWER_WITHIN, c.status(pb::Empty {}))
            .await
            .map_err(|_| Error::Timeout(format!("no answer within {}s", ANSWER_WITHIN.as_secs())))?
            .map_err(|s| error_of(&s))?;
        proxy_status_from_pb(r.into_inner())
            .map_err(|e| e.context(format!("read the status of proxy {addr}")))
    }
}
