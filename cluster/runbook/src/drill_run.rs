//! Carries out a drill on a scratch table: create it in both clusters with a two-way link
//! (`from` active, `to` standby at epoch 1), run a generated load recording every acknowledged
//! write, switch over `from`→`to` and back with [`run_switchover`], read every acknowledged key
//! back, pause the link `from`→`to` and fail over to `to` with [`run_failover`] (forced: the
//! old side is reachable; fenced by the DR lease as any failover), then check what was lost
//! against the loss report, and drop the scratch tables (also after a failure or an
//! interruption). Only the scratch table is touched: roles, links, promises and leases are all
//! per table.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tern_client::admin::{AdminClient, NewLink};
use tern_client::{ClientOptions, TernClient};
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{DrRole, Error, LinkMode, LinkStatus, Result, TableStatus, WriteOp, partition_of};

use crate::drill::{
    Ack, BACKUP_SKIPPED, DrillReport, DrillStep, SwitchoverFigures, check_loss, check_scratch, latest,
    rto_ms, scratch_name, unavailability_ms, zero_loss,
};
use crate::observe::{ClusterAddr, wall_ms};
use crate::{FailoverOptions, SwitchoverOptions, run_failover, run_switchover};

/// The sort key of every drill write.
const SORT_KEY: &[u8] = b"drill";

/// How a drill runs.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// The cluster whose copy starts active, and the one that takes over.
    pub from: String,
    pub to: String,
    /// The scratch table; `None`: `_drill_<wall ms>`.
    pub table: Option<String>,
    /// Write through this proxy instead of the clusters' own clients.
    pub proxy: Option<String>,
    pub writers: u32,
    /// Each writer overwrites its own keys, this many, during the switchovers.
    pub keys_per_writer: u32,
    pub partitions: u32,
    pub replicas: u32,
    /// Acknowledged writes to wait for before and after each step.
    pub acks_per_phase: u64,
    /// For each wait of the drill (the table to come up, writes to come back).
    pub wait_timeout: Duration,
    /// One write's deadline, retries included.
    pub write_timeout: Duration,
    pub switchover: SwitchoverOptions,
    /// `force` is set by the drill; `unsafe_without_lease` and `voters` are the operator's.
    pub failover: FailoverOptions,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            from: String::new(),
            to: String::new(),
            table: None,
            proxy: None,
            writers: 4,
            keys_per_writer: 200,
            partitions: 4,
            replicas: 3,
            acks_per_phase: 200,
            wait_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(2),
            switchover: SwitchoverOptions::default(),
            failover: FailoverOptions::default(),
        }
    }
}

