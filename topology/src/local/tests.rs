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

const ONE_CLUSTER: &str = "version: 1\nclusters:\n  - name: dc1\n    id: 1\n    meta-servers: [\"127.0.0.1:0\"]\n    replica-servers: [\"127.0.0.1:0\"]\n";

/// `up -f` of `file` (written with [`ONE_CLUSTER`]) in `dir`, with a binary that must never
/// start (every case here is refused first).
fn file_spec(dir: &Path, file: &Path) -> FileSpec {
    std::fs::write(file, ONE_CLUSTER).unwrap();
    FileSpec {
        dir: dir.to_path_buf(),
        binary: PathBuf::from("/nonexistent/tern"),
        file: file.to_path_buf(),
        topology: crate::Topology::from_yaml(ONE_CLUSTER, "one.yaml").unwrap(),
        worker_threads: None,
        ready_within: Duration::from_millis(100),
        apply_deadline: Duration::from_millis(100),
        s3: None,
    }
}

async fn refused(spec: &FileSpec, state: &State) -> String {
    std::fs::create_dir_all(&spec.dir).unwrap();
    state.save(&spec.dir).unwrap();
    match up_file(spec, |_| {}).await {
        Err(UpError::Refused(why)) => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn up_file_refuses_a_directory_that_holds_or_runs_another_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let spec = file_spec(&dir, &tmp.path().join("b.yaml"));
    let a = tmp.path().join("a.yaml");
    std::fs::write(&a, ONE_CLUSTER).unwrap();
    let a = a.canonicalize().unwrap();
    let cluster = ClusterState { name: "dc1".into(), id: 1, ..Default::default() };
    let stopped = State { file: Some(a.clone()), clusters: vec![cluster.clone()], ..Default::default() };
    let why = refused(&spec, &stopped).await;
    assert!(why.contains("holds the data of the deployment of another topology file"), "{why}");
    let flags = State { clusters: vec![cluster.clone()], ..Default::default() };
    let why = refused(&spec, &flags).await;
    assert!(why.contains("a deployment started by `tern up` without a file"), "{why}");

    // "Running": this test's own process stands in for one of the deployment's.
    let me = ProcessState {
        name: "dc1-meta-1".into(),
        cluster: Some("dc1".into()),
        role: ProcessRole::Meta,
        pid: std::process::id(),
        addr: "127.0.0.1:1".into(),
        log: dir.join("logs/dc1-meta-1.log"),
        binary: None,
    };
    let running = State { processes: vec![me], ..stopped };
    let why = refused(&spec, &running).await;
    assert!(
        why.contains("runs the deployment of another topology file") && why.contains("tern down --dir"),
        "{why}"
    );
    let b = spec.file.canonicalize().unwrap();
    let other_layout = State { file: Some(b), layout: Some("0".into()), ..running };
    let why = refused(&spec, &other_layout).await;
    assert!(why.contains("changed since its deployment"), "{why}");
}

#[test]
fn ps_lists_the_processes_and_whether_they_run() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str, pid| ProcessState {
        name: name.into(),
        cluster: None,
        role: ProcessRole::Proxy,
        pid,
        addr: "127.0.0.1:1".into(),
        log: tmp.path().join("logs").join(format!("{name}.log")),
        binary: None,
    };
    // A pid that no process has: above the kernel's maximum.
    let state =
        State { processes: vec![p("me", std::process::id()), p("gone", 4_194_305)], ..Default::default() };
    state.save(tmp.path()).unwrap();
    let list = ps(tmp.path()).unwrap();
    assert_eq!(
        list.iter().map(|s| (s.process.name.as_str(), s.alive)).collect::<Vec<_>>(),
        [("me", true), ("gone", false)]
    );
    assert_eq!(state.live_pids(), [std::process::id()]);
}

#[test]
fn a_process_of_another_program_is_checked_against_its_own_binary() {
    // The S3 server runs s3s-fs, not the deployment's `tern`: `down` and `ps` must still see
    // it, and must not take a process of the tern binary's pid for it.
    let me = std::fs::read(format!("/proc/{}/cmdline", std::process::id())).unwrap_or_default();
    let argv0 = String::from_utf8_lossy(me.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
    let p = |name: &str, binary: Option<PathBuf>| ProcessState {
        name: name.into(),
        cluster: None,
        role: ProcessRole::S3,
        pid: std::process::id(),
        addr: "127.0.0.1:1".into(),
        log: PathBuf::from("s3.log"),
        binary,
    };
    let state = State {
        binary: Some(PathBuf::from("/nonexistent/tern")),
        processes: vec![p("s3", Some(PathBuf::from(argv0)))],
        ..Default::default()
    };
    assert_eq!(state.live_pids(), [std::process::id()], "runs its own binary");
    let other = State { processes: vec![p("s3", None)], ..state.clone() };
    assert!(other.live_pids().is_empty(), "not the tern binary, and no binary of its own");
}

#[test]
fn the_s3_server_keeps_its_port_and_is_forgotten_when_not_wanted() {
    let mut s = State::default();
    s.plan_s3(true).unwrap();
    let addr = s.s3.clone().expect("a port");
    s.plan_s3(true).unwrap();
    assert_eq!(s.s3.as_deref(), Some(addr.as_str()));
    s.plan_s3(false).unwrap();
    assert_eq!(s.s3, None);
}
