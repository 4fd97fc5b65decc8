use tern_core::mutation::IncrTtl;
use tern_core::{Ballot, Mutation, Timetag};

use super::*;

const LOCAL: u8 = 1;
const PEER: u8 = 2;
const T0_MS: u64 = 1_795_392_000_000;

fn cid(id: u8) -> ClusterId {
    ClusterId::new(id).expect("valid cluster id")
}

/// Entry `decree` stamped at `T0_MS + decree` seconds.
fn entry(decree: u64, ops: Vec<WriteOp>) -> LogEntry {
    let timetag = Timetag::new(T0_MS + 1000 * decree, 0, cid(LOCAL), false);
    LogEntry { ballot: Ballot(1), decree: Decree(decree), timetag, mutation: Mutation::new(ops) }
}

fn set(hk: &str, value_len: usize) -> WriteOp {
    WriteOp::Set {
        hash_key: hk.as_bytes().to_vec(),
        sort_key: vec![],
        value: vec![b'v'; value_len],
        ttl_secs: 0,
    }
}

fn foreign_put(hk: &str) -> WriteOp {
    let timetag = Some(Timetag::new(T0_MS, 0, cid(PEER), false));
    WriteOp::Put {
        hash_key: hk.as_bytes().to_vec(),
        sort_key: vec![],
        value: Some(vec![1]),
        expire_ts: 0,
        timetag,
    }
}

/// `n` hash keys that all land in remote partition `p` of a table with `count` partitions.
fn keys_in_partition(count: u32, p: u32, n: usize) -> Vec<String> {
    (0..).map(|i| format!("k{i}")).filter(|k| partition_of(k.as_bytes(), count).0 == p).take(n).collect()
}

fn keys_in_partition_0(count: u32, n: usize) -> Vec<String> {
    keys_in_partition(count, 0, n)
}

/// A log of one set of `value_len` bytes per entry, of each key in turn (decrees 1, 2, ...).
fn one_set_each(keys: &[String], value_len: usize) -> Vec<LogEntry> {
    keys.iter().enumerate().map(|(i, k)| entry(i as u64 + 1, vec![set(k, value_len)])).collect()
}

fn opts() -> ShipperOptions {
    ShipperOptions { backoff_initial_ms: 100, backoff_max_ms: 1000, ..ShipperOptions::default() }
}

fn shipper(partitions: u32, opts: ShipperOptions) -> Shipper {
    Shipper::new(cid(LOCAL), partitions, Decree::ZERO, opts).expect("valid options")
}

/// A shipper (to `partitions` remote partitions, options `o`) that has read a log of `n`
/// one-byte sets, all of keys that go to remote partition 0.
fn shipper_with_log(partitions: u32, n: usize, o: ShipperOptions) -> (Shipper, Vec<LogEntry>) {
    let log = one_set_each(&keys_in_partition_0(partitions, n), 1);
    let mut s = shipper(partitions, o);
    read_all(&mut s, &log);
    (s, log)
}

/// Feeds the shipper what it asks to read of `log`, as a runtime would, until it asks nothing.
fn read_all(s: &mut Shipper, log: &[LogEntry]) {
    let committed = Decree(log.len() as u64);
    while let Some((from, max)) = s.next_read(committed) {
        let start = from.0 as usize - 1;
        s.on_entries(&log[start..(start + max).min(log.len())]).expect("entries convert");
    }
}

#[test]
fn routes_each_put_by_its_own_hash_key() {
    for count in [1u32, 2, 8, 32] {
        let keys: Vec<String> = (0..1000).map(|i| format!("user{i}")).collect();
        // One entry with many keys: Pegasus would have routed it whole by its last key.
        let log = vec![entry(1, keys.iter().map(|k| set(k, 3)).collect())];
        let mut s = shipper(count, ShipperOptions { max_inflight_per_partition: 100, ..opts() });
        read_all(&mut s, &log);
        let batches = s.poll(0);
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for b in &batches {
            for p in &b.puts {
                assert_eq!(partition_of(p.hash_key(), count).0, b.remote_partition, "count {count}");
                seen.push(p.hash_key().to_vec());
            }
        }
        seen.sort();
        let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        want.sort();
        assert_eq!(seen, want);
        let used: std::collections::BTreeSet<u32> = batches.iter().map(|b| b.remote_partition).collect();
        assert_eq!(used.len() as u32, count, "1000 keys reach every one of {count} partitions");
    }
}