/// The load generator: writers spawned on the runtime, each writing its own keys with its
/// sequence number as the value, moving to the next target when a write is refused.
struct Load {
    stop: Arc<AtomicBool>,
    /// 0: overwrite a fixed key space; 1: a fresh key per write (the failover phase, so a write
    /// acknowledged after the failover cannot hide an earlier one that was lost).
    phase: Arc<AtomicU8>,
    acks: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<AtomicU64>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(targets: &[Arc<TernClient>], table: &str, opts: &DrillOptions, started: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU8::new(0));
        let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let errors = Arc::new(AtomicU64::new(0));
        let handles = (0..opts.writers)
            .map(|w| {
                let (stop, phase, acks, errors) = (stop.clone(), phase.clone(), acks.clone(), errors.clone());
                let (targets, table, keys) =
                    (targets.to_vec(), table.to_string(), opts.keys_per_writer.max(1));
                tokio::task::spawn(async move {
                    let (mut seq, mut target) = (0u64, 0usize);
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let hash_key = match phase.load(Ordering::Relaxed) {
                            0 => format!("w{w}-k{:05}", seq % u64::from(keys)),
                            _ => format!("w{w}-f{seq:08}"),
                        };
                        let op = WriteOp::Set {
                            hash_key: hash_key.clone().into_bytes(),
                            sort_key: SORT_KEY.to_vec(),
                            value: seq.to_string().into_bytes(),
                            ttl_secs: 0,
                        };
                        let sent_ms = ms(started);
                        match targets[target].write(&table, op).await {
                            Ok(_) => {
                                let ack = Ack {
                                    hash_key,
                                    seq,
                                    sent_ms,
                                    acked_ms: ms(started),
                                    acked_wall_ms: wall_ms(),
                                    target,
                                };
                                acks.lock().unwrap_or_else(|p| p.into_inner()).push(ack);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                target = (target + 1) % targets.len();
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Load { stop, phase, acks, errors, handles }
    }

    fn view(&self) -> LoadView {
        LoadView { acks: self.acks.clone(), errors: self.errors.clone() }
    }

    fn acks(&self) -> Vec<Ack> {
        self.view().acks()
    }

    fn count(&self, f: impl Fn(&Ack) -> bool) -> u64 {
        self.view().count(f)
    }

    async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.await;
        }
    }
}

/// What the writers acknowledged so far, shared with them.
#[derive(Clone)]
struct LoadView {
    acks: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<AtomicU64>,
}

impl LoadView {
    fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn count(&self, f: impl Fn(&Ack) -> bool) -> u64 {
        self.acks.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|a| f(a)).count() as u64
    }

    /// Waits until `n` acknowledged writes match `f`, for at most `timeout`.
    async fn wait(&self, what: &str, n: u64, timeout: Duration, f: impl Fn(&Ack) -> bool) -> Result<()> {
        let t0 = Instant::now();
        loop {
            let got = self.count(&f);
            if got >= n {
                return Ok(());
            }
            if t0.elapsed() > timeout {
                return Err(Error::Timeout(format!(
                    "{what}: {got} of {n} acknowledged writes in {timeout:?} ({} write errors)",
                    self.errors.load(Ordering::Relaxed)
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

struct Drill<'a, S: FnMut(&str)> {
    clusters: &'a [ClusterAddr],
    opts: &'a DrillOptions,
    table: String,
    started: Instant,
    report: DrillReport,
    load: Option<Load>,
    created: Vec<String>,
    /// Shared with the executors' own lines while a step runs, so progress shows as it happens.
    say: RefCell<S>,
    steps_done: RefCell<Vec<DrillStep>>,
}

/// Runs a drill from `opts.from` to `opts.to`. `cancel` resolving interrupts it (the scratch
/// tables are still dropped). `say` hears each step as it starts and ends. The report says what
/// passed; `Err` only when the drill could not start (bad arguments, the table refused).
pub async fn run_drill(
    clusters: &[ClusterAddr],
    opts: &DrillOptions,
    cancel: impl Future<Output = ()>,
    say: impl FnMut(&str),
) -> Result<DrillReport> {
    let find = |name: &str| {
        clusters.iter().find(|c| c.name == name).ok_or_else(|| {
            let known: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
            Error::InvalidArgument(format!("{name} is not one of the clusters ({})", known.join(", ")))
        })
    };
    let (a, b) = (find(&opts.from)?, find(&opts.to)?);
    if a.name == b.name {
        return Err(Error::InvalidArgument(format!("--from and --to both name {}", a.name)));
    }
    let started_wall_ms = wall_ms();
    let table = opts.table.clone().unwrap_or_else(|| scratch_name(started_wall_ms));
    let mut existing = Vec::new();
    for c in [a, b] {
        let tables =
            admin(c)?.list_tables().await.map_err(|e| e.context(format!("list the tables of {}", c.name)))?;
        existing.push((c.name.clone(), tables.into_iter().map(|t| t.name).collect::<Vec<_>>()));
    }
    check_scratch(&table, existing.iter().map(|(c, t)| (c.as_str(), t.as_slice())))
        .map_err(Error::InvalidArgument)?;
    let mut d = Drill {
        clusters,
        opts,
        table: table.clone(),
        started: Instant::now(),
        report: DrillReport {
            table,
            from: opts.from.clone(),
            to: opts.to.clone(),
            started_wall_ms,
            load_via: opts.proxy.as_ref().map_or("clusters".to_string(), |p| format!("proxy {p}")),
            writers: opts.writers,
            backup_restore: BACKUP_SKIPPED.to_string(),
            ..Default::default()
        },
        load: None,
        created: Vec::new(),
        say: RefCell::new(say),
        steps_done: RefCell::default(),
    };
    let outcome = tokio::select! {
        r = d.steps() => r,
        () = cancel => Err(Error::InvalidArgument("interrupted".to_string())),
    };
    if let Err(e) = &outcome {
        d.say(&format!("drill stopped: {e}"));
        d.report.error = Some(e.to_string());
    }
    d.cleanup().await;
    d.report.steps = d.steps_done.take();
    d.report.took_ms = ms(d.started);
    d.report.judge();
    Ok(d.report)
}

fn admin(c: &ClusterAddr) -> Result<AdminClient> {
    Ok(AdminClient::connect(c.metas.clone())?.with_deadline(Duration::from_secs(5)))
}

impl<S: FnMut(&str)> Drill<'_, S> {
    fn cluster(&self, name: &str) -> ClusterAddr {
        // Both names were checked in run_drill.
        self.clusters.iter().find(|c| c.name == name).unwrap_or(&self.clusters[0]).clone()
    }

    fn client(&self, metas: Vec<String>) -> Result<Arc<TernClient>> {
        Ok(Arc::new(TernClient::new(ClientOptions { meta: metas, timeout: self.opts.write_timeout })?))
    }

    fn view(&self) -> Result<LoadView> {
        self.load.as_ref().map(Load::view).ok_or_else(|| Error::invariant("no load running"))
    }

    /// Runs `f` as a step: printed when it starts, with its duration when it ends.
    fn say(&self, line: &str) {
        (self.say.borrow_mut())(line);
    }

    async fn step<T>(&self, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
        self.say(&format!("[{:>6.1}s] {what}", self.started.elapsed().as_secs_f64()));
        let t0 = Instant::now();
        let r = f.await;
        let took_ms = t0.elapsed().as_millis() as u64;
        let outcome = match &r {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        self.say(&format!("          {outcome} in {took_ms} ms"));
        self.steps_done.borrow_mut().push(DrillStep { what: what.to_string(), took_ms, outcome });
        r
    }

    async fn steps(&mut self) -> Result<()> {
        let (from, to, table) = (self.opts.from.clone(), self.opts.to.clone(), self.table.clone());
        let (a, b) = (self.cluster(&from), self.cluster(&to));
        let (opts, clusters) = (self.opts, self.clusters);
        let (parts, reps, wait) = (opts.partitions, opts.replicas, opts.wait_timeout);

        // Setup, as `tern up` does for its demo table.
        let what = format!("create scratch table {table} ({parts} partitions) in {from} and {to}");
        self.created = vec![from.clone(), to.clone()];
        self.step(&what, async {
            for c in [&a, &b] {
                admin(c)?.create_table(&table, parts, reps).await?;
            }
            admin(&b)?.set_table_role(&table, DrRole::Standby, 1, Some(0)).await?;
            let link = NewLink {
                table: table.clone(),
                remote_cluster: to.clone(),
                remote_metas: b.metas.clone(),
                remote_table: None,
                full_sync: false,
                max_bytes_per_sec: 0,
                mode: LinkMode::TwoWay,
            };
            admin(&a)?.add_two_way(&link).await?;
            Ok(())
        })
        .await?;
        let what = format!("wait for the two-way link {from}<->{to} to ship from every partition");
        let deadline = wait;
        self.step(&what, async {
            let t0 = Instant::now();
            loop {
                let mut ok = true;
                for c in [&a, &b] {
                    let links = admin(c)?.links(Some(&table)).await?;
                    ok &= !links.is_empty() && links.iter().all(|l| (0..parts).all(|p| l.link.started(p)));
                }
                if ok {
                    return Ok(());
                }
                if t0.elapsed() > deadline {
                    return Err(Error::Timeout(format!(
                        "the links of {table} did not start in {deadline:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await?;

        // The load.
        let targets = match &opts.proxy {
            Some(p) => vec![self.client(vec![p.clone()])?],
            None => vec![self.client(a.metas.clone())?, self.client(b.metas.clone())?],
        };
        self.load = Some(Load::start(&targets, &table, opts, self.started));
        let view = self.view()?;
        let n = opts.acks_per_phase;
        let what = format!("start the load: {} writers, {n} writes acknowledged", opts.writers);
        self.step(&what, view.wait("the load", n, wait, |_| true)).await?;

        // Switchover and back.
        for (src, dst) in [(&from, &to), (&to, &from)] {
            let start = ms(self.started);
            let what = format!("switchover {src} -> {dst}");
            let sw = opts.switchover;
            let r = self
                .step(&what, run_switchover(clusters, &table, dst, sw, |l| self.say(&format!("  {l}"))))
                .await?;
            let end = ms(self.started);
            let what = format!("writes acknowledged again after the switchover to {dst}");
            self.step(&what, view.wait(&what, n, wait, |x| x.sent_ms >= end)).await?;
            let acks = view.acks();
            let fig = SwitchoverFigures {
                from: src.clone(),
                to: dst.clone(),
                write_unavailable_ms: unavailability_ms(&acks, start, end),
                stop_to_promote_ms: r.write_unavailable_ms,
                took_ms: end - start,
                rolled_back: r.rolled_back,
            };
            self.say(&format!(
                "          writers saw writes unavailable for {} ms (the executor: {} ms from stop to promotion)",
                fig.write_unavailable_ms.map_or("?".into(), |v| v.to_string()),
                fig.stop_to_promote_ms.map_or("?".into(), |v| v.to_string())
            ));
            self.report.switchovers.push(fig);
            if r.rolled_back {
                return Err(Error::Timeout(format!(
                    "the switchover to {dst} was rolled back: {}",
                    r.summary
                )));
            }
        }

        // Zero loss: every key's newest acknowledged value is in the active copy.
        let snapshot = view.acks();
        let want = latest(&snapshot);
        let reader = self.client(a.metas.clone())?;
        let what = format!("read every acknowledged key back from {from} ({} keys)", want.len());
        let found = self.step(&what, read_back(&reader, &table, want.keys().cloned().collect())).await?;
        let z = zero_loss(&from, &want, &found);
        self.say(&format!("          {} keys checked, {} lost", z.keys_checked, z.keys_lost));
        self.report.zero_loss = Some(z);

        // A simulated loss of the active side.
        if let Some(load) = &self.load {
            load.phase.store(1, Ordering::Relaxed);
        }
        let fresh = |x: &Ack| x.hash_key.contains("-f");
        self.step("fresh keys from now on", view.wait("fresh keys", n, wait, fresh)).await?;
        let what =
            format!("simulate the loss of {from}: pause the link {from} -> {to} (writes stay unshipped)");
        self.step(&what, async {
            let admin_a = admin(&a)?;
            let links = admin_a.links(Some(&table)).await?;
            let link = links
                .iter()
                .find(|l| l.link.remote_cluster == to && l.link.status != LinkStatus::Removed)
                .ok_or_else(|| Error::invariant(format!("no link from {from} to {to} for {table}")))?;
            admin_a.pause_link(link.link.id).await?;
            Ok(())
        })
        .await?;
        let paused = ms(self.started);
        let what = format!("writes acknowledged by {from} that {to} will not get");
        self.step(&what, view.wait(&what, n, wait, |x| x.sent_ms >= paused)).await?;
        let loss_ms = ms(self.started);
        let fo = FailoverOptions { force: true, ..opts.failover.clone() };
        let r = self
            .step(
                &format!("fail over to {to} (forced: {from} is reachable; fenced by its DR lease)"),
                run_failover(clusters, &table, &to, &fo, |l| self.say(&format!("  {l}"))),
            )
            .await?;
        let promoted = ms(self.started);
        self.report.failover_promoted_after_ms = r.promoted_after_ms;
        self.report.loss_report = r.loss.clone();
        let proxied = opts.proxy.is_some();
        // Through a proxy the target is not known: a write sent after the promotion and fence
        // can only be taken by the promoted side.
        let on_new = move |x: &Ack| if proxied { x.sent_ms >= promoted } else { x.target == 1 };
        let what = format!("first write acknowledged by {to}");
        self.step(&what, view.wait(&what, 1, wait, |x| x.sent_ms >= loss_ms && on_new(x))).await?;
        let load = self.load.as_mut().ok_or_else(|| Error::invariant("no load running"))?;
        load.stop().await;
        let acks = load.acks();
        self.report.failover_rto_ms = rto_ms(&acks, loss_ms, on_new);
        self.say(&format!(
            "          RTO {} ms (from the loss to the first write {to} acknowledged)",
            self.report.failover_rto_ms.map_or("?".into(), |v| v.to_string())
        ));

        // What was lost, against the loss report.
        let fresh_acks: Vec<&Ack> = acks.iter().filter(|x| fresh(x)).collect();
        let keys: Vec<String> = fresh_acks.iter().map(|x| x.hash_key.clone()).collect();
        let reader = self.client(b.metas.clone())?;
        let what = format!("read the writes of the loss phase back from {to} ({} keys)", keys.len());
        let found = self.step(&what, read_back(&reader, &table, keys)).await?;
        let found: BTreeMap<String, bool> = found.into_iter().map(|(k, v)| (k, v.is_some())).collect();
        let c = check_loss(&fresh_acks, &found, r.loss.as_ref(), |k| partition_of(k.as_bytes(), parts).0);
        self.say(&format!(
            "          {} acknowledged writes lost over {} ms; the loss report says {} decrees; {} outside it",
            c.writes_lost,
            c.lost_span_ms,
            c.reported_decrees.map_or("unknown".into(), |d| d.to_string()),
            c.outside_report
        ));
        self.report.loss = Some(c);
        self.say(&format!("backup restore: {BACKUP_SKIPPED}"));
        Ok(())
    }

    /// Stops the load and removes the scratch table's links and copies, best effort; says what
    /// it could not remove.
    async fn cleanup(&mut self) {
        if let Some(load) = self.load.as_mut() {
            load.stop().await;
            self.report.writes_acked = load.count(|_| true);
            self.report.write_errors = load.errors.load(Ordering::Relaxed);
        }
        let (table, created) = (self.table.clone(), self.created.clone());
        let clusters: Vec<ClusterAddr> = created.iter().map(|n| self.cluster(n)).collect();
        let what = format!("clean up: remove the links of {table} and drop it in {}", created.join(" and "));
        let left = self
            .step(&what, async {
                let mut left = Vec::new();
                for c in &clusters {
                    if let Err(e) = drop_scratch(c, &table).await {
                        left.push(format!("{table} in {}: {e}", c.name));
                    }
                }
                Ok(left)
            })
            .await
            .unwrap_or_default();
        for l in &left {
            self.say(&format!("          LEFT BEHIND: {l}"));
        }
        self.report.cleaned_up = Some(left.is_empty());
        self.report.left_behind = left;
    }
}

/// Removes `table`'s links in `c`, drops it, and checks it no longer serves.
async fn drop_scratch(c: &ClusterAddr, table: &str) -> Result<()> {
    let admin = admin(c)?;
    for l in admin.links(Some(table)).await? {
        if l.link.status != LinkStatus::Removed {
            admin
                .remove_link(l.link.id)
                .await
                .map_err(|e| e.context(format!("remove link {}", l.link.id)))?;
        }
    }
    let serving = |ts: &[tern_client::admin::TableInfo]| {
        ts.iter().any(|t| t.name == table && t.status == TableStatus::Serving)
    };
    if serving(&admin.list_tables().await?) {
        admin.drop_table(table).await?;
    }
    if serving(&admin.list_tables().await?) {
        return Err(Error::invariant(format!("{table} still serves after it was dropped")));
    }
    Ok(())
}

/// Reads each key (sort key [`SORT_KEY`]) and parses its value, a few reads at a time, each
/// retried a few times.
async fn read_back(
    client: &TernClient,
    table: &str,
    keys: Vec<String>,
) -> Result<BTreeMap<String, Option<u64>>> {
    let reads = futures::stream::iter(keys).map(|key| async move {
        let mut last = None;
        for _ in 0..5 {
            let op = ReadOp::Get { hash_key: key.clone().into_bytes(), sort_key: SORT_KEY.to_vec() };
            match client.read(table, op).await {
                Ok(ReadResult::Get(v)) => {
                    let v = v.and_then(|v| String::from_utf8(v).ok()).and_then(|s| s.parse::<u64>().ok());
                    return Ok((key, v));
                }
                Ok(other) => return Err(Error::invariant(format!("a get of {key} answered {other:?}"))),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last.unwrap_or_else(|| Error::invariant("no read")).context(format!("read {key} back")))
    });
    let mut out = BTreeMap::new();
    let mut s = reads.buffer_unordered(16);
    while let Some(r) = s.next().await {
        let (k, v) = r?;
        out.insert(k, v);
    }
    Ok(out)
}
