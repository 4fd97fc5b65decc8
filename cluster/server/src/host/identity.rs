//! A server's identity: a random id generated once and kept in its data directory. A server whose
//! data directory is gone comes back as a new node (see docs/decisions.md).

use std::fs;
use std::io::Write;
use std::path::Path;

use tern_core::{Error, NodeId, Result};

const FILE: &str = "node_id";

/// Reads the node id from `dir`, or creates one (durably) if this is a new data directory.
pub fn load_or_create(dir: &Path) -> Result<NodeId> {
    let path = dir.join(FILE);
    match fs::read_to_string(&path) {
        Ok(s) => u64::from_str_radix(s.trim(), 16).ok().filter(|&id| id != 0).map(NodeId).ok_or_else(|| {
            Error::corruption(format!("{} does not hold a node id: {:?}", path.display(), s.trim()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
            let id = loop {
                let id: u64 = rand::random();
                if id != 0 {
                    break id;
                }
            };
            let tmp = dir.join(format!("{FILE}.tmp"));
            let mut f =
                fs::File::create(&tmp).map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
            writeln!(f, "{id:016x}")
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
            fs::rename(&tmp, &path).map_err(|e| Error::io(format!("rename {}", tmp.display()), e))?;
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(format!("fsync {}", dir.display()), e))?;
            Ok(NodeId(id))
        }
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn created_once_then_read_back() {
        let d = tempfile::tempdir().unwrap();
        let a = super::load_or_create(d.path()).unwrap();
        assert_eq!(super::load_or_create(d.path()).unwrap(), a);
        std::fs::write(d.path().join("node_id"), "zz").unwrap();
        assert!(super::load_or_create(d.path()).unwrap_err().is_fatal());
    }
}
