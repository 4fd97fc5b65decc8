//! Retrying retryable errors with bounded exponential backoff.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// The wait doubles after each failure up to this.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub const NONE: RetryPolicy =
        RetryPolicy { max_attempts: 1, initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO };

    /// The wait after the `failures`-th failure (1-based).
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

impl Default for RetryPolicy {
    /// Five attempts, waiting 200 ms, 400 ms, 800 ms, 1.6 s: rides out a server restart or a
    /// throttling burst of a few seconds.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Runs `op` until it succeeds, fails with a permanent error, or `policy.max_attempts` are
/// spent; returns the last error. `what` names the operation in logs.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut failures = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                failures += 1;
                if !e.retryable() || failures >= policy.max_attempts.max(1) {
                    return Err(e);
                }
                let wait = policy.backoff(failures);
                tracing::debug!(error = %e, attempt = failures, ?wait, "retrying {what}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;
    use crate::error::Error;

    fn injected(retryable: bool) -> Error {
        Error::Injected { op: "put", key: "k".into(), retryable }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<_> = (1..=5).map(|f| p.backoff(f).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_errors_with_backoff_then_succeeds() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let out = retry(&policy, "test", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(injected(true)) } else { Ok(7) }
        })
        .await;
        assert_eq!(out.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let out: Result<()> = retry(&RetryPolicy::default(), "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(injected(false))
        })
        .await;
        assert!(matches!(out, Err(Error::Injected { retryable: false, .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let out: Result<()> = retry(&RetryPolicy::default(), "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(injected(true))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), RetryPolicy::default().max_attempts);
    }
}
