//! Making a directory's entries durable.

use std::fs::File;
use std::path::Path;

use tern_core::{Error, Result};

/// Fsyncs the directory `dir`: files created, renamed or removed in it before the call are
/// durable as entries when it returns (their contents need their own fsync).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        sync_dir(tmp.path()).unwrap();
        let gone = tmp.path().join("gone");
        let err = sync_dir(&gone).unwrap_err().to_string();
        assert!(err.contains(&gone.display().to_string()), "{err}");
    }
}
