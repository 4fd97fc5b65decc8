//! `tern proxy status`: what a running proxy sees and decided.

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tern_client::ProxyAdminClient;
use tern_client::admin::ProxyStatus;
use tern_core::CopyState;

use super::OutputFormat;
use super::common::human_ms as secs;
use super::common::runtime;

#[derive(Debug, Args)]
pub struct StatusCmd {
    /// The proxy's address (`--listen` of `tern proxy`); with several, the first that answers.
    #[arg(long = "proxy", env = "TERN_PROXY", value_delimiter = ',', value_name = "ADDRS", required = true)]
    proxy: Vec<String>,
    /// Only this table.
    #[arg(long)]
    table: Option<String>,
}

impl StatusCmd {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let proxies = ProxyAdminClient::new(self.proxy)?;
        let mut status = runtime()?.block_on(proxies.status()).context("tern proxy status")?;
        if let Some(t) = &self.table {
            status.tables.retain(|s| &s.table == t);
            if status.tables.is_empty() {
                anyhow::bail!(
                    "the proxy does not watch table {t} (it watches tables with --auto-failover and those clients asked about in the last minute)"
                );
            }
        }
        match output {
            OutputFormat::Json => println!("{}", to_json(&status)),
            OutputFormat::Text => print!("{}", to_text(&status)),
        }
        Ok(())
    }
}

fn ago(at_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{} ago", secs(now.saturating_sub(at_ms)))
}

fn to_text(s: &ProxyStatus) -> String {
    let mut out = format!("clusters: {}\n", s.clusters.join(", "));
    match (&s.dr_name, s.witness, s.dr_voters.is_empty()) {
        (_, _, true) => out.push_str(
            "DR voters: none (--dr-voters): this proxy grants no DR lease and refuses to fail over automatically\n",
        ),
        (Some(me), witness, false) => out.push_str(&format!(
            "DR voters: {} (this {} is {me})\n",
            s.dr_voters.join(", "),
            if witness { "witness" } else { "proxy" }
        )),
        (None, _, false) => out.push_str(&format!("DR voters: {} (this proxy is not one)\n", s.dr_voters.join(", "))),
    }
    if s.tables.is_empty() {
        out.push_str("no tables watched yet (tables with --auto-failover, and those clients asked about)\n");
    }
    for t in &s.tables {
        let routed = match &t.active_cluster {
            None => format!("no route: {}", t.route_error.as_deref().unwrap_or_default()),
            Some(active) => format!("active in {active} at epoch {}", t.epoch),
        };
        let policy = if t.auto_failover {
            format!("auto failover after {}, RPO budget {}", secs(t.failover_after_ms), secs(t.rpo_budget_ms))
        } else {
            "auto failover off".to_string()
        };
        out.push_str(&format!("\ntable {}: {routed} ({policy})\n", t.table));
        for c in &t.clusters {
            let epoch = match c.state {
                CopyState::Unreachable | CopyState::NoTable => "-".into(),
                CopyState::Active | CopyState::Standby => c.epoch.to_string(),
            };
            let health = if c.healthy { "serving".to_string() } else { c.detail.clone() };
            let behind = match (c.decrees_behind, c.bytes_behind) {
                (Some(d), Some(b)) => format!(", {d} decrees, {} behind", crate::cli::common::human_bytes(b)),
                _ => String::new(),
            };
            let lag = match (c.state, c.lag_seconds) {
                (CopyState::Standby, Some(l)) => format!("lag {l:.1}s{behind}"),
                (CopyState::Standby, None) => format!("lag unknown ({}){behind}", c.lag_detail),
                _ => String::new(),
            };
            let lease =
                if c.dr_lease.is_empty() { String::new() } else { format!("  DR lease {}", c.dr_lease) };
            out.push_str(&format!(
                "  {:<12} {:<12} epoch {:<4} {health}  {lag}{lease}\n",
                c.cluster, c.state, epoch
            ));
        }
        if let Some(u) = &t.active_unhealthy {
            out.push_str(&format!("  active copy in {} not serving for {}\n", u.cluster, secs(u.for_ms)));
        }
        if let Some(ms) = t.lag_sampled_ms_ago {
            out.push_str(&format!("  lag measured {} ago\n", secs(ms)));
        }
        if let Some(w) = &t.lease_wait {
            out.push_str(&format!(
                "  promotion waiting for the old DR lease to expire: {} more ({})\n",
                secs(w.for_ms),
                w.detail
            ));
        }
        match &t.last_decision {
            Some(d) => out.push_str(&format!(
                "  last failover decision ({}): {}{}: {}\n",
                ago(d.at_ms),
                d.outcome,
                match &d.cluster {
                    None => String::new(),
                    Some(c) => format!(" {c} at epoch {}", d.epoch),
                },
                d.reason
            )),
            None if t.auto_failover => out.push_str("  last failover decision: none\n"),
            None => {}
        }
    }
    out
}

fn to_json(s: &ProxyStatus) -> serde_json::Value {
    json!({
        "clusters": s.clusters,
        "dr_name": s.dr_name,
        "dr_voters": s.dr_voters,
        "witness": s.witness,
        "tables": s.tables.iter().map(|t| json!({
            "table": t.table,
            "active_cluster": t.active_cluster,
            "epoch": t.epoch,
            "route_error": t.route_error,
            "auto_failover": t.auto_failover,
            "failover_after_ms": t.failover_after_ms,
            "rpo_budget_ms": t.rpo_budget_ms,
            "active_unhealthy_ms": t.active_unhealthy.as_ref().map_or(0, |u| u.for_ms),
            "active_unhealthy_cluster": t.active_unhealthy.as_ref().map_or("", |u| u.cluster.as_str()),
            "lag_sampled_ms_ago": t.lag_sampled_ms_ago,
            "lease_wait_ms": t.lease_wait.as_ref().map(|w| w.for_ms),
            "lease_wait": t.lease_wait.as_ref().map(|w| w.detail.clone()),
            "clusters": t.clusters.iter().map(|c| json!({
                "cluster": c.cluster,
                "state": c.state.name(),
                "epoch": c.epoch,
                "healthy": c.healthy,
                "detail": c.detail,
                "lag_seconds": c.lag_seconds,
                "lag_detail": c.lag_detail,
                "decrees_behind": c.decrees_behind,
                "bytes_behind": c.bytes_behind,
                "dr_lease": c.dr_lease,
            })).collect::<Vec<_>>(),
            "last_decision": t.last_decision.as_ref().map(|d| json!({
                "at_ms": d.at_ms,
                "outcome": d.outcome.name(),
                "cluster": d.cluster.as_deref().unwrap_or_default(),
                "epoch": d.epoch,
                "reason": d.reason,
            })),
        })).collect::<Vec<_>>(),
    })
}
