//! The etcd v3 target, for comparison: a put per write, a range of one key per read, through a
//! hand-written subset of etcd's KV API (`proto/etcd_kv.proto`).
//!
//! Why not the `etcd-client` crate: its version for tonic 0.14 builds etcd's whole API (and
//! Google's annotations) with a `protoc` found on the system, where this workspace builds every
//! proto with the vendored one; two RPCs do not need it.
//!
//! Reads are linearizable (`serializable: false`, etcd's default), as Tern's reads from the
//! primary are. Operations go round-robin over the endpoints, one channel each, as etcd's own
//! client balances: a member that does not lead forwards to the leader.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::{BenchError, OpError, with_timeout};
use crate::runner::{ReadOutcome, Target};

/// Generated code of `proto/etcd_kv.proto`.
#[allow(clippy::all, missing_debug_implementations, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;
use pb::{PutRequest, RangeRequest};

#[derive(Debug)]
pub struct EtcdTarget {
    clients: Vec<(String, KvClient<Channel>)>,
    next: AtomicUsize,
}

impl EtcdTarget {
    /// `endpoints`: client URLs (`http://host:port`) or `host:port`s of the members.
    pub fn new(endpoints: &[String]) -> Result<EtcdTarget, BenchError> {
        if endpoints.is_empty() {
            return Err(BenchError::Config("--endpoints: give at least one etcd endpoint".into()));
        }
        let clients = endpoints
            .iter()
            .map(|e| {
                let url = if e.contains("://") { e.clone() } else { format!("http://{e}") };
                let endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|err| BenchError::Config(format!("etcd endpoint {e:?}: {err}")))?
                    .connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true);
                Ok((url, KvClient::new(endpoint.connect_lazy())))
            })
            .collect::<Result<Vec<_>, BenchError>>()?;
        Ok(EtcdTarget { clients, next: AtomicUsize::new(0) })
    }

    fn client(&self) -> KvClient<Channel> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        self.clients[i].1.clone()
    }
}

impl Target for EtcdTarget {
    fn name(&self) -> &'static str {
        "etcd"
    }

    async fn check(&self) -> Result<(), BenchError> {
        // Every endpoint, so that a typo in one is reported now, not as errors of a third of
        // the operations.
        for (url, client) in &self.clients {
            let req =
                RangeRequest { key: b"tern-bench-check".to_vec(), count_only: true, ..Default::default() };
            let mut c = client.clone();
            match tokio::time::timeout(Duration::from_secs(5), c.range(req)).await {
                Ok(Ok(_)) => {}
                Ok(Err(status)) => {
                    return Err(BenchError::Unreachable {
                        target: "etcd",
                        detail: format!("{url}: {status}"),
                    });
                }
                Err(_) => {
                    return Err(BenchError::Unreachable {
                        target: "etcd",
                        detail: format!("{url}: no answer in 5 s"),
                    });
                }
            }
        }
        Ok(())
    }

    async fn write(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), OpError> {
        let mut c = self.client();
        with_timeout(c.put(PutRequest { key, value, ..Default::default() })).await.map(|_| ())
    }

    async fn read(&self, key: Vec<u8>) -> Result<ReadOutcome, OpError> {
        let mut c = self.client();
        let r = with_timeout(c.range(RangeRequest { key, ..Default::default() })).await?;
        Ok(if r.kvs.is_empty() { ReadOutcome::Missing } else { ReadOutcome::Found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The field numbers are etcd's: pin the bytes of a put and a range.
    #[test]
    fn wire_format_is_etcds() {
        let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
        // field 1 (key), length 1, 'k'; field 2 (value), length 1, 'v'.
        assert_eq!(put.encode_to_vec(), vec![0x0a, 1, b'k', 0x12, 1, b'v']);
        let range =
            RangeRequest { key: b"k".to_vec(), serializable: true, count_only: true, ..Default::default() };
        // field 1 (key); field 7 (serializable) varint 1; field 9 (count_only) varint 1.
        assert_eq!(range.encode_to_vec(), vec![0x0a, 1, b'k', 0x38, 1, 0x48, 1]);
        let reply = pb::RangeResponse {
            kvs: vec![pb::KeyValue { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() }],
            ..Default::default()
        };
        // kvs is field 2; in KeyValue, key is 1 and value 5.
        assert_eq!(reply.encode_to_vec(), vec![0x12, 6, 0x0a, 1, b'k', 0x2a, 1, b'v']);
    }

    #[tokio::test]
    async fn endpoints_are_urls_or_host_ports() {
        let t = EtcdTarget::new(&["127.0.0.1:2379".to_string(), "http://127.0.0.1:2380".to_string()]);
        let urls: Vec<String> =
            t.map(|t| t.clients.iter().map(|(u, _)| u.clone()).collect()).unwrap_or_default();
        assert_eq!(urls, vec!["http://127.0.0.1:2379", "http://127.0.0.1:2380"]);
        assert!(EtcdTarget::new(&[]).is_err());
    }
}
