//! `tern plan` and `tern apply` (issue #26, items 2 and 3) against two real clusters, with
//! topology files written from their real addresses: the plan of an empty deployment is the
//! full creation (exit 3), apply makes it, a second plan and apply find nothing to do (exit 0);
//! one throttle changed plans exactly that step; a destructive change is refused without
//! --allow-destructive (nothing changed) and done with it; a plan made before someone changed
//! the deployment is refused ("state changed since plan"); an apply killed after its first step
//! is finished by running it again, with nothing duplicated. Also: a bad file and an
//! unreachable cluster are clear errors.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tern_client::AdminClient;
use tern_client::admin::Link;
use tern_core::{DrRole, LinkMode, LinkStatus, TableStatus};
use tern_e2e::binary::tern_bin;
use tern_e2e::cluster::{Cluster, ClusterOptions, SETTLE};
use tern_e2e::ports::free_addr;
use tern_e2e::process::{CliOutput, run_cli};
use tokio::io::{AsyncBufReadExt, BufReader};

const MIB: u64 = 1024 * 1024;

/// The clusters part of a topology file: `dc1` and `dc2` at their real addresses.
fn clusters_yaml(a: &Cluster, b: &Cluster) -> String {
    let mut out = String::from("version: 1\nclusters:\n");
    for (name, id, c) in [("dc1", 1, a), ("dc2", 2, b)] {
        let list = |v: Vec<String>| v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        let replicas = c.replicas().into_iter().map(|p| c.process(p).addr.clone()).collect();
        out.push_str(&format!(
            "  - name: {name}\n    id: {id}\n    meta-servers: [{}]\n    replica-servers: [{}]\n",
            list(c.meta_addrs()),
            list(replicas)
        ));
    }
    out
}

/// A table active in dc1 with a standby copy in dc2, linked both ways.
fn dr_table(name: &str, partitions: u32, out_rate: &str, back_rate: &str) -> String {
    let rate =
        |r: &str| if r.is_empty() { String::new() } else { format!("\n        max-bytes-per-sec: {r}") };
    format!(
        "  - name: {name}\n    partitions: {partitions}\n    replicas: 3\n    copies:\n      - cluster: dc1\n        role: active\n      - cluster: dc2\n    links:\n      - from: dc1\n        to: dc2{}\n      - from: dc2\n        to: dc1{}\n",
        rate(out_rate),
        rate(back_rate)
    )
}

/// A table only in dc1.
fn local_table(name: &str) -> String {
    format!(
        "  - name: {name}\n    partitions: 2\n    replicas: 3\n    copies:\n      - cluster: dc1\n        role: active\n"
    )
}

struct Deployment {
    a: Cluster,
    b: Cluster,
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl Deployment {
    /// Writes the topology file with `tables` (YAML list items).
    fn write(&self, tables: &[String]) {
        let text = format!("{}tables:\n{}", clusters_yaml(&self.a, &self.b), tables.concat());
        std::fs::write(&self.file, text).unwrap();
    }

    fn f(&self) -> &str {
        self.file.to_str().unwrap()
    }

    async fn tern(&self, args: &[&str]) -> CliOutput {
        let out = run_cli(args, Duration::from_secs(120)).await;
        eprintln!("e2e: tern {} -> exit {}\n{}{}", args.join(" "), out.code, out.stdout, out.stderr);
        out
    }

    async fn plan_json(&self) -> (i32, Value) {
        let out = self.tern(&["--output", "json", "plan", "-f", self.f()]).await;
        (out.code, out.json())
    }

    async fn apply(&self, extra: &[&str]) -> CliOutput {
        let mut args = vec!["apply", "-f", self.f(), "--yes"];
        args.extend_from_slice(extra);
        self.tern(&args).await
    }

    fn admin(&self, dc: &str) -> AdminClient {
        let c = if dc == "dc1" { &self.a } else { &self.b };
        AdminClient::connect(c.meta_addrs()).unwrap()
    }

    /// Serving tables of `dc`: name → (role, epoch), with how many serving tables have that name.
    async fn tables(&self, dc: &str) -> Vec<(String, DrRole, u64)> {
        let mut v: Vec<_> = self
            .admin(dc)
            .list_tables()
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.status == TableStatus::Serving)
            .map(|t| (t.name, t.role, t.epoch))
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    }

