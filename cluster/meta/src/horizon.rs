//! The meta leader's side of purge horizons: what it heard of incoming links (in memory: it moves
//! with every batch), the commands that register new ones, raise a table's horizon, or forget a
//! link silent past the hold limit. The decision is `tern_duplication::DupRules::purge_horizon`;
//! the replicated part is `state/incoming.rs`.
//!
//! A new leader has heard nothing: a registered link's partitions count as zero until they
//! report again (their heartbeats come every few seconds), so no horizon rises on knowledge the
//! leader does not have.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tern_core::{TableStatus, Timetag};
use tern_duplication::{DupRules, IncomingLink};
use tern_proto::pb;

use crate::state::incoming::{IncomingRecord, incoming_key};
use crate::state::{Command, MetaState};

/// A horizon rises in steps of a 64th of the retention, between 1 s and 1 min: each raise is a
/// Raft command and then a log entry in every partition of the table, so a smaller step would
/// write one every second in every idle partition (tombstones go a little later instead).
fn min_raise_ms(retention_ms: u64) -> u64 {
    (retention_ms / 64).clamp(1_000, 60_000)
}
/// How often a table whose horizon a link holds back past the retention is warned about.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What the leader heard of one incoming link of one table.
#[derive(Debug)]
struct Heard {
    /// Per sending partition, the largest replicated-up-to heard.
    replicated_up_to: Vec<Option<Timetag>>,
    last: Instant,
}

/// The leader's memory of incoming links: by (receiving table, incoming key).
#[derive(Debug)]
pub struct Horizons {
    heard: BTreeMap<(u32, String), Heard>,
    started: Instant,
    rules: DupRules,
    /// When each held-back table was last warned about.
    warned: BTreeMap<u32, Instant>,
}

/// What a leader tells about one incoming link.
#[derive(Clone, Debug)]
pub struct IncomingView {
    pub table: u32,
    pub link: IncomingRecord,
    pub replicated_up_to: Vec<u64>,
    /// `None`: not heard since this leader started.
    pub heard_ago: Option<Duration>,
}

impl Horizons {
    pub fn new(now: Instant) -> Horizons {
        Horizons { heard: BTreeMap::new(), started: now, rules: DupRules::default(), warned: BTreeMap::new() }
    }

    /// Takes what a replica server heard; returns the commands that register incoming links
    /// not registered yet (or whose partition count changed).
    pub fn on_reports(
        &mut self,
        s: &MetaState,
        reports: &[pb::IncomingWatermark],
        now: Instant,
    ) -> Vec<Command> {
        let mut commands = Vec::new();
        for r in reports {
            let Ok(from_cluster) = u8::try_from(r.from_cluster) else { continue };
            if !matches!(s.tables.get(&r.table).map(|t| &t.status), Some(TableStatus::Serving)) {
                continue;
            }
            let key = incoming_key(from_cluster, r.source_table);
            let link = IncomingRecord {
                from_cluster,
                source_table: r.source_table,
                partitions: r.source_partitions,
            };
            let registered = s.horizon(r.table).and_then(|h| h.incoming.get(&key)).copied();
            if registered != Some(link)
                && !commands.iter().any(|c| matches!(c, Command::RegisterIncoming { table, link: l } if *table == r.table && *l == link))
            {
                commands.push(Command::RegisterIncoming { table: r.table, link });
            }
            let heard = self
                .heard
                .entry((r.table, key))
                .or_insert_with(|| Heard { replicated_up_to: vec![], last: now });
            heard.replicated_up_to.resize(r.source_partitions as usize, None);
            if let Some(w) = heard.replicated_up_to.get_mut(r.source_partition as usize) {
                let t = Timetag::from_u64(r.replicated_up_to);
                *w = Some(w.map_or(t, |old| old.max(t)));
            }
            heard.last = now;
        }
        commands
    }

    /// The commands a tick writes: incoming links silent past `hold_limit` are forgotten (with
    /// an error in the log: writes they send later may bring back records deleted here), and
    /// every serving table's horizon rises to what the links allow.
    pub fn tick(
        &mut self,
        s: &MetaState,
        now_wall_ms: u64,
        retention: Duration,
        hold_limit: Duration,
        now: Instant,
    ) -> Vec<Command> {
        let mut commands = Vec::new();
        for (table, h) in &s.horizons {
            for (key, link) in &h.incoming {
                let silent = self
                    .heard
                    .get(&(*table, key.clone()))
                    .map_or(now - self.started, |heard| now - heard.last);
                if silent >= hold_limit {
                    tracing::error!(
                        table,
                        "the incoming link from table {} of cluster {} has not been heard for {silent:?}, past the \
                         hold limit ({hold_limit:?}): it stops holding tombstones back, and writes it sends later \
                         may bring back records deleted here",
                        link.source_table,
                        link.from_cluster
                    );
                    commands.push(Command::ForgetIncoming {
                        table: *table,
                        from_cluster: link.from_cluster,
                        source_table: link.source_table,
                    });
                }
            }
        }
        for t in s.tables.values().filter(|t| t.status == TableStatus::Serving) {
            let current = Timetag::from_u64(s.horizon(t.id).map_or(0, |h| h.purge_below));
            let heard: Vec<Vec<Option<Timetag>>> = s
                .horizon(t.id)
                .map(|h| {
                    h.incoming
                        .iter()
                        .map(|(key, link)| {
                            let mut w = self
                                .heard
                                .get(&(t.id, key.clone()))
                                .map(|h| h.replicated_up_to.clone())
                                .unwrap_or_default();
                            w.resize(link.partitions as usize, None);
                            w
                        })
                        .collect()
                })
                .unwrap_or_default();
            let links = heard.iter().map(|w| IncomingLink { replicated_up_to: w });
            let retention_ms = retention.as_millis() as u64;
            let target = self.rules.purge_horizon(current, now_wall_ms, retention_ms, links);
            let step = min_raise_ms(retention_ms);
            if target.physical_ms() >= current.physical_ms() + step {
                commands.push(Command::RaisePurgeHorizon { table: t.id, below: target.as_u64() });
            }
            let held_ms = now_wall_ms.saturating_sub(target.physical_ms());
            if held_ms > retention_ms + 2 * step
                && self.warned.get(&t.id).is_none_or(|at| now.duration_since(*at) >= WARN_EVERY)
            {
                self.warned.insert(t.id, now);
                tracing::warn!(
                    table = t.name,
                    "an incoming duplication link holds the purge horizon {:.0} s back (retention {:.0} s): \
                     deletes are kept until it catches up (see `tern dup status`)",
                    held_ms as f64 / 1000.0,
                    retention_ms as f64 / 1000.0
                );
            }
        }
        commands
    }

