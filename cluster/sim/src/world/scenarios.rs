//! What two-cluster runs add to the world: a long outage of the link, links added with a full
//! sync while both clusters already hold data, one cluster's wall clocks far ahead for a while,
//! and meta leader changes. Everything is drawn from the seed or fixed by the configuration.

use rand::Rng;

use super::World;
use crate::checker::clock_bound::ClusterClocks;
use crate::clock::WallStep;
use crate::config::SimConfig;
use crate::meta::SimMeta;
use crate::net::Addr;
use crate::node::SimNode;
use crate::world_ctx::{Ev, Scenario};

/// The wall-clock step of cluster `c`'s processes, if the run skews that cluster.
pub(super) fn wall_step(cfg: &SimConfig, c: usize) -> Option<WallStep> {
    let s = cfg.dup.as_ref()?.skew.filter(|s| s.cluster == c)?;
    Some(WallStep { from_us: s.from_ms * 1_000, until_us: s.until_ms * 1_000, ahead_ms: s.ahead_ms })
}

/// What the clock-bound check knows of each cluster.
pub(super) fn cluster_clocks(cfg: &SimConfig, nodes: &[SimNode], metas: &[SimMeta]) -> Vec<ClusterClocks> {
    (0..metas.len())
        .map(|c| ClusterClocks {
            clocks: nodes
                .iter()
                .filter(|n| n.cluster == c)
                .map(|n| n.clock)
                .chain([metas[c].clock])
                .collect(),
            max_offset_ms: super::max_clock_offset_ms(cfg),
        })
        .collect()
}

impl World {
    pub(super) fn start_scenarios(&mut self) {
        let Some(d) = self.cfg.dup.clone() else { return };
        if let Some((at_ms, lasts_ms)) = d.long_cut_ms {
            self.push(at_ms * 1_000, Ev::Scenario(Scenario::LongCut { lasts_us: lasts_ms * 1_000 }));
        }
        if let Some(at_ms) = d.full_sync_at_ms {
            self.push(at_ms * 1_000, Ev::Scenario(Scenario::AddLinks));
        }
        if let Some(s) = d.skew {
            let line = format!(
                "cluster {}'s wall clocks run {} s ahead from {} s to {} s",
                s.cluster + 1,
                s.ahead_ms / 1_000,
                s.from_ms / 1_000,
                s.until_ms / 1_000
            );
            self.trace.line(self.now_us, line);
        }
    }

    pub(super) fn on_scenario(&mut self, s: Scenario) {
        match s {
            Scenario::LongCut { lasts_us } => self.cut_clusters_apart(lasts_us),
            Scenario::AddLinks => {
                for m in 0..self.metas.len() {
                    let partitions = self.cfg.partitions_of(m);
                    self.with_ctx(|p, ctx| p.metas[m].add_link(ctx, partitions));
                }
            }
        }
    }

    /// Cuts every link between the two clusters, both ways, for `lasts_us`.
    fn cut_clusters_apart(&mut self, lasts_us: u64) {
        let side = |c: usize| -> Vec<Addr> {
            let nodes = self.nodes.iter().filter(|x| x.cluster == c).map(|x| Addr::Node(x.id));
            nodes.chain([Addr::Meta(c as u8)]).collect()
        };
        let (a, b) = (side(0), side(1));
        let links = a.iter().flat_map(|x| b.iter().flat_map(move |y| [(*x, *y), (*y, *x)])).collect();
        let id = self.net.partition(links);
        self.stats.link_cuts += 1;
        self.stats.longest_link_cut_ms = self.stats.longest_link_cut_ms.max(lasts_us / 1_000);
        let line = format!(
            "partition {id}: the clusters are cut apart for {} s (long outage)",
            lasts_us / 1_000_000
        );
        self.trace.line(self.now_us, line);
        self.push(lasts_us, Ev::HealPartition(id));
    }

    /// A meta server's leader changes: the new leader has lost the old one's memory, and
    /// nobody reaches the meta server while it is elected (1 to 3 s).
    pub(super) fn meta_leader_change(&mut self) {
        let m = self.rng.random_range(0..self.metas.len());
        self.with_ctx(|p, ctx| p.metas[m].leader_change(ctx));
        let meta = Addr::Meta(m as u8);
        let everyone: Vec<Addr> = self
            .nodes
            .iter()
            .map(|x| Addr::Node(x.id))
            .chain((0..self.metas.len() as u8).map(Addr::Meta))
            .chain((0..self.clients.len() as u32).map(Addr::Client))
            .filter(|a| *a != meta)
            .collect();
        let links = everyone.iter().flat_map(|o| [(meta, *o), (*o, meta)]).collect();
        let id = self.net.partition(links);
        let lasts = self.rng.random_range(1_000_000..3_000_000);
        self.push(lasts, Ev::HealPartition(id));
    }

    /// Horizons rise every second for good (each rise is a log entry in every partition, and a
    /// secondary learns that the last one committed only with the next), so a run never
    /// quiesces while they do: in the heal phase they stop once every put has shipped both ways,
    /// and not before the retention (and 3 s more) has passed since the faults ended, so that
    /// every tombstone written in the fault phase ends below the horizons.
    pub(super) fn freeze_horizons_once_caught_up(&mut self) {
        let Some(d) = &self.cfg.dup else { return };
        let frozen = self.metas.iter().all(|m| m.horizon.as_ref().is_none_or(|h| h.frozen));
        let after_ms = self.cfg.fault_phase_ms + d.retention_ms + 3_000;
        if frozen
            || self.now_us < after_ms * 1_000
            || crate::world_dup::link_not_caught_up(&self.metas, &self.nodes, &self.obs).is_some()
        {
            return;
        }
        for h in self.metas.iter_mut().filter_map(|m| m.horizon.as_mut()) {
            h.frozen = true;
        }
        self.trace.line(self.now_us, "every put shipped both ways: purge horizons stop rising".into());
    }

    /// Whether the purge horizons have stopped and every primary has applied its table's last
    /// one (then no more entries come).
    pub(super) fn horizons_settled(&self) -> bool {
        self.metas.iter().all(|m| {
            let Some(h) = &m.horizon else { return true };
            h.frozen
                && m.cm.configs().all(|c| {
                    let primary = c.primary.and_then(|p| self.nodes.iter().find(|n| n.id == p && n.up));
                    let store = primary.and_then(|n| n.store(c.gpid));
                    store.is_some_and(|s| tern_storage::PartitionStore::purge_horizon(s) >= h.purge_below)
                })
        })
    }

    pub(super) fn scenario_stats(&mut self) {
        let horizons = self.metas.iter().filter_map(|m| m.horizon.as_ref());
        for h in horizons {
            self.stats.horizon_raises += h.raises;
            self.stats.max_horizon_held_ms = self.stats.max_horizon_held_ms.max(h.max_held_ms);
        }
        self.stats.meta_leader_changes = self.metas.iter().map(|m| m.leader_changes).sum();
        self.stats.purged_records = self.obs.purged;
        let d = &self.obs.dup;
        self.stats.clock_ahead_refusals = d.clock_ahead;
        self.stats.full_sync_records = d.copied;
        self.stats.full_syncs_done = d.copies_done;
        self.stats.resyncs = d.resyncs;
    }
}
