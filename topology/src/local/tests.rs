use std::process::{Command, Stdio};

use super::*;

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A "tern binary" whose servers start but never answer.
#[cfg(unix)]
fn silent_binary(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("silent-tern");
    std::fs::write(&path, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[cfg(unix)]
#[tokio::test]
async fn a_deployment_that_does_not_come_up_stops_everything_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = LocalSpec {
        replicas: 2,
        ready_within: Duration::from_millis(500),
        ..LocalSpec::new(tmp.path().join("local"), silent_binary(tmp.path()))
    };
    let mut steps = Vec::new();
    let e = up(&spec, |s| steps.push(s.to_string())).await.expect_err("nothing answers");
    let UpError::NotUp { logs, .. } = &e else { panic!("{e}") };
    assert!(logs.ends_with("local/logs"), "{e}");
    assert!(e.to_string().starts_with("the local deployment did not come up: cluster dc1: "), "{e}");
    assert!(steps.iter().any(|s| s == "waiting for 2 replica servers of dc1 to join…"), "{steps:?}");
    let state = State::read(&spec.dir).unwrap();
    assert_eq!(state.pids.len(), 2 * (1 + 2) + 1, "two clusters and a proxy were started");
    for pid in state.pids {
        assert!(!alive(pid), "process {pid} was left running");
    }
}

#[test]
fn down_without_a_deployment_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let e = down(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("no local deployment in"), "{e}");
}
