//! The DR lease on the command line: `--dr-voters` (shared by `tern meta`, `tern proxy` and
//! `tern witness`), `tern witness`, and `tern cluster dr-lease` (show, waive, enforce).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tern_client::admin::DrLeaseState;

use super::OutputFormat;
use super::common::human_ms as secs;
use super::common::{MetaAddrs, duration_arg, init_logging, runtime, shutdown_signal};

/// Parses `--dr-voters NAME=HOST:PORT` (one voter; the flag takes a comma-separated list).
pub fn voter_arg(s: &str) -> Result<(String, String), String> {
    let (name, addr) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=HOST:PORT"))?;
    let (name, addr) = (name.trim(), addr.trim());
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok || addr.is_empty() {
        return Err(format!("{s:?}: a voter is NAME=HOST:PORT, the name of letters, digits, '_', '.', '-'"));
    }
    Ok((name.to_string(), addr.to_string()))
}

/// Checks that no voter name is given twice.
pub fn check_voters(voters: &[(String, String)]) -> anyhow::Result<()> {
    if let Some(name) = super::common::repeated(voters.iter().map(|(n, _)| n.as_str())) {
        anyhow::bail!("--dr-voters names {name} twice");
    }
    Ok(())
}

/// Run a DR witness: a DR voter that routes nothing.
///
/// Clusters hold the DR lease (which lets their active tables take client writes) while a
/// majority of the DR voters grant it, and proxies promote a standby only after a majority of
/// voters promised to grant the old active copy no more (docs/meta-proxy.md, "The DR lease").
/// With one or two proxies a majority of them is fragile (two voters: losing either stops
/// writes); a witness, ideally in a third site, makes three. Give every `tern meta`, `tern
/// proxy` and `tern witness` the same --dr-voters.
///
/// $ tern witness --listen 10.0.3.5:34900 --dr-name w \
///     --dr-voters p1=10.0.1.5:34700,p2=10.0.2.5:34700,w=10.0.3.5:34900 \
///     --cluster dc1=10.0.1.10:34601 --cluster dc2=10.0.2.10:34601
#[derive(Debug, Args)]
pub struct WitnessCmd {
    /// Address to listen on (clusters renew their lease here, proxies ask for promises).
    #[arg(long, env = "TERN_LISTEN")]
    listen: SocketAddr,
    /// This witness's name among --dr-voters.
    #[arg(long, env = "TERN_DR_NAME", value_name = "NAME")]
    dr_name: String,
    /// Every DR voter as NAME=HOST:PORT, comma-separated (this one included): the same list
    /// every cluster's meta servers and every proxy are given.
    #[arg(long, env = "TERN_DR_VOTERS", value_name = "NAME=ADDR,...", value_delimiter = ',',
          value_parser = voter_arg, required = true)]
    dr_voters: Vec<(String, String)>,
    /// The lease it grants. A promotion waits up to about this long after the old active
    /// cluster was last granted, so shorter means faster failover but more renewals.
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    dr_lease: Duration,
    /// A cluster: NAME=META[,META...]. Optional: with clusters the witness also learns which
    /// copies are active at which epoch, and withholds the lease from older ones even after a
    /// restart.
    #[arg(long = "cluster", value_name = "NAME=ADDRS", value_parser = super::proxy::cluster_arg)]
    clusters: Vec<(String, Vec<String>)>,
}

impl WitnessCmd {
    pub fn run(self) -> anyhow::Result<()> {
        init_logging("info");
        check_voters(&self.dr_voters)?;
        let mut opts = tern_meta_proxy::ProxyOptions::new(self.listen, self.clusters);
        opts.witness = true;
        opts.dr = tern_meta_proxy::DrOptions {
            voters: self.dr_voters,
            name: Some(self.dr_name),
            lease: self.dr_lease,
            unsafe_failover_without_lease: false,
        };
        runtime()?.block_on(tern_meta_proxy::run(opts, shutdown_signal())).context("tern witness")
    }
}

