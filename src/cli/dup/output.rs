//! What `tern dup` prints: links, their progress and conflicts, as text or JSON.

use serde_json::{Value, json};
use tern_client::admin::{
    IncomingLinkReport, LinkConflicts, LinkReport, SourceTable, TableStates, TwoWayLinks,
};
use tern_core::key::escape;
use tern_core::{NodeId, Timetag};

use crate::cli::OutputFormat;
use crate::cli::common::{human_bytes, human_ms};

pub(super) fn throttle(n: u64) -> String {
    if n == 0 { "unlimited".into() } else { format!("{}/s", human_bytes(n)) }
}

/// A measured rate; `*` marks a partition that wants more than its share.
fn rate(n: u64, wants_more: bool) -> String {
    format!("{}/s{}", human_bytes(n), if wants_more { "*" } else { "" })
}

fn node(n: Option<NodeId>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

fn age(ms: Option<u64>) -> String {
    ms.map_or_else(|| "never".into(), |ms| format!("{} ago", human_ms(ms)))
}

fn key(b: &[u8]) -> String {
    escape(b, 256)
}

fn timetag_json(tt: Timetag) -> Value {
    json!({ "timetag": tt.as_u64(), "physical_ms": tt.physical_ms(), "cluster": tt.cluster().get(), "delete": tt.is_delete() })
}

/// A bound on timetags (every write at or below it is applied remotely; below it, dead records
/// may go): not a write's own timetag, so its cluster and delete bits mean nothing.
fn bound_json(tt: Timetag) -> Value {
    json!({ "timetag": tt.as_u64(), "physical_ms": tt.physical_ms() })
}

fn link_json(s: &LinkReport, tables: &TableStates, partitions: bool) -> Value {
    let l = &s.link;
    let t = s.totals();
    let mut v = json!({
        "id": l.id,
        "table": l.table_name,
        "table_id": l.table.0,
        "table_status": tables.of(l.table).name(),
        "remote_cluster": l.remote_cluster,
        "remote_cluster_id": l.remote_cluster_id,
        "remote_metas": l.remote_metas,
        "remote_table": l.remote_table,
        "mode": l.mode.name(),
        "status": l.status.name(),
        "max_bytes_per_sec": l.max_bytes_per_sec,
        "wire_bytes_per_sec": t.wire_bytes_per_sec,
        "created_at_ms": l.created_at_ms,
        "conflicts": s.conflicts,
        "remote_overwritten": s.overwritten,
        "conflicts_dropped": s.conflicts_dropped,
        "decrees_behind": t.decrees_behind,
        "bytes_behind": t.bytes_behind,
        "max_seconds_behind": t.max_seconds_behind,
        "failing_partitions": t.failing_partitions,
        "unknown_lag_partitions": t.unknown_lag_partitions,
    });
    if partitions {
        v["partitions"] = s
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.partition,
                    "started": l.started(p.partition),
                    "confirmed": p.confirmed,
                    "committed": p.committed,
                    "decrees_behind": p.decrees_behind,
                    "bytes_behind": p.bytes_behind,
                    "seconds_behind": p.seconds_behind,
                    "lag_known": p.lag_unknown.is_none(),
                    "lag_unknown": p.lag_unknown,
                    "replicated_up_to": bound_json(p.replicated_up_to),
                    "shipped_puts": p.shipped_puts,
                    "failed_batches": p.failed_batches,
                    "last_error": p.last_error.as_deref().unwrap_or_default(),
                    "conflicts": p.conflicts,
                    "remote_overwritten": p.overwritten,
                    "conflicts_dropped": p.conflicts_dropped,
                    "share_bytes_per_sec": p.share_bytes_per_sec,
                    "wire_bytes_per_sec": p.wire_bytes_per_sec,
                    "wire_bytes": p.wire_bytes,
                    "throttled": p.throttled,
                    "clock_ahead": p.clock_ahead,
                    "syncing": p.syncing,
                    "sync_records": p.sync_records,
                    "primary": p.primary.map(|n| n.to_string()),
                    "reported_ms_ago": p.reported_ms_ago,
                })
            })
            .collect();
    }
    v
}

