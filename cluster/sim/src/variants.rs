//! Two-cluster runs that stress one thing each (`docs/simulation.md`): a link down for longer
//! than the tombstone retention, links added with a full sync while both clusters hold data, and
//! one cluster's clocks far ahead for a while. Each is `SimConfig::two_clusters` with one more
//! fault, drawn from the seed.

use crate::config::{ClusterSkew, SimConfig};

impl SimConfig {
    /// Once in the fault phase the clusters are cut apart both ways for 15 to 25 s (three to five
    /// times the retention), while both write, delete and re-create the keys they share.
    pub fn two_clusters_long_outage(seed: u64) -> SimConfig {
        let mut cfg = SimConfig::two_clusters(seed);
        if let Some(d) = cfg.dup.as_mut() {
            d.long_cut_ms = Some((6_000 + (seed % 5) * 1_000, 15_000 + (seed % 11) * 1_000));
        }
        cfg
    }

    /// The tables are created without links and written for 8 to 14 s (long enough for
    /// tombstones to pass the retention and be dropped); then a link is added each way, each
    /// with a full sync, while the clients go on writing.
    pub fn two_clusters_full_sync(seed: u64) -> SimConfig {
        let mut cfg = SimConfig::two_clusters(seed);
        if let Some(d) = cfg.dup.as_mut() {
            d.full_sync_at_ms = Some(8_000 + (seed % 7) * 1_000);
        }
        cfg
    }

    /// One cluster's wall clocks run two minutes ahead from 8 s to 20 s, then are set right (its
    /// clocks stay ahead until real time catches up). The other cluster refuses its writes with
    /// `CLOCK_AHEAD` until its own clock has caught up, about 100 s after the faults end: the
    /// heal phase is longer.
    pub fn two_clusters_skewed(seed: u64) -> SimConfig {
        let mut cfg = SimConfig::two_clusters(seed);
        cfg.heal_phase_ms = 180_000;
        if let Some(d) = cfg.dup.as_mut() {
            d.skew = Some(ClusterSkew {
                cluster: (seed % 2) as usize,
                from_ms: 8_000,
                until_ms: 20_000,
                ahead_ms: 120_000,
            });
        }
        cfg
    }
}
