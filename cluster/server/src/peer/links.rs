//! Replica-to-replica messages: one long-lived link per peer server (in order, no per-message
//! RPC; framing in `wire.rs`), reconnected with backoff. A message queued while the link is
//! down, or sent into a link that then breaks, is lost: the replication protocol resends what
//! matters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_core::{Gpid, NodeId};
use tern_proto::convert::gpid_to_pb;
use tern_proto::pb;
use tern_replica::PeerMessage;
use tokio::sync::mpsc;

use super::Addresses;
use super::wire::LinkWriter;

/// Messages waiting for one peer's link.
const QUEUE: usize = 65_536;
/// At most this many messages, or about this many bytes, go in one frame.
const BATCH_MESSAGES: usize = 512;
const BATCH_BYTES: usize = 1 << 20;
/// How long one frame may take to leave before the link is reopened.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The links of this server to its peers, opened on first use.
#[derive(Debug)]
pub struct PeerNet {
    me: NodeId,
    addresses: Arc<Addresses>,
    links: Mutex<HashMap<NodeId, mpsc::Sender<pb::PeerEnvelope>>>,
}

impl PeerNet {
    pub fn new(me: NodeId, addresses: Arc<Addresses>) -> PeerNet {
        PeerNet { me, addresses, links: Mutex::new(HashMap::new()) }
    }

    /// Where peers are (from the meta server).
    pub fn addresses(&self) -> &Arc<Addresses> {
        &self.addresses
    }

    /// Queues `msg` for the replica of `gpid` on `to`; dropped if its link is congested or down
    /// (the replication protocol resends what matters).
    pub fn send(&self, to: NodeId, gpid: Gpid, msg: &PeerMessage) {
        let env = pb::PeerEnvelope {
            gpid: Some(gpid_to_pb(gpid)),
            from: self.me.0,
            message: tern_replica::codec::encode(msg),
        };
        let tx = {
            let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
            links
                .entry(to)
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(link(self.addresses.clone(), to, rx));
                    tx
                })
                .clone()
        };
        if let Err(e) = tx.try_send(env) {
            tracing::debug!(peer = %to, "dropped a message to a congested or closed link: {e}");
        }
    }
}

/// Keeps a link open to `to`, feeding it from `rx`.
async fn link(addresses: Arc<Addresses>, to: NodeId, mut rx: mpsc::Receiver<pb::PeerEnvelope>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(addr) = addresses.of(to) else {
            // Not known yet (the next beacon answer brings it): drop what waits.
            while rx.try_recv().is_ok() {}
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let opened = tokio::time::Instant::now();
        match LinkWriter::connect(&addr).await {
            Ok(wire) => {
                if !feed(wire, &mut rx, to, &addr).await {
                    return; // the server is shutting down
                }
            }
            Err(e) => {
                tracing::debug!(peer = %to, "cannot open a link to {addr}: {e}");
                while rx.try_recv().is_ok() {}
            }
        }
        // A link that failed or broke soon after it opened backs off further; one that lasted
        // starts over.
        if opened.elapsed() > Duration::from_secs(5) {
            backoff = Duration::from_millis(50);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Sends what `rx` brings over `wire` until the link breaks (`true`) or `rx` closes because the
/// server is shutting down (`false`).
async fn feed(
    mut wire: LinkWriter,
    rx: &mut mpsc::Receiver<pb::PeerEnvelope>,
    to: NodeId,
    addr: &str,
) -> bool {
    while let Some(env) = rx.recv().await {
        // Let the tasks already woken with this one (replicas whose appends one log group made
        // durable) queue their messages first: they join this batch.
        tokio::task::yield_now().await;
        // Everything queued meanwhile goes in the same frame: one write, and one wake-up of the
        // receiver, for all the prepares and acks of this moment.
        let mut envelopes = vec![env];
        let mut bytes = envelopes[0].message.len();
        while envelopes.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
            match rx.try_recv() {
                Ok(env) => {
                    bytes += env.message.len();
                    envelopes.push(env);
                }
                Err(_) => break,
            }
        }
        // A peer that takes no bytes for this long is treated as gone (its messages are lost, as
        // on any broken link; the protocol resends).
        match tokio::time::timeout(SEND_TIMEOUT, wire.send(&pb::PeerBatch { envelopes })).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(peer = %to, "link to {addr} broke: {e}");
                return true;
            }
            Err(_) => {
                tracing::debug!(peer = %to, "link to {addr} took nothing for {SEND_TIMEOUT:?}");
                return true;
            }
        }
    }
    false
}
