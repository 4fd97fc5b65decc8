//! A token-bucket bandwidth limit shared by the transfers of one backup or restore.
//!
//! The bucket itself ([`TokenBucket`]) is a pure function of the times it is given; the
//! [`RateLimiter`] around it reads tokio's clock and sleeps, so tests with a paused tokio clock
//! measure it exactly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Bytes per second with a burst allowance. Taking more than is available puts the bucket in
/// debt; the taker waits until the debt is paid, and later takers wait behind it (FIFO by
/// arrival, no starvation).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_bytes_per_sec: f64,
    burst_bytes: f64,
    available: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate_bytes_per_sec: u64, burst_bytes: u64, now: Instant) -> Self {
        let burst = burst_bytes.max(1) as f64;
        TokenBucket {
            rate_bytes_per_sec: rate_bytes_per_sec.max(1) as f64,
            burst_bytes: burst,
            available: burst,
            last: now,
        }
    }

    /// Takes `bytes` at `now`; returns how long the taker must wait before moving them.
    pub fn take(&mut self, now: Instant, bytes: u64) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.available = (self.available + elapsed * self.rate_bytes_per_sec).min(self.burst_bytes);
        self.available -= bytes as f64;
        if self.available >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.available / self.rate_bytes_per_sec)
        }
    }
}

/// A [`TokenBucket`] shared between tasks.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Mutex<TokenBucket>,
    rate_bytes_per_sec: u64,
}

impl RateLimiter {
    /// A limit of `rate_bytes_per_sec`, allowing bursts of `burst_bytes`.
    pub fn new(rate_bytes_per_sec: u64, burst_bytes: u64) -> Self {
        RateLimiter {
            bucket: Mutex::new(TokenBucket::new(rate_bytes_per_sec, burst_bytes, Instant::now())),
            rate_bytes_per_sec,
        }
    }

    pub fn rate_bytes_per_sec(&self) -> u64 {
        self.rate_bytes_per_sec
    }

    /// Waits until `bytes` may be moved.
    pub async fn acquire(&self, bytes: u64) {
        let wait = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.take(Instant::now(), bytes)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The burst a shared limit allows: a tenth of a second at the rate (at least 64 KiB), so a
/// limit holds over seconds, not only over minutes.
pub fn burst_for(rate_bytes_per_sec: u64) -> u64 {
    (rate_bytes_per_sec / 10).max(64 * 1024)
}

/// One bandwidth limit for every transfer of a process that asks for the same rate. A replica
/// server keeps one for its backup uploads, so a limit bounds the server's upload, whatever
/// number of its partitions upload at once, and a partition that starts after another does not
/// get a fresh burst (a limiter per partition let eight small partitions upload 2.5× the limit
/// one after the other). A request with another rate replaces the shared limiter; transfers
/// already running keep the one they took.
#[derive(Debug, Default)]
pub struct SharedLimit {
    current: Mutex<Option<Arc<RateLimiter>>>,
}

impl SharedLimit {
    /// The limiter for `rate_bytes_per_sec`: the shared one if it has that rate, else a new one
    /// that becomes the shared one.
    pub fn get(&self, rate_bytes_per_sec: u64) -> Arc<RateLimiter> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match &*current {
            Some(l) if l.rate_bytes_per_sec() == rate_bytes_per_sec => Arc::clone(l),
            _ => {
                let l = Arc::new(RateLimiter::new(rate_bytes_per_sec, burst_for(rate_bytes_per_sec)));
                *current = Some(Arc::clone(&l));
                l
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 500, t0);
        assert_eq!(b.take(t0, 500), Duration::ZERO);
        // 250 more bytes at once: 0.25 s of debt.
        assert_eq!(b.take(t0, 250), Duration::from_millis(250));
        // A second later the debt is paid and 750 bytes have accrued, capped at the burst.
        let t1 = t0 + Duration::from_millis(1250);
        assert_eq!(b.take(t1, 500), Duration::ZERO);
        // Time going backwards (another task's older reading) does not add tokens.
        assert_eq!(b.take(t0, 1000), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_holds_the_rate_over_many_takes() {
        let limiter = RateLimiter::new(1 << 20, 64 << 10);
        let start = Instant::now();
        for _ in 0..160 {
            limiter.acquire(64 << 10).await;
        }
        // 10 MiB at 1 MiB/s, the first 64 KiB free: 9.9375 s of (virtual) time.
        let secs = start.elapsed().as_secs_f64();
        assert!((9.9..=10.0).contains(&secs), "took {secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn partitions_one_after_another_share_one_limit() {
        let shared = SharedLimit::default();
        let start = Instant::now();
        // Eight partitions of 1 MiB in turn, each taking the server's limiter as it starts.
        for _ in 0..8 {
            let limiter = shared.get(1 << 20);
            for _ in 0..16 {
                limiter.acquire(64 << 10).await;
            }
        }
        // 8 MiB at 1 MiB/s with one burst of 64 KiB in all, not one per partition.
        let secs = start.elapsed().as_secs_f64();
        assert!((7.9..=8.0).contains(&secs), "took {secs} s");
        // Another rate replaces the shared limiter.
        assert_eq!(shared.get(2 << 20).rate_bytes_per_sec(), 2 << 20);
    }
}
