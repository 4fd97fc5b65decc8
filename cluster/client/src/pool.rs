//! One multiplexed gRPC channel per address, created lazily and shared.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tern_core::{Error, Result};
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Default)]
pub struct Pool {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// The channel to `addr` (`host:port`). Connecting happens on first use and again after a
    /// failure, by tonic.
    pub fn channel(&self, addr: &str) -> Result<Channel> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Error::InvalidArgument(format!("bad address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = endpoint.connect_lazy();
        map.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Forgets the channel to `addr` (after its server restarted, say).
    pub fn forget(&self, addr: &str) {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).remove(addr);
    }
}
