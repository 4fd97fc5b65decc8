//! `tern proxy`: the meta-proxy process (`tern-meta-proxy`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tern_meta_proxy::Policy;

use super::OutputFormat;
use super::common::{duration_arg, init_logging, runtime, shutdown_signal};

/// Run a meta-proxy: the one entry point for clients across clusters.
///
/// It answers routing queries (what clients ask a meta server for) for any table with the
/// routing of the cluster whose copy is `active` at the highest DR epoch (`tern table role`).
/// Point clients at proxies instead of meta servers (`tern kv --meta PROXY`, `TernClient`);
/// after a role change, a write that meets the old copy (now standby) makes the client ask the
/// proxy again and continue on the new active cluster, without a restart. Stateless: run any
/// number and list them all in clients.
///
/// With `--auto-failover TABLE`, the proxy also promotes a standby copy of TABLE when the
/// active one has not served for a while (`after`, default 10s), but only if the standby's
/// measured duplication lag is within the RPO budget (`rpo`, default 5s), and only once the old
/// active copy's DR lease has certainly expired; otherwise it refuses or waits and says why
/// (`tern proxy status`, its log, and the metric `tern_proxy_failover_decisions_total`). A
/// returning old active copy is made standby, for every table the proxy watches.
///
/// The DR lease (docs/meta-proxy.md): a cluster's active tables take client writes only while a
/// majority of the DR voters (`--dr-voters`, the same list for every meta server, proxy and
/// witness) grant it; a proxy named with `--dr-name` is one of them. A cluster cut off from
/// the voters stops taking client writes by itself before any proxy can promote a standby. With
/// fewer than three proxies, add a `tern witness`.
///
/// $ tern proxy ... --dr-name p1 --dr-voters p1=10.0.1.5:34700,p2=10.0.2.5:34700,w=10.0.3.5:34900
///
/// $ tern proxy --listen 127.0.0.1:34700 --cluster dc1=127.0.0.1:34601 --cluster dc2=127.0.0.1:35601
///
/// $ tern proxy ... --auto-failover demo,after=30s,rpo=2s
///
/// $ tern proxy status --proxy 127.0.0.1:34700
///
/// With `--resp-listen` it also speaks the Redis protocol (RESP2): `redis-cli`, `redis-benchmark`
/// and Redis client libraries read and write a Tern table (`--resp-table`; more with `--resp-db`
/// for SELECT), a Redis key being a hash key with an empty sort key. Commands and differences
/// from Redis: docs/meta-proxy.md, "Redis gateway".
///
/// $ tern proxy ... --resp-listen 127.0.0.1:6380 --resp-table demo
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ProxyCmd {
    #[command(subcommand)]
    sub: Option<ProxySub>,
    /// Address to listen on for clients.
    #[arg(long, env = "TERN_LISTEN", required = true)]
    listen: Option<SocketAddr>,
    /// A cluster: NAME=META[,META...] (its meta servers). Repeat for every cluster.
    #[arg(long = "cluster", value_name = "NAME=ADDRS", required = true, value_parser = cluster_arg)]
    clusters: Vec<(String, Vec<String>)>,
    /// How old a table's routing may be before the proxy asks the clusters again (a role
    /// change is seen within this).
    #[arg(long, default_value = "500ms", value_parser = duration_arg)]
    max_age: Duration,
    /// How often the tables clients use (and those with automatic failover) are looked at.
    #[arg(long, default_value = "500ms", value_parser = duration_arg)]
    watch_interval: Duration,
    /// Fail TABLE over automatically: TABLE[,after=DURATION][,rpo=DURATION]. Repeat per table.
    #[arg(long = "auto-failover", value_name = "TABLE[,after=10s][,rpo=5s]", value_parser = failover_arg)]
    auto_failover: Vec<(String, Policy)>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Also serve the Redis protocol on this address (needs --resp-table).
    #[arg(long, env = "TERN_RESP_LISTEN", value_name = "ADDR")]
    resp_listen: Option<SocketAddr>,
    /// The table of Redis database 0, where connections start.
    #[arg(long, env = "TERN_RESP_TABLE", value_name = "TABLE")]
    resp_table: Option<String>,
    /// A table for `SELECT N`: N=TABLE. Repeat (or separate with commas) for more databases.
    #[arg(long = "resp-db", env = "TERN_RESP_DB", value_name = "N=TABLE", value_delimiter = ',', value_parser = db_arg)]
    resp_dbs: Vec<(u32, String)>,
    /// Every DR voter as NAME=HOST:PORT, comma-separated: the same list every cluster's meta
    /// servers are given. Needed to fail over automatically (promises are asked of them) and
    /// to be a voter (--dr-name).
    #[arg(long, env = "TERN_DR_VOTERS", value_name = "NAME=ADDR,...", value_delimiter = ',',
          value_parser = super::drlease::voter_arg)]
    dr_voters: Vec<(String, String)>,
    /// This proxy's name among --dr-voters: it then grants clusters their DR lease (and keeps
    /// promises not to grant an old active copy any more).
    #[arg(long, env = "TERN_DR_NAME", value_name = "NAME")]
    dr_name: Option<String>,
    /// The DR lease this proxy grants as a voter. A promotion waits up to about this long
    /// after the old active cluster was last granted.
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    dr_lease: Duration,
    /// Promote a standby without waiting for the old active copy's DR lease to expire, also
    /// when the old copy's cluster has no DR lease (no --dr-voters) or waived it. RISK: an old
    /// active cluster that the proxies cannot reach but clients can keeps taking writes while
    /// the promoted copy takes writes too (split brain); once the link heals, last-writer-wins
    /// lets each side's writes overwrite the other's, acknowledged or not.
    #[arg(long)]
    unsafe_failover_without_lease: bool,
}

