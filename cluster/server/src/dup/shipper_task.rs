//! The runtime of one duplication shipper: one (link, partition) of which this node is the
//! primary. It feeds the I/O-free `tern_duplication::Shipper` committed entries from the log,
//! sends the batches it cuts to the remote cluster's primaries (`Duplicate` RPC through the
//! client, which routes and retries), reports their fate back, and publishes progress for the
//! beacon. The shipper decides everything else (routing, batching, backoff, throttle, the
//! confirmed decree). The throttle runs at this partition's share of the link's limit, as the
//! meta leader last split it (`DupLink::partition_bytes_per_sec`), and a full sync or resync
//! sends through the same one.

use std::sync::Arc;
use std::time::Duration;

use tern_core::{ConflictKind, Decree, Error, Gpid, LinkStatus, ReplicaStatus};
use tern_duplication::{Shipper, ShipperOptions, StartPoint, Throttle, ThrottleReport, partition_share};
use tern_proto::convert::PbEnum;
use tern_proto::pb;
use tern_storage::log::contiguous_run;
use tokio::sync::mpsc;

use super::DupEnv;
use super::full_sync::{Pace, copy_partition};
use super::links::progress_of;
use super::wire::DuplicateRequestSize;

/// How often the task looks for newly committed entries when nothing else wakes it.
const IDLE: Duration = Duration::from_millis(20);
/// A partition with nothing to send says how far it is replicated this often (a batch without
/// puts to one remote partition): the receiving table holds its tombstones until it hears.
const HEARTBEAT: Duration = Duration::from_secs(2);

type BatchResult = (u64, tern_core::Result<pb::DuplicateResponse>);

