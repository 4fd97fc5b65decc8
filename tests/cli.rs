//! The real `tern` binary, run as a separate process per command against an embedded store.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn tern(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tern"));
    c.env_remove("TERN_DATA_DIR").env_remove("TERN_OUTPUT");
    if let Some(d) = dir {
        c.arg("--data-dir").arg(d);
    }
    c.args(args).output().unwrap()
}

/// Runs `tern kv --data-dir DIR ARGS`, asserts success, returns stdout.
fn kv_ok(dir: &Path, args: &[&str]) -> String {
    let mut full = vec!["kv", "--data-dir", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let out = tern(None, &full);
    assert!(out.status.success(), "tern {full:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a kv command that must fail; returns (exit code, stderr).
fn kv_err(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut full = vec!["kv", "--data-dir", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let out = tern(None, &full);
    assert!(!out.status.success(), "tern {full:?} should have failed");
    (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap()
}

#[test]
fn version_names_the_commit() {
    let out = tern(None, &["version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(&format!("tern {} (git ", env!("CARGO_PKG_VERSION"))), "{text}");
    let v = json(&String::from_utf8(tern(None, &["--output", "json", "version"]).stdout).unwrap());
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["git"].as_str().unwrap().len() >= 7);
}

#[test]
fn every_kv_operation_persists_across_invocations() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    assert_eq!(kv_ok(d, &["set", "user:1", "name", "alice", "--ttl", "1h"]), "OK\n");
    assert_eq!(kv_ok(d, &["get", "user:1", "name"]), "alice\n");
    // Whole seconds left: 3600, or 3599 when a second boundary passed between the two commands.
    let ttl = kv_ok(d, &["ttl", "user:1", "name"]);
    assert!(ttl == "3600s\n" || ttl == "3599s\n", "{ttl:?}");
    assert_eq!(kv_ok(d, &["get", "user:1", "nobody"]), "(not found)\n");
    kv_ok(d, &["multi-set", "user:1", "age=41", "city=Lisbon", "zip=1000"]);
    assert_eq!(kv_ok(d, &["count", "user:1"]), "4\n");
    assert_eq!(kv_ok(d, &["incr", "user:1", "age", "--by", "-1"]), "40\n");
    assert_eq!(kv_ok(d, &["incr", "user:1", "visits"]), "1\n");

    let v = json(&kv_ok(d, &["--output", "json", "multi-get", "user:1", "zip", "age", "nope"]));
    assert_eq!(v["records"][0]["sort_key"], "age");
    assert_eq!(v["records"][0]["value"], "40");
    assert_eq!(v["records"][1]["value"], "1000");
    assert_eq!(v["complete"], true);

    // Scan by pages, following the resume point by hand.
    let page = json(&kv_ok(d, &["--output", "json", "scan", "user:1", "--limit", "2", "--no-value"]));
    assert_eq!(page["records"].as_array().unwrap().len(), 2);
    let after = page["resume_after"].as_str().unwrap().to_string();
    let rest = json(&kv_ok(d, &["--output", "json", "scan", "user:1", "--after", &after]));
    let all = json(&kv_ok(d, &["--output", "json", "scan", "user:1", "--all", "--limit", "1"]));
    assert_eq!(all["records"].as_array().unwrap().len(), 5);
    assert_eq!(rest["records"].as_array().unwrap().len(), 3);
    let rev = json(&kv_ok(d, &["--output", "json", "scan", "user:1", "--reverse", "--prefix", "v"]));
    assert_eq!(rev["records"][0]["sort_key"], "visits");

    // Check-and-set and check-and-mutate.
    let cas = json(&kv_ok(
        d,
        &[
            "--output",
            "json",
            "cas",
            "user:1",
            "age",
            "--check",
            "int-less",
            "--operand",
            "18",
            "--value",
            "x",
            "--return-check-value",
        ],
    ));
    assert_eq!(cas["passed"], false);
    assert_eq!(cas["check_value"], "40");
    assert_eq!(kv_ok(d, &["get", "user:1", "age"]), "40\n", "a failed check writes nothing");
    kv_ok(
        d,
        &[
            "cam",
            "user:1",
            "city",
            "--check",
            "bytes-equal",
            "--operand",
            "Lisbon",
            "--put",
            "city=Porto",
            "--del",
            "zip",
        ],
    );
    assert_eq!(kv_ok(d, &["get", "user:1", "city"]), "Porto\n");
    assert_eq!(kv_ok(d, &["get", "user:1", "zip"]), "(not found)\n");

    kv_ok(d, &["multi-del", "user:1", "visits", "age"]);
    kv_ok(d, &["del", "user:1", "name"]);
    assert_eq!(kv_ok(d, &["count", "user:1"]), "1\n");
}

#[test]
fn table_scan_pages_through_every_hash_key() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    for i in 0..5 {
        kv_ok(d, &["multi-set", &format!("h{i}"), "a=1", "b=2"]);
    }
    let mut seen = 0;
    let mut resume: Option<String> = None;
    loop {
        let mut args = vec!["--output", "json", "scan-table", "--limit", "3"];
        if let Some(r) = &resume {
            args.extend(["--resume", r.as_str()]);
        }
        let page = json(&kv_ok(d, &args));
        seen += page["records"].as_array().unwrap().len();
        match page["resume"].as_str() {
            Some(t) => resume = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, 10);
    let (code, err) = kv_err(d, &["scan-table", "--resume", "xyz"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a token"), "{err}");
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    kv_ok(dir, &["set", "h", "s", "before"]);

    let big = dir.join("big.bin");
    std::fs::write(&big, vec![b'x'; 1024 * 1024 + 1]).unwrap();
    let (code, err) = kv_err(dir, &["set", "h", "s", "--value-file", big.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("value is 1048577 bytes") && err.contains("max-value-bytes"), "{err}");

    let long_key = "k".repeat(70_000);
    let (_, err) = kv_err(dir, &["set", &long_key, "s", "v"]);
    assert!(err.contains("hash key is 70000 bytes"), "{err}");

    let (code, err) = kv_err(dir, &["incr", "h", "s"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a decimal 64-bit integer") && err.contains("before"), "{err}");

    let (code, err) = kv_err(dir, &["cas", "h", "s", "--check", "sorta-equal", "--value", "v"]);
    assert_eq!(code, 2, "usage errors exit 2");
    assert!(err.contains("unknown check type") && err.contains("bytes-equal"), "{err}");

    let (code, err) = kv_err(dir, &["set", "h", "s", "v", "--ttl", "500ms"]);
    assert_eq!(code, 2);
    assert!(err.contains("whole number of seconds"), "{err}");

    let (_, err) = kv_err(dir, &["cas", "h", "s", "--check", "int-less", "--operand", "ten", "--value", "v"]);
    assert!(err.contains("check operand is not a decimal 64-bit integer"), "{err}");

    let (_, err) = kv_err(dir, &["multi-set", "h", "no-equals-sign"]);
    assert!(err.contains("is not SORT_KEY=VALUE"), "{err}");

    assert_eq!(kv_ok(dir, &["get", "h", "s"]), "before\n", "every refusal left the store as it was");
    let small = dir.join("small.bin");
    std::fs::write(&small, b"\x00\xffbinary").unwrap();
    kv_ok(dir, &["set", "h", "bin", "--value-file", small.to_str().unwrap()]);
    assert_eq!(kv_ok(dir, &["get", "h", "bin"]), "\\x00\\xffbinary\n");
}

#[test]
fn missing_target_and_planned_commands_say_what_to_do() {
    let out = tern(None, &["kv", "get", "a", "b"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--data-dir") && err.contains("--meta"), "{err}");
    for (cmd, wanted) in [(&["meta"][..], "--id is required"), (&["replica"], "--cluster-id is required")] {
        let out = tern(None, cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(wanted), "{cmd:?}: {err}");
    }
    // tern dr reconcile is built: it names what is missing.
    let out = tern(None, &["dr", "reconcile"]);
    assert_eq!(out.status.code(), Some(2), "a missing --table is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--table"));
    // A backup policy without its settings names the missing one before asking a cluster.
    let out = tern(None, &["backup", "policy", "add", "p", "--meta", "127.0.0.1:1", "--table", "t"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--target"), "{err}");
    let help = String::from_utf8(tern(None, &["--help"]).stdout).unwrap();
    for noun in ["kv", "meta", "replica", "proxy", "table", "dup", "dr", "backup", "apply", "bench"] {
        assert!(help.contains(&format!("\n  {noun} ")), "--help lists {noun}: {help}");
    }
}

/// Every `--flag` in the exported commands (`args:` of a Kubernetes container, `command:` of a
/// Compose service) with its subcommand, read from the YAML text: the list items after `key`.
fn exported_flags(text: &str, key: &str) -> Vec<(String, String)> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().trim_start_matches("- ") != key || i + 1 >= lines.len() {
            continue;
        }
        let items = indent(lines[i + 1]);
        let sub = lines[i + 1].trim().trim_start_matches("- ").to_string();
        for l in &lines[i + 2..] {
            let item = l.trim_start().strip_prefix("- ");
            if indent(l) < items || (indent(l) == items && item.is_none()) {
                break;
            }
            if let Some(flag) = item.and_then(|t| t.strip_prefix("--")).filter(|_| indent(l) == items) {
                found.push((sub.clone(), format!("--{flag}")));
            }
        }
    }
    found
}

#[test]
fn export_writes_manifests_whose_flags_the_binary_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/topology/examples/everything.yaml");
    let k8s = tern(None, &["export", "k8s", "-f", example]);
    assert!(k8s.status.success(), "{}", String::from_utf8_lossy(&k8s.stderr));
    let k8s = String::from_utf8(k8s.stdout).unwrap();
    assert_eq!(k8s.matches("kind: StatefulSet").count(), 4, "{k8s}");
    let compose = tern(None, &["export", "compose", "-f", example, "--image", "tern:test"]);
    assert!(compose.status.success(), "{}", String::from_utf8_lossy(&compose.stderr));
    let compose = String::from_utf8(compose.stdout).unwrap();

    let mut flags = exported_flags(&k8s, "args:");
    assert!(flags.len() > 30, "{flags:?}");
    flags.extend(exported_flags(&compose, "command:"));
    flags.sort();
    flags.dedup();
    for sub in ["meta", "replica", "proxy"] {
        let help = String::from_utf8(tern(None, &[sub, "--help"]).stdout).unwrap();
        for (_, flag) in flags.iter().filter(|(s, _)| s == sub) {
            assert!(help.contains(&format!("{flag} ")), "`tern {sub}` has no {flag}:\n{help}");
        }
        assert!(flags.iter().any(|(s, _)| s == sub), "no `tern {sub}` exported: {flags:?}");
    }

    let out = dir.path().join("k8s");
    let written =
        tern(None, &["export", "k8s", "-f", example, "-o", out.to_str().unwrap(), "--namespace", "prod"]);
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    let mut files: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["common.yaml", "dc1.yaml", "dc2.yaml", "proxies.yaml"]);
    let dc2 = std::fs::read_to_string(out.join("dc2.yaml")).unwrap();
    assert!(
        dc2.contains("dc2-meta-1.dc2-meta.prod.svc.cluster.local:34601") && !dc2.contains("dc1-meta"),
        "{dc2}"
    );

    // A bad file: the usual diagnostics, exit 1, nothing on stdout.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: 1\nclusters:\n  - name: dc1\n    idd: 1\n").unwrap();
    for kind in ["k8s", "compose"] {
        let o = tern(None, &["export", kind, "-f", bad.to_str().unwrap()]);
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(o.stdout.is_empty());
        assert!(err.contains("bad.yaml:4:5: `idd`: unknown field, did you mean `id`?"), "{err}");
    }
}

/// `tern backup restore` refuses bad input before touching any cluster or target, naming the
/// flag or value; a target that does not exist fails naming it.
#[test]
fn backup_restore_names_bad_flags_and_targets() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("nothing-here");
    let target = target.to_str().unwrap();
    let id = "20261207T193000Z-users-0a1b2c3d";
    let cases: [(&[&str], &str); 4] = [
        (&["not-an-id", "--table", "t", "--target", target], "not-an-id"),
        (&[id, "--table", "t", "--target", target, "--partitions", "0"], "--partitions"),
        (&[id, "--table", "t", "--target", target, "--limit-mbps=-3"], "--limit-mbps"),
        (&[id, "--table", "bad name", "--target", target], "--table"),
    ];
    for (args, wanted) in cases {
        let mut full = vec!["backup", "restore", "--meta", "127.0.0.1:1"];
        full.extend_from_slice(args);
        let out = tern(None, &full);
        assert_eq!(out.status.code(), Some(1), "{full:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(wanted), "{full:?}: {err}");
    }
    let out =
        tern(None, &["backup", "restore", id, "--table", "t", "--target", target, "--meta", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing-here"), "{err}");
}
