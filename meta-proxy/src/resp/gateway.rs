//! The listener and the connections of the Redis gateway.
//!
//! A connection reads into one buffer, parses every complete request in it (a pipeline), runs
//! them, and writes all their replies in one buffer, in request order. Requests run
//! concurrently except where they share a key: there a request waits for the earlier ones it
//! must follow (a read for earlier writes of its keys, a write for every earlier use), so a
//! pipeline behaves as if run one request at a time. Memory is bounded per connection: one
//! request's size ([`Limits`], [`MAX_REQUEST_BYTES`]) and [`MAX_BATCH`] requests at a time (the
//! rest wait in the socket).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared, join_all};
use tern_client::TernClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::coalesce::Coalescer;
use super::commands::{Conn, Step, plan};
use super::{Limits, ParseError, Reply, parse_request};

/// Most requests run as one batch; more wait for the next.
pub const MAX_BATCH: usize = 512;
/// A request larger than this (all its arguments) is a protocol error.
pub const MAX_REQUEST_BYTES: usize = 128 << 20;
/// How long connections get to finish the batch they are running when the proxy stops.
const DRAIN: Duration = Duration::from_secs(5);

/// `tern proxy --resp-listen`: where to listen and which table each database is.
#[derive(Clone, Debug)]
pub struct RespOptions {
    pub listen: SocketAddr,
    /// Database number → table (`SELECT n`). Connections start in database 0, which must be
    /// mapped.
    pub dbs: BTreeMap<u32, String>,
}

/// What every connection shares.
#[derive(Debug)]
pub struct Gateway {
    reads: Arc<Coalescer>,
    dbs: BTreeMap<u32, String>,
    limits: Limits,
    next_id: AtomicU64,
}

impl Gateway {
    pub fn new(client: TernClient, dbs: BTreeMap<u32, String>) -> Gateway {
        let reads = Coalescer::new(Arc::new(client));
        Gateway { reads, dbs, limits: Limits::default(), next_id: AtomicU64::new(1) }
    }

    pub fn client(&self) -> &TernClient {
        self.reads.client()
    }

    /// Where reads go (batched with the reads in flight at the same time).
    pub(crate) fn reads(&self) -> &Arc<Coalescer> {
        &self.reads
    }

    pub fn table(&self, db: u32) -> Option<&str> {
        self.dbs.get(&db).map(String::as_str)
    }
}

/// Serves connections until `shutdown` completes; then stops accepting, lets each connection
/// finish the batch it is running (up to [`DRAIN`]) and closes them.
pub async fn serve(listener: TcpListener, gw: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    let (stop, stopped) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    conns.spawn(connection(gw.clone(), sock, peer, stopped.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("redis gateway: accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!("redis gateway: closing {} connections still busy after {DRAIN:?}", conns.len());
        conns.shutdown().await;
    }
}

async fn connection(gw: Arc<Gateway>, sock: TcpStream, peer: SocketAddr, stopped: watch::Receiver<bool>) {
    let id = gw.next_id.fetch_add(1, Ordering::Relaxed);
    match serve_connection(&gw, sock, id, stopped).await {
        Ok(()) => tracing::debug!(%peer, id, "redis connection closed"),
        Err(e) => tracing::debug!(%peer, id, "redis connection: {e}"),
    }
}

async fn serve_connection(
    gw: &Gateway,
    mut sock: TcpStream,
    id: u64,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut conn = Conn { id, db: 0, name: None, quit: false };
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut out = Vec::new();
    loop {
        let (requests, used, end) = parse_batch(&buf, &gw.limits);
        if !requests.is_empty() {
            out.clear();
            execute(gw, &mut conn, &requests, &mut out).await;
            sock.write_all(&out).await?;
            if conn.quit {
                return Ok(());
            }
        }
        buf.drain(..used);
        match end {
            BatchEnd::Full => continue,
            BatchEnd::Bad(e) => return protocol_error(&mut sock, &e.to_string()).await,
            BatchEnd::NeedMore if buf.len() > MAX_REQUEST_BYTES => {
                return protocol_error(&mut sock, "Protocol error: too big request").await;
            }
            BatchEnd::NeedMore => {}
        }
        // Read more; a large request in progress gets a larger read each time (so parsing it
        // again after each read stays cheap).
        buf.reserve((16 << 10).max(buf.len()));
        tokio::select! {
            n = sock.read_buf(&mut buf) => if n? == 0 { return Ok(()) },
            _ = stopped.changed() => return Ok(()),
        }
    }
}

/// Why parsing stopped.
enum BatchEnd {
    /// The rest of the buffer is an incomplete request (or nothing).
    NeedMore,
    /// [`MAX_BATCH`] requests parsed; more may be complete.
    Full,
    Bad(ParseError),
}

/// The complete requests at the start of `buf`, the bytes they took, and why parsing stopped.
/// Empty requests are skipped, as Redis does.
fn parse_batch(buf: &[u8], limits: &Limits) -> (Vec<Vec<Vec<u8>>>, usize, BatchEnd) {
    let mut requests = Vec::new();
    let mut used = 0;
    while requests.len() < MAX_BATCH {
        match parse_request(&buf[used..], limits) {
            Ok(Some((args, n))) => {
                used += n;
                if !args.is_empty() {
                    requests.push(args);
                }
            }
            Ok(None) => return (requests, used, BatchEnd::NeedMore),
            Err(e) => return (requests, used, BatchEnd::Bad(e)),
        }
    }
    (requests, used, BatchEnd::Full)
}

/// A malformed request: Redis replies with the error and closes the connection.
async fn protocol_error(sock: &mut TcpStream, msg: &str) -> std::io::Result<()> {
    let mut out = Vec::new();
    Reply::Error(format!("ERR {msg}")).encode(&mut out);
    sock.write_all(&out).await?;
    sock.shutdown().await?;
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string()))
}