/// One line: `link 3: users → dc-b/users (two-way) shipping, throttle 10MiB/s (sending
/// 9.8MiB/s), 5 conflicts (2 remote records overwritten)`.
fn link_line(s: &LinkReport, tables: &TableStates) -> String {
    let l = &s.link;
    let dropped = match tables.of(l.table) {
        SourceTable::Serving => String::new(),
        state => format!(" [table {state}]"),
    };
    let mut conflicts = format!("{} conflicts", s.conflicts);
    if s.overwritten > 0 || s.conflicts_dropped > 0 {
        conflicts.push_str(&format!(" ({} remote records overwritten", s.overwritten));
        if s.conflicts_dropped > 0 {
            conflicts.push_str(&format!(", {} journal entries dropped", s.conflicts_dropped));
        }
        conflicts.push(')');
    }
    format!(
        "link {}: {}{dropped} → {}/{} ({}) {}, throttle {} (sending {}), {conflicts}",
        l.id,
        l.table_name,
        l.remote_cluster,
        l.remote_table,
        l.mode,
        l.status,
        throttle(l.max_bytes_per_sec),
        rate(s.totals().wire_bytes_per_sec, false),
    )
}

pub(super) fn print_list(fmt: OutputFormat, links: &[LinkReport], tables: &TableStates) {
    match fmt {
        OutputFormat::Json => {
            let v: Vec<Value> = links.iter().map(|s| link_json(s, tables, false)).collect();
            println!("{}", json!({ "links": v }));
        }
        OutputFormat::Text => {
            if links.is_empty() {
                println!("(no links)");
                return;
            }
            println!(
                "{:>4}  {:<20} {:<28} {:<8} {:<18} {:>12} {:>12} {:>9} {:>10} {:>9} {:>9}",
                "ID",
                "TABLE",
                "TO CLUSTER/TABLE",
                "MODE",
                "STATUS",
                "THROTTLE",
                "SENDING",
                "BEHIND",
                "BYTES",
                "SECONDS",
                "CONFLICTS"
            );
            for s in links {
                let l = &s.link;
                let t = s.totals();
                let table = match tables.of(l.table) {
                    SourceTable::Serving => l.table_name.clone(),
                    state => format!("{} [{state}]", l.table_name),
                };
                let seconds = if t.unknown_lag_partitions > 0 {
                    "?".to_string()
                } else {
                    format!("{:.1}", t.max_seconds_behind)
                };
                let mut notes = Vec::new();
                if t.failing_partitions > 0 {
                    notes.push(format!("{} partitions failing", t.failing_partitions));
                }
                if t.unknown_lag_partitions > 0 {
                    notes.push(format!("lag unknown in {} partitions", t.unknown_lag_partitions));
                }
                let notes = if notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({}: see `tern dup status`)", notes.join(", "))
                };
                println!(
                    "{:>4}  {:<20} {:<28} {:<8} {:<18} {:>12} {:>12} {:>9} {:>10} {:>9} {:>9}{notes}",
                    l.id,
                    table,
                    format!("{}/{}", l.remote_cluster, l.remote_table),
                    l.mode,
                    l.status,
                    throttle(l.max_bytes_per_sec),
                    rate(t.wire_bytes_per_sec, false),
                    t.decrees_behind,
                    human_bytes(t.bytes_behind),
                    seconds,
                    s.conflicts,
                );
            }
        }
    }
}

