//! `tern meta` and `tern replica`: run a server in the foreground until SIGINT/SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use tern_core::ClusterId;

use super::common::{
    bytes_arg, duration_arg, init_logging, read_config, runtime, runtime_with_workers, shutdown_signal,
};

/// Settings of `tern replica` in a config file (TOML; keys are the long flag names). Flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ReplicaFile {
    listen: Option<SocketAddr>,
    advertise: Option<String>,
    meta: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    cluster_id: Option<u8>,
    block_cache: Option<String>,
    beacon_interval: Option<String>,
    flush_interval: Option<String>,
    request_timeout: Option<String>,
    metrics_listen: Option<SocketAddr>,
    worker_threads: Option<usize>,
    gc_removed_after: Option<String>,
    garbage_retention: Option<String>,
    group_commit_max_wait: Option<String>,
    memtable_huge_pages: Option<bool>,
    max_clock_offset: Option<String>,
}

/// Run a replica server: it hosts partition replicas, replicates writes with PacificA and
/// serves clients. Settings come from flags, then `--config`, then defaults.
#[derive(Debug, Args)]
pub struct ReplicaCmd {
    /// Address to listen on (clients and peers), e.g. 127.0.0.1:34801.
    #[arg(long, env = "TERN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address others reach this server at, if not the listen address.
    #[arg(long, env = "TERN_ADVERTISE")]
    advertise: Option<String>,
    /// Meta server addresses, comma-separated.
    #[arg(long, env = "TERN_META", value_delimiter = ',')]
    meta: Option<Vec<String>>,
    /// Directory for the node identity, replicas and logs.
    #[arg(long, env = "TERN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// This cluster's id (1-127); must match the meta servers'.
    #[arg(long, env = "TERN_CLUSTER_ID")]
    cluster_id: Option<u8>,
    /// RocksDB block cache shared by all replicas (default 256MiB).
    #[arg(long, value_parser = bytes_arg)]
    block_cache: Option<u64>,
    /// How often to beacon the meta server (default 1s).
    #[arg(long, value_parser = duration_arg)]
    beacon_interval: Option<Duration>,
    /// How often each replica flushes its store (default 10s).
    #[arg(long, value_parser = duration_arg)]
    flush_interval: Option<Duration>,
    /// How long a client request may wait (default 10s).
    #[arg(long, value_parser = duration_arg)]
    request_timeout: Option<Duration>,
    /// Serve metrics for Prometheus at http://ADDR/metrics (duplication lag and progress per
    /// link and partition, received duplicated writes), e.g. 127.0.0.1:9100. Off by default.
    #[arg(long, env = "TERN_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Threads that run requests, replication and RocksDB writes (default: one per core). Lower
    /// it when several servers share a machine: `tern up` gives each of its servers a share of
    /// the cores, which cut CPU per write by ~10 % with three servers on two cores.
    #[arg(long, env = "TERN_WORKER_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    worker_threads: Option<u64>,
    /// Close a replica whose partition has left this server out of its configuration for this
    /// long (moved by the balancer, drained, replaced after a failure) and move its directory
    /// to DATA_DIR/replicas/garbage/ (default 5m).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    gc_removed_after: Option<Duration>,
    /// Delete directories in DATA_DIR/replicas/garbage/ this long after they were moved there;
    /// until then an operator can still copy data out of one (default 24h).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    garbage_retention: Option<Duration>,
    /// Under load, hold log appends back at most this long so that one fsync of the shared log
    /// covers more of them (fewer fsyncs, less CPU per write, a little more latency). The wait
    /// follows the disk: fsyncs start at most every five recent fsync durations. An idle server
    /// never waits. 0 turns it off (default 700us).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    group_commit_max_wait: Option<Duration>,
    /// Put memtables in the kernel's reserved huge pages while any are free (reserve them with
    /// `sysctl vm.nr_hugepages=N`, 2 MiB each; up to two memtables of 32 MiB per replica);
    /// without free ones RocksDB uses ordinary memory, which gets transparent huge pages where
    /// the kernel allows them (THP `madvise` or `always`). Reserved pages cut CPU per write by
    /// 7-11 % against none at all. `false` never uses them (default true).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    memtable_huge_pages: Option<bool>,
    /// How far ahead of this server's clock another cluster's timestamps may be (default
    /// 500ms). A duplicated write further ahead is refused with CLOCK_AHEAD (the link shows it
    /// in `tern dup status`), and this server's clock never moves past it; a jump of this
    /// server's own wall clock by more is logged as an error. Keep clocks synchronised (NTP)
    /// well within it.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    max_clock_offset: Option<Duration>,
    /// Test only: shift this server's wall clock by this many milliseconds (negative: behind),
    /// to play a server whose clock is wrong.
    #[arg(long, hide = true, value_name = "MS", allow_hyphen_values = true)]
    test_clock_offset: Option<i64>,
    /// A TOML file with the same settings (keys are the flag names).
    #[arg(long, env = "TERN_CONFIG")]
    config: Option<PathBuf>,
}

