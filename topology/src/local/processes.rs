//! The processes of a local deployment: the `tern` binary started as meta servers, replica
//! servers and a proxy, each logging to `<dir>/logs/<name>.log`, and stopping them. What was
//! started is stopped again unless it is handed over ([`Processes::detach`]): on an error, on
//! [`Processes::stop`], and (killed at once) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tern_core::{Error, Result};

use super::state::ClusterState;

/// The proxy's name as the DR voter of a local deployment.
pub const PROXY_VOTER: &str = "proxy";

/// `--dr-voters` of a local deployment: its one proxy. (With one voter, the clusters' active
/// tables take writes only while the proxy runs; production runs three voters.)
pub fn proxy_voters(proxy: &str) -> String {
    format!("{PROXY_VOTER}={proxy}")
}

/// How long a stopped process may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Child processes of this one, started from `binary`.
#[derive(Debug)]
pub struct Processes {
    binary: PathBuf,
    /// Where `logs/` is.
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Processes {
    pub fn new(binary: PathBuf, dir: PathBuf) -> Processes {
        Processes { binary, dir, children: Vec::new() }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|(_, c)| c.id()).collect()
    }

    /// Starts `binary args…` as process `name`.
    pub fn spawn(&mut self, name: &str, args: &[String]) -> Result<()> {
        let logs = self.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(format!("create {}", logs.display()), e))?;
        let path = logs.join(format!("{name}.log"));
        let log =
            std::fs::File::create(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        let err = log.try_clone().map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let child = Command::new(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::io(format!("start {name} ({})", self.binary.display()), e))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// Starts one cluster's meta and replica servers; data under `base`, process names
    /// starting with `prefix`; `dr_voters`: the meta servers' `--dr-voters`, if any.
    pub fn spawn_cluster(
        &mut self,
        base: &Path,
        prefix: &str,
        c: &ClusterState,
        workers: usize,
        dr_voters: Option<&str>,
    ) -> Result<()> {
        let members: Vec<String> = c.metas.iter().map(|(id, a)| format!("{id}={a}")).collect();
        for (id, addr) in &c.metas {
            let args: Vec<String> = vec![
                "meta".into(),
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                addr.clone(),
                "--members".into(),
                members.join(","),
                "--data-dir".into(),
                base.join(format!("meta-{id}")).display().to_string(),
                "--cluster-name".into(),
                c.name.clone(),
                "--cluster-id".into(),
                c.id.to_string(),
            ];
            let mut args = args;
            if let Some(v) = dr_voters {
                args.extend(["--dr-voters".to_string(), v.to_string()]);
            }
            self.spawn(&format!("{prefix}meta-{id}"), &args)?;
        }
        for (i, addr) in &c.replicas {
            let args: Vec<String> = vec![
                "replica".into(),
                "--listen".into(),
                addr.clone(),
                "--meta".into(),
                c.meta_addrs().join(","),
                "--data-dir".into(),
                base.join(format!("replica-{i}")).display().to_string(),
                "--cluster-id".into(),
                c.id.to_string(),
                "--worker-threads".into(),
                workers.to_string(),
            ];
            self.spawn(&format!("{prefix}replica-{i}"), &args)?;
        }
        Ok(())
    }

    /// Starts the proxy in front of `clusters`, listening on `addr`; it is the only DR voter,
    /// named [`PROXY_VOTER`].
    pub fn spawn_proxy(&mut self, addr: &str, clusters: &[ClusterState]) -> Result<()> {
        let mut args = vec!["proxy".to_string(), "--listen".into(), addr.to_string()];
        args.extend(["--dr-voters".to_string(), proxy_voters(addr), "--dr-name".into(), PROXY_VOTER.into()]);
        for c in clusters {
            args.extend(["--cluster".to_string(), format!("{}={}", c.name, c.meta_addrs().join(","))]);
        }
        self.spawn("proxy", &args)
    }

    /// Asks every process to stop (SIGTERM) and waits for them; one still running after
    /// [`STOP_GRACE`] is killed.
    pub async fn stop(mut self) {
        terminate(&self.pids());
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for (_, mut child) in std::mem::take(&mut self.children) {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if tokio::time::Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }

    /// Leaves every process running, on its own.
    pub fn detach(mut self) {
        self.children.clear();
    }
}

impl Drop for Processes {
    /// Nothing started is left behind by accident (an early return, a panic).
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM to `pids` (with `kill`, so that no FFI is needed).
pub fn terminate(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
