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
    /// Two clusters joined by a two-way duplication link (`None`: one cluster, no link). The
    /// sizes above are per cluster; `registers` and `counters` are each cluster's private keys.
    pub dup: Option<DupConfig>,
    /// DR roles and the DR lease, with DR voters and proxies that fail over (two-cluster runs
    /// only; `SimConfig::two_clusters_dr`, see `dr/`). `None`: both copies active, no lease.
    pub dr: Option<crate::dr::DrConfig>,
}

/// The second cluster and the link of a two-cluster run (see `docs/simulation.md`).
#[derive(Clone, Debug)]
pub struct DupConfig {
    /// Partitions of the table in cluster 1 and in cluster 2 (they may differ: each put is
    /// routed by its own hash key).
    pub partitions: [u32; 2],
    /// Keys both clusters write (colliding writes resolve by last-writer-wins) and read.
    pub shared_registers: usize,
    pub shared_counters: usize,
    /// Chance (percent) that a fault step cuts the link between the two clusters.
    pub cut_link_percent: u32,
    /// Puts per shipped batch (small, so that batches pipeline and fail independently).
    pub batch_max_puts: usize,
    /// Deliberately broken duplication rules, to prove the checks find them.
    pub bugs: DupBugs,
    /// The receiving tables' tombstone retention (simulated ms; the servers' default is 24 h):
    /// short, so that compaction drops tombstones during a run. It must exceed the spread of
    /// the clusters' clocks (as 24 h exceeds NTP's), which is why two-cluster runs keep their
    /// node clocks within a second of each other (see `docs/simulation.md`).
    pub retention_ms: u64,
    /// Chance (percent) that a fault step is a meta leader change: the meta server's in-memory
    /// state (what it heard of incoming links) is lost, and it answers nobody for 1 to 3 s.
    pub leader_change_percent: u32,
    /// Once in the fault phase, at `.0` ms, the clusters are cut apart both ways for `.1` ms
    /// (longer than the retention), while both keep writing.
    pub long_cut_ms: Option<(u64, u64)>,
    /// The links (one each way, each with a full sync) are added at this time, while both
    /// clusters' clients already write; `None`: the links exist from the start, without sync.
    pub full_sync_at_ms: Option<u64>,
    /// One cluster's wall clocks run far ahead for a while.
    pub skew: Option<ClusterSkew>,
}

/// Cluster `cluster`'s wall clocks (its meta server's and replica servers') are `ahead_ms`
/// ahead from `from_ms` until `until_ms` (then set right: its HLCs stay ahead until real time
/// catches up).
#[derive(Clone, Copy, Debug)]
pub struct ClusterSkew {
    pub cluster: usize,
    pub from_ms: u64,
    pub until_ms: u64,
    pub ahead_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct DupBugs {
    /// In the shared rules (`DupRules::start_point`): a new primary ships from its committed
    /// decree instead of the meta server's confirmed one.
    pub start_from_committed: bool,
    /// In the shared rules (`DupRules::log_floor`): the log floor is one decree too high, so
    /// garbage collection drops a decree a link still has to ship.
    pub floor_past_confirmed: bool,
    /// In the shared rules (`DupRules::needed_range`): a replica that empties its log to learn
    /// keeps nothing for the link, and checkpoints carry nothing (the servers before the log was
    /// kept for links: a replica that re-learned and then becomes primary cannot read what its
    /// predecessor had not shipped).
    pub forget_log_when_learning: bool,
    /// In the shared rules (`DupRules::purge_horizon`): tombstones go after a fixed retention,
    /// whatever the links still have to ship.
    pub ignore_incoming_links: bool,
    /// A batch the remote refused is counted as acknowledged (instead of retried).
    pub failed_as_acked: bool,
    /// A receiving node ships writes that arrived by duplication back (a loop).
    pub reship_duplicated: bool,
    /// In the shared rules (`DupRules::purge_horizon`): a partition of an incoming link that the
    /// meta leader has not heard from (since it took over) does not hold the horizon back.
    pub unheard_holds_nothing: bool,
    /// In the shared rules (`DupRules::links_purge_bound`): a partition purges tombstones its own
    /// outgoing links have not shipped yet, which a copy of its records then cannot send.
    pub purge_past_unshipped: bool,
    /// The receiving servers run with a maximum clock offset of an hour (a misconfiguration):
    /// a cluster far ahead drags their clocks along.
    pub unbounded_clock_offset: bool,
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
    /// An atomic op is resolved while an uncommitted write to its hash key is in flight (it
    /// reads a store that lacks that write).
    pub resolve_past_in_flight: bool,
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
            dup: None,
            dr: None,
        }
    }

    /// Two clusters with a two-way link: per cluster the standard sizes and faults (2 to 4
    /// partitions in cluster 1, 1 to 3 in cluster 2, drawn from the seed), plus keys both write.
    pub fn two_clusters(seed: u64) -> SimConfig {
        let mut cfg = SimConfig::standard(seed);
        cfg.clients = 4;
        // Within the retention (see `DupConfig::retention_ms`).
        cfg.faults.offset_ms = 1_000;
        cfg.dup = Some(DupConfig {
            partitions: [cfg.partitions, 1 + ((seed / 3) % 3) as u32],
            shared_registers: 4,
            shared_counters: 2,
            cut_link_percent: 10,
            batch_max_puts: 8,
            bugs: DupBugs::default(),
            retention_ms: 5_000,
            leader_change_percent: 5,
            long_cut_ms: None,
            full_sync_at_ms: None,
            skew: None,
        });
        cfg
    }

    /// How many clusters the run has.
    pub fn clusters(&self) -> usize {
        if self.dup.is_some() { 2 } else { 1 }
    }

    /// Partitions of cluster `c`'s table.
    pub fn partitions_of(&self, c: usize) -> u32 {
        self.dup.as_ref().map_or(self.partitions, |d| d.partitions[c])
    }
}
