//! Peer links: replica protocol messages between replica servers.
//!
//! Read first: `links.rs` (sending: one link per peer, batching, reconnects), `wire.rs` (the
//! frames and how a connection is told from gRPC), `accept.rs` (the one listening port).
//! Invariant: a message may be lost (a congested or broken link drops it) but never reordered
//! within one link; the replication protocol resends what matters.

pub mod accept;
mod links;
pub mod wire;

use std::collections::HashMap;
use std::sync::RwLock;

use tern_core::NodeId;

pub use links::PeerNet;

/// Where each replica server of the cluster listens, as the meta server says.
#[derive(Debug, Default)]
pub struct Addresses(RwLock<HashMap<NodeId, String>>);

impl Addresses {
    pub fn of(&self, n: NodeId) -> Option<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(&n).cloned()
    }

    pub fn learn(&self, addrs: impl IntoIterator<Item = (NodeId, String)>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        for (n, a) in addrs {
            map.insert(n, a);
        }
    }
}