#[test]
fn batches_keep_log_order_and_respect_puts_and_bytes_limits() {
    let keys = keys_in_partition_0(4, 7);
    let mut log = one_set_each(&keys, 8);
    // One put over the byte limit goes alone rather than never.
    log.push(entry(8, vec![set(&keys[0], 100)]));
    let o =
        ShipperOptions { batch_max_puts: 3, batch_max_bytes: 25, max_inflight_per_partition: 10, ..opts() };
    let mut s = shipper(4, o);
    read_all(&mut s, &log);
    let batches = s.poll(0);
    let sizes: Vec<usize> = batches.iter().map(|b| b.puts.len()).collect();
    // Each put is 10-11 bytes: two fit under 25 bytes, the 100-byte value goes alone.
    assert_eq!(sizes, vec![2, 2, 2, 1, 1]);
    for b in &batches {
        assert_eq!(b.bytes, b.puts.iter().map(WriteOp::payload_bytes).sum::<u64>());
    }
    let shipped: Vec<WriteOp> = batches.into_iter().flat_map(|b| b.puts).collect();
    let want: Vec<WriteOp> =
        log.iter().flat_map(|e| entry_to_puts(e, cid(LOCAL)).expect("convertible")).collect();
    assert_eq!(shipped, want);
}

#[test]
fn at_most_max_inflight_batches_per_remote_partition() {
    let (mut s, log) = shipper_with_log(2, 5, ShipperOptions { batch_max_puts: 1, ..opts() });
    let first = s.poll(0);
    assert_eq!(first.len(), 2);
    assert!(s.poll(0).is_empty());
    assert_eq!(s.next_wakeup_ms(0), None, "waiting for acks, not for time");
    assert!(s.on_acked(first[0].id, 0));
    let next = s.poll(0);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].puts, entry_to_puts(&log[2], cid(LOCAL)).expect("convertible"));
}

#[test]
fn confirmed_never_passes_an_unacked_put() {
    let log = vec![
        entry(1, vec![set("a", 1)]),
        entry(2, vec![]),                 // a reign marker: nothing to ship
        entry(3, vec![foreign_put("b")]), // arrived by duplication: nothing to ship
        entry(4, vec![set("c", 1)]),
        entry(5, vec![set("d", 1), set("e", 1), set("f", 1)]),
        entry(6, vec![]),
    ];
    let mut s = shipper(1, ShipperOptions { batch_max_puts: 1, max_inflight_per_partition: 10, ..opts() });
    read_all(&mut s, &log);
    assert_eq!(s.read_through(), Decree(6));
    let b = s.poll(0);
    assert_eq!(b.len(), 5, "one put per batch: a, c, d, e, f");
    assert_eq!(s.confirmed(), Decree(0));
    assert!(s.on_acked(b[1].id, 0)); // c
    assert_eq!(s.confirmed(), Decree(0), "decree 1 is not acked yet");
    assert!(s.on_acked(b[0].id, 0)); // a
    assert_eq!(s.confirmed(), Decree(4), "2 and 3 had no puts, 4 is acked");
    assert!(s.on_acked(b[2].id, 0));
    assert!(s.on_acked(b[4].id, 0));
    assert_eq!(s.confirmed(), Decree(4), "one put of decree 5 is still in flight");
    assert!(s.on_failed(b[3].id, 0, "unreachable".into()));
    assert_eq!(s.confirmed(), Decree(4));
    let resent = s.poll(100);
    assert_eq!(resent.len(), 1);
    assert!(s.on_acked(resent[0].id, 100));
    assert_eq!(s.confirmed(), Decree(6));
    assert!(!s.on_acked(resent[0].id, 100), "a second ack of one batch changes nothing");
    assert_eq!(s.confirmed(), Decree(6));
}

