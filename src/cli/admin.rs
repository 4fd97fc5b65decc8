//! `tern table …` and `tern cluster status`: administration through the meta servers.

use clap::Subcommand;
use serde_json::json;
use tern_client::MetaClient;
use tern_proto::convert::config_from_pb;
use tern_proto::pb;

use super::OutputFormat;
use super::common::{MetaAddrs, human_bytes, runtime};

#[derive(Debug, Subcommand)]
pub enum TableCmd {
    /// Create a table.
    Create {
        name: String,
        /// How many partitions (hash-key ranges) the table is split into.
        #[arg(long, default_value_t = 8)]
        partitions: u32,
        /// Copies of each partition (PacificA: all must log a write before it commits).
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Drop a table. It can be recalled within the meta servers' recall window.
    Drop {
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Bring back a dropped table (within the recall window).
    Recall {
        name: String,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// List tables.
    List {
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Show a table's partitions and their replicas.
    Describe {
        name: String,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Show or set a table's disaster-recovery role in this cluster.
    ///
    /// `active` tables take client writes; `standby` tables refuse them (error STANDBY) and take
    /// writes only by duplication from the active cluster; their reads are marked as possibly
    /// stale. The epoch only grows: a proxy routes each table to the cluster whose copy is
    /// active at the highest epoch. These are low-level commands; the DR runbook commands are
    /// built on them.
    ///
    /// $ tern table role users --meta B1:PORT
    ///
    /// $ tern table role users --set standby --epoch 2 --if-epoch 1 --meta A1:PORT
    Role {
        name: String,
        /// The new role (without it: show the current one).
        #[arg(long, value_enum)]
        set: Option<RoleArg>,
        /// The new epoch (required with --set): at least the current one.
        #[arg(long, requires = "set", required_if_eq_any([("set", "active"), ("set", "standby")]))]
        epoch: Option<u64>,
        /// Compare-and-set: change only if the current epoch is this one (else EPOCH_CONFLICT).
        #[arg(long, requires = "set")]
        if_epoch: Option<u64>,
        #[command(flatten)]
        meta: MetaAddrs,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Takes client writes.
    Active,
    /// Takes writes only by duplication; reads may lag.
    Standby,
}

fn client(m: &MetaAddrs) -> anyhow::Result<MetaClient> {
    Ok(MetaClient::new(m.meta.clone())?)
}

fn table_json(t: &pb::TableInfo) -> serde_json::Value {
    json!({
        "id": t.id,
        "name": t.name,
        "partitions": t.partitions,
        "replicas": t.replicas,
        "status": t.status,
        "role": t.role,
        "epoch": t.epoch,
    })
}

fn print_table(fmt: OutputFormat, t: &pb::TableInfo) {
    match fmt {
        OutputFormat::Text => println!(
            "{} (id {}): {} partitions x {} replicas, {}, {} at epoch {}",
            t.name, t.id, t.partitions, t.replicas, t.status, t.role, t.epoch
        ),
        OutputFormat::Json => println!("{}", table_json(t)),
    }
}

fn confirm(what: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    eprint!("{what} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

impl TableCmd {
    pub fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        let rt = runtime()?;
        rt.block_on(async move {
            match self {
                TableCmd::Create { name, partitions, replicas, meta } => {
                    let req = pb::CreateTableRequest { name, partitions, replicas };
                    let t = client(&meta)?.call(|mut c| { let req = req.clone(); async move { c.create_table(req).await } }).await?;
                    print_table(fmt, &t);
                }
                TableCmd::Drop { name, yes, meta } => {
                    if !yes && !confirm(&format!("Drop table {name:?}? It can be recalled within the recall window."))? {
                        anyhow::bail!("not dropped");
                    }
                    let req = pb::TableRequest { name };
                    let t = client(&meta)?.call(|mut c| { let req = req.clone(); async move { c.drop_table(req).await } }).await?;
                    print_table(fmt, &t);
                }
                TableCmd::Recall { name, meta } => {
                    let req = pb::TableRequest { name };
                    let t = client(&meta)?.call(|mut c| { let req = req.clone(); async move { c.recall_table(req).await } }).await?;
                    print_table(fmt, &t);
                }
                TableCmd::List { meta } => {
                    let r = client(&meta)?.call(|mut c| async move { c.list_tables(pb::Empty {}).await }).await?;
                    match fmt {
                        OutputFormat::Text => {
                            if r.tables.is_empty() {
                                println!("(no tables)");
                            }
                            for t in &r.tables {
                                print_table(fmt, t);
                            }
                        }
                        OutputFormat::Json => println!("{}", json!({ "tables": r.tables.iter().map(table_json).collect::<Vec<_>>() })),
                    }
                }
                TableCmd::Role { name, set: None, meta, .. } => {
                    let req = pb::RouteRequest { table: name.clone() };
                    let r = client(&meta)?.call(|mut c| { let req = req.clone(); async move { c.get_route(req).await } }).await?;
                    let t = r.table.ok_or_else(|| anyhow::anyhow!("the meta server sent no table information for {name}"))?;
                    print_table(fmt, &t);
                }
                TableCmd::Role { name, set: Some(role), epoch, if_epoch, meta } => {
                    let role = match role { RoleArg::Active => "active", RoleArg::Standby => "standby" };
                    let req = pb::SetTableRoleRequest {
                        table: name,
                        role: role.into(),
                        epoch: epoch.ok_or_else(|| anyhow::anyhow!("--set needs --epoch"))?,
                        check_epoch: if_epoch.is_some(),
                        expect_epoch: if_epoch.unwrap_or(0),
                    };
                    let t = client(&meta)?.call(|mut c| { let req = req.clone(); async move { c.set_table_role(req).await } }).await?;
                    print_table(fmt, &t);
                }
                TableCmd::Describe { name, meta } => {
                    let req = pb::RouteRequest { table: name };
                    let r = client(&meta)?.call(|mut c| { let req = req.clone(); async move { c.get_route(req).await } }).await?;
                    let addr = |n: u64| r.addresses.iter().find(|a| a.node == n).map(|a| a.addr.clone()).unwrap_or_else(|| "?".into());
                    let mut parts: Vec<_> = r.partitions.iter().filter_map(|c| config_from_pb(c).ok()).collect();
                    parts.sort_by_key(|c| c.gpid.partition);
                    match fmt {
                        OutputFormat::Text => {
                            if let Some(t) = &r.table {
                                print_table(fmt, t);
                            }
                            for c in &parts {
                                let secondaries: Vec<String> = c.secondaries.iter().map(|s| addr(s.0)).collect();
                                println!(
                                    "  partition {:>3}  ballot {:>4}  primary {:<22} secondaries {}",
                                    c.gpid.partition,
                                    c.ballot,
                                    c.primary.map(|p| addr(p.0)).unwrap_or_else(|| "(none)".into()),
                                    secondaries.join(", ")
                                );
                            }
                        }
                        OutputFormat::Json => println!(
                            "{}",
                            json!({
                                "table": r.table.as_ref().map(table_json),
                                "partitions": parts.iter().map(|c| json!({
                                    "partition": c.gpid.partition.0,
                                    "ballot": c.ballot.0,
                                    "primary": c.primary.map(|p| addr(p.0)),
                                    "secondaries": c.secondaries.iter().map(|s| addr(s.0)).collect::<Vec<_>>(),
                                })).collect::<Vec<_>>(),
                            })
                        ),
                    }
                }
            }
            Ok(())
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Nodes (up or down, primaries and replicas held, memory and how much of it is in huge
    /// pages), tables, partitions without a full set of healthy replicas, and balance.
    Status {
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Drain a replica server for removal: the balancer moves its primaries and then its
    /// replicas to other servers (watch `tern cluster status`: it is drained at 0 replicas, and
    /// can then be stopped). Nothing new is placed on it. `tern cluster recommission` undoes it.
    Decommission {
        /// The node id as `tern cluster status` prints it (16 hex digits).
        node: String,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Undo a decommission: the server may receive replicas and primaries again, and the
    /// balancer gives it its share back (drained or not).
    Recommission {
        /// The node id as `tern cluster status` prints it (16 hex digits).
        node: String,
        #[command(flatten)]
        meta: MetaAddrs,
    },
}

/// Parses a node id as printed (hex, optionally with `0x`).
fn parse_node(s: &str) -> anyhow::Result<u64> {
    let hex = s.trim().trim_start_matches("0x");
    u64::from_str_radix(hex, 16).map_err(|_| {
        anyhow::anyhow!("node {s:?} is not a node id (16 hex digits, as `tern cluster status` prints)")
    })
}

/// `tern cluster decommission` (`decommissioned`) or `recommission` (not) of `node`.
fn set_decommissioned(
    meta: &MetaAddrs,
    node: &str,
    decommissioned: bool,
    fmt: OutputFormat,
) -> anyhow::Result<()> {
    let id = parse_node(node)?;
    runtime()?.block_on(async {
        client(meta)?
            .call(|mut c| async move {
                if decommissioned {
                    c.decommission(pb::DecommissionRequest { node: id }).await
                } else {
                    c.recommission(pb::RecommissionRequest { node: id }).await
                }
            })
            .await
            .map_err(anyhow::Error::from)
    })?;
    match fmt {
        OutputFormat::Text if decommissioned => {
            println!("{id:016x} is being drained; watch `tern cluster status`")
        }
        OutputFormat::Text => println!("{id:016x} serves again; the balancer gives it its share back"),
        OutputFormat::Json => {
            println!("{}", json!({"node": format!("{id:016x}"), "decommissioned": decommissioned}))
        }
    }
    Ok(())
}

impl ClusterCmd {
    pub fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        let meta = match self {
            ClusterCmd::Status { meta } => meta,
            ClusterCmd::Decommission { node, meta } => return set_decommissioned(&meta, &node, true, fmt),
            ClusterCmd::Recommission { node, meta } => return set_decommissioned(&meta, &node, false, fmt),
        };
        let rt = runtime()?;
        let s = rt.block_on(async {
            client(&meta)?
                .call(|mut c| async move { c.cluster_status(pb::Empty {}).await })
                .await
                .map_err(anyhow::Error::from)
        })?;
        match fmt {
            OutputFormat::Text => {
                println!("cluster {} (id {}), meta leader {}", s.cluster_name, s.cluster_id, s.meta_leader);
                println!("nodes:");
                for n in &s.nodes {
                    let memory = n.memory.map_or(String::new(), |m| {
                        format!(
                            " memory {} (huge pages {})",
                            human_bytes(m.resident_bytes),
                            human_bytes(m.huge_page_bytes)
                        )
                    });
                    println!(
                        "  {:016x} {:<22} {:<5} primaries {:>4} replicas {:>4}{memory}{}",
                        n.node,
                        n.addr,
                        if n.alive { "up" } else { "DOWN" },
                        n.primaries,
                        n.replicas,
                        if n.decommissioned { " (decommissioned)" } else { "" }
                    );
                }
                println!(
                    "tables: {}",
                    s.tables
                        .iter()
                        .map(|t| format!("{} ({})", t.name, t.status))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if s.balancing.is_empty() {
                    println!("balance: balanced");
                } else {
                    println!("balance: in progress ({})", s.balancing);
                }
                if s.unhealthy.is_empty() {
                    println!("all partitions healthy");
                } else {
                    println!("{} partitions not fully healthy:", s.unhealthy.len());
                    for c in s.unhealthy.iter().filter_map(|c| config_from_pb(c).ok()) {
                        println!("  {c}");
                    }
                }
            }
            OutputFormat::Json => println!(
                "{}",
                json!({
                    "cluster": s.cluster_name,
                    "cluster_id": s.cluster_id,
                    "meta_leader": s.meta_leader,
                    "nodes": s.nodes.iter().map(|n| json!({
                        "node": format!("{:016x}", n.node), "addr": n.addr, "alive": n.alive,
                        "decommissioned": n.decommissioned, "primaries": n.primaries, "replicas": n.replicas,
                        "resident_bytes": n.memory.map(|m| m.resident_bytes),
                        "huge_page_bytes": n.memory.map(|m| m.huge_page_bytes),
                    })).collect::<Vec<_>>(),
                    "tables": s.tables.iter().map(table_json).collect::<Vec<_>>(),
                    "balanced": s.balancing.is_empty(),
                    "balancing": s.balancing,
                    "unhealthy": s.unhealthy.iter().filter_map(|c| config_from_pb(c).ok()).map(|c| c.to_string()).collect::<Vec<_>>(),
                })
            ),
        }
        Ok(())
    }
}
