//! Durable local files: write to a temporary name, fsync, rename, fsync the directory.

use std::path::{Path, PathBuf};

use rand::Rng;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// Fsyncs a directory, so that entries created, renamed or removed in it survive a crash.
pub(crate) async fn fsync_dir(dir: &Path) -> Result<()> {
    let dir_owned = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir_owned)?.sync_all())
        .await
        .map_err(|e| Error::io("fsync directory", dir, std::io::Error::other(e)))?
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Creates `dir` and its missing ancestors, fsyncing the parent of each directory created so
/// the new entries are durable.
pub(crate) async fn create_dirs_durably(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        match tokio::fs::metadata(d).await {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(Error::io("create directory", d, std::io::Error::other("a file is in the way")));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(d),
            Err(e) => return Err(Error::io("inspect directory", d, e)),
        }
        cursor = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    if missing.is_empty() {
        return Ok(());
    }
    tokio::fs::create_dir_all(dir).await.map_err(|e| Error::io("create directory", dir, e))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(parent).await?;
        }
    }
    Ok(())
}

/// A file written under a temporary name in `tmp_dir` and moved to its final path on
/// [`AtomicFile::commit`]. Dropped before commit, it removes the temporary file.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    tmp_path: PathBuf,
    final_path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl AtomicFile {
    /// A temporary file next to `final_path`.
    pub(crate) async fn create(final_path: &Path) -> Result<Self> {
        let parent = final_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = final_path
            .file_name()
            .ok_or_else(|| Error::invalid("file path", format!("{final_path:?} has no file name")))?;
        create_dirs_durably(parent).await?;
        let tmp_name = format!(".{}.tern-tmp-{:016x}", name.to_string_lossy(), rand::rng().random::<u64>());
        Self::create_in(&parent.join(tmp_name), final_path).await
    }

    /// A temporary file at `tmp_path` (same file system as `final_path`).
    pub(crate) async fn create_in(tmp_path: &Path, final_path: &Path) -> Result<Self> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp_path)
            .await
            .map_err(|e| Error::io("create temporary file", tmp_path, e))?;
        Ok(AtomicFile {
            tmp_path: tmp_path.to_path_buf(),
            final_path: final_path.to_path_buf(),
            file: Some(file),
        })
    }

    pub(crate) async fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let file = self.file_mut()?;
        file.write_all(data).await.map_err(|e| Error::io("write", self.tmp_path.clone(), e))
    }

    /// Fsyncs the file, renames it to its final path (replacing what was there) and fsyncs
    /// the directories involved.
    pub(crate) async fn commit(mut self) -> Result<()> {
        let mut file = self.file.take().ok_or_else(|| {
            Error::io("commit", self.tmp_path.clone(), std::io::Error::other("already committed"))
        })?;
        file.flush().await.map_err(|e| Error::io("flush", self.tmp_path.clone(), e))?;
        file.sync_all().await.map_err(|e| Error::io("fsync", self.tmp_path.clone(), e))?;
        drop(file);
        if let Some(parent) = self.final_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dirs_durably(parent).await?;
        }
        tokio::fs::rename(&self.tmp_path, &self.final_path)
            .await
            .map_err(|e| Error::io("rename temporary file to", self.final_path.clone(), e))?;
        // Renamed: nothing left for Drop to remove.
        self.tmp_path = PathBuf::new();
        for dir in [self.final_path.parent()].into_iter().flatten() {
            if !dir.as_os_str().is_empty() {
                fsync_dir(dir).await?;
            }
        }
        Ok(())
    }

    fn file_mut(&mut self) -> Result<&mut tokio::fs::File> {
        let path = self.tmp_path.clone();
        self.file.as_mut().ok_or_else(|| Error::io("write", path, std::io::Error::other("already committed")))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp_path.as_os_str().is_empty() {
            // Best effort: a crash leaves the temporary file, which no listing shows.
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commit_replaces_and_drop_leaves_nothing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("a/b/file");
        let mut f = AtomicFile::create(&target).await?;
        f.write_all(b"one").await?;
        f.commit().await?;
        assert_eq!(std::fs::read(&target)?, b"one");

        let mut f = AtomicFile::create(&target).await?;
        f.write_all(b"two, unfinished").await?;
        drop(f);
        assert_eq!(std::fs::read(&target)?, b"one");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()?;
        assert_eq!(names, vec![std::ffi::OsString::from("file")]);
        Ok(())
    }
}