/// `tern cluster dr-lease`.
#[derive(Debug, Args)]
pub struct DrLeaseCmd {
    #[command(flatten)]
    meta: MetaAddrs,
    /// Waive the DR lease, giving the reason: this cluster's active tables keep taking client
    /// writes even when it is cut off from the DR voters. RISK: a proxy that cannot see this
    /// cluster may promote a standby elsewhere (or an operator may), and both copies then take
    /// writes (split brain); after the link heals, last-writer-wins may let either side's
    /// writes overwrite the other's. Stop automatic failover for its tables first. Needs --yes.
    #[arg(long, value_name = "REASON", conflicts_with = "enforce")]
    waive: Option<String>,
    /// Enforce the DR lease again after --waive.
    #[arg(long)]
    enforce: bool,
    /// Confirm --waive.
    #[arg(long)]
    yes: bool,
}

impl DrLeaseCmd {
    pub async fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        if self.waive.is_some() && !self.yes {
            anyhow::bail!(
                "--waive lets this cluster take writes while cut off from the DR voters, so a standby promoted elsewhere meanwhile means a split brain; add --yes to do it"
            );
        }
        let admin = tern_client::AdminClient::connect(self.meta.meta.clone())?;
        let state = match (&self.waive, self.enforce) {
            (Some(reason), _) => admin.set_dr_lease_waiver(Some(reason)).await?,
            (None, true) => admin.set_dr_lease_waiver(None).await?,
            (None, false) => admin.dr_lease().await?,
        };
        match fmt {
            OutputFormat::Json => println!("{}", to_json(&state)),
            OutputFormat::Text => print!("{}", to_text(&state)),
        }
        Ok(())
    }
}

fn to_text(s: &DrLeaseState) -> String {
    if !s.used {
        return "no DR lease: this cluster has no DR voters (tern meta --dr-voters), so its active tables \
                take client writes even when no proxy can reach it\n"
            .into();
    }
    let mut out = format!(
        "DR voters: {} (a majority of {} must grant; renewed every {})\n",
        s.voters.join(", "),
        s.majority,
        secs(s.renew_interval_ms)
    );
    if let Some((reason, _)) = &s.waiver {
        out.push_str(&format!(
            "WAIVED: active tables take client writes without the lease ({reason}); `--enforce` ends it\n"
        ));
    }
    for g in &s.grants {
        let answered =
            g.answered_ms_ago.map_or("never answered".to_string(), |a| format!("answered {} ago", secs(a)));
        let state =
            if g.granted { format!("grants, {} left", secs(g.lease_left_ms)) } else { g.detail.clone() };
        out.push_str(&format!("  {:<10} {:<22} {answered}: {state}\n", g.voter, g.addr));
    }
    for t in &s.tables {
        let lease = if t.lease_left_ms > 0 {
            format!("held, {} left", secs(t.lease_left_ms))
        } else {
            t.detail.clone()
        };
        out.push_str(&format!("  table {} (active at epoch {}): {lease}\n", t.table, t.epoch));
    }
    out
}

fn to_json(s: &DrLeaseState) -> serde_json::Value {
    json!({
        "used": s.used,
        "voters": s.voters,
        "majority": s.majority,
        "waived": s.waiver.is_some(),
        "waiver_reason": s.waiver.as_ref().map(|(r, _)| r.clone()),
        "renew_interval_ms": s.renew_interval_ms,
        "grants": s.grants.iter().map(|g| json!({
            "voter": g.voter,
            "addr": g.addr,
            "granted": g.granted,
            "lease_left_ms": g.lease_left_ms,
            "answered_ms_ago": g.answered_ms_ago,
            "detail": g.detail,
        })).collect::<Vec<_>>(),
        "tables": s.tables.iter().map(|t| json!({
            "table": t.table,
            "epoch": t.epoch,
            "lease_left_ms": t.lease_left_ms,
            "detail": t.detail,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_are_named_addresses_given_once() {
        assert_eq!(voter_arg("p1=127.0.0.1:5"), Ok(("p1".into(), "127.0.0.1:5".into())));
        assert!(
            voter_arg("127.0.0.1:5").is_err() && voter_arg("=a:1").is_err() && voter_arg("p 1=a:1").is_err()
        );
        let twice = [("p1".to_string(), "a:1".to_string()), ("p1".to_string(), "b:1".to_string())];
        assert!(check_voters(&twice).unwrap_err().to_string().contains("names p1 twice"));
    }
}
