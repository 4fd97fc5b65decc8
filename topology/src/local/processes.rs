//! The processes of a local deployment: the `tern` binary started as meta servers, replica
//! servers and proxies (and s3s-fs as the S3 server), each logging to `<dir>/logs/<name>.log`,
//! and stopping them. What was started is stopped again unless it is handed over
//! ([`Processes::detach`]): on an error, on [`Processes::stop`], and (killed at once) when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tern_core::{Error, Result};

use super::state::{ClusterState, ProcessRole, ProcessState};

/// How long a stopped process may take to exit before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// Child processes of this one, started from `binary`.
#[derive(Debug)]
pub struct Processes {
    binary: PathBuf,
    /// Where `logs/` is.
    dir: PathBuf,
    children: Vec<(ProcessState, Child)>,
    /// Set in every process this starts (besides what it inherits).
    env: Vec<(String, String)>,
}

/// Who a process is, before it has a pid.
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    pub name: String,
    pub cluster: Option<&'a str>,
    pub role: ProcessRole,
    pub addr: String,
}

impl Processes {
    pub fn new(binary: PathBuf, dir: PathBuf) -> Processes {
        Processes { binary, dir, children: Vec::new(), env: Vec::new() }
    }

    /// Sets `key=value` in every process started from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|(_, c)| c.id()).collect()
    }

    /// Every process started, with its pid (for the state file and `tern ps`).
    pub fn processes(&self) -> Vec<ProcessState> {
        self.children.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Starts `binary args…` as the process `who` describes, logging to `logs/<name>.log`.
    pub fn spawn(&mut self, who: Launch<'_>, args: &[String]) -> Result<()> {
        let binary = self.binary.clone();
        self.spawn_program(who, &binary, args)
    }

    /// Starts `program args…` (not the `tern` binary) as the process `who` describes, logging
    /// to `logs/<name>.log`; the state names the program, so `down` and `ps` check it.
    fn spawn_program(&mut self, who: Launch<'_>, program: &Path, args: &[String]) -> Result<()> {
        let name = who.name.as_str();
        let logs = self.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(format!("create {}", logs.display()), e))?;
        let path = logs.join(format!("{name}.log"));
        let log =
            std::fs::File::create(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        let err = log.try_clone().map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let child = Command::new(program)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::io(format!("start {name} ({})", program.display()), e))?;
        let state = ProcessState {
            name: name.to_string(),
            cluster: who.cluster.map(str::to_string),
            role: who.role,
            pid: child.id(),
            addr: who.addr,
            log: path,
            binary: (program != self.binary).then(|| program.to_path_buf()),
        };
        self.children.push((state, child));
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
            let who = Launch {
                name: format!("{prefix}meta-{id}"),
                cluster: Some(&c.name),
                role: ProcessRole::Meta,
                addr: addr.clone(),
            };
            self.spawn(who, &args)?;
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
            let who = Launch {
                name: format!("{prefix}replica-{i}"),
                cluster: Some(&c.name),
                role: ProcessRole::Replica,
                addr: addr.clone(),
            };
            self.spawn(who, &args)?;
        }
        Ok(())
    }

    /// Starts proxy `name` of a topology file with `args` ([`proxy_args`]); `addr`: where it
    /// listens, as `tern ps` shows it.
    pub fn spawn_file_proxy(&mut self, name: &str, addr: &str, args: &[String]) -> Result<()> {
        let who =
            Launch { name: proxy_process(name), cluster: None, role: ProcessRole::Proxy, addr: addr.into() };
        self.spawn(who, args)
    }

    /// Starts the local S3 server for backups (s3s-fs, `binary`) on `addr`, serving the buckets
    /// under `root` (one directory each) with the development credentials of
    /// [`tern_backup::local_s3`].
    pub fn spawn_s3(&mut self, binary: &Path, addr: &str, root: &Path) -> Result<()> {
        // The bucket is a directory of s3s-fs's root: made here, it exists from the first request.
        let bucket = root.join(tern_backup::local_s3::DEV_BUCKET);
        std::fs::create_dir_all(&bucket).map_err(|e| Error::io(format!("create {}", bucket.display()), e))?;
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| Error::invariant(format!("the S3 server's address {addr:?} is not HOST:PORT")))?;
        let args = tern_backup::local_s3::s3s_fs_args(
            host,
            port,
            tern_backup::local_s3::DEV_ACCESS_KEY_ID,
            tern_backup::local_s3::DEV_SECRET_ACCESS_KEY,
            root,
        );
        let who = Launch { name: "s3".into(), cluster: None, role: ProcessRole::S3, addr: addr.into() };
        self.spawn_program(who, binary, &args)
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
    signal(pids, "-TERM")
}

fn signal(pids: &[u32], sig: &str) {
    for pid in pids {
        let _ = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether process `pid` runs. A zombie (exited, not yet reaped by its parent) does not. Where
/// there is no `/proc`, whether `kill -0` reaches it.
pub fn alive(pid: u32) -> bool {
    if std::path::Path::new("/proc/self/stat").exists() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name in parentheses.
        return stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'));
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether running process `pid` was started from `binary` (its `argv[0]`), so that a pid
/// reused by another program since is left alone. Without `/proc` (or a binary), assumed.
pub fn runs(pid: u32, binary: Option<&Path>) -> bool {
    let Some(binary) = binary else { return true };
    if !Path::new("/proc/self/cmdline").exists() {
        return true;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0 == binary.as_os_str().as_encoded_bytes()
}

/// Stops `pids`: SIGTERM, then waits up to `grace` for them to exit, then SIGKILL to those
/// left and waits up to 5 s more. Returns the pids still running after that (none, normally).
pub fn stop_pids(pids: &[u32], grace: Duration) -> Vec<u32> {
    terminate(pids);
    let left = wait_gone(pids, grace);
    if left.is_empty() {
        return left;
    }
    signal(&left, "-KILL");
    wait_gone(&left, Duration::from_secs(5))
}

/// Polls until none of `pids` runs, at most `within`; returns those that still do.
fn wait_gone(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The process (and log) name of proxy `name` of a file: `proxy` and `proxy-…` as they are,
/// others prefixed (`p1` → `proxy-p1`).
pub fn proxy_process(name: &str) -> String {
    if name == super::flags::PROXY || name.starts_with("proxy-") {
        name.to_string()
    } else {
        format!("proxy-{name}")
    }
}

/// `tern proxy …` of proxy `p` of a topology file: listening on `listen` (its Redis gateway,
/// if it has one, on `redis`), in front of every cluster, with its automatic failover, and a
/// DR voter named by its name when the file says so. `voters`: every DR voter of the
/// deployment (`--dr-voters`), if any.
pub fn proxy_args(
    p: &crate::schema::Proxy,
    listen: &str,
    redis: Option<&str>,
    clusters: &[ClusterState],
    voters: Option<&str>,
) -> Vec<String> {
    let at = crate::proxy_command::ProxyEndpoints {
        listen: listen.to_string(),
        redis_listen: redis.map(str::to_string),
        metrics_listen: None,
        clusters: clusters.iter().map(|c| (c.name.clone(), c.meta_addrs())).collect(),
        voters,
    };
    crate::proxy_command::proxy_command(p, &at)
}
