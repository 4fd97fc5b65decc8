//! SHA-256 content addresses of backup files.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 digest, written as 64 lowercase hex digits (in keys and in manifests).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    pub fn of(data: &[u8]) -> Self {
        Checksum(Sha256::digest(data).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Checksum(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.to_hex())
    }
}

impl FromStr for Checksum {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("sha256 checksum", format!("{s:?} is not 64 lowercase hex digits"));
        if s.len() != 64 || s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
        Ok(Checksum(out))
    }
}

impl Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hashing.
#[derive(Debug, Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len_bytes: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len_bytes += data.len() as u64;
    }

    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    pub fn finish(self) -> Checksum {
        Checksum(self.inner.finalize().into())
    }
}

/// Hashes a local file, reading it in 1 MiB chunks; returns its checksum and size. Runs on a
/// blocking thread: hashing is CPU work, and on a replica server it must not hold up the
/// runtime that serves client requests.
pub async fn hash_file(path: &Path) -> Result<(Checksum, u64)> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || hash_file_blocking(&owned))
        .await
        .map_err(|e| Error::io("hash file", path, std::io::Error::other(e)))?
}

fn hash_file_blocking(path: &Path) -> Result<(Checksum, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open file to hash", path, e))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io("read file to hash", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let len = hasher.len_bytes();
    Ok((hasher.finish(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_hex_roundtrip() {
        let c = Checksum::of(b"abc");
        assert_eq!(c.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(c.to_hex().parse::<Checksum>().ok(), Some(c));
        let mut h = Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), c);
        for bad in ["", "abc", &c.to_hex().to_uppercase(), &"g".repeat(64)] {
            assert!(bad.parse::<Checksum>().is_err(), "{bad}");
        }
    }
}
