//! The JSON Schema of the topology file, generated from [`crate::schema`] with `schemars`, so
//! the two cannot drift. The committed copy, `topology/schema/topology.schema.json`, is what
//! editors use (yaml-language-server: `# yaml-language-server: $schema=...`); a test fails when
//! it differs from the generated one. Regenerate it with
//! `TERN_WRITE_SCHEMA=1 cargo test -p tern-topology --test it json_schema`.

use std::path::{Path, PathBuf};

use crate::schema::Topology;

/// The schema as pretty-printed JSON, ending with a newline.
pub fn generate() -> String {
    let schema = schemars::schema_for!(Topology);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("\"{e}\""));
    s.push('\n');
    s
}

/// Where the committed copy lives in this repository.
pub fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema").join("topology.schema.json")
}

/// Writes the generated schema to `path`.
pub fn write(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, generate())
}
