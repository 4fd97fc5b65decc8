//! `tern proxy`: the meta-proxy process (`tern-meta-proxy`).

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
/// $ tern proxy --listen 127.0.0.1:34700 --cluster dc1=127.0.0.1:34601 --cluster dc2=127.0.0.1:35601
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
        let opts = tern_meta_proxy::ProxyOptions {
            listen: self.listen,
            clusters: self.clusters,
            max_age: self.max_age,
        };
        runtime()?.block_on(tern_meta_proxy::run(opts, shutdown_signal())).context("tern proxy")
    }
}
