//! The storage key codec: `u16 BE len(hash_key) | hash_key | sort_key`.
//!
//! All sort keys of one hash key share the prefix `len | hash_key` and so sit together in byte
//! order; that is what makes per-hash-key scans and atomic multi-key writes cheap. Hash keys
//! therefore have at most `u16::MAX` bytes. The order *across* hash keys is by length first,
//! which only the unordered full-table scan sees.

use std::ops::Bound;

use crate::error::{Error, Result};

/// The largest hash key the codec can represent.
pub const MAX_HASH_KEY_BYTES: usize = u16::MAX as usize;

/// Encodes `(hash_key, sort_key)` as a storage key.
pub fn encode(hash_key: &[u8], sort_key: &[u8]) -> Result<Vec<u8>> {
    let mut k = hash_key_prefix(hash_key)?;
    k.extend_from_slice(sort_key);
    Ok(k)
}

/// The prefix shared by every storage key of `hash_key`.
pub fn hash_key_prefix(hash_key: &[u8]) -> Result<Vec<u8>> {
    let len = u16::try_from(hash_key.len()).map_err(|_| Error::LimitExceeded {
        what: "hash key",
        size: hash_key.len() as u64,
        max: MAX_HASH_KEY_BYTES as u64,
        setting: "max-hash-key-bytes",
    })?;
    let mut k = Vec::with_capacity(2 + hash_key.len());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(hash_key);
    Ok(k)
}

/// Splits a storage key back into `(hash_key, sort_key)`.
pub fn decode(key: &[u8]) -> Result<(&[u8], &[u8])> {
    if key.len() < 2 {
        return Err(Error::corruption(format!(
            "storage key of {} bytes is shorter than its 2-byte length prefix",
            key.len()
        )));
    }
    let len = usize::from(u16::from_be_bytes([key[0], key[1]]));
    if key.len() < 2 + len {
        return Err(Error::corruption(format!(
            "storage key of {} bytes declares a hash key of {len} bytes",
            key.len()
        )));
    }
    Ok((&key[2..2 + len], &key[2 + len..]))
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// when there is none (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// A range of storage keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every storage key.
    pub fn all() -> KeyRange {
        KeyRange { start: Bound::Unbounded, end: Bound::Unbounded }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: Vec<u8>) -> KeyRange {
        let end = match prefix_successor(&prefix) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        KeyRange { start: Bound::Included(prefix), end }
    }

    /// The storage keys of `hash_key` whose sort keys lie in `(start, end)`.
    pub fn sort_keys(hash_key: &[u8], start: Bound<&[u8]>, end: Bound<&[u8]>) -> Result<KeyRange> {
        let prefix = hash_key_prefix(hash_key)?;
        let with = |sk: &[u8]| {
            let mut k = prefix.clone();
            k.extend_from_slice(sk);
            k
        };
        let start = match start {
            Bound::Included(sk) => Bound::Included(with(sk)),
            Bound::Excluded(sk) => Bound::Excluded(with(sk)),
            Bound::Unbounded => Bound::Included(prefix.clone()),
        };
        let end = match end {
            Bound::Included(sk) => Bound::Included(with(sk)),
            Bound::Excluded(sk) => Bound::Excluded(with(sk)),
            Bound::Unbounded => match prefix_successor(&prefix) {
                Some(s) => Bound::Excluded(s),
                None => Bound::Unbounded,
            },
        };
        Ok(KeyRange { start, end })
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }

    /// True when no key can be in the range.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e))
            | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
            _ => false,
        }
    }

    pub fn as_ref_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_ref_bound(&self.start), as_ref_bound(&self.end))
    }
}

fn as_ref_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        assert_eq!(encode(b"user", b"name").unwrap(), b"\x00\x04username".to_vec());
        assert_eq!(encode(b"", b"").unwrap(), vec![0, 0]);
    }

    #[test]
    fn oversized_hash_key_names_the_limit() {
        let hk = vec![b'x'; 70_000];
        let err = encode(&hk, b"").unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { size: 70_000, .. }), "{err}");
    }

    #[test]
    fn malformed_keys_are_corruption() {
        assert!(decode(&[0]).unwrap_err().is_fatal());
        assert!(decode(&[0, 5, b'a']).unwrap_err().is_fatal());
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }

    proptest! {
        #[test]
        fn round_trip(hk in proptest::collection::vec(any::<u8>(), 0..40), sk: Vec<u8>) {
            let k = encode(&hk, &sk).unwrap();
            let (h, s) = decode(&k).unwrap();
            prop_assert_eq!(h, &hk[..]);
            prop_assert_eq!(s, &sk[..]);
        }

        /// A sort-key range holds exactly the keys of that hash key whose sort key is in range.
        #[test]
        fn sort_key_range_matches_model(
            hk in proptest::collection::vec(any::<u8>(), 0..4),
            other in proptest::collection::vec(any::<u8>(), 0..4),
            sk in proptest::collection::vec(any::<u8>(), 0..4),
            lo in proptest::collection::vec(any::<u8>(), 0..4),
            hi in proptest::collection::vec(any::<u8>(), 0..4),
            lo_incl: bool, hi_incl: bool,
        ) {
            let start = if lo_incl { Bound::Included(&lo[..]) } else { Bound::Excluded(&lo[..]) };
            let end = if hi_incl { Bound::Included(&hi[..]) } else { Bound::Excluded(&hi[..]) };
            let r = KeyRange::sort_keys(&hk, start, end).unwrap();
            let in_range = (if lo_incl { sk >= lo } else { sk > lo })
                && (if hi_incl { sk <= hi } else { sk < hi });
            prop_assert_eq!(r.contains(&encode(&hk, &sk).unwrap()), in_range);
            if other != hk {
                prop_assert!(!r.contains(&encode(&other, &sk).unwrap()));
            }
            let all = KeyRange::sort_keys(&hk, Bound::Unbounded, Bound::Unbounded).unwrap();
            prop_assert!(all.contains(&encode(&hk, &sk).unwrap()));
            if other != hk {
                prop_assert!(!all.contains(&encode(&other, &sk).unwrap()));
            }
        }
    }
}

/// Renders bytes for messages and the CLI: printable ASCII as is, `\` as `\\`, everything else
/// as `\xNN`. Long input is cut after `max` bytes with a `…(N bytes)` marker.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(bytes.len().min(max) + 8);
    for &b in bytes.iter().take(max) {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        s.push_str(&format!("…({} bytes)", bytes.len()));
    }
    s
}

#[cfg(test)]
mod escape_tests {
    #[test]
    fn escapes() {
        assert_eq!(super::escape(b"a\\b\x00\xff", 10), "a\\\\b\\x00\\xff");
        assert_eq!(super::escape(b"abcdef", 3), "abc…(6 bytes)");
    }
}
