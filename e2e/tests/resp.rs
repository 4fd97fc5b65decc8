//! The Redis gateway of `tern proxy` (issue #6, part 5) against a real `redis-server`: the same
//! commands, one by one and as one pipeline, get the same replies from both (errors included;
//! TTLs within a second, Tern's granularity), keys expire on both, `redis-cli` works the same
//! (its startup too), and malformed requests get Redis's error and a closed connection without
//! disturbing other connections.
//!
//! Needs `redis-server` and `redis-cli` (scripts/install-test-deps.sh); fails without them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{ConnectionLike, Value};
use tern_e2e::ports::free_addr;
use tern_e2e::process::Process;
use tern_e2e::redis_server::{RedisServer, redis_cli, require};
use tern_e2e::{Cluster, ClusterOptions, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `tern proxy` with the gateway; prints the tail of its log if the test fails.
struct Proxy {
    process: Process,
    resp_port: u16,
}

impl Proxy {
    fn start(dir: &Path, clusters: &str, extra: &[&str]) -> Proxy {
        let (addr, resp) = (free_addr(), free_addr());
        let resp_port = resp.rsplit(':').next().unwrap().parse().unwrap();
        let mut args = vec!["proxy", "--listen", &addr, "--cluster", clusters, "--resp-listen", &resp];
        args.extend_from_slice(extra);
        let mut process = Process::new(
            "proxy".into(),
            addr.clone(),
            dir.to_path_buf(),
            dir.join("proxy.log"),
            args.iter().map(|s| s.to_string()).collect(),
        );
        process.start();
        Proxy { process, resp_port }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.process.kill9();
        if std::thread::panicking() {
            eprintln!("----- last 30 lines of the proxy's log -----\n{}", self.process.tail(30));
        }
    }
}

/// One request on a fresh connection: the reply bytes up to `want` bytes or until closed.
async fn raw(port: u16, request: &[u8], want: usize) -> Result<(Vec<u8>, bool), String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    s.write_all(request).await.map_err(|e| e.to_string())?;
    read_reply(&mut s, want).await
}

async fn read_reply(s: &mut tokio::net::TcpStream, want: usize) -> Result<(Vec<u8>, bool), String> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .map_err(|_| format!("no reply within 20 s (got {:?})", String::from_utf8_lossy(&got)))?
            .unwrap_or(0);
        if n == 0 {
            return Ok((got, true));
        }
        got.extend_from_slice(&chunk[..n]);
        if got.len() >= want {
            return Ok((got, false));
        }
    }
}

fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let con = client.get_connection_with_timeout(Duration::from_secs(10)).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    con
}

/// A reply as text, to compare and to print.
fn show(v: &Value) -> String {
    match v {
        Value::Nil => "(nil)".into(),
        Value::Int(i) => format!(":{i}"),
        Value::BulkString(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::SimpleString(s) => format!("+{s}"),
        Value::Okay => "+OK".into(),
        Value::ServerError(e) => format!("-{} {}", e.code(), e.details().unwrap_or("")),
        other => format!("{other:?}"),
    }
}

fn request(args: &[Vec<u8>]) -> redis::Cmd {
    let mut c = redis::cmd(&String::from_utf8_lossy(&args[0]));
    for a in &args[1..] {
        c.arg(a.as_slice());
    }
    c
}

fn send(con: &mut redis::Connection, args: &[Vec<u8>]) -> Value {
    con.req_packed_command(&request(args).get_packed_command())
        .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&args.join(&b' '))))
}

/// How two replies must agree.
#[derive(Clone, Copy, Debug)]
enum Cmp {
    Same,
    /// Integers at most this far apart (TTL ±1 s: Tern keeps whole seconds).
    Near(i64),
}

struct Step {
    cmp: Cmp,
    args: Vec<Vec<u8>>,
}

fn same(args: &[&str]) -> Step {
    Step { cmp: Cmp::Same, args: args.iter().map(|a| a.as_bytes().to_vec()).collect() }
}

