//! A whole cluster of `tern` processes on loopback: meta servers (Raft among themselves) and
//! replica servers, each with a data directory and a log under one temporary directory.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tern_client::{ClientOptions, MetaClient, TernClient};
use tern_proto::pb;

use crate::ports::free_addr;
use crate::process::{CliOutput, Process, run_cli};

/// How to start a cluster. Failure detection is fast by default so that failover takes seconds.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// `--cluster-name` and `--cluster-id` (two clusters of a duplication test differ).
    pub name: String,
    pub id: u8,
    pub metas: usize,
    pub replicas: usize,
    /// `tern meta --lease` (how long a beacon answer lets a replica server serve).
    pub lease: String,
    /// `tern meta --grace` (no beacon for this long: the server is declared dead). It must
    /// exceed the lease with margin for clock drift (`tern meta --help`).
    pub grace: String,
    /// `tern replica --beacon-interval`.
    pub beacon_interval: String,
    /// More flags for every `tern replica` (e.g. `--flush-interval 1s`).
    pub replica_args: Vec<String>,
    /// More flags for every `tern meta` (e.g. `--balance-interval 1s`).
    pub meta_args: Vec<String>,
    /// Give every replica server a metrics listener (`--metrics-listen`, see `metrics_addr`).
    pub metrics: bool,
    /// Environment variables of every meta and replica server (e.g. S3 credentials).
    pub env: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            name: "e2e".into(),
            id: 1,
            metas: 3,
            replicas: 3,
            lease: "2s".into(),
            grace: "4s".into(),
            beacon_interval: "300ms".into(),
            replica_args: vec![],
            meta_args: vec![],
            metrics: false,
            env: vec![],
        }
    }
}

impl ClusterOptions {
    /// One of several clusters (duplication, proxy tests): its own name and id, one meta server
    /// and three replica servers.
    pub fn named(name: &str, id: u8) -> ClusterOptions {
        ClusterOptions { name: name.into(), id, metas: 1, replicas: 3, ..ClusterOptions::default() }
    }
}

/// A probe of a cluster status for [`Cluster::wait_for`]: whether node `id` (shown as `name`) is
/// listed and `ok` holds for it, else what it is.
pub fn node_is(
    s: &pb::ClusterStatusResponse,
    id: u64,
    name: impl fmt::Display,
    ok: impl Fn(&pb::NodeStatus) -> bool,
) -> Result<(), String> {
    let n = s.nodes.iter().find(|n| n.node == id).ok_or(format!("{name} not listed"))?;
    if ok(n) { Ok(()) } else { Err(format!("{name}: {n:?}")) }
}

/// One process of a cluster, by role and index (meta `Meta(i)` has Raft id `i + 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proc {
    Meta(usize),
    Replica(usize),
}

impl fmt::Display for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proc::Meta(i) => write!(f, "meta-{}", i + 1),
            Proc::Replica(i) => write!(f, "replica-{}", i + 1),
        }
    }
}

/// What one meta server answers when asked directly (no redirect followed).
#[derive(Debug)]
pub enum MetaView {
    /// It leads: here is the cluster status.
    Leads(Box<pb::ClusterStatusResponse>),
    /// It does not lead; it names the leader's address if it knows one.
    Follows { leader: Option<String> },
    /// It did not answer, or failed otherwise.
    Fails(String),
}

/// How long a wait for the cluster to settle may take on a busy 2-core machine.
pub const SETTLE: Duration = Duration::from_secs(60);

