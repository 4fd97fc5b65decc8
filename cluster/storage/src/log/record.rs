//! The log record format, version 1:
//!
//! ```text
//! record  = len:u32 LE | crc:u32 LE | payload        (len = payload bytes, crc = CRC-32C of payload)
//! payload = version:u8 (=1) | ballot:varint | decree:varint | timetag:u64 BE | mutation (rest)
//! ```
//!
//! A record is checked before it is written (it must decode back to the same entry) and after
//! it is read (length, CRC, version, fields).

use tern_core::codec::{Reader, Writer};
use tern_core::{Ballot, Decree, Error, Mutation, Result, Timetag};

use super::LogEntry;

pub const RECORD_V1: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// A sanity bound on one record: a mutation is at most `max-batch-bytes` plus framing.
pub const MAX_RECORD_BYTES: u32 = 64 << 20;

/// Encodes `entry` as one record (header included).
pub fn encode_record(entry: &LogEntry) -> Result<Vec<u8>> {
    if entry.decree == Decree::ZERO {
        return Err(Error::invariant("log entries start at decree 1"));
    }
    let mutation = entry.mutation.encode();
    let mut w = Writer::with_capacity(HEADER_LEN + 24 + mutation.len());
    w.u32_be(0).u32_be(0); // header placeholder
    w.u8(RECORD_V1).varint(entry.ballot.0).varint(entry.decree.0).u64_be(entry.timetag.as_u64());
    w.raw(&mutation);
    let mut buf = w.finish();
    let payload_len = buf.len() - HEADER_LEN;
    if payload_len as u64 > u64::from(MAX_RECORD_BYTES) {
        return Err(Error::InvalidArgument(format!(
            "log record of {payload_len} bytes exceeds {MAX_RECORD_BYTES}"
        )));
    }
    let crc = crc32c::crc32c(&buf[HEADER_LEN..]);
    buf[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    // Checked before it is written.
    match decode_record(&buf)? {
        Decoded::Record(back, n) if n == buf.len() && back == *entry => Ok(buf),
        _ => Err(Error::invariant(format!("log record for decree {} does not read back", entry.decree))),
    }
}

/// The result of decoding at one position.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A record and its total size.
    Record(LogEntry, usize),
    /// The data ends inside a record: `have` bytes of a record that needs more.
    Incomplete { have: usize },
    /// A zero length: the zero-filled space after the last record.
    ZeroFill,
}

/// Decodes the record at the start of `buf`. A CRC mismatch or undecodable payload is
/// `CORRUPTION`; running out of bytes is [`Decoded::Incomplete`].
pub fn decode_record(buf: &[u8]) -> Result<Decoded> {
    if buf.len() < HEADER_LEN {
        return Ok(if buf.iter().all(|&b| b == 0) && !buf.is_empty() {
            Decoded::ZeroFill
        } else {
            Decoded::Incomplete { have: buf.len() }
        });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 {
        return Ok(Decoded::ZeroFill);
    }
    if len > MAX_RECORD_BYTES {
        return Err(Error::corruption(format!("log record claims {len} bytes")));
    }
    let total = HEADER_LEN + len as usize;
    if buf.len() < total {
        return Ok(Decoded::Incomplete { have: buf.len() });
    }
    let payload = &buf[HEADER_LEN..total];
    let actual = crc32c::crc32c(payload);
    if actual != crc {
        return Err(Error::corruption(format!(
            "log record checksum mismatch (stored {crc:08x}, computed {actual:08x})"
        )));
    }
    let mut r = Reader::new(payload, "log record");
    r.version("version", RECORD_V1)?;
    let ballot = Ballot(r.varint("ballot")?);
    let decree = Decree(r.varint("decree")?);
    let timetag = Timetag::from_u64(r.u64_be("timetag")?);
    let mutation = Mutation::decode(r.rest())?;
    if decree == Decree::ZERO {
        return Err(Error::corruption("log record has decree 0"));
    }
    Ok(Decoded::Record(LogEntry { ballot, decree, timetag, mutation }, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::{ClusterId, WriteOp};

    fn entry() -> LogEntry {
        LogEntry {
            ballot: Ballot(3),
            decree: Decree(300),
            timetag: Timetag::new(1, 2, ClusterId::new(1).unwrap(), false),
            mutation: Mutation::new(vec![WriteOp::Del { hash_key: b"h".to_vec(), sort_key: b"s".to_vec() }]),
        }
    }

    /// Pins version 1 of the log record format.
    #[test]
    fn golden_bytes_v1() {
        let buf = encode_record(&entry()).unwrap();
        let payload = [
            1, // version
            3, // ballot
            0xac, 0x02, // decree 300
            0, 0, 0, 0, 0, 0x40, 0x02, 0x02, // timetag
            1, 1, 2, 1, b'h', 1, b's', // mutation v1: 1 op, del h s
        ];
        let mut want = (payload.len() as u32).to_le_bytes().to_vec();
        want.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        want.extend_from_slice(&payload);
        assert_eq!(buf, want);
        assert_eq!(decode_record(&buf).unwrap(), Decoded::Record(entry(), buf.len()));
    }

    #[test]
    fn damage_is_detected() {
        let buf = encode_record(&entry()).unwrap();
        for cut in 0..buf.len() {
            let d = decode_record(&buf[..cut]).unwrap();
            assert!(
                matches!(d, Decoded::Incomplete { .. })
                    || (cut > 0 && d == Decoded::ZeroFill && buf[..cut].iter().all(|&b| b == 0)),
                "{cut}: {d:?}"
            );
        }
        for i in HEADER_LEN..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(decode_record(&bad).unwrap_err().is_fatal(), "flip at {i}");
        }
        assert_eq!(decode_record(&[0u8; 16]).unwrap(), Decoded::ZeroFill);
    }

    #[test]
    fn decree_zero_is_refused_on_write() {
        let mut e = entry();
        e.decree = Decree(0);
        assert!(encode_record(&e).is_err());
    }
}