/// `tern dup status`: the links from this cluster's tables with each partition's progress,
/// then the links of other clusters into them (what holds deletes back). `now_ms`: this
/// machine's wall clock, for the horizon's age.
pub(super) fn print_status(
    fmt: OutputFormat,
    links: &[LinkReport],
    incoming: &[IncomingLinkReport],
    tables: &TableStates,
    now_ms: u64,
) {
    match fmt {
        OutputFormat::Json => {
            let v: Vec<Value> = links.iter().map(|s| link_json(s, tables, true)).collect();
            let inc: Vec<Value> = incoming.iter().map(|i| incoming_json(i, now_ms)).collect();
            println!("{}", json!({ "links": v, "incoming": inc }));
        }
        OutputFormat::Text => {
            if links.is_empty() {
                println!("(no links)");
            }
            for s in links {
                let l = &s.link;
                println!("{}", link_line(s, tables));
                println!(
                    "  {:>4} {:<16} {:>10} {:>10} {:>8} {:>10} {:>8} {:>10} {:>12} {:>12} {:>7} {:>9} {:>6} {:>12}  LAST ERROR",
                    "PART",
                    "PRIMARY",
                    "CONFIRMED",
                    "COMMITTED",
                    "BEHIND",
                    "BYTES",
                    "SECONDS",
                    "SHIPPED",
                    "SHARE",
                    "SENDING",
                    "FAILED",
                    "CONFLICTS",
                    "AHEAD",
                    "REPORTED"
                );
                for p in &s.partitions {
                    let confirmed = if l.started(p.partition) { p.confirmed.to_string() } else { "-".into() };
                    let last = match (&p.last_error, &p.lag_unknown) {
                        (None, _) if p.syncing => format!("full sync: {} records copied", p.sync_records),
                        (Some(e), _) => e.clone(),
                        (None, Some(why)) => format!("lag unknown: {why}"),
                        (None, None) => String::new(),
                    };
                    let seconds = if p.lag_unknown.is_some() {
                        "?".to_string()
                    } else {
                        format!("{:.1}", p.seconds_behind)
                    };
                    println!(
                        "  {:>4} {:<16} {:>10} {:>10} {:>8} {:>10} {:>8} {:>10} {:>12} {:>12} {:>7} {:>9} {:>6} {:>12}  {last}",
                        p.partition,
                        node(p.primary),
                        confirmed,
                        p.committed,
                        p.decrees_behind,
                        human_bytes(p.bytes_behind),
                        seconds,
                        p.shipped_puts,
                        throttle(p.share_bytes_per_sec),
                        rate(p.wire_bytes_per_sec, p.throttled),
                        p.failed_batches,
                        p.conflicts,
                        p.clock_ahead,
                        age(p.reported_ms_ago),
                    );
                }
                if l.max_bytes_per_sec > 0 {
                    println!(
                        "  throttle: {} for the whole link, in wire bytes, split among the partitions' primaries \
                         by what each needs; sending {} in all (* wants more than its share)",
                        throttle(l.max_bytes_per_sec),
                        rate(s.totals().wire_bytes_per_sec, false)
                    );
                }
            }
            print_incoming(incoming, now_ms);
        }
    }
}

fn ago(t: Timetag, now_ms: u64) -> String {
    if t == Timetag::ZERO {
        "never".into()
    } else {
        format!("{} ago", human_ms(now_ms.saturating_sub(t.physical_ms())))
    }
}

fn incoming_json(i: &IncomingLinkReport, now_ms: u64) -> Value {
    let age_s =
        |t: Timetag| (t != Timetag::ZERO).then(|| now_ms.saturating_sub(t.physical_ms()) as f64 / 1000.0);
    json!({
        "table": i.table,
        "from_cluster": i.from_cluster,
        "source_table": i.source_table,
        "replicated_up_to": i.replicated_up_to.iter().map(|w| w.map(bound_json)).collect::<Vec<_>>(),
        "oldest_seconds_ago": i.oldest().and_then(age_s),
        "heard_ms_ago": i.heard_ms_ago,
        "purge_below": bound_json(i.purge_below),
        "purge_horizon_seconds_ago": age_s(i.purge_below),
    })
}

