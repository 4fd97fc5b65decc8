//! What a run does: each workload's mix of operations, which key each operation touches, and
//! the bytes of keys and values. Everything here is a pure function of a seed, so tests can pin
//! the proportions exactly.

use std::ops::Range;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The sort key of every record: YCSB's records have one field here.
pub const SORT_KEY: &[u8] = b"field0";

/// The hash key of record `i`: `user0000000042`. Fixed width, so every key has the same size.
pub fn hash_key(i: u64) -> Vec<u8> {
    format!("user{i:010}").into_bytes()
}

/// The YCSB-like workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Insert keys 0..N once, each worker a contiguous slice of them in order.
    Load,
    /// 50% read, 50% update (YCSB A, "update heavy").
    A,
    /// 95% read, 5% update (YCSB B, "read mostly").
    B,
    /// 100% read (YCSB C).
    C,
    /// 100% update (set) of existing keys.
    Write,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Load => "load",
            Workload::A => "a",
            Workload::B => "b",
            Workload::C => "c",
            Workload::Write => "write",
        }
    }

    /// Percentage of reads among operations (the rest are updates, or inserts for `load`).
    pub fn read_percent(self) -> u32 {
        match self {
            Workload::Load | Workload::Write => 0,
            Workload::A => 50,
            Workload::B => 95,
            Workload::C => 100,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Workload::Load => "insert every key once",
            Workload::A => "50% read / 50% update",
            Workload::B => "95% read / 5% update",
            Workload::C => "100% read",
            Workload::Write => "100% update",
        }
    }
}

/// The kinds of operations, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// A get of one record.
    Read,
    /// A set of an existing record.
    Update,
    /// A set of a new record (`load`).
    Insert,
}

impl OpKind {
    pub const ALL: [OpKind; 3] = [OpKind::Read, OpKind::Update, OpKind::Insert];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
        }
    }

    pub fn index(self) -> usize {
        match self {
            OpKind::Read => 0,
            OpKind::Update => 1,
            OpKind::Insert => 2,
        }
    }
}

/// How keys are drawn for reads and updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Key `i` has probability proportional to 1/(i+1)^0.99 (YCSB's constant): `user0000000000`
    /// is the hottest. Not scrambled as in YCSB: Tern hashes hash keys to partitions anyway.
    Zipfian,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
        }
    }
}

/// YCSB's Zipfian constant.
pub const ZIPFIAN_THETA: f64 = 0.99;

/// Zipf-distributed integers in `0..n` by the method of Gray et al., "Quickly generating
/// billion-record synthetic databases" (SIGMOD 1994), as YCSB's `ZipfianGenerator` does:
/// O(n) set-up (the zeta sum) once, O(1) per sample.
#[derive(Clone, Debug)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// `n` ≥ 1 items, skew `theta` in (0, 1).
    pub fn new(n: u64, theta: f64) -> Zipfian {
        let n = n.max(1);
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2.min(n), theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian { n, theta, alpha, zetan, eta }
    }

    /// The probability of item 0, the most popular one.
    pub fn p0(&self) -> f64 {
        1.0 / self.zetan
    }

    /// Maps a uniform `u` in [0, 1) to an item.
    pub fn sample(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if self.n >= 2 && uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let v = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.n - 1)
    }
}

/// Draws key indexes in `0..keys`; shared by all workers (the Zipfian set-up is done once).
#[derive(Clone, Debug)]
pub struct KeyChooser {
    keys: u64,
    zipfian: Option<Arc<Zipfian>>,
}

impl KeyChooser {
    pub fn new(keys: u64, distribution: Distribution) -> KeyChooser {
        let keys = keys.max(1);
        let zipfian = match distribution {
            Distribution::Uniform => None,
            Distribution::Zipfian => Some(Arc::new(Zipfian::new(keys, ZIPFIAN_THETA))),
        };
        KeyChooser { keys, zipfian }
    }

    pub fn choose(&self, rng: &mut impl Rng) -> u64 {
        match &self.zipfian {
            None => rng.random_range(0..self.keys),
            Some(z) => z.sample(rng.random::<f64>()),
        }
    }
}

/// The slice of keys `0..keys` that worker `worker` of `workers` inserts in `load`: contiguous,
/// sizes differ by at most one, together they cover every key exactly once.
pub fn load_range(worker: u32, workers: u32, keys: u64) -> Range<u64> {
    let bound = |w: u32| (u128::from(keys) * u128::from(w) / u128::from(workers.max(1))) as u64;
    bound(worker)..bound(worker + 1)
}

/// One operation to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    pub key: u64,
}

/// The operations of one worker: the workload's mix, keys from the [`KeyChooser`], values of
/// random bytes; deterministic for a given (seed, worker).
#[derive(Debug)]
pub struct OpGenerator {
    workload: Workload,
    keys: KeyChooser,
    rng: ChaCha8Rng,
    inserts: Range<u64>,
    value_size: usize,
    /// Random bytes that values are cut from: a fresh random offset per value is cheap and
    /// keeps values from being all alike (no compression gains the real data would not have).
    value_pool: Vec<u8>,
}

const VALUE_POOL_EXTRA: usize = 4096;

impl OpGenerator {
    pub fn new(
        workload: Workload,
        keys: u64,
        keys_chooser: KeyChooser,
        value_size: usize,
        worker: u32,
        workers: u32,
        seed: u64,
    ) -> OpGenerator {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(u64::from(worker));
        let mut value_pool = vec![0u8; value_size + VALUE_POOL_EXTRA];
        rng.fill(&mut value_pool[..]);
        OpGenerator {
            workload,
            keys: keys_chooser,
            rng,
            inserts: if workload == Workload::Load { load_range(worker, workers, keys) } else { 0..0 },
            value_size,
            value_pool,
        }
    }

