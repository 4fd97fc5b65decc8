//! Bodies of `put`: bytes in memory or a local file, read in parts.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result};

/// What to store: bytes already in memory, or a local file streamed from disk.
#[derive(Debug, Clone)]
pub enum PutBody {
    Bytes(Bytes),
    File(PathBuf),
}

impl From<Bytes> for PutBody {
    fn from(b: Bytes) -> Self {
        PutBody::Bytes(b)
    }
}

impl From<Vec<u8>> for PutBody {
    fn from(b: Vec<u8>) -> Self {
        PutBody::Bytes(Bytes::from(b))
    }
}

impl From<&'static str> for PutBody {
    fn from(s: &'static str) -> Self {
        PutBody::Bytes(Bytes::from_static(s.as_bytes()))
    }
}

/// Reads a [`PutBody`] in parts of a fixed size, checking that a file does not change size
/// while it is read.
#[derive(Debug)]
pub(crate) struct PartReader {
    source: Source,
    size_bytes: u64,
    read_bytes: u64,
    part_bytes: u64,
}

#[derive(Debug)]
enum Source {
    Bytes(Bytes),
    File(PathBuf, tokio::fs::File),
}

impl PartReader {
    pub(crate) async fn open(body: PutBody, part_bytes: u64) -> Result<Self> {
        let part_bytes = part_bytes.max(1);
        let (source, size_bytes) = match body {
            PutBody::Bytes(b) => {
                let len = b.len() as u64;
                (Source::Bytes(b), len)
            }
            PutBody::File(path) => {
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| Error::io("open file to upload", path.clone(), e))?;
                let meta =
                    file.metadata().await.map_err(|e| Error::io("stat file to upload", path.clone(), e))?;
                if !meta.is_file() {
                    return Err(Error::invalid(
                        "upload source",
                        format!("{} is not a regular file", path.display()),
                    ));
                }
                (Source::File(path, file), meta.len())
            }
        };
        Ok(PartReader { source, size_bytes, read_bytes: 0, part_bytes })
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// How many parts the body has (at least 1: an empty body is one empty part).
    pub(crate) fn part_count(&self) -> u64 {
        self.size_bytes.div_ceil(self.part_bytes).max(1)
    }

    /// The next part, or `None` after the last.
    pub(crate) async fn next_part(&mut self) -> Result<Option<Bytes>> {
        if self.read_bytes >= self.size_bytes {
            if let Source::File(path, file) = &mut self.source {
                // The file must not have grown either.
                let mut probe = [0u8; 1];
                let n = file
                    .read(&mut probe)
                    .await
                    .map_err(|e| Error::io("read file to upload", path.clone(), e))?;
                if n != 0 {
                    return Err(changed(path, self.size_bytes));
                }
            }
            return Ok(None);
        }
        let want = self.part_bytes.min(self.size_bytes - self.read_bytes);
        let part = match &mut self.source {
            Source::Bytes(b) => {
                let start = self.read_bytes as usize;
                b.slice(start..start + want as usize)
            }
            Source::File(path, file) => {
                let mut buf = BytesMut::zeroed(want as usize);
                let mut filled = 0;
                while filled < buf.len() {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| Error::io("read file to upload", path.clone(), e))?;
                    if n == 0 {
                        return Err(changed(path, self.size_bytes));
                    }
                    filled += n;
                }
                buf.freeze()
            }
        };
        self.read_bytes += want;
        Ok(Some(part))
    }

    /// The whole body (for single-request uploads of small bodies).
    pub(crate) async fn read_all(&mut self) -> Result<Bytes> {
        let mut all = BytesMut::with_capacity(self.size_bytes as usize);
        while let Some(part) = self.next_part().await? {
            all.extend_from_slice(&part);
        }
        Ok(all.freeze())
    }
}

fn changed(path: &std::path::Path, size: u64) -> Error {
    Error::Corrupt {
        object: path.display().to_string(),
        detail: format!("file changed size while being uploaded (was {size} bytes)"),
    }
}
