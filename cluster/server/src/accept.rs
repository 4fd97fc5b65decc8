//! The replica server's one listening port: each accepted connection is either a peer link
//! (read here, its messages delivered to the replicas) or a gRPC connection (handed to tonic).

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::peer_wire::{self, Accepted};
use crate::services::Services;

/// Accepts connections until the gRPC server stops taking them; gRPC ones go to `grpc`.
pub async fn run(listener: TcpListener, services: Services, grpc: mpsc::Sender<std::io::Result<TcpStream>>) {
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
        let (services, grpc) = (services.clone(), grpc.clone());
        tokio::spawn(async move {
            match peer_wire::classify(stream).await {
                Ok(Accepted::Peer(stream)) => serve_link(&services, stream).await,
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
async fn serve_link(services: &Services, stream: TcpStream) {
    if let Err(e) = peer_wire::tune(&stream) {
        tracing::debug!("cannot tune a peer link's socket: {e}");
    }
    let mut stopping = services.node.stopping();
    let read = peer_wire::read_link(stream, |batch| {
        for env in batch.envelopes {
            services.on_peer_envelope(env);
        }
    });
    tokio::select! {
        r = read => if let Err(e) = r {
            tracing::debug!("a peer link ended: {e}");
        },
        _ = stopping.wait_for(|s| *s) => {}
    }
}
