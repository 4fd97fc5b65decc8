//! A real `redis-server` to compare the Redis gateway with, and `redis-cli` runs. Both come from
//! Debian's `redis-server` and `redis-tools` packages (`scripts/install-test-deps.sh`); a missing
//! program fails the test with that hint, it is never skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::{CliOutput, tail};

const INSTALL_HINT: &str =
    "install it with scripts/install-test-deps.sh (Debian's redis-server and redis-tools)";

/// Panics with the install hint if `program` cannot be run.
pub fn require(program: &str) {
    match Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => {}
        Err(e) => panic!("{program} cannot be run ({e}): {INSTALL_HINT}"),
    }
}

/// A `redis-server` on a loopback port with persistence off, in a temporary directory. Dropping
/// it kills the server (also when the test fails; then the tail of its log is printed).
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one and waits (at most 20 s) until it answers PING.
    pub fn start() -> RedisServer {
        require("redis-server");
        let dir = tempfile::Builder::new()
            .prefix("tern-e2e-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temporary directory: {e}"));
        let port = free_port();
        let log = dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start redis-server: {e}; {INSTALL_HINT}"));
        let server = RedisServer { port, child, log, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match ping(port) {
                Ok(()) => return server,
                Err(e) if Instant::now() >= deadline => {
                    panic!("redis-server on port {port} did not answer PING within 20 s: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- last 20 lines of redis-server's log -----\n{}", tail(&self.log, 20));
        }
    }
}

fn ping(port: u16) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    if &buf == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("answered {:?}", String::from_utf8_lossy(&buf))))
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS` with `stdin` as its input (with no ARGS it reads
/// commands from stdin, after asking the server for `COMMAND DOCS` as it does on startup), for at
/// most 30 s.
pub fn redis_cli(port: u16, args: &[&str], stdin: &str) -> CliOutput {
    require("redis-cli");
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start redis-cli: {e}; {INSTALL_HINT}"));
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("redis-cli {} did not finish within 30 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("redis-cli output: {e}"));
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
