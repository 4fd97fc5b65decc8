//! Real S3-compatible servers for tests (`tern up` starts s3s-fs the same way, through
//! [`crate::local_s3`]): `s3s-fs` and moto's server,
//! started on 127.0.0.1 with a free port and killed when the handle is dropped.
//!
//! Both are installed by `scripts/install-test-deps.sh`; a missing one is an error that says
//! so (tests must fail, not skip).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_s3::error::DisplayErrorContext;

use crate::local_s3;
use crate::s3::{S3Config, S3ObjectStore, S3Target};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ServerKind {
    /// `s3s-fs` (Rust, objects as files), started with an access key it enforces.
    S3sFs,
    /// moto's server (Python), which accepts any credentials.
    Moto,
}

/// A running server; dropping it kills the process.
#[derive(Debug)]
pub struct S3Server {
    kind: S3ServerKind,
    child: Child,
    endpoint: String,
    /// The keys the server was started with (s3s-fs checks them; moto accepts anything).
    pub access_key_id: String,
    pub secret_access_key: String,
    _data: Option<tempfile::TempDir>,
}

const ACCESS_KEY: &str = "tern-test-access";
const SECRET_KEY: &str = "tern-test-secret-key";
const INSTALL_HINT: &str = "run scripts/install-test-deps.sh to install the test servers";

pub use crate::local_s3::s3s_fs_binary;

/// The moto server command: `$TERN_MOTO_SERVER`, else `moto_server` on the PATH.
fn moto_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TERN_MOTO_SERVER").map(PathBuf::from) {
        if !p.is_file() {
            bail!("moto_server not found at {} (TERN_MOTO_SERVER); {INSTALL_HINT}", p.display());
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
        .with_context(|| format!("moto_server is not on the PATH; {INSTALL_HINT}"))
}

/// The servers' output: discarded, or inherited when `TERN_TEST_SERVER_LOGS` is set (to
/// debug a failing test).
fn server_output() -> Stdio {
    if std::env::var_os("TERN_TEST_SERVER_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() }
}

/// A port free right now on 127.0.0.1 (the server may still lose a race for it: callers retry).
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0 to pick a port")?;
    Ok(l.local_addr()?.port())
}

impl S3Server {
    /// Starts a server of `kind`, retrying on another port if it loses its port.
    pub async fn start(kind: S3ServerKind) -> anyhow::Result<S3Server> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(kind).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("could not start {kind:?}")))
    }

    async fn start_once(kind: S3ServerKind) -> anyhow::Result<S3Server> {
        let port = free_port()?;
        let (child, data) = match kind {
            S3ServerKind::S3sFs => {
                let bin = s3s_fs_binary();
                if !bin.is_file() {
                    bail!("s3s-fs not found at {}; {INSTALL_HINT}", bin.display());
                }
                let data = tempfile::tempdir().context("create s3s-fs data directory")?;
                let child = Command::new(&bin)
                    .args(local_s3::s3s_fs_args("127.0.0.1", port, ACCESS_KEY, SECRET_KEY, data.path()))
                    .stdin(Stdio::null())
                    .stdout(server_output())
                    .stderr(server_output())
                    .spawn()
                    .with_context(|| format!("start {}", bin.display()))?;
                (child, Some(data))
            }
            S3ServerKind::Moto => {
                let bin = moto_binary()?;
                let child = Command::new(&bin)
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .stdin(Stdio::null())
                    .stdout(server_output())
                    .stderr(server_output())
                    .spawn()
                    .with_context(|| format!("start {}", bin.display()))?;
                (child, None)
            }
        };
        let mut server = S3Server {
            kind,
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key_id: ACCESS_KEY.to_string(),
            secret_access_key: SECRET_KEY.to_string(),
            _data: data,
        };
        server.wait_ready(port, Duration::from_secs(30)).await?;
        Ok(server)
    }

    /// Waits until the server accepts connections, or fails if it exits or the deadline passes.
    async fn wait_ready(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{:?} exited with {status} before listening on {addr}", self.kind);
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{:?} did not listen on {addr} within {timeout:?}", self.kind);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kind(&self) -> S3ServerKind {
        self.kind
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the server rejects wrong credentials.
    pub fn enforces_credentials(&self) -> bool {
        self.kind == S3ServerKind::S3sFs
    }

    /// A config for `s3://bucket/prefix` on this server with its credentials.
    pub fn config(&self, bucket: &str, prefix: &str) -> anyhow::Result<S3Config> {
        let target = S3Target::parse(&format!("s3://{bucket}/{prefix}"))?;
        let mut c = S3Config::for_endpoint(target, &self.endpoint, ACCESS_KEY, SECRET_KEY);
        c.region = Some("us-east-1".into());
        Ok(c)
    }

    /// Creates `bucket`.
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let store = S3ObjectStore::new(self.config(bucket, "")?).await?;
        store
            .client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("create bucket {bucket}: {}", DisplayErrorContext(&e)))?;
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
