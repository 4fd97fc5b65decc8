//! The one `tern proxy …` command line of a topology file's proxy, for every place that starts
//! one: `tern up -f` (`local::processes`) and the exported manifests (`export::args`). They
//! differ only in the addresses, so a flag added here reaches both.

use crate::schema::Proxy;

/// Where a proxy listens and what it sits in front of.
#[derive(Debug, Clone)]
pub struct ProxyEndpoints<'a> {
    pub listen: String,
    /// The Redis gateway's address; used only when the file gives the proxy one.
    pub redis_listen: Option<String>,
    pub metrics_listen: Option<String>,
    /// Every cluster of the deployment: its name and meta servers' addresses.
    pub clusters: Vec<(String, Vec<String>)>,
    /// Every DR voter of the deployment (`--dr-voters`), if any.
    pub voters: Option<&'a str>,
}

/// `tern proxy …` of proxy `p`: in front of every cluster, with its automatic failover, its
/// Redis gateway, and named as a DR voter when the file says it is one.
pub fn proxy_command(p: &Proxy, at: &ProxyEndpoints) -> Vec<String> {
    let mut a = vec!["proxy".to_string(), "--listen".into(), at.listen.clone()];
    for (name, metas) in &at.clusters {
        a.extend(["--cluster".into(), format!("{name}={}", metas.join(","))]);
    }
    for f in &p.auto_failover {
        a.extend([
            "--auto-failover".into(),
            format!("{},after={},rpo={}", *f.table, *f.after, *f.rpo_budget),
        ]);
    }
    if let Some(m) = &at.metrics_listen {
        a.extend(["--metrics-listen".into(), m.clone()]);
    }
    if let (Some(r), Some(listen)) = (&p.redis, &at.redis_listen) {
        a.extend(["--resp-listen".into(), listen.clone(), "--resp-table".into(), r.table.to_string()]);
        for (n, table) in &r.databases {
            a.extend(["--resp-db".into(), format!("{n}={}", **table)]);
        }
    }
    if let Some(v) = at.voters {
        a.extend(["--dr-voters".into(), v.to_string()]);
        if p.dr_voter {
            a.extend(["--dr-name".into(), p.name.to_string()]);
        }
    }
    a
}
