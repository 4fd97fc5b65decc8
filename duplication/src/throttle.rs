//! The throttle of one (link, source partition): a token bucket of wire bytes per second, at
//! the partition's share of the link's limit ([`crate::split_link_limit`] decides the shares),
//! and what the split needs back from each partition: the bytes it sent, the rate measured over
//! the last seconds, and whether the bucket held a request back lately. Driven by the caller's
//! clock (`now_ms` parameters).
//!
//! The bucket holds at most one second of tokens and starts full. A send of `n` bytes may go
//! when the bucket holds `min(n, capacity)`; it then takes all `n`, possibly leaving a debt that
//! later sends wait out. So a batch larger than one second's worth still goes (when the bucket
//! is full) instead of starving, and the long-run rate stays at the limit.

use std::collections::VecDeque;
use std::fmt;

use tern_core::WriteOp;

/// A request held back this recently marks the partition as wanting more than its share.
pub const SATURATED_FOR_MS: u64 = 2_000;
/// The measured rate is over about this long (at least one second once it has run that long).
pub const RATE_WINDOW_MS: u64 = 5_000;
/// The sent-bytes counter is sampled at most this often.
const SAMPLE_EVERY_MS: u64 = 250;
/// Under a limit, requests are cut to at most this fraction of a second's worth.
const REQUESTS_PER_SEC: u64 = 4;

/// The largest request worth sending under a limit of `bytes_per_sec` (0 = unlimited): a
/// quarter of a second's worth, so that a tight limit sends small requests evenly, rather than
/// large ones with long pauses (which would also make the measured rate jump by a request per
/// window). A single larger put still goes alone.
pub fn max_request_bytes(bytes_per_sec: u64) -> u64 {
    match bytes_per_sec {
        0 => u64::MAX,
        n => (n / REQUESTS_PER_SEC).max(1),
    }
}

/// What a request carrying puts weighs on the wire: what the throttle counts. The runtime knows
/// the encoding (the replica server counts the encoded `Duplicate` request); [`PayloadSize`]
/// counts keys and values only (tests, the simulator).
pub trait WireSize: fmt::Debug + Send + Sync {
    /// Bytes one put adds to a request.
    fn put_bytes(&self, put: &WriteOp) -> u64;
    /// Bytes of a request besides its puts.
    fn request_bytes(&self) -> u64;
}

/// Keys and values only.
#[derive(Clone, Copy, Debug, Default)]
pub struct PayloadSize;

impl WireSize for PayloadSize {
    fn put_bytes(&self, put: &WriteOp) -> u64 {
        put.payload_bytes()
    }

    fn request_bytes(&self) -> u64 {
        0
    }
}

/// See the module doc. Sends of every kind of one partition go through one `Throttle`: the
/// shipper's batches and a full sync's copies.
#[derive(Clone, Debug)]
pub struct Throttle {
    bucket: TokenBucket,
    sent_bytes: u64,
    /// (time, `sent_bytes` by the end of that ms), oldest first; the first is at or before the
    /// window's start.
    samples: VecDeque<(u64, u64)>,
    held_back_at_ms: Option<u64>,
}

/// What a partition's primary reports of its throttle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleReport {
    /// The limit in force: this partition's share; 0 = unlimited.
    pub bytes_per_sec: u64,
    /// Bytes sent through this throttle, ever.
    pub sent_bytes: u64,
    /// Sent over the last [`RATE_WINDOW_MS`], per second.
    pub measured_bytes_per_sec: u64,
    /// A request was held back within the last [`SATURATED_FOR_MS`]: it wants more.
    pub saturated: bool,
}

impl Throttle {
    /// `bytes_per_sec` 0 = unlimited (bytes are still counted).
    pub fn new(bytes_per_sec: u64) -> Throttle {
        Throttle {
            bucket: TokenBucket::new(bytes_per_sec),
            sent_bytes: 0,
            samples: VecDeque::new(),
            held_back_at_ms: None,
        }
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.bucket.bytes_per_sec
    }

    /// Changes the rate from now on (see `TokenBucket::set_bytes_per_sec`); a same rate changes
    /// nothing.
    pub fn set_bytes_per_sec(&mut self, bytes_per_sec: u64) {
        if bytes_per_sec != self.bucket.bytes_per_sec {
            self.bucket.set_bytes_per_sec(bytes_per_sec);
        }
    }