#[test]
fn a_failed_batch_is_resent_after_the_backoff_ahead_of_later_puts() {
    let (mut s, _) =
        shipper_with_log(1, 3, ShipperOptions { batch_max_puts: 1, max_inflight_per_partition: 1, ..opts() });
    let b1 = s.poll(1000);
    assert_eq!(b1.len(), 1);
    assert!(s.on_failed(b1[0].id, 1000, "remote partition 0 unavailable".into()));
    let st = s.stats();
    assert_eq!((st.failed_batches, st.last_error.as_deref()), (1, Some("remote partition 0 unavailable")));
    assert_eq!(st.backing_off_partitions, 1);
    assert!(s.poll(1099).is_empty(), "still backing off");
    assert_eq!(s.next_wakeup_ms(1000), Some(1100));
    let again = s.poll(1100);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].puts, b1[0].puts, "the failed puts go first");
    assert_ne!(again[0].id, b1[0].id);
    assert!(!s.on_acked(b1[0].id, 1100), "the failed batch is no longer in flight");
    assert!(s.on_acked(again[0].id, 1100));
    let st = s.stats();
    assert_eq!((st.last_error, st.backing_off_partitions, st.last_acked_ms), (None, 0, Some(1100)));
}

#[test]
fn backoff_doubles_up_to_the_cap_and_an_ack_resets_it() {
    let mut s = shipper(1, opts()); // 100 ms doubling up to 1000 ms
    read_all(&mut s, &[entry(1, vec![set("a", 1)])]);
    let mut now = 0;
    let mut delays = Vec::new();
    for _ in 0..6 {
        let b = s.poll(now);
        assert_eq!(b.len(), 1);
        assert!(s.on_failed(b[0].id, now, "refused".into()));
        let retry = s.next_wakeup_ms(now).expect("backing off");
        delays.push(retry - now);
        assert!(s.poll(retry - 1).is_empty());
        now = retry;
    }
    assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    let b = s.poll(now);
    assert!(s.on_acked(b[0].id, now));
    read_all(&mut s, &[entry(1, vec![set("a", 1)]), entry(2, vec![set("a", 1)])]);
    let b = s.poll(now);
    assert!(s.on_failed(b[0].id, now, "refused".into()));
    assert_eq!(s.next_wakeup_ms(now), Some(now + 100), "the ack reset the backoff");
}

/// Two pipelined batches failing from one outage grow the delay once, and their puts go back
/// in log order whatever order the failures are reported in.
#[test]
fn pipelined_failures_of_one_outage_count_once_and_keep_log_order() {
    let (mut s, _) = shipper_with_log(1, 3, ShipperOptions { batch_max_puts: 1, ..opts() });
    let b = s.poll(0);
    assert_eq!(b.len(), 2);
    assert!(s.on_failed(b[1].id, 10, "timeout".into()));
    assert!(s.on_failed(b[0].id, 20, "timeout".into()));
    assert_eq!(s.next_wakeup_ms(20), Some(110), "100 ms from the first failure, not 200");
    let resent = s.poll(110);
    let order: Vec<&WriteOp> = resent.iter().flat_map(|b| &b.puts).collect();
    assert_eq!(order, vec![&b[0].puts[0], &b[1].puts[0]]);
}

#[test]
fn throttle_limits_bytes_per_second() {
    // 40 puts of 100 payload bytes (1-byte key, 99-byte value), 1000 bytes/s.
    let log: Vec<LogEntry> = (1..=40).map(|d| entry(d, vec![set("k", 99)])).collect();
    let o =
        ShipperOptions { batch_max_puts: 1, max_inflight_per_partition: 100, bytes_per_sec: 1000, ..opts() };
    let mut s = shipper(1, o);
    read_all(&mut s, &log);
    let mut now = 0;
    let mut sent_at = Vec::new();
    while s.confirmed() < Decree(40) {
        for b in s.poll(now) {
            sent_at.push(now);
            assert!(s.on_acked(b.id, now));
        }
        now = match s.next_wakeup_ms(now) {
            Some(t) => {
                assert!(t > now, "poll took everything ready at {now}");
                t
            }
            None => break,
        };
    }
    assert_eq!(sent_at.len(), 40);
    // A full bucket (one second) at once, then one 100-byte put every 100 ms.
    assert_eq!(&sent_at[..10], &[0; 10]);
    for (i, &t) in sent_at.iter().enumerate().skip(10) {
        assert_eq!(t, (i as u64 - 9) * 100, "put {i}");
    }
}

