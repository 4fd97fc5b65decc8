//! On-disk building blocks: CRC-checked records and atomically replaced small files.
//!
//! A record is `[len: u32 LE][crc: u32 LE][payload: len bytes]`, where `crc` is CRC-32C over the
//! four length bytes followed by the payload, so a damaged length is caught as well. Payloads are
//! never empty, which tells a record from the zero-filled tail a crash can leave in a file.
//!
//! Small files (the vote, the committed log id, the snapshot) are replaced atomically: written
//! whole to `NAME.tmp`, fsynced, renamed over `NAME`, then the directory is fsynced, so a crash
//! leaves either the old or the new file, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use tern_core::{Error, Result};
use tern_storage::dir::sync_dir;

/// The largest payload a record may hold (1 GiB): a larger length field is damage.
const MAX_PAYLOAD: usize = 1 << 30;
const HEADER: usize = 8;

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// Appends `payload` as one record to `out`.
pub(crate) fn frame(payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    if payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return Err(Error::invariant(format!("record payload of {} bytes", payload.len())));
    }
    let len = u32::try_from(payload.len())
        .map_err(|_| Error::invariant(format!("record payload of {} bytes", payload.len())))?
        .to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The records found in a byte buffer.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) records: Vec<&'a [u8]>,
    /// The length of the valid prefix: anything after it is a torn (incomplete) last record.
    pub(crate) valid_len: usize,
}

/// The record at the start of `buf` if it is whole and its checksum matches: `(payload, size)`.
fn record_at(buf: &[u8]) -> Option<(&[u8], usize)> {
    let len_bytes: [u8; 4] = buf.get(0..4)?.try_into().ok()?;
    let crc_bytes: [u8; 4] = buf.get(4..8)?.try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return None;
    }
    let payload = buf.get(HEADER..HEADER + len)?;
    (checksum(len_bytes, payload) == u32::from_le_bytes(crc_bytes)).then_some((payload, HEADER + len))
}

/// Whether `rest`, which does not start with a valid record, is what a crash in the middle of
/// appending the last record leaves: a short header, a record running past the end, a last record
/// whose checksum does not match, or zeros to the end.
fn is_torn_tail(rest: &[u8]) -> bool {
    if rest.iter().all(|b| *b == 0) {
        return true;
    }
    let Some(len_bytes) = rest.get(0..4) else { return true };
    let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
    if len == 0 {
        return false; // not all zeros (checked above): damage, not a torn write
    }
    match HEADER.checked_add(len) {
        Some(end) if end < rest.len() => rest[end..].iter().all(|b| *b == 0),
        _ => true, // runs to or past the end: the last record, cut short or garbled
    }
}

/// Splits `buf` into records. A torn last record ends the valid prefix; damage followed by more
/// data is corruption.
pub(crate) fn parse<'a>(buf: &'a [u8], what: &str) -> Result<Parsed<'a>> {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match record_at(&buf[pos..]) {
            Some((payload, size)) => {
                records.push(payload);
                pos += size;
            }
            None if is_torn_tail(&buf[pos..]) => break,
            None => return Err(Error::corruption(format!("{what}: damaged record at offset {pos}"))),
        }
    }
    Ok(Parsed { records, valid_len: pos })
}

/// Replaces `dir/name` with `bytes` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    fs::rename(&tmp, &dst)
        .map_err(|e| Error::io(format!("rename {} to {}", tmp.display(), dst.display()), e))?;
    sync_dir(dir)
}

/// Writes `payloads` as records into `dir/name`, atomically.
pub(crate) fn write_records(dir: &Path, name: &str, payloads: &[&[u8]]) -> Result<()> {
    let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + HEADER).sum());
    for p in payloads {
        frame(p, &mut buf)?;
    }
    write_atomic(dir, name, &buf)
}

/// Reads the records of a file written by [`write_records`], or `None` if it does not exist.
/// Such files are replaced atomically, so anything but whole records is corruption.
pub(crate) fn read_records(dir: &Path, name: &str) -> Result<Option<Vec<Vec<u8>>>> {
    let path = dir.join(name);
    let buf = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    let what = path.display().to_string();
    let parsed = parse(&buf, &what)?;
    if parsed.valid_len != buf.len() {
        return Err(Error::corruption(format!("{what}: incomplete record at offset {}", parsed.valid_len)));
    }
    Ok(Some(parsed.records.into_iter().map(<[u8]>::to_vec).collect()))
}

/// Runs blocking file I/O off the async worker threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::invariant(format!("blocking storage task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for p in payloads {
            frame(p, &mut buf).unwrap();
        }
        buf
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let buf = framed(&[b"one", b"two", b"three"]);
        let p = parse(&buf, "t").unwrap();
        assert_eq!(p.records, vec![&b"one"[..], b"two", b"three"]);
        assert_eq!(p.valid_len, buf.len());
        // Every cut inside the last record drops just that record.
        let two = framed(&[b"one", b"two"]).len();
        for cut in two..buf.len() {
            let p = parse(&buf[..cut], "t").unwrap();
            assert_eq!(p.records.len(), 2, "cut at {cut}");
            assert_eq!(p.valid_len, two);
        }
        // A garbled last record, and zeros after the last record, are torn tails too.
        let mut garbled = buf.clone();
        let n = garbled.len();
        garbled[n - 1] ^= 0xff;
        assert_eq!(parse(&garbled, "t").unwrap().records.len(), 2);
        let mut zeros = buf.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(parse(&zeros, "t").unwrap().valid_len, buf.len());
    }

    #[test]
    fn damage_before_more_data_is_corruption() {
        let mut buf = framed(&[b"one", b"two", b"three"]);
        buf[HEADER + 1] ^= 0xff; // inside the first payload
        assert!(parse(&buf, "t").unwrap_err().is_fatal());
    }
}