type Pending<'a> = Shared<BoxFuture<'a, Arc<Reply>>>;

/// Which earlier requests of a batch used a key.
#[derive(Debug, Default)]
struct KeyUse {
    last_write: Option<usize>,
    /// Reads since the last write.
    reads: Vec<usize>,
}

/// The earlier requests that request `i` (touching `keys`, writing them if `write`) must run
/// after: for a read, the last write of each key; for a write, that and every read since.
/// Records request `i`'s own use. A key named twice in one request (`DEL k k`) is one use.
fn order_after<'k>(
    uses: &mut HashMap<&'k [u8], KeyUse>,
    i: usize,
    keys: &[&'k [u8]],
    write: bool,
) -> Vec<usize> {
    let mut after = Vec::new();
    for &k in keys {
        let u = uses.entry(k).or_default();
        after.extend(u.last_write);
        if write {
            after.append(&mut u.reads);
            u.last_write = Some(i);
        } else {
            u.reads.push(i);
        }
    }
    after.retain(|&j| j < i);
    after.sort_unstable();
    after.dedup();
    after
}

/// Runs a batch of requests and appends their replies to `out`, in request order.
///
/// Planned first, so that only a request a later one waits for becomes a [`Shared`] future (in
/// a pipeline of GETs, none does: the shared machinery was ~10 % of the gateway's CPU).
pub async fn execute(gw: &Gateway, conn: &mut Conn, requests: &[Vec<Vec<u8>>], out: &mut Vec<u8>) {
    let mut planned: Vec<(Step<'_>, Vec<usize>)> = Vec::with_capacity(requests.len());
    let mut waited_for = vec![false; requests.len()];
    let mut uses: HashMap<&[u8], KeyUse> = HashMap::new();
    for args in requests {
        if conn.quit {
            break;
        }
        let step = plan(gw, conn, args);
        let after = match &step {
            Step::Now(_) => Vec::new(),
            Step::Run { keys, write, .. } => order_after(&mut uses, planned.len(), keys, *write),
        };
        for &j in &after {
            waited_for[j] = true;
        }
        planned.push((step, after));
    }
    let mut shared: Vec<Option<Pending<'_>>> = Vec::with_capacity(planned.len());
    let mut all: Vec<BoxFuture<'_, Arc<Reply>>> = Vec::with_capacity(planned.len());
    for (i, (step, after)) in planned.into_iter().enumerate() {
        let fut = match step {
            Step::Now(reply) => futures::future::ready(Arc::new(reply)).boxed(),
            Step::Run { fut, .. } if after.is_empty() => fut.map(Arc::new).boxed(),
            Step::Run { fut, .. } => {
                let after: Vec<Pending<'_>> = after
                    .iter()
                    .map(|&j| shared[j].clone().expect("a request that others wait for is shared"))
                    .collect();
                async move {
                    join_all(after).await;
                    Arc::new(fut.await)
                }
                .boxed()
            }
        };
        if waited_for[i] {
            let fut = fut.shared();
            shared.push(Some(fut.clone()));
            all.push(fut.boxed());
        } else {
            shared.push(None);
            all.push(fut);
        }
    }
    for reply in join_all(all).await {
        reply.encode(out);
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
