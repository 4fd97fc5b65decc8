//! The peer link's wire: replica protocol messages between replica servers travel as
//! length-prefixed frames on a plain TCP connection to the peer's one listening port, not as a
//! gRPC stream.
//!
//! A connection that opens with [`MAGIC`] is a peer link; any other (HTTP/2 opens with `PRI *`)
//! goes to the gRPC services on the same port. After the magic, each frame is a 4-byte
//! big-endian length and a `PeerBatch` (protobuf). Links are one-way: the sender only writes,
//! the receiver only reads. A gRPC stream cost each message two more task hand-offs (the HTTP/2
//! connection tasks on both sides) and ~140 µs on a loaded 2-core machine; see
//! `docs/decisions.md`, "Peer links speak length-prefixed frames, not gRPC".

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use socket2::{SockRef, TcpKeepalive};
use tern_proto::pb;
use tern_proto::prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// What a peer link's connection starts with (and what no HTTP/2 connection starts with).
pub const MAGIC: &[u8; 8] = b"TERNPR01";
/// The largest frame either side accepts: a learner's catch-up batch of log entries.
const MAX_FRAME: usize = 256 << 20;
/// A connection that has not sent enough to tell what it is within this time is closed.
const CLASSIFY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec()
}

/// Nagle off (a frame is one write; nothing waits for more) and TCP keepalive, so that a peer
/// that vanished without closing (power loss, a partition) ends the connection in ~25 s.
pub fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// The sending end of a peer link.
pub struct LinkWriter {
    frames: FramedWrite<TcpStream, LengthDelimitedCodec>,
}

impl LinkWriter {
    /// Connects to the replica server at `addr` (`host:port`) and opens a peer link.
    pub async fn connect(addr: &str) -> io::Result<LinkWriter> {
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {addr}")))??;
        tune(&stream)?;
        stream.write_all(MAGIC).await?;
        Ok(LinkWriter { frames: FramedWrite::new(stream, codec()) })
    }

    /// Writes one batch as one frame (one `write` when the socket has room).
    pub async fn send(&mut self, batch: &pb::PeerBatch) -> io::Result<()> {
        self.frames.send(Bytes::from(batch.encode_to_vec())).await
    }
}

/// What an accepted connection turned out to be.
pub enum Accepted {
    /// A peer link, its magic consumed: read it with [`read_link`].
    Peer(TcpStream),
    /// Anything else, untouched: for the gRPC server.
    Other(TcpStream),
}

/// Tells a peer link from anything else by the connection's first bytes, without consuming
/// them unless they are the magic.
pub async fn classify(mut stream: TcpStream) -> io::Result<Accepted> {
    let deadline = tokio::time::Instant::now() + CLASSIFY_TIMEOUT;
    let mut head = [0u8; MAGIC.len()];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut head))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "a connection sent nothing"))??;
        if n == 0 || head[..n] != MAGIC[..n] {
            // Closed before a byte, or not the magic: whoever it is, gRPC answers it.
            return Ok(Accepted::Other(stream));
        }
        if n == MAGIC.len() {
            let mut magic = [0u8; MAGIC.len()];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut magic).await?;
            return Ok(Accepted::Peer(stream));
        }
        // A prefix of the magic so far: the rest is on its way.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Reads a peer link's batches until the peer closes it (`Ok`) or it breaks (`Err`), handing
/// each to `deliver`.
pub async fn read_link(stream: TcpStream, mut deliver: impl FnMut(pb::PeerBatch)) -> io::Result<()> {
    let mut frames = FramedRead::new(stream, codec());
    while let Some(frame) = frames.next().await {
        let batch = pb::PeerBatch::decode(frame?).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("a malformed peer batch: {e}"))
        })?;
        deliver(batch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u64) -> pb::PeerBatch {
        let envelopes = (0..n)
            .map(|i| pb::PeerEnvelope { gpid: None, from: i, message: vec![i as u8; i as usize] })
            .collect();
        pb::PeerBatch { envelopes }
    }

    #[tokio::test]
    async fn a_link_carries_batches_in_order_and_other_connections_pass_untouched() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sender = tokio::spawn({
            let addr = addr.clone();
            async move {
                let mut link = LinkWriter::connect(&addr).await.unwrap();
                for n in 1..=3 {
                    link.send(&batch(n)).await.unwrap();
                }
            }
        });
        let (stream, _) = listener.accept().await.unwrap();
        let Accepted::Peer(stream) = classify(stream).await.unwrap() else { panic!("not a peer link") };
        let mut got = Vec::new();
        read_link(stream, |b| got.push(b)).await.unwrap();
        sender.await.unwrap();
        assert_eq!(got, vec![batch(1), batch(2), batch(3)]);

        // An HTTP/2 client's preface is left for the gRPC server to read.
        let mut client = TcpStream::connect(&addr).await.unwrap();
        client.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let Accepted::Other(mut stream) = classify(stream).await.unwrap() else {
            panic!("taken as a peer link")
        };
        let mut head = [0u8; 3];
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut head).await.unwrap();
        assert_eq!(&head, b"PRI");
    }

    #[tokio::test]
    async fn a_corrupt_frame_ends_the_link_with_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(MAGIC).await.unwrap();
        // A frame of 3 bytes that are not a `PeerBatch` (field 15, wire type 7: invalid).
        client.write_all(&[0, 0, 0, 3, 0x7f, 0xff, 0xff]).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let Accepted::Peer(stream) = classify(stream).await.unwrap() else { panic!("not a peer link") };
        let err = read_link(stream, |_| panic!("nothing valid was sent")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }
}
