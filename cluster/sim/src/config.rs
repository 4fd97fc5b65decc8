//! What a simulated run looks like: sizes, timings and fault rates. Everything random is drawn
//! from one seed.

/// One simulated run. Times are simulated milliseconds unless named otherwise.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub partitions: u32,
    pub replicas: usize,
    pub clients: usize,
    /// Register keys (set, get, del, check-and-set) and counter keys (incr, get).
    pub registers: usize,
    pub counters: usize,
    /// How long clients run with faults injected.
    pub fault_phase_ms: u64,
    /// How long the cluster gets to converge once faults stop.
    pub heal_phase_ms: u64,
    pub faults: Faults,
    /// Deliberately broken replica rules, to prove the checkers find them.
    pub bugs: PlantedBugs,
}

#[derive(Clone, Debug)]
pub struct Faults {
    /// Probability that a message is dropped / delivered twice.
    pub drop: f64,
    pub duplicate: f64,
    /// Normal one-way delay range, in microseconds, and the chance of a long delay.
    pub delay_us: (u64, u64),
    pub slow_chance: f64,
    pub slow_delay_us: (u64, u64),
    /// Mean time between fault steps (crash, restart, partition, heal).
    pub step_ms: u64,
    /// At most this many replica servers down at once.
    pub max_down: usize,
    /// Probability that a log sync fails (the replica then stops).
    pub disk_fault: f64,
    /// Clock rate error bound (ppm) and offset bound (ms) per node.
    pub drift_ppm: i64,
    pub offset_ms: i64,
}

#[derive(Clone, Debug, Default)]
pub struct PlantedBugs {
    pub commit_on_majority: bool,
    pub read_without_lease: bool,
}

impl SimConfig {
    /// The configuration CI runs for each seed.
    pub fn standard(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 5,
            // 2 to 4: more partitions than nodes' worth of primaries gives the balancer work.
            partitions: 2 + (seed % 3) as u32,
            replicas: 3,
            clients: 5,
            registers: 4,
            counters: 2,
            fault_phase_ms: 40_000,
            heal_phase_ms: 120_000,
            faults: Faults {
                drop: 0.02,
                duplicate: 0.01,
                delay_us: (200, 3_000),
                slow_chance: 0.01,
                slow_delay_us: (20_000, 300_000),
                step_ms: 2_000,
                max_down: 2,
                disk_fault: 0.002,
                drift_ppm: 2_000,
                offset_ms: 30_000,
            },
            bugs: PlantedBugs::default(),
        }
    }
}
