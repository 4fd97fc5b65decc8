//! Talking to the meta servers: whichever leads. A non-leader answers `UNAVAILABLE` with the
//! leader's address in `tern-leader`; an unreachable server makes us try the next one.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tern_core::{Error, Result};
use tern_proto::pb::meta_client::MetaClient as PbMetaClient;
use tern_proto::status::leader_hint;
use tonic::transport::Channel;

use crate::pool::Pool;
use crate::transport::error_of;

#[derive(Debug)]
pub struct MetaClient {
    addrs: Mutex<Vec<String>>,
    current: AtomicUsize,
    pool: Pool,
    /// How long one call may keep trying (across servers and redirects).
    pub deadline: Duration,
}

impl MetaClient {
    /// `addrs`: every meta server's `host:port`.
    pub fn new(addrs: Vec<String>) -> Result<MetaClient> {
        if addrs.is_empty() {
            return Err(Error::InvalidArgument("no meta server address given".into()));
        }
        Ok(MetaClient {
            addrs: Mutex::new(addrs),
            current: AtomicUsize::new(0),
            pool: Pool::new(),
            deadline: Duration::from_secs(10),
        })
    }

    fn current_addr(&self) -> String {
        let addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        addrs[self.current.load(Ordering::Relaxed) % addrs.len()].clone()
    }

    fn point_at(&self, addr: &str) {
        let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        match addrs.iter().position(|a| a == addr) {
            Some(i) => self.current.store(i, Ordering::Relaxed),
            None => {
                addrs.push(addr.to_string());
                self.current.store(addrs.len() - 1, Ordering::Relaxed);
            }
        }
    }

    fn next(&self) {
        self.current.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls the leading meta server, following leader hints and failing over between
    /// addresses until `deadline`.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(PbMetaClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(20);
        loop {
            let addr = self.current_addr();
            let client = PbMetaClient::new(self.pool.channel(&addr)?);
            let err = match tokio::time::timeout(Duration::from_secs(5), f(client)).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) => {
                    if let Some(leader) = leader_hint(&status).filter(|l| *l != addr) {
                        self.point_at(&leader);
                        continue;
                    }
                    let e = error_of(&status);
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    e
                }
                Err(_) => Error::Timeout(format!("meta server {addr} did not answer")),
            };
            if start.elapsed() >= self.deadline {
                return Err(Error::Unavailable(format!(
                    "no meta server answered within {:?}: {err}",
                    self.deadline
                )));
            }
            self.next();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// A server that takes the connection, reads the start of a request, and hangs up.
    async fn hangs_up_mid_request() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                drop(s);
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_connection_lost_mid_call_is_retried_as_a_transport_failure() {
        let mut meta = MetaClient::new(vec![hangs_up_mid_request().await]).expect("client");
        meta.deadline = Duration::from_millis(300);
        let e = meta
            .call(|mut c| async move { c.cluster_status(tern_proto::pb::Empty {}).await })
            .await
            .expect_err("nobody answers");
        assert!(e.is_retryable(), "{e:?} ({})", e.code());
        assert!(e.to_string().contains("connection"), "{e}");
    }
}
