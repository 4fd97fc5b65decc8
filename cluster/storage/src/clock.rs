//! The real clock, for runtimes. Cores and stores take `Arc<dyn Clock>` so tests and the
//! simulator can substitute `tern_core::ManualClock`.

use std::time::{SystemTime, UNIX_EPOCH};

use tern_core::Clock;

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 reads as 0 rather than failing every request.
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}
