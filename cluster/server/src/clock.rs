//! The replica server's two clocks, read in one place: the monotonic clock (leases, timers: a
//! wall-clock step must never stretch a lease) and the wall clock (timetags).

use std::time::Instant;

use tern_core::Clock;
use tern_replica::Now;
use tern_storage::SystemClock;

#[derive(Clone, Copy, Debug)]
pub struct ServerClock {
    started: Instant,
}

impl ServerClock {
    pub fn start() -> ServerClock {
        ServerClock { started: Instant::now() }
    }

    /// Both clocks now, in milliseconds (monotonic: since this server started).
    pub fn now(&self) -> Now {
        Now { mono_ms: self.started.elapsed().as_millis() as u64, wall_ms: SystemClock.now_ms() }
    }
}
