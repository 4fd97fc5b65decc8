//! Node clocks: each simulated process reads its own clock, with an offset and a rate error.
//!
//! A process has two clocks, as a server does: a monotonic one (leases, timers, backoff) and a
//! wall clock (timetags, TTLs, the purge horizon's retention). They read the same unless the
//! run steps a cluster's wall clocks ahead for a while ([`WallStep`]): an operator's clock
//! error that NTP later corrects, which moves wall clocks and never monotonic ones.

/// Global simulated time is in microseconds; a node's clock reads milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct NodeClock {
    /// Added to the local reading.
    pub offset_ms: i64,
    /// Rate error in parts per million (positive: runs fast).
    pub drift_ppm: i64,
    /// The wall clock runs ahead by a step for a while (`None`: never).
    pub wall_step: Option<WallStep>,
}

/// A wall clock `ahead_ms` ahead from global time `from_us` until `until_us` (then set right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallStep {
    pub from_us: u64,
    pub until_us: u64,
    pub ahead_ms: u64,
}

/// A fixed epoch for simulated wall clocks: 2026-01-01T00:00:00Z, so timetags look real.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

impl NodeClock {
    /// A clock without a step.
    pub fn new(offset_ms: i64, drift_ppm: i64) -> NodeClock {
        NodeClock { offset_ms, drift_ppm, wall_step: None }
    }

    /// The monotonic clock (what leases and timers use).
    pub fn local_ms(&self, global_us: u64) -> u64 {
        let scaled = (global_us as i128 * (1_000_000 + self.drift_ppm) as i128) / 1_000_000_000;
        (EPOCH_MS + self.offset_ms + scaled as i64).max(0) as u64
    }

    /// The wall clock (what stamps timetags).
    pub fn wall_ms(&self, global_us: u64) -> u64 {
        let step = self.wall_step.filter(|s| (s.from_us..s.until_us).contains(&global_us));
        self.local_ms(global_us) + step.map_or(0, |s| s.ahead_ms)
    }

    /// The most advanced reading the wall clock has shown by `global_us` (it goes back when a
    /// step ends).
    pub fn max_wall_ms(&self, global_us: u64) -> u64 {
        let now = self.wall_ms(global_us);
        match self.wall_step {
            Some(s) if global_us >= s.until_us => now.max(self.local_ms(s.until_us) + s.ahead_ms),
            _ => now,
        }
    }

    /// Global microseconds that pass while this clock advances `local_ms`.
    pub fn global_us_for(&self, local_ms: u64) -> u64 {
        ((local_ms as i128 * 1_000_000_000) / (1_000_000 + self.drift_ppm) as i128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_and_offset() {
        let c = NodeClock::new(10, 1_000);
        assert_eq!(c.local_ms(1_000_000) - c.local_ms(0), 1_001);
        assert_eq!(c.local_ms(0), (EPOCH_MS + 10) as u64);
        assert_eq!(c.global_us_for(1_001), 1_000_000);
    }

    #[test]
    fn a_wall_step_moves_the_wall_clock_only_while_it_lasts() {
        let step = WallStep { from_us: 1_000_000, until_us: 2_000_000, ahead_ms: 60_000 };
        let c = NodeClock { wall_step: Some(step), ..NodeClock::new(0, 0) };
        assert_eq!(c.wall_ms(999_999), c.local_ms(999_999));
        assert_eq!(c.wall_ms(1_500_000), c.local_ms(1_500_000) + 60_000);
        assert_eq!(c.wall_ms(2_000_000), c.local_ms(2_000_000), "set right again");
    }
}