fn pick<T>(flag: Option<T>, file: Option<T>, name: &str) -> anyhow::Result<T> {
    flag.or(file).with_context(|| format!("--{name} is required (or set {name} in --config)"))
}

fn file_duration(v: Option<String>, key: &str) -> anyhow::Result<Option<Duration>> {
    v.map(|s| duration_arg(&s).map_err(|e| anyhow::anyhow!("config key {key}: {e}"))).transpose()
}

impl ReplicaCmd {
    pub fn run(self) -> anyhow::Result<()> {
        init_logging("info");
        let file: ReplicaFile = read_config(self.config.as_deref())?;
        let cluster_id = pick(self.cluster_id, file.cluster_id, "cluster-id")?;
        let cluster_id = ClusterId::new(cluster_id)?;
        let mut opts = tern_server::ServerOptions::new(
            pick(self.listen, file.listen, "listen")?,
            pick(self.meta, file.meta, "meta")?,
            pick(self.data_dir, file.data_dir, "data-dir")?,
            cluster_id,
        );
        opts.advertise = self.advertise.or(file.advertise);
        opts.metrics_listen = self.metrics_listen.or(file.metrics_listen);
        let cache = match (self.block_cache, file.block_cache) {
            (Some(b), _) => Some(b),
            (None, Some(s)) => {
                Some(bytes_arg(&s).map_err(|e| anyhow::anyhow!("config key block-cache: {e}"))?)
            }
            _ => None,
        };
        if let Some(b) = cache {
            opts.rocks.block_cache_bytes = b as usize;
        }
        if let Some(d) = self.beacon_interval.or(file_duration(file.beacon_interval, "beacon-interval")?) {
            opts.beacon_interval = d;
        }
        if let Some(d) = self.flush_interval.or(file_duration(file.flush_interval, "flush-interval")?) {
            opts.flush_interval = d;
        }
        if let Some(d) = self.request_timeout.or(file_duration(file.request_timeout, "request-timeout")?) {
            opts.request_timeout = d;
        }
        if let Some(d) = self.gc_removed_after.or(file_duration(file.gc_removed_after, "gc-removed-after")?) {
            opts.gc_removed_after = d;
        }
        if let Some(d) =
            self.garbage_retention.or(file_duration(file.garbage_retention, "garbage-retention")?)
        {
            opts.garbage_retention = d;
        }
        if let Some(d) =
            self.group_commit_max_wait.or(file_duration(file.group_commit_max_wait, "group-commit-max-wait")?)
        {
            opts.group_commit.max_spacing = d;
        }
        if let Some(on) = self.memtable_huge_pages.or(file.memtable_huge_pages) {
            opts.rocks.memtable_huge_pages = on;
        }
        if let Some(d) = self.max_clock_offset.or(file_duration(file.max_clock_offset, "max-clock-offset")?) {
            opts.max_clock_offset = d;
        }
        opts.test_clock_offset_ms = self.test_clock_offset.unwrap_or(0);
        let workers = match (self.worker_threads, file.worker_threads) {
            (Some(n), _) => Some(n as usize),
            (None, Some(0)) => anyhow::bail!("config key worker-threads: must be at least 1"),
            (None, n) => n,
        };
        runtime_with_workers(workers)?.block_on(tern_server::run(opts, shutdown_signal())).map_err(Into::into)
    }
}

/// Settings of `tern meta` in a config file (TOML). Flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MetaFile {
    id: Option<u64>,
    listen: Option<SocketAddr>,
    members: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    cluster_name: Option<String>,
    cluster_id: Option<u8>,
    lease: Option<String>,
    grace: Option<String>,
    recall_window: Option<String>,
    balance_interval: Option<String>,
    max_moves: Option<usize>,
    dup_conflict_journal: Option<u32>,
    tombstone_retention: Option<String>,
    dup_hold_limit: Option<String>,
    dr_voters: Option<Vec<String>>,
    dr_renew_interval: Option<String>,
    backup_min_interval: Option<String>,
    backup_tick: Option<String>,
}