#[test]
fn an_oversize_batch_goes_when_the_bucket_is_full_and_is_paid_back() {
    let log = vec![entry(1, vec![set("k", 999)]), entry(2, vec![set("k", 999)])];
    let o =
        ShipperOptions { batch_max_puts: 1, max_inflight_per_partition: 10, bytes_per_sec: 100, ..opts() };
    let mut s = shipper(1, o);
    read_all(&mut s, &log);
    assert_eq!(s.poll(0).len(), 1, "1000 bytes at 100 B/s: goes on a full bucket");
    // 900 bytes of debt plus 100 to refill: 10 s.
    assert_eq!(s.next_wakeup_ms(0), Some(10_000));
    assert!(s.poll(9_999).is_empty());
    assert_eq!(s.poll(10_000).len(), 1);
    s.set_bytes_per_sec(0);
    assert_eq!(s.options().bytes_per_sec, 0);
}

/// 10 bytes per request and 20 per put on top of its payload.
#[derive(Debug)]
struct Framed;

impl WireSize for Framed {
    fn put_bytes(&self, put: &WriteOp) -> u64 {
        put.payload_bytes() + 20
    }

    fn request_bytes(&self) -> u64 {
        10
    }
}

#[test]
fn the_throttle_counts_wire_bytes_and_reports_what_it_let_through() {
    // 20 puts of 100 payload bytes: 120 on the wire each, 130 with the request, 1300 B/s.
    let log: Vec<LogEntry> = (1..=20).map(|d| entry(d, vec![set("k", 99)])).collect();
    let o =
        ShipperOptions { batch_max_puts: 1, max_inflight_per_partition: 100, bytes_per_sec: 1300, ..opts() };
    let mut s = shipper(1, o).with_wire_size(std::sync::Arc::new(Framed));
    read_all(&mut s, &log);
    let b = s.poll(0);
    assert_eq!(b.len(), 10, "a full bucket: ten 130-byte requests");
    assert!(b.iter().all(|b| b.wire_bytes == 130 && b.bytes == 100), "{b:?}");
    assert_eq!(s.next_wakeup_ms(0), Some(100), "the next one after 130 bytes' worth of tokens");
    let r = s.throttle_report(0);
    assert_eq!((r.sent_bytes, r.bytes_per_sec), (1300, 1300));
    assert!(r.saturated, "it held one back: the partition wants more than its share");
    // A wire size set after entries were read still counts them.
    let mut late = shipper(1, ShipperOptions { bytes_per_sec: 1300, ..opts() });
    read_all(&mut late, &log[..1]);
    let mut late = late.with_wire_size(std::sync::Arc::new(Framed));
    assert_eq!(late.poll(0)[0].wire_bytes, 130);
    // Handing the throttle over keeps what it counted.
    let t = s.into_throttle();
    late.set_throttle(t);
    assert_eq!(late.options().bytes_per_sec, 1300);
    assert_eq!(late.throttle_report(0).sent_bytes, 1300);
}

#[test]
fn under_a_throttle_a_batch_is_at_most_a_quarter_seconds_worth() {
    // 100-byte puts, 1000 B/s: batches of 2 puts, not the 512 the options allow.
    let log: Vec<LogEntry> = (1..=20).map(|d| entry(d, vec![set("k", 99)])).collect();
    let o = ShipperOptions { max_inflight_per_partition: 100, bytes_per_sec: 1000, ..opts() };
    let mut s = shipper(1, o);
    read_all(&mut s, &log);
    let b = s.poll(0);
    assert_eq!(b.iter().map(|b| b.puts.len()).collect::<Vec<_>>(), vec![2; 5], "a full bucket's worth");
    s.set_bytes_per_sec(0);
    assert_eq!(s.poll(0)[0].puts.len(), 10, "unlimited: only the batch limits");
}

