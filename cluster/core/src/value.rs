//! The stored value: `header | user bytes`.
//!
//! Header version 1 (13 bytes):
//!
//! ```text
//! +---------+---------------------+------------------+
//! | version | expire_ts (u32 BE)  | timetag (u64 BE) |
//! |   0x01  | secs since epoch, 0 | see `timetag`    |
//! |         | = never expires     |                  |
//! +---------+---------------------+------------------+
//! ```
//!
//! A tombstone is a header whose timetag has the delete bit, with no user bytes. Every delete
//! writes one (so last-writer-wins can order it against a late, older write duplicated from
//! another cluster); reads treat them as absent and compaction drops them after a retention.

use crate::codec::Reader;
use crate::error::{Error, Result};
use crate::timetag::Timetag;

pub const HEADER_V1: u8 = 1;
pub const HEADER_V1_LEN: usize = 13;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValueHeader {
    /// Absolute expiry in seconds since the Unix epoch; 0 means the record never expires.
    pub expire_ts: u32,
    pub timetag: Timetag,
}

impl ValueHeader {
    /// The header of a delete stamped `timetag`.
    pub fn tombstone(timetag: Timetag) -> ValueHeader {
        ValueHeader { expire_ts: 0, timetag: timetag.with_delete(true) }
    }

    pub fn is_tombstone(&self) -> bool {
        self.timetag.is_delete()
    }

    /// Expired at `now_secs`: a record whose expiry second has been reached is gone.
    pub fn is_expired(&self, now_secs: u64) -> bool {
        self.expire_ts != 0 && u64::from(self.expire_ts) <= now_secs
    }

    /// Neither expired nor a tombstone: what reads may return.
    pub fn is_live(&self, now_secs: u64) -> bool {
        !self.is_tombstone() && !self.is_expired(now_secs)
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(HEADER_V1);
        out.extend_from_slice(&self.expire_ts.to_be_bytes());
        out.extend_from_slice(&self.timetag.as_u64().to_be_bytes());
    }
}

/// Encodes a stored value.
pub fn encode(header: &ValueHeader, user_value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_V1_LEN + user_value.len());
    header.encode_into(&mut out);
    out.extend_from_slice(user_value);
    out
}

/// Splits a stored value into its header and user bytes.
pub fn decode(raw: &[u8]) -> Result<(ValueHeader, &[u8])> {
    let mut r = Reader::new(raw, "stored value");
    r.version("header version", HEADER_V1)?;
    let expire_ts = r.u32_be("expire_ts")?;
    let timetag = Timetag::from_u64(r.u64_be("timetag")?);
    let user = r.rest();
    if timetag.is_delete() && !user.is_empty() {
        return Err(Error::corruption(format!("tombstone carries {} bytes of value", user.len())));
    }
    Ok((ValueHeader { expire_ts, timetag }, user))
}

/// Converts a relative TTL to an absolute expiry: `ttl_secs` 0 means none. Saturates at the
/// largest representable second rather than wrapping to the past.
pub fn expire_ts_after(now_secs: u64, ttl_secs: u32) -> u32 {
    if ttl_secs == 0 {
        0
    } else {
        u32::try_from(now_secs.saturating_add(u64::from(ttl_secs))).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClusterId;

    /// Pins version 1 of the on-disk value format.
    #[test]
    fn golden_bytes_v1() {
        let h = ValueHeader {
            expire_ts: 0x0102_0304,
            timetag: Timetag::new(1, 2, ClusterId::new(3).unwrap(), false),
        };
        let raw = encode(&h, b"hi");
        assert_eq!(
            raw,
            vec![
                0x01, // version
                0x01, 0x02, 0x03, 0x04, // expire_ts
                0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x02, 0x06, // timetag
                b'h', b'i',
            ]
        );
        assert_eq!(decode(&raw).unwrap(), (h, &b"hi"[..]));
    }

    #[test]
    fn bad_headers_are_corruption() {
        assert!(decode(&[]).unwrap_err().is_fatal());
        assert!(decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err().is_fatal());
        assert!(decode(&[1, 0, 0]).unwrap_err().is_fatal());
        let tomb = Timetag::new(1, 0, ClusterId::new(1).unwrap(), true);
        let raw = encode(&ValueHeader { expire_ts: 0, timetag: tomb }, b"x");
        assert!(decode(&raw).unwrap_err().to_string().contains("tombstone"));
    }

    #[test]
    fn expiry() {
        let h = ValueHeader { expire_ts: 100, timetag: Timetag::ZERO };
        assert!(!h.is_expired(99));
        assert!(h.is_expired(100));
        assert!(!ValueHeader::default().is_expired(u64::MAX));
        assert_eq!(expire_ts_after(10, 0), 0);
        assert_eq!(expire_ts_after(10, 5), 15);
        assert_eq!(expire_ts_after(u64::from(u32::MAX), 5), u32::MAX);
    }
}
