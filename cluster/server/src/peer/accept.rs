//! The replica server's one listening port: each accepted connection is either a peer link
//! (read here, its messages delivered to the replicas) or a gRPC connection (handed to tonic).

use std::sync::Arc;
use std::time::Duration;

use tern_proto::pb;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::wire::{self, Accepted};

/// Where a peer link's messages go (the replicas they are for).
pub type Deliver = Arc<dyn Fn(pb::PeerEnvelope) + Send + Sync>;

/// Accepts connections until the gRPC server stops taking them: peer links are read here and
/// their messages handed to `deliver` until `stopping`; gRPC connections go to `grpc`.
pub async fn run(
    listener: TcpListener,
    deliver: Deliver,
    stopping: watch::Receiver<bool>,
    grpc: mpsc::Sender<std::io::Result<TcpStream>>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = grpc.closed() => return,
        };
        let (deliver, stopping, grpc) = (deliver.clone(), stopping.clone(), grpc.clone());
        tokio::spawn(async move {
            match wire::classify(stream).await {
                Ok(Accepted::Peer(stream)) => serve_link(&deliver, stopping, stream).await,
                Ok(Accepted::Other(stream)) => {
                    // Nagle's algorithm would hold small replies back until the peer's delayed
                    // ACK (up to 40 ms).
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!("cannot turn Nagle off on an accepted connection: {e}");
                    }
                    let _ = grpc.send(Ok(stream)).await;
                }
                Err(e) => tracing::debug!("dropped an accepted connection: {e}"),
            }
        });
    }
}

/// Delivers a peer link's messages to the replicas until the peer closes it or this server stops.
async fn serve_link(deliver: &Deliver, mut stopping: watch::Receiver<bool>, stream: TcpStream) {
    if let Err(e) = wire::tune(&stream) {
        tracing::debug!("cannot tune a peer link's socket: {e}");
    }
    let read = wire::read_link(stream, |batch| {
        for env in batch.envelopes {
            deliver(env);
        }
    });
    tokio::select! {
        r = read => if let Err(e) = r {
            tracing::debug!("a peer link ended: {e}");
        },
        _ = stopping.wait_for(|s| *s) => {}
    }
}