#[test]
fn a_tight_throttle_serves_remote_partitions_in_turn() {
    let (k0, k1) = (keys_in_partition(2, 0, 1).remove(0), keys_in_partition(2, 1, 1).remove(0));
    let log: Vec<LogEntry> = (1..=10).map(|d| entry(d, vec![set(&k0, 98), set(&k1, 98)])).collect();
    let o =
        ShipperOptions { batch_max_puts: 1, max_inflight_per_partition: 100, bytes_per_sec: 100, ..opts() };
    let mut s = shipper(2, o);
    read_all(&mut s, &log);
    let mut order = Vec::new();
    let mut now = 0;
    for _ in 0..8 {
        for b in s.poll(now) {
            order.push(b.remote_partition);
        }
        now = s.next_wakeup_ms(now).expect("throttled");
    }
    assert_eq!(order, vec![0, 1, 0, 1, 0, 1, 0, 1]);
}

#[test]
fn read_ahead_stops_at_max_buffered_bytes_and_resumes_after_acks() {
    // 30 payload bytes per entry.
    let log: Vec<LogEntry> = (1..=10).map(|d| entry(d, vec![set("k", 29)])).collect();
    let o = ShipperOptions { max_buffered_bytes: 100, read_chunk: 2, batch_max_puts: 1, ..opts() };
    let mut s = shipper(1, o);
    let committed = Decree(10);
    assert_eq!(s.next_read(Decree(0)), None, "nothing committed");
    assert_eq!(s.next_read(Decree(1)), Some((Decree(1), 1)), "never beyond committed");
    assert_eq!(s.next_read(committed), Some((Decree(1), 2)));
    s.on_entries(&log[0..2]).expect("read");
    assert_eq!(s.next_read(committed), Some((Decree(3), 2)));
    s.on_entries(&log[2..4]).expect("read");
    assert_eq!(s.stats().buffered_bytes, 120);
    assert_eq!(s.next_read(committed), None, "120 bytes buffered, limit 100");
    let b = s.poll(0);
    assert_eq!(b.len(), 2);
    assert_eq!(s.next_read(committed), None, "in flight still counts as buffered");
    assert!(s.on_acked(b[0].id, 0));
    assert_eq!(s.stats().buffered_bytes, 90);
    assert_eq!(s.next_read(committed), Some((Decree(5), 2)));
}

#[test]
fn on_entries_skips_what_was_read_and_refuses_holes() {
    let log: Vec<LogEntry> = (1..=5).map(|d| entry(d, vec![set("k", 1)])).collect();
    let mut s = shipper(1, opts());
    s.on_entries(&log[0..2]).expect("read");
    s.on_entries(&log[0..3]).expect("an overlapping read");
    assert_eq!(s.read_through(), Decree(3));
    assert_eq!(s.stats().queued_puts, 3);
    let err = s.on_entries(&log[4..5]).expect_err("decree 4 is missing");
    assert!(err.to_string().contains("decree 5 where decree 4 was expected"), "{err}");
    assert_eq!(s.read_through(), Decree(3));
}

#[test]
fn an_unresolved_atomic_op_stops_reading_at_its_decree() {
    let incr = WriteOp::Incr { hash_key: b"k".to_vec(), sort_key: vec![], delta: 1, ttl: IncrTtl::Keep };
    let log = vec![entry(1, vec![set("k", 1)]), entry(2, vec![incr]), entry(3, vec![set("k", 1)])];
    let mut s = shipper(1, opts());
    let err = s.on_entries(&log).expect_err("unresolved incr");
    assert!(err.to_string().contains("decree 2 holds an unresolved incr"), "{err}");
    assert_eq!(s.read_through(), Decree(1), "the entries before it are taken");
    assert_eq!(s.next_read(Decree(3)), Some((Decree(2), 2)));
}

