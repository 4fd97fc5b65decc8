//! The purge horizon at a simulated meta server: the bookkeeping of `tern-meta`'s `Horizons`
//! (`cluster/meta/src/horizon.rs`) around the servers' own decision,
//! `DupRules::purge_horizon`.
//!
//! Replicated state (it survives a leader change): the table's horizon, and the incoming links
//! registered (by sending cluster and table, with their partition counts), registered the first
//! time a receiving node reports one. In memory (lost on a leader change): the largest
//! replicated-up-to heard per sending partition. A new leader has heard nothing, so every
//! registered link's partitions count as zero until they report again: it raises no horizon
//! on knowledge it does not have. A raise smaller than a second is not made (every beacon
//! would write one). Links silent past a hold limit are not modelled (the servers forget them
//! after days).

use std::collections::BTreeMap;

use tern_core::Timetag;
use tern_duplication::{DupRules, IncomingLink};

use crate::net::IncomingHeard;

/// A raise smaller than this is not made (the meta server's `MIN_RAISE_MS`).
const MIN_RAISE_MS: u64 = 1_000;

#[derive(Debug, Default)]
pub struct MetaHorizon {
    /// Replicated: the table's purge horizon.
    pub purge_below: Timetag,
    /// Replicated: incoming links, (from cluster, source table) → source partition count.
    incoming: BTreeMap<(u8, u32), u32>,
    /// Replicated: the horizon when the first incoming link was registered. Records below it
    /// may have been dropped before any link could hold them (a link added later cannot be
    /// protected from that, `duplication/src/horizon.rs`).
    pub registered_at: Option<Timetag>,
    /// The wall clock then (for the statistics).
    registered_wall_ms: u64,
    /// In memory: per incoming link, the largest replicated-up-to heard per sending partition.
    heard: BTreeMap<(u8, u32), Vec<Option<Timetag>>>,
    /// Raises stop (the heal phase: a run ends quiescent, and a horizon rises every second).
    pub frozen: bool,
    pub raises: u64,
    /// The most the incoming links held the horizon back behind the retention (ms).
    pub max_held_ms: u64,
}

impl MetaHorizon {
    /// What a receiving node heard; returns a description of each link registered now.
    pub fn on_reports(&mut self, reports: &[IncomingHeard], now_wall_ms: u64) -> Vec<String> {
        let mut registered = Vec::new();
        for r in reports {
            let key = (r.from_cluster, r.source_table);
            if self.incoming.get(&key) != Some(&r.source_partitions) {
                self.incoming.insert(key, r.source_partitions);
                if self.registered_at.is_none() {
                    self.registered_at = Some(self.purge_below);
                    self.registered_wall_ms = now_wall_ms;
                }
                registered.push(format!(
                    "incoming link from table {} of cluster {} ({} partitions) registered at horizon {}",
                    r.source_table, r.from_cluster, r.source_partitions, self.purge_below
                ));
            }
            let heard = self.heard.entry(key).or_default();
            heard.resize(r.source_partitions as usize, None);
            if let Some(w) = heard.get_mut(r.source_partition as usize) {
                *w = Some(w.map_or(r.replicated_up_to, |old| old.max(r.replicated_up_to)));
            }
        }
        registered
    }

    /// The horizon the table's replicas get now, if it rises (the servers' decision, from the
    /// retention behind `now_wall_ms` and what this leader heard).
    pub fn tick(&mut self, rules: &DupRules, now_wall_ms: u64, retention_ms: u64) -> Option<Timetag> {
        if self.frozen {
            return None;
        }
        let current = self.purge_below;
        let heard: Vec<Vec<Option<Timetag>>> = self
            .incoming
            .iter()
            .map(|(key, partitions)| {
                let mut w = self.heard.get(key).cloned().unwrap_or_default();
                w.resize(*partitions as usize, None);
                w
            })
            .collect();
        let links = heard.iter().map(|w| IncomingLink { replicated_up_to: w });
        let target = rules.purge_horizon(current, now_wall_ms, retention_ms, links);
        if self.registered_at.is_some() {
            // Since the first link was registered (a table without links purges behind the
            // retention, whatever its horizon was before).
            let since = target.physical_ms().max(self.registered_wall_ms.saturating_sub(retention_ms));
            let held = now_wall_ms.saturating_sub(retention_ms).saturating_sub(since);
            self.max_held_ms = self.max_held_ms.max(held);
        }
        if target.physical_ms() < current.physical_ms() + MIN_RAISE_MS {
            return None;
        }
        self.purge_below = target;
        self.raises += 1;
        Some(target)
    }

    /// The clusters whose links into this table are registered.
    pub fn incoming_clusters(&self) -> Vec<u8> {
        let mut c: Vec<u8> = self.incoming.keys().map(|(c, _)| *c).collect();
        c.dedup();
        c
    }

    /// A new meta leader: what the old one heard is gone.
    pub fn leader_change(&mut self) {
        self.heard.clear();
    }
}