    /// Live (not removed) links of `dc`, by table.
    async fn links(&self, dc: &str) -> Vec<Link> {
        let mut v: Vec<Link> = self
            .admin(dc)
            .links(None)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.link)
            .filter(|l| l.status != LinkStatus::Removed)
            .collect();
        v.sort_by(|x, y| x.table_name.cmp(&y.table_name));
        v
    }

    async fn link(&self, dc: &str, table: &str) -> Link {
        let found: Vec<Link> = self.links(dc).await.into_iter().filter(|l| l.table_name == table).collect();
        assert_eq!(found.len(), 1, "one live link of {table} in {dc}: {found:#?}");
        found.into_iter().next().unwrap()
    }
}

/// `(kind, cluster, table)` of every step of a JSON plan.
fn kinds(plan: &Value) -> Vec<(String, String, String)> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (f("kind"), f("cluster"), f("table"))
        })
        .collect()
}

fn k(kind: &str, cluster: &str, table: &str) -> (String, String, String) {
    (kind.into(), cluster.into(), table.into())
}

async fn start() -> Deployment {
    let a = Cluster::start(ClusterOptions::named("dc1", 1)).await;
    let b = Cluster::start(ClusterOptions::named("dc2", 2)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yaml");
    Deployment { a, b, _dir: dir, file }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_then_apply_converges_refuses_what_it_must_and_a_rerun_finishes_a_killed_apply() {
    let d = start().await;
    let orders = |out: &str, back: &str| dr_table("orders", 4, out, back);
    d.write(&[orders("10MiB", ""), local_table("events")]);

    // 1. Against an empty deployment: the full creation, exit 3.
    let (code, plan) = d.plan_json().await;
    assert_eq!(code, 3, "changes pending: {plan:#}");
    assert_eq!(
        kinds(&plan),
        [
            k("create-table", "dc1", "orders"),
            k("create-table", "dc2", "orders"),
            k("create-table", "dc1", "events"),
            k("set-role", "dc2", "orders"),
            k("add-link", "dc1", "orders"),
            k("add-link", "dc2", "orders"),
        ],
        "{plan:#}"
    );
    let text = d.tern(&["plan", "-f", d.f()]).await;
    assert_eq!(text.code, 3);
    assert!(
        text.stdout.contains("+ create table orders in dc2 (4 partitions, 3 replicas)"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("+ add link orders: dc1 → dc2 (two-way, 10MiB/s)"), "{}", text.stdout);
    assert!(text.stdout.contains("Plan: 5 to add, 1 to change, 0 to destroy."), "{}", text.stdout);
    assert!(text.stdout.contains("--expect-version "), "{}", text.stdout);

    // 2. Apply: every step printed with its result and time.
    let out = d.apply(&[]).await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("[1/6] create table orders in dc1 (4 partitions, 3 replicas) ...\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[1/6] done in "), "{}", out.stdout);
    assert!(out.stdout.contains(": added with its reverse (link "), "{}", out.stdout);
    assert!(out.stdout.contains("[6/6] done in "), "{}", out.stdout);
    assert!(out.stdout.contains("Apply complete: 6 steps"), "{}", out.stdout);
    assert_eq!(
        d.tables("dc1").await,
        [("events".into(), DrRole::Active, 0), ("orders".into(), DrRole::Active, 0)]
    );
    assert_eq!(d.tables("dc2").await, [("orders".into(), DrRole::Standby, 1)]);
    let (out_link, back_link) = (d.link("dc1", "orders").await, d.link("dc2", "orders").await);
    assert_eq!(
        (out_link.remote_cluster.as_str(), out_link.mode, out_link.max_bytes_per_sec),
        ("dc2", LinkMode::TwoWay, 10 * MIB)
    );
    assert_eq!(
        (back_link.remote_cluster.as_str(), back_link.mode, back_link.max_bytes_per_sec),
        ("dc1", LinkMode::TwoWay, 0)
    );

    // 3. Plan again: nothing (exit 0); apply again: nothing changed.
    let again = d.tern(&["plan", "-f", d.f()]).await;
    assert_eq!(again.code, 0);
    assert!(again.stdout.contains("No changes: the deployment matches the file."), "{}", again.stdout);
    let out = d.apply(&[]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    assert_eq!(d.link("dc1", "orders").await.id, out_link.id, "the same link, not a new one");
    assert_eq!(d.links("dc1").await.len() + d.links("dc2").await.len(), 2);

    // 4. One throttle changed: exactly that step.
    d.write(&[orders("20MiB", ""), local_table("events")]);
    let (code, plan) = d.plan_json().await;
    assert_eq!(code, 3);
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{plan:#}");
    assert_eq!(steps[0]["kind"], "set-throttle");
    assert_eq!(steps[0]["id"], out_link.id);
    assert_eq!(
        (steps[0]["from_bytes_per_sec"].as_u64(), steps[0]["to_bytes_per_sec"].as_u64()),
        (Some(10 * MIB), Some(20 * MIB))
    );
    assert_eq!(d.apply(&[]).await.code, 0);
    assert_eq!(d.link("dc1", "orders").await.max_bytes_per_sec, 20 * MIB);

    // 5. Destructive: events dropped from the file. Refused without the flag, nothing changed.
    d.write(&[orders("20MiB", "")]);
    let out = d.apply(&[]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("refused, nothing was changed"), "{}", out.stderr);
    assert!(out.stderr.contains("1 destructive step(s) need --allow-destructive"), "{}", out.stderr);
    assert!(out.stderr.contains("drop table events in dc1: drops the data"), "{}", out.stderr);
    assert!(d.tables("dc1").await.iter().any(|t| t.0 == "events"), "events is still there");
    let out = d.apply(&["--allow-destructive"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("drop table events in dc1"), "{}", out.stdout);
    assert_eq!(d.tables("dc1").await, [("orders".into(), DrRole::Active, 0)]);

    // 6. A plan made, then the deployment changed behind it (a link paused by hand): apply
    // with the planned version is refused and changes nothing.
    d.write(&[orders("20MiB", "5MiB")]);
    let (code, plan) = d.plan_json().await;
    assert_eq!((code, kinds(&plan)), (3, vec![k("set-throttle", "dc2", "orders")]));
    let version = plan["version"].as_str().unwrap().to_string();
    let back = d.link("dc2", "orders").await;
    let (mb, id) = (d.b.meta_arg(), back.id.to_string());
    d.tern(&["dup", "pause", "--meta", &mb, &id]).await.ok();
    let out = d.apply(&["--expect-version", &version]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("state changed since plan"), "{}", out.stderr);
    assert!(out.stderr.contains("run tern plan again"), "{}", out.stderr);
    let back = d.link("dc2", "orders").await;
    assert_eq!((back.status, back.max_bytes_per_sec), (LinkStatus::Paused, 0), "nothing changed");
    // Planned again: the throttle, and resuming the link the file does not pause.
    let (_, plan) = d.plan_json().await;
    assert_eq!(kinds(&plan), [k("set-throttle", "dc2", "orders"), k("resume-link", "dc2", "orders")]);
    let version = plan["version"].as_str().unwrap().to_string();
    assert_eq!(d.apply(&["--expect-version", &version]).await.code, 0);
    let back = d.link("dc2", "orders").await;
    assert_ne!(back.status, LinkStatus::Paused);
    assert_eq!(back.max_bytes_per_sec, 5 * MIB);

    // 7. An apply of four more tables killed after its first step: running it again finishes
    // the job, nothing twice.
    let more: Vec<String> = (1..=4).map(|i| dr_table(&format!("t{i}"), 2, "", "")).collect();
    d.write(&[vec![orders("20MiB", "5MiB")], more].concat());
    let (_, full) = d.plan_json().await;
    let total = full["steps"].as_array().unwrap().len();
    assert_eq!(total, 4 * 5, "per table: 2 creates, 1 role, 2 links: {full:#}");
    let printed = kill_after_first_step(&d.file).await;
    assert!(!printed.contains("Apply complete"), "killed before the end: {printed}");
    let (code, rest) = d.plan_json().await;
    let left = rest["steps"].as_array().unwrap().len();
    assert_eq!(code, 3);
    assert!(left > 0 && left < total, "a partial apply: {left} of {total} steps left: {rest:#}");
    eprintln!("e2e: killed after step 1; {left} of {total} steps left");
    let out = d.apply(&[]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains(&format!("Apply complete: {left} steps")), "{}", out.stdout);
    let names = |ts: Vec<(String, DrRole, u64)>| ts.into_iter().map(|t| t.0).collect::<Vec<_>>();
    assert_eq!(names(d.tables("dc1").await), ["orders", "t1", "t2", "t3", "t4"]);
    assert_eq!(names(d.tables("dc2").await), ["orders", "t1", "t2", "t3", "t4"]);
    for dc in ["dc1", "dc2"] {
        let links: Vec<String> = d.links(dc).await.into_iter().map(|l| l.table_name).collect();
        assert_eq!(links, ["orders", "t1", "t2", "t3", "t4"], "one link per table in {dc}");
    }
    for i in 1..=4 {
        assert_eq!(d.admin("dc2").table_role(&format!("t{i}")).await.unwrap().role, DrRole::Standby);
    }
    let last = d.tern(&["plan", "-f", d.f()]).await;
    assert_eq!(last.code, 0, "converged: {}", last.stdout);

    // 8. The file moves t1's active copy to dc2: destructive, done through the DR switchover.
    let t1 = dr_table("t1", 2, "", "").replace(
        "dc1\n        role: active\n      - cluster: dc2\n",
        "dc1\n      - cluster: dc2\n        role: active\n",
    );
    let rest: Vec<String> = (2..=4).map(|i| dr_table(&format!("t{i}"), 2, "", "")).collect();
    d.write(&[vec![orders("20MiB", "5MiB"), t1], rest].concat());
    let (code, plan) = d.plan_json().await;
    assert_eq!((code, kinds(&plan)), (3, vec![k("move-active", "", "t1")]), "{plan:#}");
    assert_eq!(d.apply(&[]).await.code, 1, "a move is destructive");
    assert_eq!(d.admin("dc1").table_role("t1").await.unwrap().role, DrRole::Active);
    // The switchover drains the link from dc1 first: it refuses while the link still copies
    // the table (t1's was added with a full sync by the re-run, t1 existing by then).
    tern_e2e::wait::wait_until("t1's link from dc1 to ship", SETTLE, || async {
        let l = d.link("dc1", "t1").await;
        if l.status == LinkStatus::Shipping { Ok(()) } else { Err(format!("{}", l.status)) }
    })
    .await;
    let out = d.apply(&["--allow-destructive"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("move the active copy of table t1 from dc1 to dc2"), "{}", out.stdout);
    assert_eq!(d.admin("dc2").table_role("t1").await.unwrap().role, DrRole::Active);
    assert_eq!(d.admin("dc1").table_role("t1").await.unwrap().role, DrRole::Standby);
    let last = d.tern(&["plan", "-f", d.f()]).await;
    assert_eq!(last.code, 0, "converged after the move: {}", last.stdout);
}

/// Starts `tern apply -f FILE --yes`, reads its output until the first step is done, kills it
/// (SIGKILL) and returns what it printed.
async fn kill_after_first_step(file: &Path) -> String {
    let mut cmd = tokio::process::Command::new(tern_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TERN_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["apply", "-f", file.to_str().unwrap(), "--yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let first_done = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with("[1/") && line.contains("done in") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    child.kill().await.unwrap();
    assert!(first_done, "the apply printed its first step done: {printed}");
    printed
}

#[tokio::test]
async fn a_bad_file_and_an_unreachable_cluster_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nclusters:\n  - name: dc1\n    id: 1\n    meta-servers: [\"127.0.0.1:1\"]\n    replica-servers: [\"127.0.0.1:2\"]\ntables:\n  - name: t\n    partitons: 4\n",
    )
    .unwrap();
    let out = run_cli(&["plan", "-f", bad.to_str().unwrap()], Duration::from_secs(30)).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("bad.yaml:9:5: `partitons`: unknown field, did you mean `partitions`?"),
        "{}",
        out.stderr
    );

    // Nothing listens there (the port was free a moment ago).
    let addr = free_addr();
    let file = dir.path().join("gone.yaml");
    std::fs::write(
        &file,
        format!("version: 1\nclusters:\n  - name: dc1\n    id: 1\n    meta-servers: [\"{addr}\"]\n    replica-servers: [\"127.0.0.1:2\"]\n"),
    )
    .unwrap();
    for verb in ["plan", "apply"] {
        let out =
            run_cli(&[verb, "-f", file.to_str().unwrap(), "--timeout", "1s"], Duration::from_secs(60)).await;
        assert_eq!(out.code, 1, "{out:?}");
        let want = format!("cluster dc1 (meta servers {addr}) did not answer");
        assert!(out.stderr.contains(&want), "{verb}: {}", out.stderr);
    }

    // The example of `tern up` has port 0: refused with where.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/topology/examples/two-dc.yaml");
    let out = run_cli(&["plan", "-f", example], Duration::from_secs(30)).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("cluster dc1: meta server 127.0.0.1:0 (line 13, column"), "{}", out.stderr);
}
