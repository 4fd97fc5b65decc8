//! The shipper against a model, under random logs, reads, acks, failures and time.

use proptest::prelude::*;
use tern_core::{Ballot, Mutation, Timetag};

use super::*;

const LOCAL: u8 = 1;
const PEER: u8 = 2;
const T0_MS: u64 = 1_795_392_000_000;

fn cid(id: u8) -> ClusterId {
    ClusterId::new(id).expect("valid cluster id")
}

/// One op: (kind, hash key number, value length).
type OpSpec = (u8, u8, usize);

fn op(decree: u64, (kind, key, len): OpSpec) -> WriteOp {
    let hash_key = format!("key{key}").into_bytes();
    let value = vec![b'v'; len];
    match kind {
        0 => WriteOp::Set { hash_key, sort_key: b"s".to_vec(), value, ttl_secs: 0 },
        1 => WriteOp::Del { hash_key, sort_key: b"s".to_vec() },
        2 => WriteOp::MultiSet {
            hash_key,
            entries: vec![(b"s".to_vec(), value.clone()), (b"t".to_vec(), value)],
            ttl_secs: 60,
        },
        // A write that arrived from the peer: never shipped back.
        3 => WriteOp::Put {
            hash_key,
            sort_key: b"s".to_vec(),
            value: Some(value),
            expire_ts: 0,
            timetag: Some(Timetag::new(T0_MS + decree, 0, cid(PEER), false)),
        },
        _ => WriteOp::Put { hash_key, sort_key: b"u".to_vec(), value: None, expire_ts: 0, timetag: None },
    }
}

