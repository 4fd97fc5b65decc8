//! The RPC-ceiling baseline: a gRPC service that only answers, served by a separate process
//! (as Tern's servers are), so that `tern bench --target echo` measures what one round trip of
//! tonic over loopback costs on this machine with the same generator and measurement.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::error::{BenchError, OpError, with_timeout};
use crate::runner::{ReadOutcome, Target};

/// Generated code of `proto/echo.proto`.
#[allow(clippy::all, missing_debug_implementations, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("tern.bench.v1");
}

use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest};

/// Largest reply the server makes on request (Tern's own value limit is 1 MiB).
const MAX_REPLY_BYTES: u32 = 16 << 20;

#[derive(Clone, Copy, Debug, Default)]
struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let r = request.into_inner();
        let payload = match r.reply_bytes {
            0 => r.payload,
            n if n > MAX_REPLY_BYTES => {
                return Err(Status::invalid_argument(format!("reply_bytes {n} is over {MAX_REPLY_BYTES}")));
            }
            n => vec![b'v'; n as usize],
        };
        Ok(Response::new(EchoReply { payload }))
    }
}

/// Serves the echo service on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), BenchError> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(EchoServer::new(EchoService))
        .serve_with_incoming_shutdown(
            // Nagle off, as in Tern's servers (the builder's setting does not reach this stream).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| BenchError::EchoServer(format!("serve: {e}")))
}

/// The echo server as a child process, killed when dropped (also when the run fails).
///
/// Protocol with the child: it prints its bound address as the first line of stdout, and exits
/// when its stdin closes, so it cannot outlive this process even if this one is killed.
#[derive(Debug)]
pub struct EchoServerProcess {
    child: Child,
    _stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl EchoServerProcess {
    /// Starts `command` (e.g. `tern bench-echo-server --listen 127.0.0.1:0`) and waits for the
    /// address it prints.
    pub fn spawn(mut command: Command) -> Result<EchoServerProcess, BenchError> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::EchoServer(format!("start {command:?}: {e}")))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        let read = match child.stdout.take() {
            Some(out) => BufReader::new(out).read_line(&mut line).map_err(|e| e.to_string()),
            None => Err("no stdout".to_string()),
        };
        let addr = read.and_then(|_| {
            line.trim().parse::<SocketAddr>().map_err(|_| format!("printed {line:?}, not an address"))
        });
        let mut process =
            EchoServerProcess { child, _stdin: stdin, addr: SocketAddr::from(([0, 0, 0, 0], 0)) };
        match addr {
            Ok(a) => {
                process.addr = a;
                Ok(process)
            }
            // Dropping `process` kills the child.
            Err(e) => Err(BenchError::EchoServer(format!("it did not say where it listens: {e}"))),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The echo server process (`tern bench-echo-server`): binds `listen`, prints the bound
/// address on stdout, serves until stdin closes.
pub async fn run_server(listen: SocketAddr) -> Result<(), BenchError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| BenchError::EchoServer(format!("listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| BenchError::EchoServer(format!("bound address: {e}")))?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{addr}")
            .and_then(|()| out.flush())
            .map_err(|e| BenchError::EchoServer(format!("print the address: {e}")))?;
    }
    serve(listener, stdin_closed()).await
}

/// Waits until stdin is closed (the parent `tern bench` exited or dropped its end).
pub async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await;
}

/// The client side: one channel (one HTTP/2 connection, as Tern's client has per server).
/// A write sends key and value and gets them back; a read sends the key and gets `value_size`
/// bytes back, as a get would.
#[derive(Debug)]
pub struct EchoTarget {
    client: EchoClient<Channel>,
    value_size: u32,
}

impl EchoTarget {
    pub fn new(addr: SocketAddr, value_size: usize) -> Result<EchoTarget, BenchError> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| BenchError::Config(format!("echo server address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let value_size = u32::try_from(value_size)
            .ok()
            .filter(|n| *n <= MAX_REPLY_BYTES)
            .ok_or_else(|| BenchError::Config(format!("echo values are at most {MAX_REPLY_BYTES} bytes")))?;
        Ok(EchoTarget { client: EchoClient::new(endpoint.connect_lazy()), value_size })
    }

    async fn call(&self, payload: Vec<u8>, reply_bytes: u32) -> Result<EchoReply, OpError> {
        let mut c = self.client.clone();
        with_timeout(c.echo(EchoRequest { payload, reply_bytes })).await
    }
}

impl Target for EchoTarget {
    fn name(&self) -> &'static str {
        "echo"
    }

    async fn check(&self) -> Result<(), BenchError> {
        self.call(b"check".to_vec(), 0)
            .await
            .map(|_| ())
            .map_err(|e| BenchError::Unreachable { target: "the echo server", detail: e.code.to_string() })
    }

    async fn write(&self, mut key: Vec<u8>, value: Vec<u8>) -> Result<(), OpError> {
        key.extend_from_slice(&value);
        self.call(key, 0).await.map(|_| ())
    }

    async fn read(&self, key: Vec<u8>) -> Result<ReadOutcome, OpError> {
        let reply = self.call(key, self.value_size).await?;
        if reply.payload.len() == self.value_size as usize {
            Ok(ReadOutcome::Found)
        } else {
            Err(OpError::new("UNEXPECTED_REPLY"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::runner::{RunConfig, Runner};
    use crate::workload::{Distribution, Workload};

    #[tokio::test]
    async fn echo_round_trips_in_process() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stopped.await;
        }));
        let target = Arc::new(EchoTarget::new(addr, 100).unwrap());
        let cfg = RunConfig {
            workload: Workload::A,
            keys: 100,
            value_size: 100,
            concurrency: 4,
            duration: None,
            ops: Some(200),
            rate: None,
            warmup: Duration::ZERO,
            distribution: Distribution::Uniform,
            seed: 1,
        };
        let report = Runner::new(cfg).run(target).await.unwrap();
        assert_eq!(report.total.ops, 200);
        assert_eq!(report.total.errors, 0);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