    /// Every registered incoming link with what this leader heard of it.
    pub fn views(&self, s: &MetaState, now: Instant) -> Vec<IncomingView> {
        let mut out = Vec::new();
        for (table, h) in &s.horizons {
            for (key, link) in &h.incoming {
                let heard = self.heard.get(&(*table, key.clone()));
                let mut w: Vec<u64> = heard
                    .map(|h| h.replicated_up_to.iter().map(|w| w.map_or(0, Timetag::as_u64)).collect())
                    .unwrap_or_default();
                w.resize(link.partitions as usize, 0);
                out.push(IncomingView {
                    table: *table,
                    link: *link,
                    replicated_up_to: w,
                    heard_ago: heard.map(|h| now - h.last),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn state() -> MetaState {
        let mut s = MetaState::default();
        s.apply(&Command::CreateTable { name: "t".into(), partitions: 4, replicas: 3 });
        s
    }

    fn report(partition: u32, up_to_ms: u64) -> pb::IncomingWatermark {
        pb::IncomingWatermark {
            table: 1,
            from_cluster: 2,
            source_table: 7,
            source_partition: partition,
            source_partitions: 2,
            replicated_up_to: Timetag::at_physical_ms(up_to_ms).as_u64(),
        }
    }

    fn apply(s: &mut MetaState, commands: Vec<Command>) {
        for c in commands {
            s.apply(&c);
        }
    }

    #[test]
    fn a_table_without_incoming_links_purges_behind_the_retention() {
        let (mut s, now) = (state(), Instant::now());
        let mut h = Horizons::new(now);
        let now_ms = 10 * DAY.as_millis() as u64;
        let c = h.tick(&s, now_ms, DAY, 7 * DAY, now);
        apply(&mut s, c);
        assert_eq!(
            Timetag::from_u64(s.horizon(1).unwrap().purge_below).physical_ms(),
            now_ms - DAY.as_millis() as u64
        );
        assert!(
            h.tick(&s, now_ms + 59_000, DAY, 7 * DAY, now).is_empty(),
            "with a day's retention the horizon rises a minute at a time"
        );
        assert_eq!(h.tick(&s, now_ms + 60_000, DAY, 7 * DAY, now).len(), 1);
        assert_eq!(min_raise_ms(3_000), 1_000, "at least a second");
    }

    #[test]
    fn an_incoming_link_holds_the_horizon_until_every_partition_is_past() {
        let (mut s, now) = (state(), Instant::now());
        let mut h = Horizons::new(now);
        let now_ms = 10 * DAY.as_millis() as u64;
        let registered = h.on_reports(&s, &[report(0, now_ms - 3 * DAY.as_millis() as u64)], now);
        assert!(matches!(registered[..], [Command::RegisterIncoming { table: 1, .. }]));
        apply(&mut s, registered);
        let c = h.tick(&s, now_ms, DAY, 7 * DAY, now);
        apply(&mut s, c);
        assert_eq!(s.horizon(1).unwrap().purge_below, 0, "partition 1 not heard yet: nothing goes");
        let c = h.on_reports(&s, &[report(1, now_ms - 2_000)], now);
        apply(&mut s, c);
        let c = h.tick(&s, now_ms, DAY, 7 * DAY, now);
        apply(&mut s, c);
        let held = Timetag::from_u64(s.horizon(1).unwrap().purge_below).physical_ms();
        assert_eq!(held, now_ms - 3 * DAY.as_millis() as u64, "partition 0 is three days behind");
        assert_eq!(h.views(&s, now)[0].replicated_up_to.len(), 2);
    }

    #[test]
    fn a_link_silent_past_the_hold_limit_is_forgotten() {
        let (mut s, now) = (state(), Instant::now());
        let mut h = Horizons::new(now);
        let c = h.on_reports(&s, &[report(0, 1_000)], now);
        apply(&mut s, c);
        assert!(
            h.tick(&s, 2 * DAY.as_millis() as u64, DAY, 7 * DAY, now)
                .iter()
                .all(|c| !matches!(c, Command::ForgetIncoming { .. }))
        );
        let later = now + 8 * DAY;
        let commands = h.tick(&s, 9 * DAY.as_millis() as u64, DAY, 7 * DAY, later);
        assert!(
            commands
                .iter()
                .any(|c| matches!(c, Command::ForgetIncoming { table: 1, from_cluster: 2, source_table: 7 }))
        );
    }
}
