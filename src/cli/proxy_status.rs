//! `tern proxy status`: what a running proxy sees and decided.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tern_proto::pb;

use super::OutputFormat;
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
        let mut status = runtime()?.block_on(ask(&self.proxy))?;
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

async fn ask(addrs: &[String]) -> anyhow::Result<pb::ProxyStatusResponse> {
    let mut errors = Vec::new();
    let pool = tern_client::Pool::new();
    for addr in addrs {
        let attempt = async {
            let mut c = pb::proxy_admin_client::ProxyAdminClient::new(pool.channel(addr)?);
            let r = tokio::time::timeout(Duration::from_secs(5), c.status(pb::Empty {}))
                .await
                .map_err(|_| anyhow::anyhow!("no answer within 5s"))?;
            anyhow::Ok(r.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner())
        };
        match attempt.await {
            Ok(s) => return Ok(s),
            Err(e) => errors.push(format!("{addr}: {e:#}")),
        }
    }
    Err(anyhow::anyhow!("no proxy answered: {}", errors.join("; "))).context("tern proxy status")
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn ago(at_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{} ago", secs(now.saturating_sub(at_ms)))
}

fn to_text(s: &pb::ProxyStatusResponse) -> String {
    let mut out = format!("clusters: {}\n", s.clusters.join(", "));
    if s.tables.is_empty() {
        out.push_str("no tables watched yet (tables with --auto-failover, and those clients asked about)\n");
    }
    for t in &s.tables {
        let routed = if t.active_cluster.is_empty() {
            format!("no route: {}", t.route_error)
        } else {
            format!("active in {} at epoch {}", t.active_cluster, t.epoch)
        };
        let policy = if t.auto_failover {
            format!("auto failover after {}, RPO budget {}", secs(t.failover_after_ms), secs(t.rpo_budget_ms))
        } else {
            "auto failover off".to_string()
        };
        out.push_str(&format!("\ntable {}: {routed} ({policy})\n", t.table));
        for c in &t.clusters {
            let epoch = if c.state == "unreachable" || c.state == "no-table" {
                "-".into()
            } else {
                c.epoch.to_string()
            };
            let health = if c.healthy { "serving".to_string() } else { c.detail.clone() };
            let lag = match (c.state.as_str(), c.lag_seconds) {
                ("standby", l) if l >= 0.0 => format!("lag {l:.1}s"),
                ("standby", _) => format!("lag unknown ({})", c.lag_detail),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  {:<12} {:<12} epoch {:<4} {health}  {lag}\n",
                c.cluster, c.state, epoch
            ));
        }
        if t.active_unhealthy_ms > 0 {
            out.push_str(&format!(
                "  active copy in {} not serving for {}\n",
                t.active_unhealthy_cluster,
                secs(t.active_unhealthy_ms)
            ));
        }
        if t.lag_sampled_ms_ago >= 0 {
            out.push_str(&format!("  lag measured {} ago\n", secs(t.lag_sampled_ms_ago as u64)));
        }
        match &t.last_decision {
            Some(d) => out.push_str(&format!(
                "  last failover decision ({}): {}{}: {}\n",
                ago(d.at_ms),
                d.outcome,
                if d.cluster.is_empty() {
                    String::new()
                } else {
                    format!(" {} at epoch {}", d.cluster, d.epoch)
                },
                d.reason
            )),
            None if t.auto_failover => out.push_str("  last failover decision: none\n"),
            None => {}
        }
    }
    out
}

fn to_json(s: &pb::ProxyStatusResponse) -> serde_json::Value {
    json!({
        "clusters": s.clusters,
        "tables": s.tables.iter().map(|t| json!({
            "table": t.table,
            "active_cluster": (!t.active_cluster.is_empty()).then_some(&t.active_cluster),
            "epoch": t.epoch,
            "route_error": (!t.route_error.is_empty()).then_some(&t.route_error),
            "auto_failover": t.auto_failover,
            "failover_after_ms": t.failover_after_ms,
            "rpo_budget_ms": t.rpo_budget_ms,
            "active_unhealthy_ms": t.active_unhealthy_ms,
            "active_unhealthy_cluster": t.active_unhealthy_cluster,
            "lag_sampled_ms_ago": (t.lag_sampled_ms_ago >= 0).then_some(t.lag_sampled_ms_ago),
            "clusters": t.clusters.iter().map(|c| json!({
                "cluster": c.cluster,
                "state": c.state,
                "epoch": c.epoch,
                "healthy": c.healthy,
                "detail": c.detail,
                "lag_seconds": (c.lag_seconds >= 0.0).then_some(c.lag_seconds),
                "lag_detail": c.lag_detail,
            })).collect::<Vec<_>>(),
            "last_decision": t.last_decision.as_ref().map(|d| json!({
                "at_ms": d.at_ms,
                "outcome": d.outcome,
                "cluster": d.cluster,
                "epoch": d.epoch,
                "reason": d.reason,
            })),
        })).collect::<Vec<_>>(),
    })
}
