//! Node clocks: each simulated process reads its own clock, with an offset and a rate error.

/// Global simulated time is in microseconds; a node's clock reads milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct NodeClock {
    /// Added to the local reading.
    pub offset_ms: i64,
    /// Rate error in parts per million (positive: runs fast).
    pub drift_ppm: i64,
}

/// A fixed epoch for simulated wall clocks: 2026-01-01T00:00:00Z, so timetags look real.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

impl NodeClock {
    pub fn local_ms(&self, global_us: u64) -> u64 {
        let scaled = (global_us as i128 * (1_000_000 + self.drift_ppm) as i128) / 1_000_000_000;
        (EPOCH_MS + self.offset_ms + scaled as i64).max(0) as u64
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
        let c = NodeClock { offset_ms: 10, drift_ppm: 1_000 };
        assert_eq!(c.local_ms(1_000_000) - c.local_ms(0), 1_001);
        assert_eq!(c.local_ms(0), (EPOCH_MS + 10) as u64);
        assert_eq!(c.global_us_for(1_001), 1_000_000);
    }
}
