//! Every file in `tests/corpus/` is refused, with exactly the messages of its sibling
//! `.expected` file (one per line, `file:line:column: path: message`). To write the expected
//! files after changing messages: `TERN_BLESS=1 cargo test -p tern-topology --test it corpus`,
//! then read every diff before committing it.

use std::path::Path;

use tern_topology::Topology;

#[test]
fn every_bad_file_is_refused_with_its_expected_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("corpus");
    let bless = std::env::var_os("TERN_BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read the corpus")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("file name");
        let text = std::fs::read_to_string(path).expect("read corpus file");
        let got = match Topology::from_yaml(&text, name) {
            Ok(_) => "(accepted)".to_string(),
            Err(d) => d.to_string(),
        };
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, format!("{got}\n")).expect("write expected");
            continue;
        }
        let want = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no .expected file", path.display()));
        if got != want.trim_end() {
            failures.push(format!("{name}:\n  expected: {}\n  got:      {}", want.trim_end(), got));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn load_names_the_file_and_reports_a_missing_one() {
    let e = Topology::load("/nonexistent/topology.yaml").expect_err("no such file");
    assert!(e.to_string().starts_with("/nonexistent/topology.yaml: cannot read the topology file: "), "{e}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, "version: 1\nclusters: []\n").expect("write");
    let e = Topology::load(&path).expect_err("no cluster");
    assert_eq!(e.to_string(), format!("{}: clusters: a topology needs at least one cluster", path.display()));
}