    /// The next operation, or `None` when a `load` worker has inserted its slice.
    pub fn next_op(&mut self) -> Option<Op> {
        if self.workload == Workload::Load {
            let key = self.inserts.next()?;
            return Some(Op { kind: OpKind::Insert, key });
        }
        let kind = if self.rng.random_range(0..100) < self.workload.read_percent() {
            OpKind::Read
        } else {
            OpKind::Update
        };
        Some(Op { kind, key: self.keys.choose(&mut self.rng) })
    }

    /// A value of `value_size` random bytes.
    pub fn value(&mut self) -> Vec<u8> {
        let at = self.rng.random_range(0..=VALUE_POOL_EXTRA);
        self.value_pool[at..at + self.value_size].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_kinds(workload: Workload, n: usize, seed: u64) -> [usize; 3] {
        let mut g =
            OpGenerator::new(workload, 1000, KeyChooser::new(1000, Distribution::Uniform), 8, 0, 1, seed);
        let mut counts = [0; 3];
        for _ in 0..n {
            counts[g.next_op().map(|op| op.kind.index()).unwrap_or(2)] += 1;
        }
        counts
    }

    #[test]
    fn op_mix_matches_each_workload() {
        let n = 100_000;
        for (w, read_pct) in
            [(Workload::A, 50.0), (Workload::B, 95.0), (Workload::C, 100.0), (Workload::Write, 0.0)]
        {
            let [reads, updates, inserts] = count_kinds(w, n, 7);
            assert_eq!(inserts, 0, "{w:?}");
            assert_eq!(reads + updates, n);
            let pct = reads as f64 * 100.0 / n as f64;
            // 100k Bernoulli draws: 4 standard deviations of a 50% mix are 0.63 points.
            assert!((pct - read_pct).abs() < 0.7, "{w:?}: {pct}% reads, want {read_pct}%");
        }
    }

    #[test]
    fn same_seed_same_operations_other_worker_other_operations() {
        let ops = |worker: u32, seed: u64| {
            let mut g = OpGenerator::new(
                Workload::A,
                1 << 20,
                KeyChooser::new(1 << 20, Distribution::Uniform),
                8,
                worker,
                4,
                seed,
            );
            (0..100).map(|_| g.next_op()).collect::<Vec<_>>()
        };
        assert_eq!(ops(1, 42), ops(1, 42));
        assert_ne!(ops(1, 42), ops(2, 42));
        assert_ne!(ops(1, 42), ops(1, 43));
    }

    #[test]
    fn uniform_keys_cover_the_key_space_evenly() {
        let keys = 10;
        let chooser = KeyChooser::new(keys, Distribution::Uniform);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[chooser.choose(&mut rng) as usize] += 1;
        }
        for c in counts {
            // Expected 10000 each, standard deviation ~95.
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn zipfian_keys_are_skewed_toward_the_first_keys() {
        let keys = 1000;
        let chooser = KeyChooser::new(keys, Distribution::Zipfian);
        let z = Zipfian::new(keys, ZIPFIAN_THETA);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 200_000;
        let mut counts = vec![0u32; keys as usize];
        for _ in 0..n {
            let k = chooser.choose(&mut rng);
            assert!(k < keys);
            counts[k as usize] += 1;
        }
        let p0 = f64::from(counts[0]) / n as f64;
        assert!((p0 - z.p0()).abs() / z.p0() < 0.05, "p0 {p0}, want {}", z.p0());
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        // The top 1% of keys take far more than 1% of operations (38% for theta 0.99).
        let top: u32 = counts[..10].iter().sum();
        assert!(f64::from(top) / n as f64 > 0.35);
    }

    #[test]
    fn zipfian_of_one_or_two_items() {
        let one = Zipfian::new(1, ZIPFIAN_THETA);
        let two = Zipfian::new(2, ZIPFIAN_THETA);
        for i in 0..100 {
            let u = f64::from(i) / 100.0;
            assert_eq!(one.sample(u), 0);
            assert!(two.sample(u) < 2);
        }
    }

    #[test]
    fn load_slices_cover_every_key_once_in_order() {
        for (workers, keys) in [(1, 10), (3, 10), (64, 100_000), (7, 3), (4, 0)] {
            let mut next = 0;
            for w in 0..workers {
                let r = load_range(w, workers, keys);
                assert_eq!(r.start, next);
                assert!(r.end - r.start <= keys / u64::from(workers) + 1);
                next = r.end;
            }
            assert_eq!(next, keys);
        }
    }

    #[test]
    fn load_inserts_its_slice_then_stops() {
        let mut g =
            OpGenerator::new(Workload::Load, 10, KeyChooser::new(10, Distribution::Uniform), 8, 1, 3, 0);
        let keys: Vec<u64> = std::iter::from_fn(|| g.next_op()).map(|op| op.key).collect();
        assert_eq!(keys, vec![3, 4, 5]);
        assert!(g.next_op().is_none());
    }

    #[test]
    fn keys_and_values_have_fixed_sizes() {
        assert_eq!(hash_key(42), b"user0000000042");
        assert_eq!(hash_key(u64::from(u32::MAX)).len(), hash_key(0).len());
        let mut g =
            OpGenerator::new(Workload::A, 10, KeyChooser::new(10, Distribution::Uniform), 100, 0, 1, 0);
        let (a, b) = (g.value(), g.value());
        assert_eq!((a.len(), b.len()), (100, 100));
        assert_ne!(a, b);
    }
}
