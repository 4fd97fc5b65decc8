//! A token bucket of bytes per second, driven by the caller's clock (`now_ms` parameters).
//!
//! The bucket holds at most one second of tokens and starts full. A send of `n` bytes may go
//! when the bucket holds `min(n, capacity)`; it then takes all `n`, possibly leaving a debt that
//! later sends wait out. So a batch larger than one second's worth still goes (when the bucket
//! is full) instead of starving, and the long-run rate stays at the limit.

/// Tokens are counted in thousandths of a byte: `elapsed_ms × bytes_per_sec` of them accrue
/// exactly, with no rounding lost at any tick rate.
const MILLI: i128 = 1000;

#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    /// 0 = unlimited.
    bytes_per_sec: u64,
    /// Milli-bytes; negative after an over-size send.
    tokens: i128,
    /// The time tokens were last added; `None` until the first call with a time.
    last_ms: Option<u64>,
}

impl TokenBucket {
    pub(crate) fn new(bytes_per_sec: u64) -> TokenBucket {
        TokenBucket { bytes_per_sec, tokens: capacity(bytes_per_sec), last_ms: None }
    }

    /// Changes the rate from now on. Tokens above the new capacity are dropped; a debt is kept.
    pub(crate) fn set_bytes_per_sec(&mut self, bytes_per_sec: u64) {
        let was_unlimited = self.bytes_per_sec == 0;
        self.bytes_per_sec = bytes_per_sec;
        let cap = capacity(bytes_per_sec);
        self.tokens = if was_unlimited { cap } else { self.tokens.min(cap) };
    }

    /// Takes `bytes` if a send of that size may go at `now_ms`.
    pub(crate) fn try_take(&mut self, bytes: u64, now_ms: u64) -> bool {
        if self.bytes_per_sec == 0 {
            return true;
        }
        self.refill(now_ms);
        if self.tokens < self.need(bytes) {
            return false;
        }
        self.tokens -= i128::from(bytes) * MILLI;
        true
    }

    /// The earliest time at or after `now_ms` when a send of `bytes` may go.
    pub(crate) fn ready_at_ms(&self, bytes: u64, now_ms: u64) -> u64 {
        if self.bytes_per_sec == 0 {
            return now_ms;
        }
        let missing = self.need(bytes) - self.tokens_at(now_ms);
        if missing <= 0 {
            return now_ms;
        }
        let rate = i128::from(self.bytes_per_sec);
        let wait = (missing + rate - 1) / rate;
        now_ms.saturating_add(u64::try_from(wait).unwrap_or(u64::MAX))
    }

    fn need(&self, bytes: u64) -> i128 {
        (i128::from(bytes) * MILLI).min(capacity(self.bytes_per_sec))
    }

    fn tokens_at(&self, now_ms: u64) -> i128 {
        let elapsed = match self.last_ms {
            Some(last) => now_ms.saturating_sub(last),
            None => 0,
        };
        let added = i128::from(elapsed) * i128::from(self.bytes_per_sec);
        (self.tokens + added).min(capacity(self.bytes_per_sec))
    }

    fn refill(&mut self, now_ms: u64) {
        self.tokens = self.tokens_at(now_ms);
        // A clock that steps back adds nothing and does not move the reference point back, so
        // no time is ever counted twice.
        self.last_ms = Some(self.last_ms.map_or(now_ms, |last| last.max(now_ms)));
    }
}

/// One second of tokens.
fn capacity(bytes_per_sec: u64) -> i128 {
    i128::from(bytes_per_sec) * MILLI
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_always_takes() {
        let mut b = TokenBucket::new(0);
        assert!(b.try_take(u64::MAX, 0));
        assert!(b.try_take(u64::MAX, 0));
        assert_eq!(b.ready_at_ms(u64::MAX, 7), 7);
    }

    #[test]
    fn starts_full_then_refills_at_the_rate() {
        let mut b = TokenBucket::new(1000);
        assert!(b.try_take(1000, 0));
        assert!(!b.try_take(1, 0));
        assert_eq!(b.ready_at_ms(1, 0), 1);
        assert_eq!(b.ready_at_ms(500, 0), 500);
        assert!(!b.try_take(500, 499));
        assert!(b.try_take(500, 500));
        assert!(!b.try_take(1, 500));
    }

    #[test]
    fn oversize_send_goes_when_full_and_leaves_a_debt() {
        let mut b = TokenBucket::new(1000);
        assert!(b.try_take(3000, 0));
        // 3 s of debt, then one second to fill the bucket again: the next 3000-byte send
        // waits until the bucket is full at t = 3 s.
        assert_eq!(b.ready_at_ms(3000, 0), 3000);
        assert!(!b.try_take(3000, 2999));
        assert!(b.try_take(3000, 3000));
    }

    #[test]
    fn clock_stepping_back_adds_nothing() {
        let mut b = TokenBucket::new(1000);
        assert!(b.try_take(1000, 10_000));
        assert!(!b.try_take(1, 5_000));
        assert!(!b.try_take(1, 10_000));
        assert!(b.try_take(1, 10_001));
    }

    #[test]
    fn lowering_the_rate_caps_tokens() {
        let mut b = TokenBucket::new(10_000);
        b.set_bytes_per_sec(100);
        assert!(b.try_take(100, 0));
        assert!(!b.try_take(1, 0));
        b.set_bytes_per_sec(0);
        assert!(b.try_take(1, 0));
        b.set_bytes_per_sec(100);
        assert!(b.try_take(100, 0), "leaving unlimited starts with a full bucket");
    }
}