fn near(tolerance: i64, args: &[&str]) -> Step {
    Step { cmp: Cmp::Near(tolerance), args: args.iter().map(|a| a.as_bytes().to_vec()).collect() }
}

fn agree(cmp: Cmp, gw: &Value, rs: &Value) -> bool {
    match (cmp, gw, rs) {
        (Cmp::Near(t), Value::Int(a), Value::Int(b)) => (a - b).abs() <= t,
        _ => show(gw) == show(rs),
    }
}

/// Runs every step on both; returns the disagreements.
fn compare(gw: &mut redis::Connection, rs: &mut redis::Connection, steps: &[Step]) -> Vec<String> {
    let mut bad = Vec::new();
    for s in steps {
        let (g, r) = (send(gw, &s.args), send(rs, &s.args));
        let text = String::from_utf8_lossy(&s.args.join(&b' ')).into_owned();
        if !agree(s.cmp, &g, &r) {
            bad.push(format!("{text}: gateway {}, redis-server {} ({:?})", show(&g), show(&r), s.cmp));
        }
    }
    bad
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Every command of the gateway, with its options and its errors, in an order where later
/// steps see the effects of earlier ones.
fn script() -> Vec<Step> {
    let exat = (now_ms() / 1000 + 200).to_string();
    let pxat = (now_ms() + 50_000).to_string();
    let mut s = vec![
        same(&["PING"]),
        same(&["PING", "hello"]),
        same(&["PING", "a", "b"]),
        same(&["ECHO", "a b"]),
        same(&["ECHO"]),
        same(&["GET", "missing"]),
        same(&["GET"]),
        // SET and its options.
        same(&["SET", "s1", "v1"]),
        same(&["GET", "s1"]),
        same(&["SET", "s1", "v2", "XX"]),
        same(&["SET", "s1", "v3", "NX"]),
        same(&["SET", "s2", "v", "nx"]),
        same(&["SET", "s3", "v", "XX"]),
        same(&["SET", "s1", "v4", "GET"]),
        same(&["SET", "s4", "v", "GET"]),
        same(&["SET", "s1", "v5", "NX", "GET"]),
        same(&["GET", "s1"]),
        same(&["SET", "s5", "v", "XX", "GET"]),
        same(&["GET", "s5"]),
        same(&["SET", "s1", "v6", "XX", "GET"]),
        same(&["SET", "s1", "v", "EX", "100"]),
        near(1, &["TTL", "s1"]),
        near(1000, &["PTTL", "s1"]),
        same(&["SET", "s1", "v7"]),
        same(&["TTL", "s1"]),
        same(&["SET", "s1", "v", "PX", "100500"]),
        near(1, &["TTL", "s1"]),
        same(&["SET", "s1", "v8", "KEEPTTL"]),
        same(&["GET", "s1"]),
        near(1, &["TTL", "s1"]),
        same(&["SET", "s1", "v9", "KEEPTTL", "XX", "GET"]),
        near(1, &["TTL", "s1"]),
        same(&["SET", "s6", "v", "KEEPTTL"]),
        same(&["TTL", "s6"]),
        same(&["SET", "s7", "v", "KEEPTTL", "NX"]),
        same(&["SET", "s1", "v", "EXAT", &exat]),
        near(1, &["TTL", "s1"]),
        same(&["SET", "s1", "v", "PXAT", &pxat]),
        near(1, &["TTL", "s1"]),
        same(&["SET", "s8", "v", "EXAT", "1"]),
        same(&["GET", "s8"]),
        same(&["EXISTS", "s8"]),
        same(&["SET", "s1", "v", "EXAT", "1", "GET"]),
        same(&["GET", "s1"]),
        same(&["SET", "s9", "v", "XX", "PXAT", "1"]),
        same(&["SET", "k"]),
        same(&["SET", "k", "v", "XX", "NX"]),
        same(&["SET", "k", "v", "NX", "XX"]),
        same(&["SET", "k", "v", "EX"]),
        same(&["SET", "k", "v", "EX", "10", "PX", "100"]),
        same(&["SET", "k", "v", "KEEPTTL", "EX", "10"]),
        same(&["SET", "k", "v", "FOO"]),
        same(&["SET", "k", "v", "EX", "0"]),
        same(&["SET", "k", "v", "EX", "-5"]),
        same(&["SET", "k", "v", "PX", "0"]),
        same(&["SET", "k", "v", "EX", "abc"]),
        same(&["SET", "k", "v", "EX", "9223372036854775807"]),
        same(&["SET", "k", "v", "EXAT", "0"]),
        same(&["GET", "k"]),
        // SETEX, PSETEX, SETNX, GETSET, GETDEL.
        same(&["SETEX", "x1", "100", "v"]),
        near(1, &["TTL", "x1"]),
        same(&["GET", "x1"]),
        same(&["SETEX", "x1", "0", "v"]),
        same(&["SETEX", "x1", "abc", "v"]),
        same(&["SETEX", "x1", "10"]),
        same(&["PSETEX", "x2", "100500", "v"]),
        near(1000, &["PTTL", "x2"]),
        same(&["PSETEX", "x2", "-1", "v"]),
        same(&["SETNX", "n1", "a"]),
        same(&["SETNX", "n1", "b"]),
        same(&["GET", "n1"]),
        same(&["SETNX", "n1"]),
        same(&["GETSET", "n1", "c"]),
        same(&["GETSET", "n2", "c"]),
        same(&["SET", "n3", "v", "EX", "100"]),
        same(&["GETSET", "n3", "w"]),
        same(&["TTL", "n3"]),
        same(&["GETDEL", "n1"]),
        same(&["GETDEL", "n1"]),
        same(&["EXISTS", "n1"]),
        // DEL, UNLINK, EXISTS, TYPE.
        same(&["DEL", "n2", "n3", "n4", "n2"]),
        same(&["DEL", "n2"]),
        same(&["DEL"]),
        same(&["SET", "d1", "1"]),
        same(&["SET", "d2", "2"]),
        same(&["UNLINK", "d1", "d2", "d3"]),
        same(&["EXISTS", "s2", "s2", "missing"]),
        same(&["EXISTS"]),
        same(&["TYPE", "s2"]),
        same(&["TYPE", "missing"]),
        // INCR and friends.
        same(&["INCR", "c1"]),
        same(&["INCR", "c1"]),
        same(&["INCRBY", "c1", "10"]),
        same(&["DECR", "c1"]),
        same(&["DECRBY", "c1", "5"]),
        same(&["INCRBY", "c1", "-10"]),
        same(&["GET", "c1"]),
        same(&["SET", "c2", "v"]),
        same(&["INCR", "c2"]),
        same(&["SET", "c3", "9223372036854775807"]),
        same(&["INCR", "c3"]),
        same(&["DECRBY", "c3", "-1"]),
        same(&["SET", "c4", "-9223372036854775808"]),
        same(&["DECR", "c4"]),
        same(&["INCRBY", "c1", "abc"]),
        same(&["INCRBY", "c1", "1.5"]),
        same(&["DECRBY", "c1", "-9223372036854775808"]),
        same(&["SET", "c5", "10", "EX", "100"]),
        same(&["INCR", "c5"]),
        near(1, &["TTL", "c5"]),
        same(&["INCR", "c1", "extra"]),
        // EXPIRE, PEXPIRE, PERSIST, TTL, PTTL.
        same(&["SET", "e1", "v"]),
        same(&["EXPIRE", "e1", "100"]),
        near(1, &["TTL", "e1"]),
        same(&["EXPIRE", "missing", "100"]),
        same(&["EXPIRE", "e1", "200", "GT"]),
        same(&["EXPIRE", "e1", "50", "GT"]),
        same(&["EXPIRE", "e1", "50", "LT"]),
        same(&["EXPIRE", "e1", "500", "lt"]),
        near(1, &["TTL", "e1"]),
        same(&["EXPIRE", "e1", "100", "NX"]),
        same(&["EXPIRE", "e1", "100", "XX"]),
        same(&["SET", "e2", "v"]),
        same(&["EXPIRE", "e2", "100", "XX"]),
        same(&["EXPIRE", "e2", "100", "GT"]),
        same(&["EXPIRE", "e2", "100", "LT"]),
        near(1, &["TTL", "e2"]),
        same(&["SET", "e3", "v"]),
        same(&["EXPIRE", "e3", "100", "NX"]),
        same(&["EXPIRE", "e1", "10", "FOO"]),
        same(&["EXPIRE", "e1", "10", "NX", "XX"]),
        same(&["EXPIRE", "e1", "10", "GT", "LT"]),
        same(&["EXPIRE", "e1", "abc"]),
        same(&["EXPIRE", "e1"]),
        same(&["EXPIRE", "e1", "9223372036854775807"]),
        same(&["PEXPIRE", "e1", "100500"]),
        near(1000, &["PTTL", "e1"]),
        same(&["PEXPIRE", "e1", "9223372036854775807"]),
        same(&["SET", "e4", "v"]),
        same(&["EXPIRE", "e4", "0"]),
        same(&["EXISTS", "e4"]),
        same(&["EXPIRE", "e4", "0"]),
        same(&["SET", "e5", "v"]),
        same(&["PEXPIRE", "e5", "-1"]),
        same(&["GET", "e5"]),
        same(&["SET", "e6", "v"]),
        same(&["EXPIRE", "e6", "-10", "LT"]),
        same(&["GET", "e6"]),
        same(&["PERSIST", "e1"]),
        same(&["TTL", "e1"]),
        same(&["PERSIST", "e1"]),
        same(&["PERSIST", "missing"]),
        same(&["TTL", "missing"]),
        same(&["PTTL", "missing"]),
        same(&["PTTL", "s2"]),
        same(&["TTL"]),
        // MGET, MSET, STRLEN, APPEND.
        same(&["MGET", "s2", "missing", "c1"]),
        same(&["MSET", "m1", "a", "m2", "b", "m1", "c"]),
        same(&["MGET", "m1", "m2"]),
        same(&["MSET", "m1"]),
        same(&["MSET", "m1", "a", "m2"]),
        same(&["MGET"]),
        same(&["STRLEN", "s2"]),
        same(&["STRLEN", "missing"]),
        same(&["APPEND", "a1", "hello"]),
        same(&["APPEND", "a1", " world"]),
        same(&["GET", "a1"]),
        same(&["SET", "a2", "x", "EX", "100"]),
        same(&["APPEND", "a2", "yz"]),
        near(1, &["TTL", "a2"]),
        same(&["APPEND", "a2"]),
        // Databases.
        same(&["SELECT", "1"]),
        same(&["GET", "s2"]),
        same(&["SET", "s2", "in db 1"]),
        same(&["GET", "s2"]),
        same(&["SELECT", "0"]),
        same(&["GET", "s2"]),
        same(&["SELECT", "abc"]),
        same(&["SELECT", "99"]),
        same(&["SELECT", "99999999999"]),
        same(&["SELECT", "-1"]),
        // Keys and values are bytes.
        same(&["SET", "", "empty key"]),
        same(&["GET", ""]),
        same(&["SET", "e", ""]),
        same(&["STRLEN", "e"]),
        // Unknown commands and connection commands.
        same(&["FOO", "a", "b"]),
        same(&["foo"]),
        same(&["HELLO", "4"]),
        same(&["HELLO", "abc"]),
        same(&["HELLO", "2", "SETNAME"]),
        same(&["CLIENT", "SETNAME", "me"]),
        same(&["CLIENT", "GETNAME"]),
        same(&["CLIENT", "SETNAME", "a b"]),
        same(&["CLIENT", "NOPE"]),
        same(&["COMMAND", "NOPE"]),
        same(&["COMMAND", "COUNT", "x"]),
    ];
    let binary = Step {
        cmp: Cmp::Same,
        args: vec![b"SET".to_vec(), b"bin\r\n\0key".to_vec(), b"val\r\n\0ue\xff".to_vec()],
    };
    s.push(binary);
    s.push(Step { cmp: Cmp::Same, args: vec![b"GET".to_vec(), b"bin\r\n\0key".to_vec()] });
    s.push(Step { cmp: Cmp::Same, args: vec![b"FOO".to_vec(), "x".repeat(300).into_bytes()] });
    s
}

/// ~100 commands on a few keys, mixed so that many depend on earlier ones in the pipeline.
fn pipeline() -> (Vec<Vec<Vec<u8>>>, Vec<Cmp>) {
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let (mut cmds, mut cmps) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let k = format!("p{}", next(6));
        let k2 = format!("p{}", next(6));
        let v = if next(3) == 0 { "abc".to_string() } else { next(100).to_string() };
        let c: Vec<String> = match next(18) {
            0 | 1 => vec!["SET".into(), k, v],
            2 | 3 => vec!["GET".into(), k],
            4 => vec!["INCR".into(), k],
            5 => vec!["INCRBY".into(), k, v],
            6 => vec!["APPEND".into(), k, v],
            7 => vec!["DEL".into(), k, k2],
            8 => vec!["EXISTS".into(), k, k2],
            9 => vec!["MGET".into(), k, k2, "p9".into()],
            10 => vec!["MSET".into(), k, v.clone(), k2, v],
            11 => vec!["GETSET".into(), k, v],
            12 => vec!["SETNX".into(), k, v],
            13 => vec!["STRLEN".into(), k],
            14 => vec!["GETDEL".into(), k],
            15 => vec!["SET".into(), k, v, "XX".into(), "GET".into()],
            16 => vec!["EXPIRE".into(), k, "100".into()],
            _ => vec!["TTL".into(), k],
        };
        cmps.push(if c[0] == "TTL" { Cmp::Near(1) } else { Cmp::Same });
        cmds.push(c.into_iter().map(String::into_bytes).collect());
    }
    cmds.push(vec![b"MGET".to_vec(), b"p0".to_vec(), b"p1".to_vec(), b"p2".to_vec(), b"p3".to_vec()]);
    cmps.push(Cmp::Same);
    (cmds, cmps)
}