/// The links of other clusters into this one's tables: how far each has delivered, and the
/// tables' purge horizons (deletes newer than it are kept; a link behind holds it back).
fn print_incoming(incoming: &[IncomingLinkReport], now_ms: u64) {
    if incoming.is_empty() {
        return;
    }
    println!();
    println!("incoming links (other clusters' tables shipping into this one):");
    for i in incoming {
        let behind: Vec<u32> = i
            .replicated_up_to
            .iter()
            .enumerate()
            .filter(|(_, w)| w.is_none_or(|w| Some(w) == i.oldest()))
            .map(|(p, _)| p as u32)
            .collect();
        let horizon = if i.purge_below == Timetag::ZERO {
            "no purge horizon yet: no delete is dropped".to_string()
        } else {
            let age = human_ms(now_ms.saturating_sub(i.purge_below.physical_ms()));
            format!("deletes older than {age} may be dropped (the purge horizon)")
        };
        println!(
            "  {} ← cluster {} table {}: {} partitions, heard {}; everything they wrote up to {} is \
             applied here (slowest: partition {}); {horizon}",
            i.table,
            i.from_cluster,
            i.source_table,
            i.replicated_up_to.len(),
            age(i.heard_ms_ago),
            i.oldest().map_or_else(|| "-".into(), |t| ago(t, now_ms)),
            behind.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
        );
    }
}

pub(super) fn print_changed(fmt: OutputFormat, s: &LinkReport, tables: &TableStates) {
    match fmt {
        OutputFormat::Json => println!("{}", link_json(s, tables, false)),
        OutputFormat::Text => println!("{}", link_line(s, tables)),
    }
}

pub(super) fn print_pair(
    fmt: OutputFormat,
    pair: &TwoWayLinks,
    tables: &TableStates,
    remote_tables: &TableStates,
) {
    let (own, to) = (&pair.own_cluster, &pair.remote_cluster);
    match fmt {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "links": [
                    { "cluster": own, "link": link_json(&pair.first, tables, false) },
                    { "cluster": to, "link": link_json(&pair.second, remote_tables, false) },
                ]
            })
        ),
        OutputFormat::Text => {
            println!("in cluster {own}: {}", link_line(&pair.first, tables));
            println!("in cluster {to}: {}", link_line(&pair.second, remote_tables));
        }
    }
}

pub(super) fn print_conflicts(fmt: OutputFormat, id: u64, r: &LinkConflicts) {
    let shipped_lost = r.total.saturating_sub(r.overwritten);
    match fmt {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "link": id,
                "total": r.total,
                "shipped_lost": shipped_lost,
                "remote_overwritten": r.overwritten,
                "dropped": r.dropped,
                "recent": r.recent.iter().map(|c| json!({
                    "kind": c.kind.name(),
                    "winner": c.kind.winner(),
                    "hash_key": key(&c.hash_key),
                    "sort_key": key(&c.sort_key),
                    "incoming": timetag_json(c.incoming),
                    "stored": timetag_json(c.stored),
                })).collect::<Vec<_>>(),
            })
        ),
        OutputFormat::Text => {
            println!(
                "link {id}: {} conflicts in total: {shipped_lost} shipped writes lost to newer remote records, \
                 {} remote records overwritten by newer shipped writes; the last {} below (newest last)",
                r.total,
                r.overwritten,
                r.recent.len()
            );
            if r.dropped > 0 {
                println!(
                    "  {} journal entries were dropped (oldest first) while the meta server was unreachable; \
                     they are counted above",
                    r.dropped
                );
            }
            if r.recent.is_empty() {
                return;
            }
            println!(
                "  {:<18} {:<7} {:<24} {:<24} {:<34} REMOTE",
                "KIND", "WINNER", "HASH KEY", "SORT KEY", "SHIPPED"
            );
            for c in &r.recent {
                println!(
                    "  {:<18} {:<7} {:<24} {:<24} {:<34} {}",
                    c.kind,
                    c.kind.winner(),
                    key(&c.hash_key),
                    key(&c.sort_key),
                    c.incoming.to_string(),
                    c.stored
                );
            }
            println!(
                "  (shipped-lost: the remote record was newer and stays; remote-overwritten: the shipped write \
                 was newer and replaced a record written in the remote cluster. Timetags: \
                 physical_ms.logical@cluster; !del marks a delete)"
            );
        }
    }
}