/// Run a meta server: the cluster's configuration (tables, partitions, nodes), replicated with
/// Raft among the meta servers, and the decisions that keep partitions served.
#[derive(Debug, Args)]
pub struct MetaCmd {
    /// This meta server's id among --members.
    #[arg(long, env = "TERN_META_ID")]
    id: Option<u64>,
    /// Address to listen on (clients, replica servers, other meta servers).
    #[arg(long, env = "TERN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Every meta server as ID=HOST:PORT, comma-separated (this one included); one is enough.
    #[arg(long, env = "TERN_META_MEMBERS", value_delimiter = ',')]
    members: Option<Vec<String>>,
    /// Directory for the Raft log and snapshots.
    #[arg(long, env = "TERN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The cluster's name (e.g. the datacenter).
    #[arg(long, env = "TERN_CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// The cluster's id, 1-127, unique among clusters that replicate to each other.
    #[arg(long, env = "TERN_CLUSTER_ID")]
    cluster_id: Option<u8>,
    /// How long a beacon answer lets a replica server serve (default 5s).
    #[arg(long, value_parser = duration_arg)]
    lease: Option<Duration>,
    /// How long without beacons before a replica server is declared dead (default 10s; must
    /// exceed the lease with margin for clock rate errors).
    #[arg(long, value_parser = duration_arg)]
    grace: Option<Duration>,
    /// How long a dropped table can be recalled (default 1d).
    #[arg(long, value_parser = duration_arg)]
    recall_window: Option<Duration>,
    /// How often the balancer evens out primaries and replicas and drains decommissioned
    /// nodes (default 10s; 0 turns balancing off).
    #[arg(long, value_parser = duration_arg)]
    balance_interval: Option<Duration>,
    /// How many replica copies the balancer keeps in flight at once (default 2).
    #[arg(long)]
    max_moves: Option<usize>,
    /// How many recent conflicts (duplicated writes that lost last-writer-wins) each
    /// duplication link keeps for `tern dup conflicts` (default 100).
    #[arg(long, env = "TERN_DUP_CONFLICT_JOURNAL")]
    dup_conflict_journal: Option<u32>,
    /// How long deletes (tombstones) and expired records are kept at least, by their timestamp,
    /// before replicas may drop them (default 1d). Links from other clusters into a table keep
    /// them longer, until every sending partition has shipped past them, so that a write those
    /// links ship later still loses to a newer delete: see --dup-hold-limit.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    tombstone_retention: Option<Duration>,
    /// How long an incoming duplication link may be silent (down, paused, removed on its side)
    /// before it stops holding its table's tombstones back (default 7d). After that, writes it
    /// ships older than the table's purge horizon may bring back records deleted here: add such
    /// a link back with a full sync instead. It is logged as an error when it happens.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    dup_hold_limit: Option<Duration>,
    /// The DR voters as NAME=HOST:PORT, comma-separated (`tern proxy --dr-name`, `tern
    /// witness`): the same list for every cluster, proxy and witness. The cluster's active
    /// tables then take client writes only while a majority of them grant its DR lease, so a
    /// cluster cut off from them stops taking writes before a proxy can promote a standby
    /// elsewhere (the price: losing the majority of voters stops writes; `tern cluster dr-lease
    /// --waive` overrides). Without voters there is no lease, and proxies refuse to fail over
    /// automatically away from this cluster.
    #[arg(long, env = "TERN_DR_VOTERS", value_name = "NAME=ADDR,...", value_delimiter = ',',
          value_parser = super::drlease::voter_arg)]
    dr_voters: Option<Vec<(String, String)>>,
    /// How often the meta leader renews the DR lease with every voter (default 1s; keep it
    /// well below the voters' --dr-lease).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    dr_renew_interval: Option<Duration>,
    /// TESTS ONLY: the shortest interval a backup policy may have (default and minimum for
    /// users 1m). Lets end-to-end tests schedule backups every few seconds.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION", hide = true,
          env = "TERN_TEST_BACKUP_MIN_INTERVAL")]
    backup_min_interval: Option<Duration>,
    /// How often the meta leader looks for backup policy runs that are due (default 5s).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION", hide = true, env = "TERN_BACKUP_TICK")]
    backup_tick: Option<Duration>,
    /// A TOML file with the same settings (keys are the flag names).
    #[arg(long, env = "TERN_CONFIG")]
    config: Option<PathBuf>,
}

/// The DR lease settings of `tern meta`: flags, then the config file.
fn dr_lease_options(
    voters: Option<Vec<(String, String)>>,
    renew: Option<Duration>,
    file_voters: Option<Vec<String>>,
    file_renew: Option<String>,
) -> anyhow::Result<tern_meta::drlease::DrLeaseOptions> {
    let voters = match (voters, file_voters) {
        (Some(v), _) => v,
        (None, Some(v)) => v
            .iter()
            .map(|s| super::drlease::voter_arg(s).map_err(|e| anyhow::anyhow!("config key dr-voters: {e}")))
            .collect::<anyhow::Result<_>>()?,
        (None, None) => Vec::new(),
    };
    super::drlease::check_voters(&voters)?;
    let mut opts = tern_meta::drlease::DrLeaseOptions { voters, ..Default::default() };
    if let Some(d) = renew.or(file_duration(file_renew, "dr-renew-interval")?) {
        anyhow::ensure!(!d.is_zero(), "--dr-renew-interval must be above 0");
        opts.renew_interval = d;
    }
    Ok(opts)
}