fn log_of(specs: Vec<Vec<OpSpec>>) -> Vec<LogEntry> {
    specs
        .into_iter()
        .enumerate()
        .map(|(i, ops)| {
            let decree = i as u64 + 1;
            LogEntry {
                ballot: Ballot(1),
                decree: Decree(decree),
                timetag: Timetag::new(T0_MS + 1000 * decree, 0, cid(LOCAL), false),
                mutation: Mutation::new(ops.into_iter().map(|s| op(decree, s)).collect()),
            }
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Step {
    /// Commit up to this many more entries.
    Commit(u64),
    /// Serve `next_read`, delivering at most this many entries, starting this many before
    /// the asked decree (an overlapping read).
    Read {
        at_most: usize,
        overlap: u64,
    },
    Poll,
    Ack(usize),
    Fail(usize),
    Advance(u64),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (1u64..6).prop_map(Step::Commit),
        1 => (1usize..8, 0u64..3).prop_map(|(at_most, overlap)| Step::Read { at_most, overlap }),
        2 => Just(Step::Poll),
        3 => any::<usize>().prop_map(Step::Ack),
        1 => any::<usize>().prop_map(Step::Fail),
        1 => (0u64..400).prop_map(Step::Advance),
    ]
}

fn arb_options() -> impl Strategy<Value = ShipperOptions> {
    (
        1usize..5,
        4u64..80,
        1usize..4,
        10u64..300,
        1usize..6,
        1u64..60,
        prop::sample::select(vec![0u64, 40, 400]),
    )
        .prop_map(|(puts, bytes, inflight, buffered, chunk, backoff, rate)| ShipperOptions {
            batch_max_bytes: bytes,
            batch_max_puts: puts,
            max_inflight_per_partition: inflight,
            max_buffered_bytes: buffered,
            read_chunk: chunk,
            backoff_initial_ms: backoff,
            backoff_max_ms: backoff * 8,
            bytes_per_sec: rate,
        })
}

/// What the runtime around a shipper knows, and the model it checks the shipper against.
struct Harness {
    log: Vec<LogEntry>,
    shipper: Shipper,
    opts: ShipperOptions,
    partitions: u32,
    committed: u64,
    now_ms: u64,
    inflight: Vec<Batch>,
    /// Puts read and not acknowledged, with their entry's decree.
    unacked: Vec<(u64, WriteOp)>,
    acked: Vec<WriteOp>,
    last_confirmed: Decree,
}

impl Harness {
    fn read(&mut self, at_most: usize, overlap: u64) {
        let Some((from, max)) = self.shipper.next_read(Decree(self.committed)) else { return };
        assert!(from.0 + max as u64 - 1 <= self.committed, "asked beyond the committed decree");
        let start = from.0.saturating_sub(overlap).max(1) as usize - 1;
        let end = (from.0 as usize - 1 + max.min(at_most)).min(self.log.len());
        let entries = &self.log[start..end];
        let before = self.shipper.read_through();
        self.shipper.on_entries(entries).expect("every generated entry converts");
        for e in entries.iter().filter(|e| e.decree > before) {
            let puts = entry_to_puts(e, cid(LOCAL)).expect("converts");
            self.unacked.extend(puts.into_iter().map(|p| (e.decree.0, p)));
        }
    }

    fn poll(&mut self) {
        for b in self.shipper.poll(self.now_ms) {
            assert!(!b.puts.is_empty());
            assert!(b.puts.len() <= self.opts.batch_max_puts);
            assert_eq!(b.bytes, b.puts.iter().map(WriteOp::payload_bytes).sum::<u64>());
            assert!(b.bytes <= self.opts.batch_max_bytes || b.puts.len() == 1, "batch of {} bytes", b.bytes);
            for p in &b.puts {
                assert_eq!(partition_of(p.hash_key(), self.partitions).0, b.remote_partition);
                assert!(self.unacked.iter().any(|(_, u)| u == p), "shipped a put not read or already acked");
            }
            self.inflight.push(b);
        }
        for p in 0..self.partitions {
            let n = self.inflight.iter().filter(|b| b.remote_partition == p).count();
            assert!(n <= self.opts.max_inflight_per_partition, "{n} batches in flight to partition {p}");
        }
    }

    fn ack(&mut self, pick: usize) {
        if self.inflight.is_empty() {
            return;
        }
        let b = self.inflight.swap_remove(pick % self.inflight.len());
        assert!(self.shipper.on_acked(b.id, self.now_ms));
        for p in b.puts {
            let i = self.unacked.iter().position(|(_, u)| *u == p).expect("acked put was unacked");
            self.unacked.swap_remove(i);
            self.acked.push(p);
        }
    }

    fn fail(&mut self, pick: usize) {
        if self.inflight.is_empty() {
            return;
        }
        let b = self.inflight.swap_remove(pick % self.inflight.len());
        assert!(self.shipper.on_failed(b.id, self.now_ms, format!("batch {} failed", b.id)));
    }

    /// Confirmed is exactly the decree before the first entry with an unacked put (or what was
    /// read, when none is), and never goes back.
    fn check(&mut self) {
        let confirmed = self.shipper.confirmed();
        let want = match self.unacked.iter().map(|(d, _)| *d).min() {
            Some(d) => Decree(d - 1),
            None => self.shipper.read_through(),
        };
        assert_eq!(confirmed, want);
        assert!(confirmed >= self.last_confirmed, "confirmed went back");
        self.last_confirmed = confirmed;
        let st = self.shipper.stats();
        assert_eq!(st.buffered_bytes, self.unacked.iter().map(|(_, p)| p.payload_bytes()).sum::<u64>());
        assert_eq!(st.inflight_batches, self.inflight.len());
    }
}

fn sorted(puts: Vec<WriteOp>) -> Vec<String> {
    let mut out: Vec<String> = puts.into_iter().map(|p| format!("{p:?}")).collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_local_put_is_acked_once_and_confirmed_is_exact(
        specs in prop::collection::vec(prop::collection::vec((0u8..5, 0u8..40, 0usize..12), 0..4), 1..40),
        partitions in prop::sample::select(vec![1u32, 2, 8, 32]),
        opts in arb_options(),
        steps in prop::collection::vec(arb_step(), 0..300),
    ) {
        let log = log_of(specs);
        let shipper = Shipper::new(cid(LOCAL), partitions, Decree::ZERO, opts.clone()).expect("valid");
        let mut h = Harness {
            log, shipper, opts, partitions, committed: 0, now_ms: 0, inflight: Vec::new(),
            unacked: Vec::new(), acked: Vec::new(), last_confirmed: Decree::ZERO,
        };
        for step in steps {
            match step {
                Step::Commit(n) => h.committed = (h.committed + n).min(h.log.len() as u64),
                Step::Read { at_most, overlap } => h.read(at_most, overlap),
                Step::Poll => h.poll(),
                Step::Ack(i) => h.ack(i),
                Step::Fail(i) => h.fail(i),
                Step::Advance(ms) => h.now_ms += ms,
            }
            h.check();
        }

        // Heal: commit everything, stop failing, follow next_wakeup_ms like a runtime would.
        h.committed = h.log.len() as u64;
        for _ in 0..100_000 {
            h.read(usize::MAX, 0);
            h.poll();
            h.check();
            if h.inflight.is_empty() {
                match h.shipper.next_wakeup_ms(h.now_ms) {
                    Some(t) => {
                        prop_assert!(t > h.now_ms, "poll left a ready batch at {}", h.now_ms);
                        h.now_ms = t;
                    }
                    None if h.shipper.next_read(Decree(h.committed)).is_none() => break,
                    None => {}
                }
            }
            h.ack(0);
            h.check();
        }
        let last = Decree(h.log.len() as u64);
        prop_assert_eq!(h.shipper.confirmed(), last);
        prop_assert!(h.unacked.is_empty() && h.inflight.is_empty());
        let expected: Vec<WriteOp> =
            h.log.iter().flat_map(|e| entry_to_puts(e, cid(LOCAL)).expect("converts")).collect();
        prop_assert_eq!(sorted(h.acked.clone()), sorted(expected));
        let st = h.shipper.stats();
        prop_assert_eq!(st.shipped_puts, h.acked.len() as u64);
        prop_assert_eq!((st.buffered_bytes, st.queued_puts, st.oldest_unacked_physical_ms), (0, 0, None));
    }
}