    /// Takes `bytes` if a request of that size may go at `now_ms`, and counts them as sent;
    /// otherwise remembers that a request was held back.
    pub fn try_take(&mut self, bytes: u64, now_ms: u64) -> bool {
        if !self.bucket.try_take(bytes, now_ms) {
            self.held_back_at_ms = Some(now_ms);
            return false;
        }
        self.sent_bytes += bytes;
        // Sampled after a send is counted, never between a refusal and the send it delayed: the
        // rate counts what was sent after a sample, and a sender that sends one request a
        // second would otherwise read one request too many per window.
        self.sample(now_ms);
        true
    }

    /// The earliest time at or after `now_ms` when a request of `bytes` may go.
    pub fn ready_at_ms(&self, bytes: u64, now_ms: u64) -> u64 {
        self.bucket.ready_at_ms(bytes, now_ms)
    }

    pub fn report(&mut self, now_ms: u64) -> ThrottleReport {
        self.sample(now_ms);
        let measured = match self.samples.front() {
            Some(&(at, sent)) if now_ms > at => {
                // At least a second, so that a full bucket's burst at the start does not read as
                // a rate of several times the limit.
                let span = (now_ms - at).max(1_000);
                (self.sent_bytes - sent).saturating_mul(1_000) / span
            }
            _ => 0,
        };
        ThrottleReport {
            bytes_per_sec: self.bucket.bytes_per_sec,
            sent_bytes: self.sent_bytes,
            measured_bytes_per_sec: measured,
            saturated: self.held_back_at_ms.is_some_and(|t| now_ms.saturating_sub(t) <= SATURATED_FOR_MS),
        }
    }

    fn sample(&mut self, now_ms: u64) {
        if self.samples.back().is_none_or(|&(at, _)| now_ms >= at.saturating_add(SAMPLE_EVERY_MS)) {
            self.samples.push_back((now_ms, self.sent_bytes));
        }
        let start = now_ms.saturating_sub(RATE_WINDOW_MS);
        while self.samples.len() >= 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
    }
}

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
    fn a_throttle_counts_what_it_lets_through_and_measures_the_rate() {
        let mut t = Throttle::new(1_000);
        let mut now = 0;
        // Asked for more than it allows, for 20 s: it lets 1000 bytes a second through.
        while now <= 20_000 {
            while t.try_take(100, now) {}
            now += 50;
        }
        let r = t.report(now);
        assert_eq!(r.bytes_per_sec, 1_000);
        assert!(r.saturated, "held back just now");
        // One second of burst (the full bucket) plus 20 s at the rate.
        assert!((21_000..=21_100).contains(&r.sent_bytes), "{r:?}");
        assert!((950..=1_050).contains(&r.measured_bytes_per_sec), "{r:?}");
        // Idle (reported on as the runtime does, often): the rate falls to 0 within the
        // window, and it no longer wants more.
        let idle_from = now;
        while now < idle_from + RATE_WINDOW_MS + SAMPLE_EVERY_MS {
            now += 100;
            t.report(now);
        }
        let r = t.report(now);
        assert_eq!(r.measured_bytes_per_sec, 0, "{r:?}");
        assert!(!r.saturated);
    }

    #[test]
    fn a_sender_of_one_request_a_second_that_waits_for_tokens_reads_its_rate() {
        // What a full sync does: each request a little over one second's worth, sent as soon as
        // the bucket allows, after a refusal; a report after each send.
        let mut t = Throttle::new(32_768);
        let mut now = 0u64;
        let mut measured = 0;
        for _ in 0..60 {
            while !t.try_take(33_400, now) {
                // Woken a millisecond early, as timers do: one more refusal first.
                now = t.ready_at_ms(33_400, now).saturating_sub(1).max(now + 1);
            }
            now += 5;
            measured = t.report(now).measured_bytes_per_sec;
        }
        assert!((31_000..=33_500).contains(&measured), "{measured}");
    }

    #[test]
    fn an_unlimited_throttle_still_counts_bytes() {
        let mut t = Throttle::new(0);
        assert!(t.try_take(5_000, 0));
        assert!(t.try_take(5_000, 2_000));
        let r = t.report(2_000);
        assert_eq!((r.bytes_per_sec, r.sent_bytes, r.saturated), (0, 10_000, false));
        assert_eq!(r.measured_bytes_per_sec, 2_500, "5000 bytes sent after the first sample, 2 s ago");
    }

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
