//! What this server's receiving primaries heard of incoming links (other clusters' tables that
//! ship here): per sending partition, the largest replicated-up-to its batches and heartbeats
//! carried. The next beacon reports it; the meta server turns it into the receiving table's purge
//! horizon (`tern_duplication::DupRules::purge_horizon`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tern_proto::pb;

/// (receiving table, from cluster, sending table, sending partition) → (sending partition
/// count, replicated-up-to).
type Key = (u32, u32, u32, u32);

#[derive(Debug, Default)]
pub struct Incoming {
    heard: Mutex<BTreeMap<Key, (u32, u64)>>,
}

impl Incoming {
    /// One batch or heartbeat's header, for receiving table `table`.
    pub fn heard(&self, table: u32, r: &pb::DuplicateRequest) {
        if r.source_partitions == 0 {
            return; // a sender that says nothing of itself (none of Tern's)
        }
        let key = (table, r.from_cluster, r.source_table, r.source_partition);
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let entry = heard.entry(key).or_insert((r.source_partitions, 0));
        entry.0 = r.source_partitions;
        entry.1 = entry.1.max(r.replicated_up_to);
    }

    /// What the next beacon reports.
    pub fn report(&self) -> Vec<pb::IncomingWatermark> {
        let heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard
            .iter()
            .map(|(&(table, from_cluster, source_table, source_partition), &(source_partitions, w))| {
                pb::IncomingWatermark {
                    table,
                    from_cluster,
                    source_table,
                    source_partition,
                    source_partitions,
                    replicated_up_to: w,
                }
            })
            .collect()
    }
}
