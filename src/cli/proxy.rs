//! `tern proxy`: the meta-proxy process (`tern-meta-proxy`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

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
/// With `--resp-listen` it also speaks the Redis protocol (RESP2): `redis-cli`, `redis-benchmark`
/// and Redis client libraries read and write a Tern table (`--resp-table`; more with `--resp-db`
/// for SELECT), a Redis key being a hash key with an empty sort key. Commands and differences
/// from Redis: docs/meta-proxy.md, "Redis gateway".
///
/// $ tern proxy --listen 127.0.0.1:34700 --cluster dc1=127.0.0.1:34601 --cluster dc2=127.0.0.1:35601
///
/// $ tern proxy --listen 127.0.0.1:34700 --cluster dc1=127.0.0.1:34601 --resp-listen 127.0.0.1:6380 --resp-table demo
#[derive(Debug, Args)]
pub struct ProxyCmd {
    /// Address to listen on for clients.
    #[arg(long, env = "TERN_LISTEN")]
    listen: SocketAddr,
    /// A cluster: NAME=META[,META...] (its meta servers). Repeat for every cluster.
    #[arg(long = "cluster", value_name = "NAME=ADDRS", required = true, value_parser = cluster_arg)]
    clusters: Vec<(String, Vec<String>)>,
    /// How old a table's routing may be before the proxy asks the clusters again (a role
    /// change is seen within this).
    #[arg(long, default_value = "500ms", value_parser = duration_arg)]
    max_age: Duration,
    /// Also serve the Redis protocol on this address (needs --resp-table).
    #[arg(long, env = "TERN_RESP_LISTEN", value_name = "ADDR")]
    resp_listen: Option<SocketAddr>,
    /// The table of Redis database 0, where connections start.
    #[arg(long, env = "TERN_RESP_TABLE", value_name = "TABLE")]
    resp_table: Option<String>,
    /// A table for `SELECT N`: N=TABLE. Repeat (or separate with commas) for more databases.
    #[arg(long = "resp-db", env = "TERN_RESP_DB", value_name = "N=TABLE", value_delimiter = ',', value_parser = db_arg)]
    resp_dbs: Vec<(u32, String)>,
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

fn cluster_arg(s: &str) -> Result<(String, Vec<String>), String> {
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
    pub fn run(self) -> anyhow::Result<()> {
        init_logging("info");
        let mut names: Vec<&str> = self.clusters.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            anyhow::bail!("--cluster {} is given twice", w[0]);
        }
        let resp = resp_options(self.resp_listen, self.resp_table, self.resp_dbs)?;
        let opts = tern_meta_proxy::ProxyOptions {
            listen: self.listen,
            clusters: self.clusters,
            max_age: self.max_age,
            resp,
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
