//! One `tern` server process: its command line, data directory and log file; starting it,
//! `kill -9`, SIGTERM, restarting it as it was. Also one-shot CLI commands.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::binary::tern_bin;

/// A server process that can be stopped and started again with the same arguments (so the same
/// port and data directory). Dropping it kills the process.
#[derive(Debug)]
pub struct Process {
    /// e.g. `meta-1`, `replica-3`.
    pub name: String,
    /// The address it listens on.
    pub addr: String,
    pub data_dir: PathBuf,
    /// stdout and stderr of every run, appended.
    pub log: PathBuf,
    args: Vec<String>,
    /// More environment variables of every start.
    pub env: Vec<(String, String)>,
    child: Mutex<Option<Child>>,
    runs: u32,
}

/// Removes the `TERN_*` variables of the test's environment (they are flag fallbacks) and says
/// where Tern should log.
fn command(args: &[String]) -> Command {
    let mut c = Command::new(tern_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TERN_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_BACKTRACE", "1").args(args).stdin(Stdio::null());
    c
}

impl Process {
    pub fn new(name: String, addr: String, data_dir: PathBuf, log: PathBuf, args: Vec<String>) -> Process {
        Process { name, addr, data_dir, log, args, env: Vec::new(), child: Mutex::new(None), runs: 0 }
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the process (again), appending to its log.
    /// Adds arguments to later starts.
    pub fn add_args(&mut self, args: &[&str]) {
        self.args.extend(args.iter().map(|a| a.to_string()));
    }

    /// Drops flag `flag` and its value from the arguments of later starts.
    pub fn drop_flag(&mut self, flag: &str) {
        if let Some(i) = self.args.iter().position(|a| a == flag) {
            self.args.drain(i..(i + 2).min(self.args.len()));
        }
    }

    pub fn start(&mut self) {
        assert!(!self.is_running(), "{} is already running", self.name);
        self.runs += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let _ =
            writeln!(log, "===== e2e: start #{} of {}: tern {}", self.runs, self.name, self.args.join(" "));
        let err = log.try_clone().unwrap_or_else(|e| panic!("clone a log handle: {e}"));
        let child = command(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        *self.child() = Some(child);
    }

    /// Whether the process was started and not stopped (it may have exited on its own since:
    /// see [`Process::exited`]).
    pub fn is_running(&self) -> bool {
        self.child().is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// If the process was running and has exited on its own, its exit status.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child();
        let status = child.as_mut()?.try_wait().ok()??;
        *child = None;
        self.note(&format!("exited on its own: {status}"));
        Some(status)
    }

    fn note(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log) {
            let _ = writeln!(f, "===== e2e: {} {what}", self.name);
        }
    }

    /// `kill -9`, and waits until it is gone. Nothing if it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child().take() {
            let _ = c.kill();
            let _ = c.wait();
            self.note("killed with SIGKILL");
        }
    }

    /// SIGTERM, then waits up to `timeout` for it to exit; kills it and panics if it does not.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        let Some(mut c) = self.child().take() else { panic!("{} is not running", self.name) };
        let sent = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        assert!(sent.is_ok_and(|s| s.success()), "cannot send SIGTERM to {}", self.name);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                self.note(&format!("stopped with SIGTERM: {status}"));
                return status;
            }
            if start.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                self.note("did not stop on SIGTERM; killed");
                panic!("{} did not exit within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines of its log.
    pub fn tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `n` lines of a file (or why it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// What a CLI command did.
#[derive(Clone, Debug)]
pub struct CliOutput {
    /// The exit code (-1 if killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// stdout parsed as JSON (for `--output json`); panics with the output if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Panics with the output unless the command succeeded; returns self.
    #[track_caller]
    pub fn ok(self) -> CliOutput {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self
    }
}

/// Runs `tern ARGS` to completion (at most `timeout`), without blocking the async runtime.
pub async fn run_cli(args: &[&str], timeout: Duration) -> CliOutput {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut cmd = tokio::process::Command::from(command(&args));
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("tern {} did not finish within {timeout:?}", args.join(" ")))
        .unwrap_or_else(|e| panic!("run tern {}: {e}", args.join(" ")));
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether process `pid` runs (a zombie does not: a detached child of a test that exited stays
/// one until the test ends).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses.
    stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'))
}

/// Runs `tern down --dir DIR` when dropped, so that a failing test leaves nothing running.
#[derive(Debug)]
pub struct DownOnDrop(pub PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(tern_bin())
            .args(["down", "--dir"])
            .arg(&self.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