fn send_pipeline(con: &mut redis::Connection, cmds: &[Vec<Vec<u8>>]) -> Vec<Value> {
    let mut p = redis::pipe();
    for c in cmds {
        p.add_command(request(c));
    }
    con.req_packed_commands(&p.get_packed_pipeline(), 0, cmds.len()).unwrap()
}

/// Everything that runs on the redis crate's (blocking) connections.
fn compare_everything(gw_port: u16, rs_port: u16) {
    let (mut gw, mut rs) = (connect(gw_port), connect(rs_port));
    let mut bad = compare(&mut gw, &mut rs, &script());

    // HELLO: the same fields (values differ: server, version, id).
    let (g, r) = (
        send(&mut gw, &[b"HELLO".to_vec(), b"2".to_vec()]),
        send(&mut rs, &[b"HELLO".to_vec(), b"2".to_vec()]),
    );
    let fields = |v: &Value| match v {
        Value::Array(a) => a.iter().step_by(2).map(show).collect::<Vec<_>>(),
        other => vec![show(other)],
    };
    let proto = |v: &Value| match v {
        Value::Array(a) => a.get(5).map(show),
        _ => None,
    };
    if fields(&g) != fields(&r) || proto(&g) != Some(":2".into()) {
        bad.push(format!("HELLO 2: gateway {}, redis-server {}", show(&g), show(&r)));
    }
    let g = send(&mut gw, &[b"HELLO".to_vec(), b"3".to_vec()]);
    if show(&g) != "-NOPROTO unsupported protocol version" {
        bad.push(format!("HELLO 3: gateway {}", show(&g)));
    }

    // COMMAND: every command the gateway lists has Redis's name, arity and key positions.
    let listed = send(&mut gw, &[b"COMMAND".to_vec()]);
    let Value::Array(listed) = listed else { panic!("COMMAND: {}", show(&listed)) };
    let count = send(&mut gw, &[b"COMMAND".to_vec(), b"COUNT".to_vec()]);
    assert_eq!(show(&count), format!(":{}", listed.len()));
    for entry in &listed {
        let Value::Array(e) = entry else { panic!("COMMAND entry {}", show(entry)) };
        let Value::BulkString(name) = &e[0] else { panic!("COMMAND entry {}", show(entry)) };
        let theirs = send(&mut rs, &[b"COMMAND".to_vec(), b"INFO".to_vec(), name.clone()]);
        let Value::Array(theirs) = theirs else { panic!() };
        let Some(Value::Array(t)) = theirs.first() else { panic!("redis has no {}", show(&e[0])) };
        let key = |v: &[Value]| [0, 1, 3, 4, 5].map(|i| show(&v[i]));
        if key(e) != key(t) {
            bad.push(format!(
                "COMMAND INFO: gateway {}, redis-server {}",
                show(entry),
                show(&Value::Array(t.clone()))
            ));
        }
    }
    let docs = send(&mut gw, &[b"COMMAND".to_vec(), b"DOCS".to_vec()]);
    assert!(matches!(docs, Value::Array(_)), "COMMAND DOCS: {}", show(&docs));

    // One pipeline: the same replies, in order, as if run one at a time.
    let (cmds, cmps) = pipeline();
    let (g, r) = (send_pipeline(&mut gw, &cmds), send_pipeline(&mut rs, &cmds));
    assert_eq!((g.len(), r.len()), (cmds.len(), cmds.len()));
    for (i, c) in cmds.iter().enumerate() {
        if !agree(cmps[i], &g[i], &r[i]) {
            let text = String::from_utf8_lossy(&c.join(&b' ')).into_owned();
            bad.push(format!("pipeline #{i} {text}: gateway {}, redis-server {}", show(&g[i]), show(&r[i])));
        }
    }

    assert!(bad.is_empty(), "the gateway and redis-server disagree on {}:\n{}", bad.len(), bad.join("\n"));

    // Tern's limits (documented differences): a value over max-value-bytes is refused.
    let big = send(&mut gw, &[b"SET".to_vec(), b"big".to_vec(), vec![b'x'; 2 << 20]]);
    assert!(show(&big).starts_with("-ERR value is 2097152 bytes, over the limit"), "{}", show(&big));
    assert_eq!(show(&send(&mut gw, &[b"GET".to_vec(), b"big".to_vec()])), "(nil)");

    // Expiry happens: visible right after the set, gone on both within a deadline.
    let cmd = |s: &str| s.split(' ').map(|w| w.as_bytes().to_vec()).collect::<Vec<_>>();
    for con in [&mut gw, &mut rs] {
        for c in ["SET t1 v PX 1500", "SET t2 v EX 1", "SETEX t3 1 v", "SET t4 v", "PEXPIRE t4 1200"] {
            send(con, &cmd(c));
        }
        assert_eq!(show(&send(con, &cmd("GET t1"))), "\"v\"");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let gone = |con: &mut redis::Connection| {
        show(&send(con, &cmd("MGET t1 t2 t3 t4"))) == "[(nil), (nil), (nil), (nil)]"
            && show(&send(con, &cmd("EXISTS t1 t2 t3 t4"))) == ":0"
    };
    while !(gone(&mut gw) && gone(&mut rs)) {
        assert!(Instant::now() < deadline, "keys with a 1-2 s TTL still there after 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `redis-cli` against both: its startup (COMMAND DOCS) and commands from stdin and argv print
/// the same.
fn compare_redis_cli(gw_port: u16, rs_port: u16) {
    let input = "SET cli:a hello\nGET cli:a\nINCR cli:n\nTTL cli:a\nMGET cli:a cli:missing\n\
                 SET cli:a v EX 0\nFOO bar\nDEL cli:a cli:n\nPING\n";
    let (g, r) = (redis_cli(gw_port, &[], input), redis_cli(rs_port, &[], input));
    assert_eq!((g.code, &g.stdout, &g.stderr), (r.code, &r.stdout, &r.stderr), "redis-cli reading stdin");
    assert!(g.stdout.contains("hello"), "{g:?}");
    for args in [
        &["SET", "cli:b", "1"][..],
        &["--no-raw", "GET", "cli:b"],
        &["-n", "1", "SET", "cli:c", "x"],
        &["-n", "1", "GET", "cli:c"],
    ] {
        let (g, r) = (redis_cli(gw_port, args, ""), redis_cli(rs_port, args, ""));
        assert_eq!((g.code, &g.stdout), (r.code, &r.stdout), "redis-cli {args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_answers_like_redis_server() {
    // Missing programs fail here, before any cluster starts.
    let redis = tokio::task::spawn_blocking(RedisServer::start).await.unwrap();
    require("redis-cli");
    let cluster = Cluster::start(ClusterOptions::named("resp", 15)).await;
    cluster.create_table("t0", 4, 3).await;
    cluster.create_table("t1", 2, 3).await;
    let proxy = Proxy::start(
        cluster.root(),
        &format!("resp={}", cluster.meta_arg()),
        &["--resp-table", "t0", "--resp-db", "1=t1"],
    );
    let port = proxy.resp_port;
    cluster
        .wait_for("the gateway to write", Duration::from_secs(60), || async move {
            let (got, _) = raw(port, b"SET ready 1\r\n", 5).await?;
            if got == b"+OK\r\n" { Ok(()) } else { Err(String::from_utf8_lossy(&got).into_owned()) }
        })
        .await;
    let rs_port = redis.port;
    tokio::task::spawn_blocking(move || compare_everything(port, rs_port)).await.unwrap();
    tokio::task::spawn_blocking(move || compare_redis_cli(port, rs_port)).await.unwrap();
    assert!(proxy.process.exited().is_none(), "the proxy is still running");
    drop(proxy);
    drop(redis);
}

/// Malformed requests get Redis's own error and a closed connection; the gateway keeps serving
/// every other connection, and random bytes never bring it down. Needs no cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_garbage_closes_only_its_connection() {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A cluster that is not there: connection commands do not need one.
    let proxy = Proxy::start(dir.path(), &format!("none={}", free_addr()), &["--resp-table", "t"]);
    let port = proxy.resp_port;
    wait_until("the gateway to answer PING", Duration::from_secs(60), || async move {
        let (got, _) = raw(port, b"PING\r\n", 7).await?;
        if got == b"+PONG\r\n" { Ok(()) } else { Err(String::from_utf8_lossy(&got).into_owned()) }
    })
    .await;
    let mut bystander = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    for garbage in [
        &b"*1\r\n$x\r\n"[..],
        b"*x\r\n",
        b"*1\r\n:5\r\n",
        b"GET \"k\r\n",
        b"PING\r\n*1\r\n$-5\r\n",
        b"*3\r\n$3\r\nSET\r\n$99999999999\r\n",
    ] {
        let (ours, closed) = raw(port, garbage, 1 << 20).await.unwrap();
        let (theirs, _) = raw(redis.port, garbage, 1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&ours);
        assert!(closed, "the connection is closed after {garbage:?}");
        assert!(text.contains("-ERR Protocol error: "), "{garbage:?}: {text:?}");
        assert_eq!(text, String::from_utf8_lossy(&theirs), "{garbage:?}: the same reply as redis-server");
    }
    // Random bytes on many connections: whatever they get, the gateway survives.
    let mut seed: u64 = 42;
    for _ in 0..50 {
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 56) as u8
            })
            .collect();
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s.write_all(&bytes).await;
            let _ = tokio::time::timeout(Duration::from_millis(50), s.read(&mut [0u8; 64])).await;
        }
    }
    bystander.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_reply(&mut bystander, 7).await.unwrap().0, b"+PONG\r\n");
    assert_eq!(raw(port, b"QUIT\r\nPING\r\n", 1 << 20).await.unwrap(), (b"+OK\r\n".to_vec(), true));
    assert!(proxy.process.exited().is_none(), "the proxy is still running");
}
