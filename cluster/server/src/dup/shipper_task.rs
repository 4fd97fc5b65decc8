//! The runtime of one duplication shipper: one (link, partition) of which this node is the
//! primary. It feeds the I/O-free `tern_duplication::Shipper` committed entries from the log,
//! sends the batches it cuts to the remote cluster's primaries (`Duplicate` RPC through the
//! client, which routes and retries), reports their fate back, and publishes progress for the
//! beacon. The shipper decides everything else (routing, batching, backoff, throttle, the
//! confirmed decree).

use std::sync::Arc;
use std::time::Duration;

use tern_core::{Decree, Error, Gpid, LinkStatus, ReplicaStatus};
use tern_duplication::{Shipper, ShipperOptions, StartPoint};
use tern_proto::convert::PbEnum;
use tern_proto::pb;
use tern_storage::log::contiguous_run;
use tokio::sync::mpsc;

use super::DupEnv;
use super::links::progress_of;

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
            shipper.set_bytes_per_sec(l.max_bytes_per_sec);
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
            match resync(&env, gpid, &link, &client, &mut state).await {
                Ok(fresh) => {
                    shipper = fresh;
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
        state.publish(&env, &shipper, report.committed, applied, log_gap.as_deref());
        let wake =
            shipper.next_wakeup_ms(now).map_or(IDLE, |at| Duration::from_millis(at.saturating_sub(now)));
        tokio::select! {
            Some((id, result)) = done_rx.recv() => {
                let now = env.clock.now().wall_ms;
                match result {
                    Ok(resp) => {
                        state.on_response(&resp);
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
    let committed = env.registry.get(gpid)?.status().committed;
    let syncing = LinkStatus::from_pb(link.status, "status") == Ok(LinkStatus::SyncingCheckpoint);
    let decided = env.links.rules().start_point(progress_of(&link, gpid), syncing, committed);
    if let StartPoint::After { decree, .. } = decided {
        state.start = Some(decree);
        state.start_failed(env, "");
    }
    let mut delay = Duration::from_millis(200);
    loop {
        let link = env.links.get(link_id)?;
        let attempt = async {
            let client = env.shipping.remote(&link)?;
            let route = client.route(&link.remote_table, true).await?;
            let mut sync_records = 0;
            let confirmed = match decided {
                StartPoint::After { decree, .. } => decree,
                StartPoint::CopyFirst => {
                    let publish = |copied, error| state.syncing(env, copied, error);
                    let (from, copied) = super::full_sync::copy_partition(
                        env,
                        gpid,
                        &client,
                        &link.remote_table,
                        route.partitions,
                        &header(env, link_id, gpid, true),
                        publish,
                    )
                    .await?;
                    sync_records = copied;
                    from
                }
            };
            let opts = ShipperOptions { bytes_per_sec: link.max_bytes_per_sec, ..ShipperOptions::default() };
            let mut shipper = Shipper::new(env.cluster_id, route.partitions, confirmed, opts)?;
            if let StartPoint::After { resumed: true, .. } = decided {
                shipper.resume_replicated_up_to(tern_core::Timetag::from_u64(
                    link.replicated_up_to.get(gpid.partition.0 as usize).copied().unwrap_or(0),
                ));
            }
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

/// A shipper that starts after a fresh copy of the partition's records (see `full_sync`).
async fn resync(
    env: &DupEnv,
    gpid: Gpid,
    link: &pb::DupLink,
    client: &Arc<tern_client::TernClient>,
    state: &mut Progress,
) -> tern_core::Result<Shipper> {
    let partitions = client.route(&link.remote_table, false).await?.partitions;
    let publish = |copied, error| state.syncing(env, copied, error);
    let (from, copied) = super::full_sync::copy_partition(
        env,
        gpid,
        client,
        &link.remote_table,
        partitions,
        &header(env, link.id, gpid, true),
        publish,
    )
    .await?;
    state.sync_records = copied;
    let opts = ShipperOptions { bytes_per_sec: link.max_bytes_per_sec, ..ShipperOptions::default() };
    Shipper::new(env.cluster_id, partitions, from, opts)
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
    conflicts: u64,
    /// Batches the remote refused because their timetags were ahead of its clock by more than
    /// its maximum clock offset (`CLOCK_AHEAD`), since this primary took over.
    clock_ahead: u64,
    new_conflicts: Vec<pb::DupConflict>,
    /// Records this primary's full sync copied (0 without one).
    sync_records: u64,
    /// Where the shipper starts, once decided (not while a full sync copies).
    start: Option<Decree>,
}

/// Most conflicts one report carries; the meta server keeps a bounded journal anyway.
const MAX_REPORTED_CONFLICTS: usize = 100;

impl Progress {
    fn new(link: u64, gpid: Gpid, ballot: u64) -> Progress {
        Progress {
            link,
            gpid,
            ballot,
            conflicts: 0,
            clock_ahead: 0,
            new_conflicts: Vec::new(),
            sync_records: 0,
            start: None,
        }
    }

    fn on_response(&mut self, r: &pb::DuplicateResponse) {
        self.conflicts += r.conflicts.len() as u64;
        let room = MAX_REPORTED_CONFLICTS.saturating_sub(self.new_conflicts.len());
        self.new_conflicts.extend(r.conflicts.iter().take(room).cloned());
    }

    fn syncing(&self, env: &DupEnv, copied: u64, error: Option<String>) {
        env.shipping.publish(
            pb::DupProgress {
                link: self.link,
                partition: self.gpid.partition.0,
                ballot: self.ballot,
                syncing: true,
                sync_records: copied,
                last_error: error.unwrap_or_default(),
                ..Default::default()
            },
            env.clock.now().wall_ms,
        );
    }

    /// Before the shipper runs: its start point, if decided (a partition that still copies its
    /// records has none yet: it reports as syncing, which confirms nothing), and the last error.
    fn start_failed(&self, env: &DupEnv, error: &str) {
        let replicated_up_to = env
            .links
            .get(self.link)
            .map_or(0, |l| l.replicated_up_to.get(self.gpid.partition.0 as usize).copied().unwrap_or(0));
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
        s: &Shipper,
        committed: Decree,
        applied: tern_core::Timetag,
        log_gap: Option<&str>,
    ) {
        let st = s.stats();
        let last_error = log_gap.map(str::to_string).or(st.last_error).unwrap_or_default();
        env.shipping.publish(
            pb::DupProgress {
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
                recent_conflicts: std::mem::take(&mut self.new_conflicts),
                clock_ahead: self.clock_ahead,
                syncing: false,
                sync_records: self.sync_records,
                replicated_up_to: st.replicated_up_to.as_u64(),
                committed_timetag: applied.as_u64(),
                running: true,
            },
            env.clock.now().wall_ms,
        );
    }
}
