//! The exported Kubernetes manifests against the Kubernetes API schemas, offline, with PyPI's
//! `kubernetes-validate` (it bundles the schemas; scripts/install-test-deps.sh installs it).
//! A missing tool fails the test: a check that silently does not run checks nothing.

use std::path::Path;
use std::process::Command;

use tern_topology::Topology;
use tern_topology::export::{self, K8sOptions};

/// The Kubernetes versions the manifests are checked against: the API version `k8s-openapi`
/// is built for (the workspace's `v1_33` feature, the oldest the crate supports) and the newest
/// the tool bundles.
const VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

fn validate(file: &Path, version: &str) {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", version])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubernetes-validate ({e}): run scripts/install-test-deps.sh to install it")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stdout.contains("WARN") && !stdout.contains("ERROR"),
        "kubernetes-validate --strict -k {version} {} failed ({}):\n{stdout}\n{stderr}\n--- the file:\n{}",
        file.display(),
        out.status,
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

#[test]
fn exported_manifests_pass_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    for example in ["two-dc.yaml", "everything.yaml"] {
        let path = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
        let t = Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let opts = K8sOptions { storage_class: Some("fast-ssd".into()), ..Default::default() };
        let all = dir.path().join(format!("all-{example}"));
        std::fs::write(&all, export::k8s(&t, &opts).unwrap()).unwrap();
        for version in VERSIONS {
            validate(&all, version);
        }
        for f in export::k8s_files(&t, &opts).unwrap() {
            let file = dir.path().join(format!("{}-{}", example.trim_end_matches(".yaml"), f.name));
            std::fs::write(&file, &f.text).unwrap();
            validate(&file, VERSIONS[1]);
        }
    }
}

/// The check above would pass a tool that accepts anything: it must refuse a manifest that
/// breaks the schema.
#[test]
fn the_schema_check_refuses_an_invalid_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topology::load(format!("{}/examples/two-dc.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let text = export::k8s(&t, &K8sOptions::default()).unwrap();
    let broken = text.replacen("serviceName:", "serviceNmae:", 1);
    assert_ne!(broken, text);
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", VERSIONS[1]])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubernetes-validate ({e}): run scripts/install-test-deps.sh to install it")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a misspelt field passed:\n{stdout}");
    assert!(stdout.contains("serviceNmae"), "{stdout}");
}
