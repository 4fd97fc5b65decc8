//! Duplication metrics of a replica server (scraped at `tern replica --metrics-listen`): per
//! link and partition on the sending side (what this node's primaries ship), and totals on the
//! receiving side. Without a listener the calls cost next to nothing (no recorder installed).

use tern_proto::pb;

/// The latest progress of one shipper (a primary's partition on one link).
pub fn record_progress(p: &pb::DupProgress, now_wall_ms: u64) {
    let labels = [("link", p.link.to_string()), ("partition", p.partition.to_string())];
    let seconds_behind = if p.oldest_unshipped_ms > 0 {
        now_wall_ms.saturating_sub(p.oldest_unshipped_ms) as f64 / 1000.0
    } else {
        0.0
    };
    metrics::gauge!("tern_dup_confirmed_decree", &labels).set(p.confirmed as f64);
    metrics::gauge!("tern_dup_decrees_behind", &labels).set(p.committed.saturating_sub(p.confirmed) as f64);
    metrics::gauge!("tern_dup_bytes_behind", &labels).set(p.bytes_behind as f64);
    metrics::gauge!("tern_dup_seconds_behind", &labels).set(seconds_behind);
    metrics::gauge!("tern_dup_failing", &labels).set(if p.last_error.is_empty() { 0.0 } else { 1.0 });
    metrics::gauge!("tern_dup_syncing", &labels).set(if p.syncing { 1.0 } else { 0.0 });
    metrics::counter!("tern_dup_shipped_puts_total", &labels).absolute(p.shipped_puts);
    metrics::counter!("tern_dup_failed_batches_total", &labels).absolute(p.failed_batches);
    metrics::counter!("tern_dup_conflicts_total", &labels).absolute(p.conflicts);
    metrics::counter!("tern_dup_clock_ahead_total", &labels).absolute(p.clock_ahead);
    metrics::counter!("tern_dup_sync_records_total", &labels).absolute(p.sync_records);
    metrics::counter!("tern_dup_overwritten_total", &labels).absolute(p.overwritten);
    metrics::counter!("tern_dup_conflicts_dropped_total", &labels).absolute(p.conflicts_dropped);
    // The throttle, in wire bytes: sent (full sync included), the rate, this partition's share.
    metrics::counter!("tern_dup_wire_bytes_total", &labels).absolute(p.wire_bytes);
    metrics::gauge!("tern_dup_wire_bytes_per_sec", &labels).set(p.wire_bytes_per_sec as f64);
    metrics::gauge!("tern_dup_throttle_bytes_per_sec", &labels).set(p.throttle_bytes_per_sec as f64);
    metrics::gauge!("tern_dup_throttled", &labels).set(if p.throttled { 1.0 } else { 0.0 });
}

/// One `Duplicate` request this node answered as the receiving primary: puts applied (of which
/// `overwritten` replaced a record written in this cluster) and puts that lost.
pub fn record_received(applied: u32, lost: usize, overwritten: usize) {
    metrics::counter!("tern_dup_received_puts_total").increment(u64::from(applied) + lost as u64);
    metrics::counter!("tern_dup_received_conflicts_total").increment(lost as u64);
    metrics::counter!("tern_dup_received_overwrites_total").increment(overwritten as u64);
}

/// A `Duplicate` request refused because its timetags were too far ahead of this clock.
pub fn record_clock_ahead() {
    metrics::counter!("tern_dup_received_clock_ahead_total").increment(1);
}