/// A running cluster. Dropping it kills every process; if the thread is panicking (a failed
/// test) it keeps the directory and prints its path and the tail of every log.
pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    opts: ClusterOptions,
    metas: Vec<Process>,
    replicas: Vec<Process>,
    /// Each replica server's metrics address, when `ClusterOptions::metrics`.
    metrics: Vec<Option<String>>,
    meta: MetaClient,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").field("root", &self.root).field("opts", &self.opts).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts the meta servers and the replica servers and waits until every replica server is
    /// known alive to the meta leader.
    pub async fn start(opts: ClusterOptions) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("tern-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temporary directory: {e}"));
        let root = dir.path().to_path_buf();
        eprintln!("e2e: cluster in {}", root.display());
        let meta_addrs: Vec<String> = (0..opts.metas).map(|_| free_addr()).collect();
        let members: Vec<String> =
            meta_addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        let metas = meta_addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let name = Proc::Meta(i).to_string();
                let data_dir = root.join(&name);
                let args = vec![
                    "meta".into(),
                    "--id".into(),
                    (i + 1).to_string(),
                    "--listen".into(),
                    addr.clone(),
                    "--members".into(),
                    members.join(","),
                    "--data-dir".into(),
                    data_dir.display().to_string(),
                    "--cluster-name".into(),
                    opts.name.clone(),
                    "--cluster-id".into(),
                    opts.id.to_string(),
                    "--lease".into(),
                    opts.lease.clone(),
                    "--grace".into(),
                    opts.grace.clone(),
                ];
                let args = args.into_iter().chain(opts.meta_args.iter().cloned()).collect();
                let mut p = Process::new(
                    name.clone(),
                    addr.clone(),
                    data_dir,
                    root.join(format!("{name}.log")),
                    args,
                );
                p.env = opts.env.clone();
                p
            })
            .collect();
        let mut meta = MetaClient::new(meta_addrs).unwrap_or_else(|e| panic!("meta client: {e}"));
        // Short, so that a poll loop sees its own deadline; the loop retries.
        meta.deadline = Duration::from_secs(3);
        let mut c = Cluster {
            dir: Some(dir),
            root,
            opts: opts.clone(),
            metas,
            replicas: vec![],
            metrics: vec![],
            meta,
        };
        for m in &mut c.metas {
            m.start();
        }
        for _ in 0..opts.replicas {
            c.add_replica();
        }
        c.wait_replicas_alive(SETTLE).await;
        c
    }

    /// The directory holding every data directory and log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn meta_addrs(&self) -> Vec<String> {
        self.metas.iter().map(|m| m.addr.clone()).collect()
    }

    /// The meta addresses as the CLI takes them: `a,b,c`.
    pub fn meta_arg(&self) -> String {
        self.meta_addrs().join(",")
    }

    /// A client of the data API (10 s per operation, retries included).
    pub fn client(&self) -> Arc<TernClient> {
        Arc::new(TernClient::new(ClientOptions::new(self.meta_addrs())).unwrap_or_else(|e| panic!("{e}")))
    }

    /// The harness's meta client (any meta server; follows the leader).
    pub fn meta(&self) -> &MetaClient {
        &self.meta
    }

    pub fn process(&self, p: Proc) -> &Process {
        match p {
            Proc::Meta(i) => &self.metas[i],
            Proc::Replica(i) => &self.replicas[i],
        }
    }

    fn process_mut(&mut self, p: Proc) -> &mut Process {
        match p {
            Proc::Meta(i) => &mut self.metas[i],
            Proc::Replica(i) => &mut self.replicas[i],
        }
    }

    pub fn metas(&self) -> Vec<Proc> {
        (0..self.metas.len()).map(Proc::Meta).collect()
    }

    /// Every replica server ever started (running or not).
    pub fn replicas(&self) -> Vec<Proc> {
        (0..self.replicas.len()).map(Proc::Replica).collect()
    }

    pub fn is_running(&self, p: Proc) -> bool {
        self.process(p).is_running()
    }

    /// A replica server's node id (from its data directory), once it has created one.
    pub fn node_id(&self, p: Proc) -> Option<u64> {
        let Proc::Replica(i) = p else { return None };
        let s = std::fs::read_to_string(self.replicas[i].data_dir.join("node_id")).ok()?;
        u64::from_str_radix(s.trim(), 16).ok()
    }

    /// Waits until the meta servers list replica server `p` and its status satisfies `ok`
    /// (`what` says how, for the message).
    pub async fn wait_node(&self, p: Proc, what: &str, ok: impl Fn(&pb::NodeStatus) -> bool) {
        let id = self.node_id(p).unwrap_or_else(|| panic!("{p} has no node id"));
        self.wait_for(&format!("{p} {what}"), SETTLE, || async {
            let s = self.status().await.map_err(|e| format!("status: {e}"))?;
            node_is(&s, id, p, &ok)
        })
        .await
    }

    /// The replica server with node id `node`.
    pub fn replica_with_id(&self, node: u64) -> Option<Proc> {
        self.replicas().into_iter().find(|p| self.node_id(*p) == Some(node))
    }

    fn add_replica(&mut self) -> Proc {
        let i = self.replicas.len();
        let p = Proc::Replica(i);
        let name = p.to_string();
        let addr = free_addr();
        let data_dir = self.root.join(&name);
        let args = vec![
            "replica".into(),
            "--listen".into(),
            addr.clone(),
            "--meta".into(),
            self.meta_arg(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--cluster-id".into(),
            self.opts.id.to_string(),
            "--beacon-interval".into(),
            self.opts.beacon_interval.clone(),
        ];
        let metrics = self.opts.metrics.then(free_addr);
        let extra = metrics.iter().flat_map(|a| ["--metrics-listen".to_string(), a.clone()]);
        let args = args.into_iter().chain(self.opts.replica_args.iter().cloned()).chain(extra).collect();
        self.metrics.push(metrics);
        let mut proc =
            Process::new(name.clone(), addr, data_dir, self.root.join(format!("{name}.log")), args);
        proc.env = self.opts.env.clone();
        proc.start();
        self.replicas.push(proc);
        p
    }

    /// What replica server `p` serves at `GET /metrics` (panics unless started with metrics).
    pub async fn scrape_metrics(&self, p: Proc) -> String {
        let Proc::Replica(i) = p else { panic!("{p} has no metrics") };
        let addr =
            self.metrics[i].clone().unwrap_or_else(|| panic!("{p} was started without --metrics-listen"));
        crate::proxy::http_get(&addr, "/metrics").await.unwrap_or_else(|e| panic!("metrics of {p}: {e}"))
    }

    /// Starts one more replica server (a new node) and waits until the meta leader knows it alive.
    pub async fn start_replica(&mut self) -> Proc {
        let p = self.add_replica();
        self.wait_replicas_alive(SETTLE).await;
        p
    }

    /// `kill -9`.
    pub fn kill9(&mut self, p: Proc) {
        eprintln!("e2e: kill -9 {p}");
        self.process_mut(p).kill9();
    }

    /// SIGTERM; panics unless it exits with status 0 within 15 s.
    pub fn stop(&mut self, p: Proc) {
        eprintln!("e2e: stop {p}");
        let status = self.process_mut(p).stop(Duration::from_secs(15));
        assert!(
            status.success(),
            "{p} exited with {status} on SIGTERM; its log ends with:\n{}",
            self.process(p).tail(30)
        );
    }

    /// Starts a stopped or killed process again, with more arguments.
    pub fn restart_with(&mut self, p: Proc, args: &[&str]) {
        self.process_mut(p).add_args(args);
        self.restart(p);
    }

    /// Starts a stopped or killed process again, without flag `flag` (and its value).
    pub fn restart_without(&mut self, p: Proc, flag: &str) {
        self.process_mut(p).drop_flag(flag);
        self.restart(p);
    }

    /// Starts a stopped or killed process again with the same port and data directory.
    pub fn restart(&mut self, p: Proc) {
        eprintln!("e2e: restart {p}");
        self.process_mut(p).start();
    }

    /// Panics if a process that should be running has exited on its own (a crash).
    pub fn check_processes(&self) {
        for p in self.metas.iter().chain(&self.replicas) {
            if let Some(status) = p.exited() {
                panic!("{} exited on its own ({status}); its log ends with:\n{}", p.name, p.tail(40));
            }
        }
    }

    /// Polls `probe` until it returns `Ok` (see [`crate::wait_until`]), failing early if a
    /// process crashes.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        crate::wait_until(what, timeout, || {
            self.check_processes();
            probe()
        })
        .await
    }

    /// `ClusterStatus` from the meta leader.
    pub async fn status(&self) -> tern_core::Result<pb::ClusterStatusResponse> {
        self.meta.call(|mut c| async move { c.cluster_status(pb::Empty {}).await }).await
    }

    /// `ClusterStatus` asking only the given meta servers (they follow leader hints among
    /// themselves only if the leader is among them).
    pub async fn status_from(&self, metas: &[Proc]) -> tern_core::Result<pb::ClusterStatusResponse> {
        let addrs = metas.iter().map(|p| self.process(*p).addr.clone()).collect();
        let mut client = MetaClient::new(addrs)?;
        client.deadline = Duration::from_secs(3);
        client.call(|mut c| async move { c.cluster_status(pb::Empty {}).await }).await
    }

    /// Asks meta server `p` itself for the cluster status, without following redirects.
    pub async fn meta_view(&self, p: Proc) -> MetaView {
        let addr = self.process(p).addr.clone();
        let call = async {
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_secs(2));
            let channel = endpoint.connect().await.map_err(|e| format!("connect to {addr}: {e}"))?;
            Ok::<_, String>(pb::meta_client::MetaClient::new(channel).cluster_status(pb::Empty {}).await)
        };
        match tokio::time::timeout(Duration::from_secs(3), call).await {
            Err(_) => MetaView::Fails(format!("{p} at {addr} did not answer within 3s")),
            Ok(Err(e)) => MetaView::Fails(e),
            Ok(Ok(Ok(r))) => MetaView::Leads(Box::new(r.into_inner())),
            Ok(Ok(Err(status))) => match tern_proto::status::leader_hint(&status) {
                Some(leader) => MetaView::Follows { leader: Some(leader) },
                None if status.code() == tonic::Code::Unavailable => MetaView::Follows { leader: None },
                None => MetaView::Fails(format!("{p}: {status}")),
            },
        }
    }

    /// Node ids of the running replica servers.
    fn running_node_ids(&self) -> Vec<u64> {
        self.replicas().into_iter().filter(|p| self.is_running(*p)).filter_map(|p| self.node_id(p)).collect()
    }

    /// Why `s` does not show every running replica server alive, if it does not.
    fn not_all_alive(&self, s: &pb::ClusterStatusResponse) -> Option<String> {
        let running = self.replicas().into_iter().filter(|p| self.is_running(*p)).count();
        let ids = self.running_node_ids();
        if ids.len() < running {
            return Some(format!("{} of {running} running replica servers have a node id yet", ids.len()));
        }
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !s.nodes.iter().any(|n| n.node == **id && n.alive))
            .map(|id| self.replica_with_id(*id).map(|p| p.to_string()).unwrap_or_else(|| format!("{id:x}")))
            .collect();
        (!missing.is_empty()).then(|| format!("not alive at the meta leader: {}", missing.join(", ")))
    }

    /// Waits until the meta leader knows every running replica server alive.
    pub async fn wait_replicas_alive(&self, timeout: Duration) -> pb::ClusterStatusResponse {
        self.wait_for("every running replica server to be alive", timeout, || async {
            let s = self.status().await.map_err(|e| format!("status: {e}"))?;
            match self.not_all_alive(&s) {
                None => Ok(s),
                Some(why) => Err(why),
            }
        })
        .await
    }

    /// Waits until every running replica server is alive and every partition of every table
    /// has a primary and its full number of members.
    pub async fn wait_healthy(&self, timeout: Duration) -> pb::ClusterStatusResponse {
        self.wait_for("a healthy cluster", timeout, || async {
            let s = self.status().await.map_err(|e| format!("status: {e}"))?;
            if let Some(why) = self.not_all_alive(&s) {
                return Err(why);
            }
            if !s.unhealthy.is_empty() {
                let parts: Vec<String> = s.unhealthy.iter().map(|c| self.describe_config(c)).collect();
                return Err(format!("{} partitions unhealthy: {}", parts.len(), parts.join("; ")));
            }
            Ok(s)
        })
        .await
    }

    /// A partition configuration with process names instead of node ids.
    pub fn describe_config(&self, c: &pb::PartitionConfig) -> String {
        let name =
            |n: u64| self.replica_with_id(n).map(|p| p.to_string()).unwrap_or_else(|| format!("{n:x}"));
        let gpid = c.gpid.as_ref().map(|g| format!("{}.{}", g.table, g.partition)).unwrap_or_default();
        let primary = if c.primary == 0 { "none".to_string() } else { name(c.primary) };
        let secondaries: Vec<String> = c.secondaries.iter().map(|n| name(*n)).collect();
        format!("{gpid} b{} primary {primary} secondaries [{}]", c.ballot, secondaries.join(", "))
    }

    /// The meta server that leads now (waits until one does).
    pub async fn leader_meta(&self) -> Proc {
        self.wait_for("a meta leader", SETTLE, || async {
            let s = self.status().await.map_err(|e| format!("status: {e}"))?;
            match s.meta_leader {
                id @ 1.. if (id as usize) <= self.metas.len() => Ok(Proc::Meta(id as usize - 1)),
                id => Err(format!("meta leader is {id}")),
            }
        })
        .await
    }

    /// A table's routing from the meta leader.
    pub async fn route(&self, table: &str) -> tern_core::Result<pb::Route> {
        let table = table.to_string();
        self.meta
            .call(|mut c| {
                let table = table.clone();
                async move { c.get_route(pb::RouteRequest { table, ..Default::default() }).await }
            })
            .await
    }

    /// The replica server that is the primary of each partition of `table`, per the meta leader.
    pub async fn primaries(&self, table: &str) -> Vec<Option<Proc>> {
        let route = self.route(table).await.unwrap_or_else(|e| panic!("route of {table}: {e}"));
        let n = route.table.as_ref().map_or(0, |t| t.partitions) as usize;
        let mut out = vec![None; n];
        for c in &route.partitions {
            let Some(g) = &c.gpid else { continue };
            if let Some(slot) = out.get_mut(g.partition as usize) {
                *slot = (c.primary != 0).then(|| self.replica_with_id(c.primary)).flatten();
            }
        }
        out
    }

    pub async fn primary_of(&self, table: &str, partition: u32) -> Option<Proc> {
        self.primaries(table).await.get(partition as usize).copied().flatten()
    }

    /// Creates a table through the meta servers and waits until the cluster is healthy.
    pub async fn create_table(&self, name: &str, partitions: u32, replicas: u32) -> pb::TableInfo {
        let req = pb::CreateTableRequest { name: name.to_string(), partitions, replicas };
        let t = self
            .wait_for(&format!("table {name} to be created"), SETTLE, || async {
                self.meta
                    .call(|mut c| {
                        let req = req.clone();
                        async move { c.create_table(req).await }
                    })
                    .await
                    .map_err(|e| format!("create table: {e}"))
            })
            .await;
        self.wait_healthy(SETTLE).await;
        t
    }

    /// Runs `tern ARGS` (at most 60 s).
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        run_cli(args, Duration::from_secs(60)).await
    }

    /// Runs `tern dup add --meta <this cluster> --table TABLE --to <to> --to-meta <to's metas>
    /// EXTRA` (e.g. `--mode two-way`, `--full-sync`, `--remote-table R`).
    pub async fn dup_add(&self, table: &str, to: &Cluster, extra: &[&str]) -> CliOutput {
        let (meta, to_meta) = (self.meta_arg(), to.meta_arg());
        let mut args = vec!["dup", "add", "--meta", &meta, "--table", table, "--to", &to.opts.name];
        args.extend(["--to-meta", &to_meta]);
        args.extend_from_slice(extra);
        self.cli(&args).await
    }

    /// Every duplication link of this cluster with its per-partition status (none if the meta
    /// server does not answer).
    pub async fn dup_links(&self) -> Vec<pb::DupLinkStatus> {
        self.meta
            .call(|mut m| async move { m.dup_list(pb::DupListRequest { table: String::new() }).await })
            .await
            .map(|r| r.links)
            .unwrap_or_default()
    }

    /// The id of this cluster's first duplication link, as the CLI takes it.
    pub async fn first_link_id(&self) -> String {
        let links = self.dup_links().await;
        links.first().and_then(|l| l.link.as_ref()).map(|l| l.id.to_string()).expect("a duplication link")
    }

    /// Runs `tern kv --meta <metas> --table TABLE ARGS`.
    pub async fn kv(&self, table: &str, args: &[&str]) -> CliOutput {
        let meta = self.meta_arg();
        let mut full = vec!["kv", "--meta", &meta, "--table", table];
        full.extend_from_slice(args);
        self.cli(&full).await
    }

    fn every_process(&self) -> impl Iterator<Item = &Process> {
        self.metas.iter().chain(&self.replicas)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.metas.iter_mut().chain(self.replicas.iter_mut()) {
            p.kill9();
        }
        let keep = std::env::var_os("TERN_E2E_KEEP").is_some();
        if std::thread::panicking() || keep {
            if let Some(dir) = self.dir.take() {
                let path = dir.keep();
                eprintln!("e2e: kept the cluster's directory {}", path.display());
            }
            if std::thread::panicking() {
                for p in self.every_process() {
                    eprintln!(
                        "----- last 30 lines of {} ({}) -----\n{}",
                        p.name,
                        p.log.display(),
                        p.tail(30)
                    );
                }
            }
        }
    }
}
