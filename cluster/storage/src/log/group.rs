//! Group commit: how long a log writer waits before a group's fsync. Pure decision logic (times
//! are microseconds passed in), so runtimes share it and tests need no clock.
//!
//! A writer that fsyncs as soon as anything is queued makes groups only from what arrived during
//! the previous fsync. Under load on a VM that is ~3 appends per fsync and ~60 µs of machine
//! time per fsync (virtio notifications, block completions, wake-ups): a quarter of a write's CPU.
//! So, under load, fsyncs are spaced: a group's fsync starts no sooner than
//! [`SPACING_PER_FSYNC`] times the recent fsync duration (capped by `max_spacing_us`) after the
//! previous one started, and whatever arrives meanwhile joins the group. The spacing follows
//! the device: on a disk that syncs in 20 µs it is 100 µs; on this VM's ~180–225 µs it would be
//! ~1 ms, and the log writer's default cap (0.7 ms) holds it there.
//! An idle writer (its last group held a single append) syncs at once, so a lone client's
//! latency does not change.

/// The spacing between fsync starts under load, in recent fsync durations.
pub const SPACING_PER_FSYNC: u64 = 5;

/// A group this small (in appends) or smaller means no load: the next one is not held back.
const IDLE_GROUP: usize = 1;

#[derive(Clone, Debug)]
pub struct GroupCommit {
    max_spacing_us: u64,
    /// Recent fsync duration, an exponentially weighted average (µs).
    fsync_us: u64,
    last_start_us: Option<u64>,
    last_appends: usize,
}

impl GroupCommit {
    /// `max_spacing_us == 0` never holds a group back.
    pub fn new(max_spacing_us: u64) -> GroupCommit {
        GroupCommit { max_spacing_us, fsync_us: 0, last_start_us: None, last_appends: 0 }
    }

    /// The spacing under load now: [`SPACING_PER_FSYNC`] recent fsyncs, at most the maximum.
    pub fn spacing_us(&self) -> u64 {
        self.fsync_us.saturating_mul(SPACING_PER_FSYNC).min(self.max_spacing_us)
    }

    /// How long to wait at `now_us`, with a group ready, before starting its fsync.
    pub fn wait_us(&self, now_us: u64) -> u64 {
        match self.last_start_us {
            Some(start) if self.last_appends > IDLE_GROUP => {
                (start + self.spacing_us()).saturating_sub(now_us)
            }
            _ => 0,
        }
    }

    /// A group of `appends` appends started its fsync at `start_us`; it took `took_us`.
    pub fn synced(&mut self, appends: usize, start_us: u64, took_us: u64) {
        self.fsync_us = if self.fsync_us == 0 { took_us } else { (self.fsync_us * 7 + took_us) / 8 };
        self.last_start_us = Some(start_us);
        self.last_appends = appends;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_writer_syncs_at_once() {
        let mut g = GroupCommit::new(1_000);
        assert_eq!(g.wait_us(0), 0, "nothing synced yet");
        g.synced(1, 100, 200);
        assert_eq!(g.wait_us(150), 0, "the last group held one append: no load");
    }

    #[test]
    fn under_load_fsync_starts_are_spaced_by_recent_fsync_durations() {
        let mut g = GroupCommit::new(10_000);
        g.synced(3, 1_000, 180);
        assert_eq!(g.spacing_us(), 900);
        assert_eq!(g.wait_us(1_200), 700, "900 µs after the last start");
        assert_eq!(g.wait_us(1_900), 0, "already that long ago");
        // The average follows slower fsyncs, an eighth at a time.
        g.synced(4, 2_000, 980);
        assert_eq!(g.spacing_us(), (180 * 7 + 980) / 8 * 5);
    }

    #[test]
    fn the_spacing_is_capped_and_zero_turns_it_off() {
        let mut g = GroupCommit::new(500);
        g.synced(5, 0, 1_000);
        assert_eq!(g.wait_us(100), 400, "5 ms capped at 500 µs");
        let mut off = GroupCommit::new(0);
        off.synced(5, 0, 1_000);
        assert_eq!(off.wait_us(0), 0);
    }
}