#[test]
fn stats_report_lag_and_progress() {
    let log = vec![entry(1, vec![set("a", 4)]), entry(2, vec![set("b", 4)])];
    let mut s = Shipper::new(cid(LOCAL), 1, Decree::ZERO, ShipperOptions { batch_max_puts: 1, ..opts() })
        .expect("valid");
    assert_eq!(s.stats(), ShipperStats::default());
    read_all(&mut s, &log);
    let st = s.stats();
    assert_eq!((st.read_through, st.buffered_bytes, st.queued_puts), (Decree(2), 10, 2));
    assert_eq!(st.oldest_unacked_physical_ms, Some(T0_MS + 1000));
    let b = s.poll(5);
    assert_eq!(s.stats().inflight_batches, 2);
    assert!(s.on_acked(b[0].id, 5));
    let st = s.stats();
    assert_eq!((st.confirmed, st.shipped_puts, st.shipped_batches), (Decree(1), 1, 1));
    assert_eq!(st.oldest_unacked_physical_ms, Some(T0_MS + 2000));
    assert!(s.on_acked(b[1].id, 6));
    assert_eq!(s.stats().oldest_unacked_physical_ms, None);
    assert_eq!(s.stats().buffered_bytes, 0);
}

#[test]
fn resumes_after_the_persisted_confirmed_decree() {
    let s = Shipper::new(cid(LOCAL), 4, Decree(41), opts()).expect("valid");
    assert_eq!(s.confirmed(), Decree(41));
    assert_eq!(s.next_read(Decree(50)), Some((Decree(42), 9)));
}

#[test]
fn next_wakeup_is_now_when_a_batch_is_ready_and_none_when_idle() {
    let mut s = shipper(1, opts());
    assert_eq!(s.next_wakeup_ms(7), None);
    read_all(&mut s, &[entry(1, vec![set("a", 1)])]);
    assert_eq!(s.next_wakeup_ms(7), Some(7));
    let b = s.poll(7);
    assert_eq!(s.next_wakeup_ms(7), None);
    assert!(s.on_acked(b[0].id, 8));
    assert!(!s.on_failed(b[0].id, 8, "late".into()), "unknown batch");
    assert_eq!(s.stats().failed_batches, 0);
}

#[test]
fn bad_options_are_refused() {
    for o in [
        ShipperOptions { batch_max_puts: 0, ..opts() },
        ShipperOptions { max_inflight_per_partition: 0, ..opts() },
        ShipperOptions { read_chunk: 0, ..opts() },
        ShipperOptions { backoff_initial_ms: 500, backoff_max_ms: 100, ..opts() },
    ] {
        let err = Shipper::new(cid(LOCAL), 1, Decree::ZERO, o).expect_err("bad options");
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    }
    assert!(Shipper::new(cid(LOCAL), 0, Decree::ZERO, opts()).is_err());
    assert_eq!(ShipperOptions::default().validate(), Ok(()));
}

/// The replicated-up-to timetag: everything before the first entry with unacknowledged puts,
/// or everything read once nothing is unacknowledged; never below what a resumed shipper was
/// told, and never going back.
#[test]
fn replicated_up_to_follows_acks_on_the_partitions_own_clock() {
    let tt = |d: u64| entry(d, vec![]).timetag;
    let mut s = shipper(1, ShipperOptions { batch_max_puts: 1, ..opts() });
    s.resume_replicated_up_to(tt(0));
    assert_eq!(s.replicated_up_to(), tt(0), "nothing read: what it was told");
    let log =
        vec![entry(1, vec![set("a", 1)]), entry(2, vec![foreign_put("b")]), entry(3, vec![set("c", 1)])];
    read_all(&mut s, &log);
    assert_eq!(s.replicated_up_to(), Timetag::from_u64(tt(1).as_u64() - 1), "entry 1 is not acknowledged");
    let batches = s.poll(0);
    assert_eq!(batches.len(), 2, "one put each");
    assert!(s.on_acked(batches[0].id, 0));
    assert_eq!(
        s.replicated_up_to(),
        Timetag::from_u64(tt(3).as_u64() - 1),
        "entry 2 ships nothing, entry 3 is not acknowledged"
    );
    assert!(s.on_acked(batches[1].id, 0));
    assert_eq!(s.replicated_up_to(), tt(3), "everything read is acknowledged");
    assert_eq!(s.stats().replicated_up_to, tt(3));
}
