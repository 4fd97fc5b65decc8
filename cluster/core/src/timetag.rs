//! Timetags: the 64-bit stamp every write carries, ordered for last-writer-wins.
//!
//! Layout, most significant bit first:
//!
//! ```text
//!  63                    22 21           8 7        1  0
//! +------------------------+--------------+----------+---+
//! | physical ms (42 bits)  | logical (14) | cluster  | D |
//! +------------------------+--------------+----------+---+
//! ```
//!
//! * physical: milliseconds since the Unix epoch from the hybrid logical clock (good until 2109);
//! * logical: the HLC counter that orders events within one millisecond;
//! * cluster: the 7-bit id of the cluster where the write was accepted from a client;
//! * D: set on deletes (tombstones).
//!
//! Comparing two timetags as `u64` compares (HLC time, cluster id): later writes win and ties
//! between clusters break by cluster id, deterministically on every replica of every cluster.

use std::fmt;

use crate::ids::ClusterId;

pub const PHYSICAL_BITS: u32 = 42;
pub const LOGICAL_BITS: u32 = 14;
pub const MAX_PHYSICAL_MS: u64 = (1 << PHYSICAL_BITS) - 1;
pub const MAX_LOGICAL: u32 = (1 << LOGICAL_BITS) - 1;

#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timetag(u64);

impl Timetag {
    pub const ZERO: Timetag = Timetag(0);

    /// Packs the fields. `physical_ms` saturates at 42 bits; `logical` must fit in 14 bits.
    pub fn new(physical_ms: u64, logical: u32, cluster: ClusterId, delete: bool) -> Timetag {
        debug_assert!(logical <= MAX_LOGICAL, "logical counter {logical} exceeds 14 bits");
        let physical = physical_ms.min(MAX_PHYSICAL_MS);
        Timetag(
            (physical << (LOGICAL_BITS + 8))
                | (u64::from(logical & MAX_LOGICAL) << 8)
                | (u64::from(cluster.get()) << 1)
                | u64::from(delete),
        )
    }

    /// The smallest timetag at physical time `physical_ms` (a bound, not a write's timetag).
    pub const fn at_physical_ms(physical_ms: u64) -> Timetag {
        let physical = if physical_ms > MAX_PHYSICAL_MS { MAX_PHYSICAL_MS } else { physical_ms };
        Timetag(physical << (LOGICAL_BITS + 8))
    }

    pub const fn from_u64(v: u64) -> Timetag {
        Timetag(v)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    pub const fn physical_ms(self) -> u64 {
        self.0 >> (LOGICAL_BITS + 8)
    }

    /// Seconds since the Unix epoch of the physical part: the "now" that applying this write
    /// uses for TTLs, so that every replica computes the same expiry.
    pub const fn physical_secs(self) -> u64 {
        self.physical_ms() / 1000
    }

    pub const fn logical(self) -> u32 {
        ((self.0 >> 8) as u32) & MAX_LOGICAL
    }

    pub const fn cluster(self) -> ClusterId {
        ClusterId::from_bits((self.0 >> 1) as u8)
    }

    pub const fn is_delete(self) -> bool {
        self.0 & 1 == 1
    }

    pub const fn with_delete(self, delete: bool) -> Timetag {
        Timetag((self.0 & !1) | delete as u64)
    }
}

impl fmt::Debug for Timetag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timetag({self})")
    }
}

impl fmt::Display for Timetag {
    /// `physical_ms.logical@cluster`, with a trailing `!del` on tombstones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.physical_ms(), self.logical(), self.cluster())?;
        if self.is_delete() {
            f.write_str("!del")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(id: u8) -> ClusterId {
        ClusterId::new(id).unwrap()
    }

    #[test]
    fn golden_layout() {
        let t = Timetag::new(1, 2, c(3), true);
        assert_eq!(t.as_u64(), (1 << 22) | (2 << 8) | (3 << 1) | 1);
        assert_eq!(t.to_string(), "1.2@3!del");
    }

    #[test]
    fn physical_time_saturates() {
        let t = Timetag::new(u64::MAX, 0, c(1), false);
        assert_eq!(t.physical_ms(), MAX_PHYSICAL_MS);
    }

    #[test]
    fn ties_break_by_cluster() {
        assert!(Timetag::new(5, 0, c(2), false) > Timetag::new(5, 0, c(1), false));
        assert!(Timetag::new(5, 1, c(1), false) > Timetag::new(5, 0, c(9), false));
        assert!(Timetag::new(6, 0, c(1), false) > Timetag::new(5, 9, c(9), false));
    }

    proptest! {
        #[test]
        fn fields_round_trip(p in 0..=MAX_PHYSICAL_MS, l in 0..=MAX_LOGICAL, id in 1u8..=127, d: bool) {
            let t = Timetag::new(p, l, c(id), d);
            prop_assert_eq!(t.physical_ms(), p);
            prop_assert_eq!(t.logical(), l);
            prop_assert_eq!(t.cluster().get(), id);
            prop_assert_eq!(t.is_delete(), d);
            prop_assert_eq!(t.with_delete(!d).is_delete(), !d);
        }

        #[test]
        fn order_is_lexicographic(a in (0..=MAX_PHYSICAL_MS, 0..=MAX_LOGICAL, 1u8..=127),
                                  b in (0..=MAX_PHYSICAL_MS, 0..=MAX_LOGICAL, 1u8..=127)) {
            let ta = Timetag::new(a.0, a.1, c(a.2), false);
            let tb = Timetag::new(b.0, b.1, c(b.2), false);
            prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
        }
    }
}
