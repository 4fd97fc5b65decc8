//! What this server's receiving primaries heard of incoming links (other clusters' tables that
//! ship here): per sending partition, the largest replicated-up-to its batches and heartbeats
//! carried. The next beacon reports it; the meta server turns it into the receiving table's purge
//! horizon (`tern_duplication::DupRules::purge_horizon`). A beacon reports only what was heard
//! since the previous one: a sending partition that went silent (link paused, sender down) is
//! silent at the meta server too, which is what its hold limit counts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tern_proto::pb;

/// (receiving table, from cluster, sending table, sending partition).
type Key = (u32, u32, u32, u32);

#[derive(Debug)]
struct Heard {
    source_partitions: u32,
    replicated_up_to: u64,
    /// Heard since the last report.
    fresh: bool,
}

#[derive(Debug, Default)]
pub struct Incoming {
    heard: Mutex<BTreeMap<Key, Heard>>,
}

impl Incoming {
    /// One batch or heartbeat's header, for receiving table `table`.
    pub fn heard(&self, table: u32, r: &pb::DuplicateRequest) {
        if r.source_partitions == 0 {
            return; // a sender that says nothing of itself (none of Tern's)
        }
        let key = (table, r.from_cluster, r.source_table, r.source_partition);
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let entry =
            heard.entry(key).or_insert(Heard { source_partitions: 0, replicated_up_to: 0, fresh: true });
        entry.source_partitions = r.source_partitions;
        entry.replicated_up_to = entry.replicated_up_to.max(r.replicated_up_to);
        entry.fresh = true;
    }

    /// What the next beacon reports: what was heard since the last report. (A beacon that fails
    /// loses it until the sender's next batch or heartbeat, a few seconds later; the meta server
    /// keeps the largest figure it heard.)
    pub fn report(&self) -> Vec<pb::IncomingWatermark> {
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard
            .iter_mut()
            .filter(|(_, h)| h.fresh)
            .map(|(&(table, from_cluster, source_table, source_partition), h)| {
                h.fresh = false;
                pb::IncomingWatermark {
                    table,
                    from_cluster,
                    source_table,
                    source_partition,
                    source_partitions: h.source_partitions,
                    replicated_up_to: h.replicated_up_to,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(partition: u32, up_to: u64) -> pb::DuplicateRequest {
        pb::DuplicateRequest {
            from_cluster: 2,
            source_table: 7,
            source_partition: partition,
            source_partitions: 4,
            replicated_up_to: up_to,
            ..Default::default()
        }
    }

    #[test]
    fn a_beacon_reports_what_was_heard_since_the_last_one_and_the_largest_figure() {
        let i = Incoming::default();
        i.heard(1, &batch(0, 50));
        i.heard(1, &batch(0, 40));
        i.heard(1, &batch(3, 9));
        let r = i.report();
        assert_eq!(
            r.iter().map(|w| (w.source_partition, w.replicated_up_to)).collect::<Vec<_>>(),
            [(0, 50), (3, 9)]
        );
        assert!(i.report().is_empty(), "a silent sender is silent at the meta server too");
        i.heard(1, &batch(3, 8));
        let r = i.report();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].replicated_up_to, 9, "never less than heard before");
        let unknown = pb::DuplicateRequest { source_partitions: 0, ..batch(1, 5) };
        i.heard(1, &unknown);
        assert!(i.report().is_empty(), "a sender that says nothing of itself");
    }
}
