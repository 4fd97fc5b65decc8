//! What a replica server is told at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern_core::{ClusterId, Limits};
use tern_rocks::RocksConfig;

use crate::log::GroupPolicy;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Address to listen on for clients and peers.
    pub listen: SocketAddr,
    /// Address other processes use to reach this one (default: `listen`).
    pub advertise: Option<String>,
    /// Every meta server's `host:port`.
    pub meta: Vec<String>,
    /// Where replicas, logs and the node identity live.
    pub data_dir: PathBuf,
    /// This cluster's id (1..=127); the meta server must agree.
    pub cluster_id: ClusterId,
    pub beacon_interval: Duration,
    /// How often each replica flushes its store (advancing the durable decree and letting the
    /// log be garbage-collected).
    pub flush_interval: Duration,
    /// Client requests wait at most this long.
    pub request_timeout: Duration,
    pub limits: Limits,
    pub rocks: RocksConfig,
    pub group_commit: GroupPolicy,
    /// Where to serve metrics for Prometheus (`GET /metrics`); none when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// A replica its partition's configuration has left out (moved away by the balancer,
    /// replaced after a failure, drained by a decommission) for this long is closed and its
    /// directory moved to `replicas/garbage/` (see `gc.rs`).
    pub gc_removed_after: Duration,
    /// Directories in `replicas/garbage/` are deleted after this long; until then an operator
    /// can still copy data out of one.
    pub garbage_retention: Duration,
    /// How far ahead of this server's clock another cluster's timetags may be: a duplicated
    /// write further ahead is refused (`CLOCK_AHEAD`), and the clock never moves past it. A jump
    /// of this server's own wall clock by more is logged as an error.
    pub max_clock_offset: Duration,
    /// Test only: added to this server's wall clock (to play a server whose clock is wrong).
    pub test_clock_offset_ms: i64,
}

impl ServerOptions {
    pub fn new(
        listen: SocketAddr,
        meta: Vec<String>,
        data_dir: PathBuf,
        cluster_id: ClusterId,
    ) -> ServerOptions {
        ServerOptions {
            listen,
            advertise: None,
            meta,
            data_dir,
            cluster_id,
            beacon_interval: Duration::from_millis(1_000),
            flush_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            rocks: RocksConfig::default(),
            group_commit: GroupPolicy::default(),
            metrics_listen: None,
            gc_removed_after: Duration::from_secs(300),
            garbage_retention: Duration::from_secs(24 * 3600),
            max_clock_offset: Duration::from_millis(500),
            test_clock_offset_ms: 0,
        }
    }

    pub fn advertised(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.listen.to_string())
    }
}
