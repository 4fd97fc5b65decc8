//! The hybrid logical clock that stamps timetags.
//!
//! Built on the `hybrid-clocks` crate, but owned here so the crate can be replaced without
//! touching callers: its timestamps are 16 bytes, Tern's fit the 56 high bits of a [`Timetag`].
//! Wall time is never read here; every call takes `wall_ms` from the caller's injected clock.
//!
//! Guarantees: every timetag from [`Hlc::now`] is strictly greater than every timetag this clock
//! issued or [observed](Hlc::observe) before, whatever the wall clock does; the logical counter
//! never wraps (exhausted within a millisecond, it carries into the physical part). A timetag
//! from *another cluster* ([`Hlc::observe_remote`]) moves the clock only if it is at most the
//! maximum clock offset ahead of the local wall clock: a peer whose clock is hours ahead must not
//! drag this clock (and every last-writer-wins decision after it) along.

use hybrid_clocks::{Clock, ManualClock, Timestamp};

use crate::ids::ClusterId;
use crate::timetag::{MAX_LOGICAL, MAX_PHYSICAL_MS, Timetag};

/// What [`Hlc::observe`] found out about a peer's timetag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// How far the peer's physical time was ahead of our wall clock, when it exceeded the
    /// configured maximum offset. The clock still advances past it (causality wins), but the
    /// caller should count and report it: a peer clock that far ahead is a misconfiguration.
    pub ahead_beyond_max_ms: Option<u64>,
}

/// Not `Clone`: two copies of one clock could issue the same timetag.
pub struct Hlc {
    /// `ManualClock` is hybrid-clocks' source whose time is set from outside: the injection
    /// point for `wall_ms`.
    clock: Clock<ManualClock>,
    cluster: ClusterId,
    max_offset_ms: u64,
}

impl std::fmt::Debug for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hlc")
            .field("cluster", &self.cluster)
            .field("max_offset_ms", &self.max_offset_ms)
            .finish_non_exhaustive()
    }
}

impl Hlc {
    /// A clock for `cluster`, starting at `wall_ms`. Peer timetags more than `max_offset_ms`
    /// ahead of the local wall clock are reported by [`Hlc::observe`].
    pub fn new(cluster: ClusterId, wall_ms: u64, max_offset_ms: u64) -> Hlc {
        let clock = Clock::manual(wall_ms.min(MAX_PHYSICAL_MS)).expect("a manual clock source cannot fail");
        Hlc { clock, cluster, max_offset_ms }
    }

    pub fn cluster(&self) -> ClusterId {
        self.cluster
    }

    /// A new timetag for a write accepted now.
    pub fn now(&mut self, wall_ms: u64) -> Timetag {
        let ts = self.tick(wall_ms);
        Timetag::new(ts.time, ts.count, self.cluster, false)
    }

    /// Advances the clock past `seen` (a timetag from a peer cluster, or from this partition's
    /// own log after a restart or failover), so that later writes order after it.
    pub fn observe(&mut self, seen: Timetag, wall_ms: u64) -> Observation {
        let ts = Timestamp { epoch: 0, time: seen.physical_ms(), count: seen.logical() };
        self.clock.observe(&ts);
        let ahead = seen.physical_ms().saturating_sub(wall_ms);
        Observation { ahead_beyond_max_ms: (ahead > self.max_offset_ms).then_some(ahead) }
    }

    /// Advances the clock past `seen`, a timetag stamped by another cluster, if it is at most the
    /// maximum offset ahead of `wall_ms`; otherwise leaves the clock alone and returns how far
    /// ahead it is (the caller refuses the write that carries it).
    pub fn observe_remote(&mut self, seen: Timetag, wall_ms: u64) -> Result<(), u64> {
        let ahead = seen.physical_ms().saturating_sub(wall_ms);
        if ahead > self.max_offset_ms {
            return Err(ahead);
        }
        self.observe(seen, wall_ms);
        Ok(())
    }