/// Runs until the task is aborted (by `shipping::reconcile`) or this replica stops being
/// primary at `ballot`.
pub async fn run(env: DupEnv, link_id: u64, gpid: Gpid, ballot: u64) {
    let mut state = Progress::new(link_id, gpid, ballot);
    let Some((link, mut shipper, client)) = start(&env, link_id, gpid, &mut state).await else { return };
    let (mut done_tx, mut done_rx) = mpsc::unbounded_channel::<BatchResult>();
    let mut log_gap: Option<String> = None;
    let mut last_sent = tokio::time::Instant::now();
    loop {
        let Some(report) = env.registry.get(gpid).map(|h| h.status()) else {
            return;
        };
        if report.status != ReplicaStatus::Primary || report.ballot.0 != ballot {
            return;
        }
        if let Some(l) = env.links.get(link_id) {
            shipper.set_bytes_per_sec(share_of(&l, gpid));
        }
        // Read what is committed and not read yet.
        while let Some((from, n)) = shipper.next_read(report.committed) {
            let through = Decree(report.committed.0.min(from.0 + n as u64 - 1));
            match read_log(&env, gpid, from, through).await {
                Ok(entries) => {
                    log_gap = None;
                    if let Err(e) = shipper.on_entries(&entries) {
                        log_gap = Some(format!("cannot ship decrees {from}..={through}: {e}"));
                        break;
                    }
                }
                Err(e) => {
                    log_gap = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(gap) = log_gap.take() {
            // The log no longer holds what must be shipped (kept logs make this rare: a log
            // lost with its disk, say): copy the partition's records instead, then ship from
            // where the copy began. Last-writer-wins makes the overlap harmless.
            tracing::warn!(%gpid, link = link_id, "{gap}; copying the partition's records instead");
            match resync(&env, gpid, &link, &client, &mut state, shipper.throttle_mut()).await {
                Ok(fresh) => {
                    // The copy went through the old shipper's throttle; the new one goes on with it.
                    let old = std::mem::replace(&mut shipper, fresh);
                    shipper.set_throttle(old.into_throttle());
                    // Answers for the old shipper's batches must not reach the new one.
                    (done_tx, done_rx) = mpsc::unbounded_channel::<BatchResult>();
                }
                Err(e) => log_gap = Some(format!("{gap}; copying the records failed: {e}")),
            }
        }
        let now = env.clock.now().wall_ms;
        // What the batches say of this partition: how far it is replicated as the meta server
        // recorded it (with the confirmed decree: a later primary never says less).
        let header = header(&env, link_id, gpid, false);
        for b in shipper.poll(now) {
            let (client, tx, table) = (client.clone(), done_tx.clone(), link.remote_table.clone());
            last_sent = tokio::time::Instant::now();
            tokio::spawn(async move {
                if let Some(d) = injected_delay() {
                    tokio::time::sleep(d).await;
                }
                let r = client.duplicate(&table, b.remote_partition, &header, &b.puts).await;
                let _ = tx.send((b.id, r));
            });
        }
        if last_sent.elapsed() >= HEARTBEAT {
            last_sent = tokio::time::Instant::now();
            let (client, table) = (client.clone(), link.remote_table.clone());
            let to = gpid.partition.0 % shipper.remote_partitions();
            tokio::spawn(async move {
                if let Err(e) = client.duplicate(&table, to, &header, &[]).await {
                    tracing::debug!("a duplication heartbeat failed: {e}");
                }
            });
        }
        let applied = env.registry.get(gpid).map_or(tern_core::Timetag::ZERO, |h| h.applied_timetag());
        state.publish(&env, &mut shipper, report.committed, applied, log_gap.as_deref());
        let wake =
            shipper.next_wakeup_ms(now).map_or(IDLE, |at| Duration::from_millis(at.saturating_sub(now)));
        tokio::select! {
            Some((id, result)) = done_rx.recv() => {
                let now = env.clock.now().wall_ms;
                match result {
                    Ok(resp) => {
                        state.on_response(&env, resp);
                        shipper.on_acked(id, now);
                    }
                    Err(e) => {
                        tracing::debug!(%gpid, link = link_id, "duplication batch failed: {e}");
                        if e.code() == tern_core::ErrorCode::ClockAhead {
                            state.clock_ahead += 1;
                        }
                        shipper.on_failed(id, now, e.to_string());
                    }
                }
            }
            _ = tokio::time::sleep(wake.min(IDLE)) => {}
        }
    }
}

/// What a batch or heartbeat of partition `gpid` on link `link_id` says of the partition: how far
/// it is replicated, as the meta server recorded it with the confirmed decree (a shipper's own
/// figure runs ahead of that, and a later primary resumes from the recorded one: the receiving
/// table must never hear a figure a later primary could contradict).
fn header(env: &DupEnv, link_id: u64, gpid: Gpid, full_sync: bool) -> tern_client::ShipHeader {
    let link = env.links.get(link_id);
    let p = gpid.partition.0 as usize;
    let recorded = link.as_ref().and_then(|l| l.replicated_up_to.get(p).copied()).unwrap_or(0);
    tern_client::ShipHeader {
        from_cluster: env.cluster_id,
        source_table: gpid.table.0,
        source_partition: gpid.partition.0,
        source_partitions: link.as_ref().map_or(0, |l| l.started.len() as u32),
        replicated_up_to: tern_core::Timetag::from_u64(recorded),
        full_sync,
    }
}

/// This partition's share of the link's limit; 0 = unlimited.
fn share_of(link: &pb::DupLink, gpid: Gpid) -> u64 {
    let partitions = link.confirmed.len();
    partition_share(
        link.max_bytes_per_sec,
        &link.partition_bytes_per_sec,
        gpid.partition.0 as usize,
        partitions,
    )
}

/// A shipper of this server (its requests counted at their encoded size).
fn new_shipper(
    env: &DupEnv,
    partitions: u32,
    from: Decree,
    throttle: Throttle,
) -> tern_core::Result<Shipper> {
    let opts = ShipperOptions { bytes_per_sec: throttle.bytes_per_sec(), ..ShipperOptions::default() };
    let mut shipper =
        Shipper::new(env.cluster_id, partitions, from, opts)?.with_wire_size(Arc::new(DuplicateRequestSize));
    shipper.set_throttle(throttle);
    Ok(shipper)
}

/// `TERN_DUP_INJECTED_DELAY_MS`: a delay before every batch is sent, imitating the distance to
/// another datacenter on a single machine (the duplication lag benchmark sets it; nothing else
/// should).
fn injected_delay() -> Option<Duration> {
    static DELAY: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        let ms = std::env::var("TERN_DUP_INJECTED_DELAY_MS").ok()?.parse::<u64>().ok()?;
        tracing::warn!("TERN_DUP_INJECTED_DELAY_MS: every duplication batch waits {ms} ms before it is sent");
        Some(Duration::from_millis(ms))
    })
}

/// Decides where the shipper starts (`DupRules::start_point`: after the confirmed decree the
/// meta server holds, after a full sync's copy, or, a partition that has not started, after the
/// committed decree now) and reports it at once: the start point does not depend on the other
/// cluster, so the link counts as started here even while that cluster is unreachable, and
/// what is committed meanwhile ships once it is back (simulator seed 702592: a partition whose
/// primaries kept failing before they could reach the other cluster never started). Then
/// connects to the remote table and builds the shipper, retrying until it works; errors show
/// in the progress.
async fn start(
    env: &DupEnv,
    link_id: u64,
    gpid: Gpid,
    state: &mut Progress,
) -> Option<(pb::DupLink, Shipper, Arc<tern_client::TernClient>)> {
    let link = env.links.get(link_id)?;
    let replica = env.registry.get(gpid)?;
    // Read before the committed decree: every write at or below this timetag is at or below that
    // decree (applied after it committed).
    let applied = replica.applied_timetag();
    let committed = replica.status().committed;
    let syncing = LinkStatus::from_pb(link.status, "status") == Ok(LinkStatus::SyncingCheckpoint);
    let decided = env.links.rules().start_point(progress_of(&link, gpid), syncing, committed);
    // What the link never ships is replicated as far as it is concerned: a link starting at the
    // committed decree (not resumed from an older confirmed one), or after a copy of the records
    // (which begins later), is replicated up to `applied` from the start; without this an idle
    // partition would show the age of its last write before the link as lag.
    state.floor = match decided {
        StartPoint::After { decree, .. } if decree >= committed => applied,
        StartPoint::CopyFirst => applied,
        StartPoint::After { .. } => tern_core::Timetag::ZERO,
    };
    if let StartPoint::After { decree, .. } = decided {
        state.start = Some(decree);
        state.start_failed(env, "");
    }
    let mut delay = Duration::from_millis(200);
    // Every attempt's copy sends through this one throttle, which the shipper then takes over.
    let mut throttle = Throttle::new(share_of(&link, gpid));
    loop {
        let link = env.links.get(link_id)?;
        let attempt = async {
            let client = env.shipping.remote(&link)?;
            let route = client.route(&link.remote_table, true).await?;
            let mut sync_records = 0;
            let confirmed = match decided {
                StartPoint::After { decree, .. } => decree,
                StartPoint::CopyFirst => {
                    let share = || env.links.get(link_id).map_or(0, |l| share_of(&l, gpid));
                    let mut pace = Pace { throttle: &mut throttle, share: &share };
                    let publish = |copied, error, t| state.syncing(env, copied, error, t);
                    let remote = (link.remote_table.as_str(), route.partitions);
                    let header = header(env, link_id, gpid, true);
                    let (from, copied) =
                        copy_partition(env, gpid, &client, remote, &header, &mut pace, publish).await?;
                    sync_records = copied;
                    from
                }
            };
            let mut shipper = new_shipper(env, route.partitions, confirmed, throttle.clone())?;
            if let StartPoint::After { resumed: true, .. } = decided {
                shipper.resume_replicated_up_to(tern_core::Timetag::from_u64(
                    link.replicated_up_to.get(gpid.partition.0 as usize).copied().unwrap_or(0),
                ));
            }
            shipper.resume_replicated_up_to(state.floor);
            Ok::<_, Error>((shipper, client, sync_records))
        };
        match attempt.await {
            Ok((shipper, client, sync_records)) => {
                state.sync_records = sync_records;
                tracing::info!(%gpid, link = link_id, "shipping to {} from decree {}", link.remote_cluster, shipper.confirmed().next());
                return Some((link, shipper, client));
            }
            Err(e) => {
                tracing::warn!(%gpid, link = link_id, "cannot start shipping to {}: {e}", link.remote_cluster);
                state.start_failed(env, &e.to_string());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A shipper that starts after a fresh copy of the partition's records (see `full_sync`), sent
/// through `throttle` (the caller hands it to the new shipper).
async fn resync(
    env: &DupEnv,
    gpid: Gpid,
    link: &pb::DupLink,
    client: &Arc<tern_client::TernClient>,
    state: &mut Progress,
    throttle: &mut Throttle,
) -> tern_core::Result<Shipper> {
    let partitions = client.route(&link.remote_table, false).await?.partitions;
    // Read before the copy begins: everything at or below it is copied (see `start`).
    let floor = env.registry.get(gpid).map_or(tern_core::Timetag::ZERO, |h| h.applied_timetag());
    let link_id = link.id;
    let share = || env.links.get(link_id).map_or(0, |l| share_of(&l, gpid));
    let mut pace = Pace { throttle, share: &share };
    let publish = |copied, error, t| state.syncing(env, copied, error, t);
    let header = header(env, link.id, gpid, true);
    let (from, copied) =
        copy_partition(env, gpid, client, (&link.remote_table, partitions), &header, &mut pace, publish)
            .await?;
    state.sync_records = copied;
    let mut shipper = new_shipper(env, partitions, from, Throttle::new(0))?;
    shipper.resume_replicated_up_to(floor);
    Ok(shipper)
}

/// Committed entries `from..=through` from the log; an error if the log no longer holds them.
async fn read_log(
    env: &DupEnv,
    gpid: Gpid,
    from: Decree,
    through: Decree,
) -> tern_core::Result<Vec<tern_storage::LogEntry>> {
    let n = (through.0 - from.0 + 1) as usize;
    let (_, entries) = tokio::task::block_in_place(|| env.logs.read(gpid, from, n))?;
    contiguous_run(entries, from, through).ok_or_else(|| {
        Error::Unavailable(format!(
            "the log of {gpid} no longer holds decrees {from}..={through}: this partition needs a full sync"
        ))
    })
}

/// What this shipper reports to the meta server.
struct Progress {
    link: u64,
    gpid: Gpid,
    ballot: u64,
    /// Conflicts of both kinds since this primary took over, and of them the remote records
    /// that shipped writes replaced.
    conflicts: u64,
    overwritten: u64,
    /// Batches the remote refused because their timetags were ahead of its clock by more than
    /// its maximum clock offset (`CLOCK_AHEAD`), since this primary took over.
    clock_ahead: u64,
    /// Records this primary's full sync copied (0 without one).
    sync_records: u64,
    /// Where the shipper starts, once decided (not while a full sync copies).
    start: Option<Decree>,
    /// The replicated-up-to the link has from its start (see `start`).
    floor: tern_core::Timetag,
}

/// The throttle's side of a progress report.
fn with_throttle(p: pb::DupProgress, t: ThrottleReport) -> pb::DupProgress {
    pb::DupProgress {
        wire_bytes: t.sent_bytes,
        wire_bytes_per_sec: t.measured_bytes_per_sec,
        throttle_bytes_per_sec: t.bytes_per_sec,
        throttled: t.saturated,
        ..p
    }
}

impl Progress {
    fn new(link: u64, gpid: Gpid, ballot: u64) -> Progress {
        Progress {
            link,
            gpid,
            ballot,
            conflicts: 0,
            overwritten: 0,
            clock_ahead: 0,
            sync_records: 0,
            start: None,
            floor: tern_core::Timetag::ZERO,
        }
    }

    /// Counts the batch's conflicts and hands them to the journal (`Shipping::journal`, which
    /// bounds what waits for the meta server).
    fn on_response(&mut self, env: &DupEnv, r: pb::DuplicateResponse) {
        self.conflicts += (r.conflicts.len() + r.overwritten.len()) as u64;
        self.overwritten += r.overwritten.len() as u64;
        let kind = |k: ConflictKind| move |c: pb::DupConflict| pb::DupConflict { kind: k.to_pb(), ..c };
        let lost = r.conflicts.into_iter().map(kind(ConflictKind::ShippedLost));
        let overwritten = r.overwritten.into_iter().map(kind(ConflictKind::RemoteOverwritten));
        env.shipping.journal(self.link, self.gpid.partition.0, lost.chain(overwritten));
    }

    fn syncing(&self, env: &DupEnv, copied: u64, error: Option<String>, throttle: ThrottleReport) {
        let p = pb::DupProgress {
            link: self.link,
            partition: self.gpid.partition.0,
            ballot: self.ballot,
            syncing: true,
            sync_records: copied,
            last_error: error.unwrap_or_default(),
            ..Default::default()
        };
        env.shipping.publish(with_throttle(p, throttle), env.clock.now().wall_ms);
    }

    /// Before the shipper runs: its start point, if decided (a partition that still copies its
    /// records has none yet: it reports as syncing, which confirms nothing), and the last error.
    fn start_failed(&self, env: &DupEnv, error: &str) {
        let replicated_up_to = env
            .links
            .get(self.link)
            .map_or(0, |l| l.replicated_up_to.get(self.gpid.partition.0 as usize).copied().unwrap_or(0))
            .max(self.floor.as_u64());
        env.shipping.publish(
            pb::DupProgress {
                link: self.link,
                partition: self.gpid.partition.0,
                ballot: self.ballot,
                confirmed: self.start.map_or(0, |d| d.0),
                syncing: self.start.is_none(),
                last_error: error.to_string(),
                replicated_up_to,
                ..Default::default()
            },
            env.clock.now().wall_ms,
        );
    }

    fn publish(
        &mut self,
        env: &DupEnv,
        s: &mut Shipper,
        committed: Decree,
        applied: tern_core::Timetag,
        log_gap: Option<&str>,
    ) {
        let st = s.stats();
        let now = env.clock.now().wall_ms;
        let throttle = s.throttle_report(now);
        let last_error = log_gap.map(str::to_string).or(st.last_error).unwrap_or_default();
        let p = pb::DupProgress {
            link: self.link,
            partition: self.gpid.partition.0,
            ballot: self.ballot,
            confirmed: st.confirmed.0,
            committed: committed.0,
            bytes_behind: st.buffered_bytes,
            oldest_unshipped_ms: st.oldest_unacked_physical_ms.unwrap_or(0),
            shipped_puts: st.shipped_puts,
            failed_batches: st.failed_batches,
            last_error,
            conflicts: self.conflicts,
            overwritten: self.overwritten,
            clock_ahead: self.clock_ahead,
            syncing: false,
            sync_records: self.sync_records,
            replicated_up_to: st.replicated_up_to.as_u64(),
            committed_timetag: applied.as_u64(),
            running: true,
            ..Default::default()
        };
        env.shipping.publish(with_throttle(p, throttle), now);
    }
}