#[derive(Debug, Subcommand)]
enum ProxySub {
    /// What a running proxy sees: per table the active cluster and epoch, every copy's health
    /// and duplication lag, and the last automatic failover decision.
    Status(super::proxy_status::StatusCmd),
}

fn failover_arg(s: &str) -> Result<(String, Policy), String> {
    let mut parts = s.split(',').map(str::trim);
    let table = parts.next().unwrap_or_default();
    if table.is_empty() || table.contains('=') {
        return Err(format!("{s:?}: start with the table name, e.g. demo,after=10s,rpo=5s"));
    }
    let mut policy = Policy::default();
    for part in parts {
        let (key, value) =
            part.split_once('=').ok_or_else(|| format!("{part:?} in {s:?} is not KEY=VALUE"))?;
        let d = duration_arg(value).map_err(|e| format!("{key} in {s:?}: {e}"))?;
        match key {
            "after" => policy.after = d,
            "rpo" => policy.rpo_budget = d,
            _ => return Err(format!("unknown setting {key:?} in {s:?} (known: after, rpo)")),
        }
    }
    Ok((table.to_string(), policy))
}

fn db_arg(s: &str) -> Result<(u32, String), String> {
    let (n, table) = s.split_once('=').ok_or_else(|| format!("{s:?} is not N=TABLE"))?;
    let n = n.trim().parse::<u32>().map_err(|_| format!("{s:?}: the database number must be 0 or more"))?;
    let table = table.trim();
    if table.is_empty() {
        return Err(format!("{s:?} needs a table name"));
    }
    Ok((n, table.to_string()))
}

/// The Redis gateway's options, checked: databases given once each, database 0 mapped.
fn resp_options(
    listen: Option<SocketAddr>,
    table: Option<String>,
    dbs: Vec<(u32, String)>,
) -> anyhow::Result<Option<tern_meta_proxy::RespOptions>> {
    let Some(listen) = listen else {
        if table.is_some() || !dbs.is_empty() {
            anyhow::bail!("--resp-table and --resp-db need --resp-listen");
        }
        return Ok(None);
    };
    let mut map = BTreeMap::new();
    for (n, t) in table.map(|t| (0, t)).into_iter().chain(dbs) {
        if map.insert(n, t).is_some() {
            anyhow::bail!("Redis database {n} is given twice (--resp-table is database 0)");
        }
    }
    if !map.contains_key(&0) {
        anyhow::bail!("--resp-listen needs a table for database 0: --resp-table TABLE");
    }
    Ok(Some(tern_meta_proxy::RespOptions { listen, dbs: map }))
}

pub(super) fn cluster_arg(s: &str) -> Result<(String, Vec<String>), String> {
    let (name, addrs) =
        s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=HOST:PORT[,HOST:PORT...]"))?;
    let addrs: Vec<String> =
        addrs.split(',').map(str::trim).filter(|a| !a.is_empty()).map(String::from).collect();
    if name.trim().is_empty() || addrs.is_empty() {
        return Err(format!("{s:?} needs a cluster name and at least one meta address"));
    }
    Ok((name.trim().to_string(), addrs))
}

impl ProxyCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        if let Some(ProxySub::Status(s)) = self.sub {
            return s.run(output);
        }
        let listen = self.listen.context("--listen is required")?;
        init_logging("info");
        if let Some(name) = super::common::repeated(self.clusters.iter().map(|(n, _)| n.as_str())) {
            anyhow::bail!("--cluster {name} is given twice");
        }
        let mut failover = HashMap::new();
        for (table, policy) in self.auto_failover {
            if failover.insert(table.clone(), policy).is_some() {
                anyhow::bail!("--auto-failover {table} is given twice");
            }
        }
        let mut opts = tern_meta_proxy::ProxyOptions::new(listen, self.clusters);
        opts.max_age = self.max_age;
        opts.interval = self.watch_interval;
        opts.failover = failover;
        opts.metrics_listen = self.metrics_listen;
        opts.resp = resp_options(self.resp_listen, self.resp_table, self.resp_dbs)?;
        super::drlease::check_voters(&self.dr_voters)?;
        opts.dr = tern_meta_proxy::DrOptions {
            voters: self.dr_voters,
            name: self.dr_name,
            lease: self.dr_lease,
            unsafe_failover_without_lease: self.unsafe_failover_without_lease,
        };
        runtime()?.block_on(tern_meta_proxy::run(opts, shutdown_signal())).context("tern proxy")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], 6380)))
    }

    #[test]
    fn redis_databases_map_to_tables_once_each_with_database_0() {
        assert_eq!(db_arg("3=sessions"), Ok((3, "sessions".to_string())));
        assert!(
            db_arg("x=t").is_err()
                && db_arg("-1=t").is_err()
                && db_arg("1=").is_err()
                && db_arg("1").is_err()
        );

        let o = resp_options(addr(), Some("t".into()), vec![(1, "u".into())]).unwrap().unwrap();
        assert_eq!(o.dbs, BTreeMap::from([(0, "t".to_string()), (1, "u".to_string())]));
        let o = resp_options(addr(), None, vec![(0, "t".into())]).unwrap().unwrap();
        assert_eq!(o.dbs.len(), 1);
        assert!(resp_options(None, None, vec![]).unwrap().is_none());

        let e = |r: anyhow::Result<_>| r.map(|_: Option<_>| ()).unwrap_err().to_string();
        assert!(e(resp_options(None, Some("t".into()), vec![])).contains("need --resp-listen"));
        assert!(e(resp_options(addr(), None, vec![(1, "u".into())])).contains("database 0"));
        assert!(e(resp_options(addr(), Some("t".into()), vec![(0, "u".into())])).contains("given twice"));
    }
}
