use std::collections::BTreeMap;

use tern_client::{ClientOptions, TernClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[test]
fn a_batch_stops_at_its_limit_and_at_a_bad_request() {
    let l = Limits::default();
    let many = b"PING\r\n".repeat(MAX_BATCH + 3);
    let (reqs, used, end) = parse_batch(&many, &l);
    assert_eq!((reqs.len(), used), (MAX_BATCH, MAX_BATCH * 6));
    assert!(matches!(end, BatchEnd::Full));

    let (reqs, used, end) = parse_batch(b"PING\r\n\r\n*1\r\n$4\r\nPING\r\n*x\r\nPING\r\n", &l);
    assert_eq!(reqs.len(), 2, "the empty request is skipped");
    assert_eq!(used, 22);
    assert!(matches!(end, BatchEnd::Bad(_)));

    let (reqs, used, end) = parse_batch(b"*2\r\n$3\r\nGET\r\n$1\r", &l);
    assert!(reqs.is_empty() && used == 0 && matches!(end, BatchEnd::NeedMore));
}

#[test]
fn requests_wait_only_for_earlier_ones_on_their_keys() {
    let mut uses = HashMap::new();
    let (a, b) = (&b"a"[..], &b"b"[..]);
    assert_eq!(order_after(&mut uses, 0, &[a], false), Vec::<usize>::new(), "GET a");
    assert_eq!(
        order_after(&mut uses, 1, &[b], false),
        Vec::<usize>::new(),
        "GET b: reads do not wait for reads"
    );
    assert_eq!(order_after(&mut uses, 2, &[a], false), Vec::<usize>::new(), "GET a");
    assert_eq!(order_after(&mut uses, 3, &[a, a, b], true), vec![0, 1, 2], "DEL a a b: after every use");
    assert_eq!(order_after(&mut uses, 4, &[b, b], false), vec![3], "EXISTS b b: after the write, not itself");
    assert_eq!(order_after(&mut uses, 5, &[a], true), vec![3], "SET a");
    assert_eq!(order_after(&mut uses, 6, &[b], true), vec![3, 4], "SET b");
    assert_eq!(
        order_after(&mut uses, 7, &[&b"c"[..]], true),
        Vec::<usize>::new(),
        "another key runs at once"
    );
}

/// A gateway on a loopback port whose Tern client points nowhere (only connection commands
/// work), and a way to stop it.
async fn start() -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let client = TernClient::new(ClientOptions::new(vec!["127.0.0.1:1".into()])).unwrap();
    let gw = Arc::new(Gateway::new(client, BTreeMap::from([(0, "t".to_string())])));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, gw, async move {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

/// Sends `bytes` and reads until the gateway closes the connection or `want` bytes came.
async fn exchange(addr: SocketAddr, bytes: &[u8], want: usize) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await.unwrap().unwrap_or(0);
        if n == 0 {
            break true;
        }
        got.extend_from_slice(&chunk[..n]);
        if got.len() >= want {
            break false;
        }
    };
    (got, closed)
}

#[tokio::test]
async fn pipelined_replies_come_in_order_and_garbage_closes_only_its_connection() {
    let (addr, stop, task) = start().await;
    let want = "+PONG\r\n$2\r\nhi\r\n-ERR DB index is out of range\r\n\
                -ERR unknown command 'NOPE', with args beginning with: \r\n";
    let req = b"PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nSELECT 9\r\nNOPE\r\n";
    let (got, _) = exchange(addr, req, want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);

    // A good request, then garbage: the reply, the protocol error, and the connection closes.
    let (got, closed) = exchange(addr, b"PING\r\n*1\r\n$x\r\n", 1 << 20).await;
    assert_eq!(got, b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    let (got, closed) = exchange(addr, b"*3\r\n$3\r\nSET\r\n$99999999999\r\n", 1 << 20).await;
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);

    // QUIT answers, then closes.
    let (got, closed) = exchange(addr, b"QUIT\r\nPING\r\n", 1 << 20).await;
    assert_eq!((got.as_slice(), closed), (&b"+OK\r\n"[..], true));

    // Others are still served.
    let (got, _) = exchange(addr, b"PING\r\n", 7).await;
    assert_eq!(got, b"+PONG\r\n");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_connections() {
    let (addr, stop, task) = start().await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    idle.read_exact(&mut pong).await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).await.unwrap(), 0, "closed by the gateway");
}
