//! The replica server's two clocks, read in one place: the monotonic clock (leases, timers: a
//! wall-clock step must never stretch a lease) and the wall clock (timetags).
//!
//! The wall clock is watched: a jump of more than the maximum clock offset (the bound other
//! clusters' timetags are held to) between two readings a second or more apart, forwards or
//! backwards against the monotonic clock, is logged as an error and counted
//! (`tern_clock_jumps_total`). The hybrid logical clock keeps timetags ordered either way; the
//! warning is for the operator, whose clock sync is broken.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tern_core::Clock;
use tern_replica::Now;
use tern_storage::SystemClock;

/// How often the wall clock is compared with the monotonic clock.
const CHECK_EVERY_MS: u64 = 1_000;

#[derive(Clone, Debug)]
pub struct ServerClock {
    started: Instant,
    /// Test only (`tern replica --test-clock-offset`): added to the wall clock, to play a
    /// server whose clock is wrong.
    offset_ms: i64,
    /// A jump of the wall clock larger than this is reported.
    jump_bound_ms: u64,
    /// The last (monotonic, wall) reading compared, in ms.
    last: Arc<(AtomicU64, AtomicU64)>,
}

impl ServerClock {
    pub fn start(offset_ms: i64, jump_bound_ms: u64) -> ServerClock {
        let clock = ServerClock {
            started: Instant::now(),
            offset_ms,
            jump_bound_ms,
            last: Arc::new((AtomicU64::new(0), AtomicU64::new(0))),
        };
        if offset_ms != 0 {
            tracing::warn!("test clock offset: this server's wall clock is shifted by {offset_ms} ms");
        }
        let wall = clock.wall_ms();
        clock.last.1.store(wall, Ordering::Relaxed);
        clock
    }

    fn wall_ms(&self) -> u64 {
        SystemClock.now_ms().saturating_add_signed(self.offset_ms)
    }

    /// Both clocks now, in milliseconds (monotonic: since this server started).
    pub fn now(&self) -> Now {
        let now = Now { mono_ms: self.started.elapsed().as_millis() as u64, wall_ms: self.wall_ms() };
        let last_mono = self.last.0.load(Ordering::Relaxed);
        if now.mono_ms >= last_mono + CHECK_EVERY_MS
            && self
                .last
                .0
                .compare_exchange(last_mono, now.mono_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let last_wall = self.last.1.swap(now.wall_ms, Ordering::AcqRel);
            if let Some(jump) = jump(last_mono, last_wall, now, self.jump_bound_ms) {
                metrics::counter!("tern_clock_jumps_total").increment(1);
                tracing::error!(
                    "this server's wall clock jumped {} by {} ms in {} ms (more than the maximum clock \
                     offset of {} ms): check its time synchronisation",
                    if jump > 0 { "forwards" } else { "backwards" },
                    jump.unsigned_abs(),
                    now.mono_ms - last_mono,
                    self.jump_bound_ms
                );
            }
        }
        now
    }
}

/// How far the wall clock moved beyond what the monotonic clock did since the last reading,
/// if more than `bound_ms` either way (positive: forwards).
fn jump(last_mono: u64, last_wall: u64, now: Now, bound_ms: u64) -> Option<i64> {
    let expected = last_wall as i64 + (now.mono_ms - last_mono) as i64;
    let off = now.wall_ms as i64 - expected;
    (off.unsigned_abs() > bound_ms).then_some(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_jump_beyond_the_bound_is_seen_either_way() {
        let at = |mono_ms, wall_ms| Now { mono_ms, wall_ms };
        assert_eq!(jump(1_000, 50_000, at(2_000, 51_000), 500), None, "in step");
        assert_eq!(jump(1_000, 50_000, at(2_000, 51_400), 500), None, "within the bound");
        assert_eq!(jump(1_000, 50_000, at(2_000, 3_651_000), 500), Some(3_600_000));
        assert_eq!(jump(1_000, 50_000, at(2_000, 41_000), 500), Some(-10_000));
    }

    #[test]
    fn a_test_offset_shifts_the_wall_clock_only() {
        let (plain, ahead) = (ServerClock::start(0, 500), ServerClock::start(3_600_000, 500));
        let (a, b) = (plain.now(), ahead.now());
        assert!(b.wall_ms >= a.wall_ms + 3_600_000 && b.wall_ms < a.wall_ms + 3_700_000);
        assert!(b.mono_ms < 1_000, "the monotonic clock is untouched");
    }
}