    /// The maximum clock offset this clock accepts from other clusters.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    fn tick(&mut self, wall_ms: u64) -> Timestamp<u64> {
        self.clock.set_time(wall_ms.min(MAX_PHYSICAL_MS));
        let ts = self.clock.now().expect("a manual clock source cannot fail");
        if ts.count <= MAX_LOGICAL {
            return ts;
        }
        // The 14-bit logical counter is exhausted within one millisecond: borrow the next
        // millisecond, as if the wall clock had moved on.
        let bumped = Timestamp { epoch: 0, time: (ts.time + 1).min(MAX_PHYSICAL_MS), count: 0 };
        self.clock.observe(&bumped);
        self.clock.now().expect("a manual clock source cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hlc(wall: u64) -> Hlc {
        Hlc::new(ClusterId::new(1).unwrap(), wall, 500)
    }

    #[test]
    fn follows_wall_clock_when_it_moves() {
        let mut h = hlc(1000);
        let a = h.now(1000);
        let b = h.now(2000);
        assert_eq!(b.physical_ms(), 2000);
        assert_eq!(b.logical(), 0);
        assert!(b > a);
    }

    #[test]
    fn stays_monotonic_when_wall_clock_goes_back() {
        let mut h = hlc(5000);
        let a = h.now(5000);
        let b = h.now(1000);
        assert!(b > a);
        assert_eq!(b.physical_ms(), 5000);
    }

    #[test]
    fn observing_a_later_peer_orders_later_writes_after_it() {
        let mut h = hlc(1000);
        let peer = Timetag::new(9000, 3, ClusterId::new(2).unwrap(), false);
        let obs = h.observe(peer, 1000);
        assert_eq!(obs.ahead_beyond_max_ms, Some(8000));
        let next = h.now(1000);
        assert!(next > peer, "{next} must follow {peer}");
        assert_eq!(next.cluster().get(), 1);
    }

    #[test]
    fn peer_within_offset_is_not_reported() {
        let mut h = hlc(1000);
        let peer = Timetag::new(1400, 0, ClusterId::new(2).unwrap(), false);
        assert_eq!(h.observe(peer, 1000).ahead_beyond_max_ms, None);
    }

    #[test]
    fn logical_overflow_borrows_a_millisecond() {
        let mut h = hlc(1000);
        let mut last = h.now(1000);
        for _ in 0..(MAX_LOGICAL as usize + 10) {
            let t = h.now(1000);
            assert!(t > last);
            last = t;
        }
        assert_eq!(last.physical_ms(), 1001);
    }

    #[test]
    fn a_remote_timetag_too_far_ahead_leaves_the_clock_alone() {
        let mut h = hlc(1000);
        let far = Timetag::new(1000 + 3_600_000, 0, ClusterId::new(2).unwrap(), false);
        assert_eq!(h.observe_remote(far, 1000), Err(3_600_000));
        let next = h.now(1000);
        assert_eq!(next.physical_ms(), 1000, "the clock did not move: {next}");
        let near = Timetag::new(1400, 5, ClusterId::new(2).unwrap(), false);
        assert_eq!(h.observe_remote(near, 1000), Ok(()));
        assert!(h.now(1000) > near);
    }

    /// A peer timetag at the logical counter's limit: the next timetag carries into the next
    /// millisecond instead of wrapping (a wrapped counter would order it before the peer's).
    #[test]
    fn observing_a_timetag_at_the_logical_limit_carries_into_the_physical_part() {
        let mut h = hlc(1000);
        let at_limit = Timetag::new(1000, MAX_LOGICAL, ClusterId::new(2).unwrap(), false);
        h.observe_remote(at_limit, 1000).unwrap();
        let next = h.now(1000);
        assert!(next > at_limit, "{next} must follow {at_limit}");
        assert_eq!(next.physical_ms(), 1001, "{next}");
    }

    proptest! {
        /// Whatever the wall clock and peers do, issued timetags strictly increase and each
        /// follows every timetag observed before it.
        #[test]
        fn strictly_monotonic(steps in proptest::collection::vec((0u64..10_000, proptest::option::of(0u64..20_000)), 1..200)) {
            let mut h = hlc(0);
            let mut floor = Timetag::ZERO;
            for (wall, peer) in steps {
                if let Some(p) = peer {
                    let seen = Timetag::new(p, 0, ClusterId::new(2).unwrap(), false);
                    h.observe(seen, wall);
                    floor = floor.max(seen);
                }
                let t = h.now(wall);
                prop_assert!(t > floor, "{} after {}", t, floor);
                floor = t;
            }
        }
    }
}