/// Backup policy settings of `tern meta`.
fn backup_options(
    min_interval: Option<Duration>,
    tick: Option<Duration>,
) -> anyhow::Result<tern_meta::backup_runner::BackupRunnerOptions> {
    let mut o = tern_meta::backup_runner::BackupRunnerOptions::default();
    if let Some(d) = min_interval {
        anyhow::ensure!(d >= Duration::from_secs(1), "--backup-min-interval must be at least 1s");
        tracing::warn!("backup policies may run every {d:?} (--backup-min-interval: for tests only)");
        o.min_interval = d;
    }
    if let Some(d) = tick {
        anyhow::ensure!(!d.is_zero(), "--backup-tick must be above 0");
        o.tick = d;
    }
    Ok(o)
}

/// Parses `ID=HOST:PORT` members.
pub fn parse_members(v: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut m = BTreeMap::new();
    for s in v {
        let (id, addr) = s.split_once('=').with_context(|| format!("member {s:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("member {s:?}: {id:?} is not a number"))?;
        anyhow::ensure!(id > 0, "member {s:?}: ids start at 1");
        anyhow::ensure!(m.insert(id, addr.trim().to_string()).is_none(), "member id {id} appears twice");
    }
    Ok(m)
}

impl MetaCmd {
    pub fn run(self) -> anyhow::Result<()> {
        init_logging("info");
        let file: MetaFile = read_config(self.config.as_deref())?;
        let id = pick(self.id, file.id, "id")?;
        let listen = pick(self.listen, file.listen, "listen")?;
        let members = match self.members.or(file.members) {
            Some(m) => parse_members(&m)?,
            None => BTreeMap::from([(id, listen.to_string())]),
        };
        let mut cm = tern_confman::CmOptions::default();
        if let Some(d) = self.lease.or(file_duration(file.lease, "lease")?) {
            cm.lease_ms = d.as_millis() as u64;
        }
        if let Some(d) = self.grace.or(file_duration(file.grace, "grace")?) {
            cm.grace_ms = d.as_millis() as u64;
        }
        if let Some(d) = self.balance_interval.or(file_duration(file.balance_interval, "balance-interval")?) {
            cm.balance_interval_ms = d.as_millis() as u64;
        }
        if let Some(n) = self.max_moves.or(file.max_moves) {
            anyhow::ensure!(
                n > 0,
                "--max-moves must be at least 1 (use --balance-interval 0 to stop balancing)"
            );
            cm.max_moves = n;
        }
        let opts = tern_meta::MetaOptions {
            id,
            listen,
            members,
            data_dir: pick(self.data_dir, file.data_dir, "data-dir")?,
            cluster_name: pick(self.cluster_name, file.cluster_name, "cluster-name")?,
            cluster_id: ClusterId::new(pick(self.cluster_id, file.cluster_id, "cluster-id")?)?,
            cm,
            recall_window: self
                .recall_window
                .or(file_duration(file.recall_window, "recall-window")?)
                .unwrap_or(Duration::from_secs(86_400)),
            dup_conflict_journal: self
                .dup_conflict_journal
                .or(file.dup_conflict_journal)
                .unwrap_or(tern_meta::DEFAULT_DUP_CONFLICT_JOURNAL),
            tombstone_retention: self
                .tombstone_retention
                .or(file_duration(file.tombstone_retention, "tombstone-retention")?)
                .unwrap_or(tern_meta::DEFAULT_TOMBSTONE_RETENTION),
            dup_hold_limit: self
                .dup_hold_limit
                .or(file_duration(file.dup_hold_limit, "dup-hold-limit")?)
                .unwrap_or(tern_meta::DEFAULT_DUP_HOLD_LIMIT),
            raft: tern_meta::raft::RaftOptions::default(),
            dr_lease: dr_lease_options(
                self.dr_voters,
                self.dr_renew_interval,
                file.dr_voters,
                file.dr_renew_interval,
            )?,
            backup: backup_options(
                self.backup_min_interval.or(file_duration(file.backup_min_interval, "backup-min-interval")?),
                self.backup_tick.or(file_duration(file.backup_tick, "backup-tick")?),
            )?,
        };
        runtime()?.block_on(tern_meta::run(opts, shutdown_signal())).map_err(Into::into)
    }
}
