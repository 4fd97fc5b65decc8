//! `tern table …` and `tern cluster status`: administration through the meta servers.

use clap::Subcommand;
use serde_json::json;
use tern_client::AdminClient;
use tern_client::admin::{ClusterStatus, TableInfo, TableRoute};
use tern_core::{DrRole, NodeId};

use super::OutputFormat;
use super::common::{MetaAddrs, confirm, human_bytes, runtime};

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

impl From<RoleArg> for DrRole {
    fn from(r: RoleArg) -> DrRole {
        match r {
            RoleArg::Active => DrRole::Active,
            RoleArg::Standby => DrRole::Standby,
        }
    }
}

fn client(m: &MetaAddrs) -> anyhow::Result<AdminClient> {
    Ok(AdminClient::connect(m.meta.clone())?)
}

fn table_json(t: &TableInfo) -> serde_json::Value {
    json!({
        "id": t.id.0,
        "name": t.name,
        "partitions": t.partitions,
        "replicas": t.replicas,
        "status": t.status.name(),
        "role": t.role.name(),
        "epoch": t.epoch,
        "restoring": t.restoring,
    })
}

fn print_table(fmt: OutputFormat, t: &TableInfo) {
    match fmt {
        OutputFormat::Text => {
            let restoring = t
                .restoring
                .as_ref()
                .map(|b| format!(", RESTORING from backup {b} (serves nobody until the restore finishes)"))
                .unwrap_or_default();
            println!(
                "{} (id {}): {} partitions x {} replicas, {}, {} at epoch {}{restoring}",
                t.name, t.id.0, t.partitions, t.replicas, t.status, t.role, t.epoch
            )
        }
        OutputFormat::Json => println!("{}", table_json(t)),
    }
}

fn print_tables(fmt: OutputFormat, tables: &[TableInfo]) {
    match fmt {
        OutputFormat::Text => {
            if tables.is_empty() {
                println!("(no tables)");
            }
            for t in tables {
                print_table(fmt, t);
            }
        }
        OutputFormat::Json => {
            println!("{}", json!({ "tables": tables.iter().map(table_json).collect::<Vec<_>>() }))
        }
    }
}

fn print_route(fmt: OutputFormat, r: &TableRoute) {
    let addr = |n: NodeId| r.address(n).unwrap_or("?").to_string();
    match fmt {
        OutputFormat::Text => {
            print_table(fmt, &r.table);
            for c in &r.partitions {
                let secondaries: Vec<String> = c.secondaries.iter().map(|s| addr(*s)).collect();
                println!(
                    "  partition {:>3}  ballot {:>4}  primary {:<22} secondaries {}",
                    c.gpid.partition,
                    c.ballot,
                    c.primary.map(addr).unwrap_or_else(|| "(none)".into()),
                    secondaries.join(", ")
                );
            }
        }
        OutputFormat::Json => println!(
            "{}",
            json!({
                "table": table_json(&r.table),
                "partitions": r.partitions.iter().map(|c| json!({
                    "partition": c.gpid.partition.0,
                    "ballot": c.ballot.0,
                    "primary": c.primary.map(addr),
                    "secondaries": c.secondaries.iter().map(|s| addr(*s)).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        ),
    }
}

impl TableCmd {
    pub fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        if let TableCmd::Drop { name, yes: false, .. } = &self
            && !confirm(&format!("Drop table {name:?}? It can be recalled within the recall window."))?
        {
            anyhow::bail!("not dropped");
        }
        runtime()?.block_on(async move {
            match self {
                TableCmd::Create { name, partitions, replicas, meta } => {
                    print_table(fmt, &client(&meta)?.create_table(&name, partitions, replicas).await?)
                }
                TableCmd::Drop { name, meta, .. } => {
                    print_table(fmt, &client(&meta)?.drop_table(&name).await?)
                }
                TableCmd::Recall { name, meta } => {
                    print_table(fmt, &client(&meta)?.recall_table(&name).await?)
                }
                TableCmd::List { meta } => print_tables(fmt, &client(&meta)?.list_tables().await?),
                TableCmd::Role { name, set: None, meta, .. } => {
                    print_table(fmt, &client(&meta)?.table_role(&name).await?)
                }
                TableCmd::Role { name, set: Some(role), epoch, if_epoch, meta } => {
                    let epoch = epoch.ok_or_else(|| anyhow::anyhow!("--set needs --epoch"))?;
                    let t = client(&meta)?.set_table_role(&name, role.into(), epoch, if_epoch).await?;
                    print_table(fmt, &t)
                }
                TableCmd::Describe { name, meta } => {
                    print_route(fmt, &client(&meta)?.describe_table(&name).await?)
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
    /// The cluster's DR lease: its voters' last answers and each active table's lease (an
    /// active table takes client writes only while the cluster holds it). `--waive REASON
    /// --yes` lets the active tables write without it (risks a split brain), `--enforce` ends
    /// that.
    DrLease(super::drlease::DrLeaseCmd),
}

/// Parses a node id as printed (hex, optionally with `0x`).
fn parse_node(s: &str) -> anyhow::Result<NodeId> {
    let hex = s.trim().trim_start_matches("0x");
    u64::from_str_radix(hex, 16).map(NodeId).map_err(|_| {
        anyhow::anyhow!("node {s:?} is not a node id (16 hex digits, as `tern cluster status` prints)")
    })
}

fn print_decommissioned(fmt: OutputFormat, node: NodeId, decommissioned: bool) {
    match fmt {
        OutputFormat::Text if decommissioned => {
            println!("{node} is being drained; watch `tern cluster status`")
        }
        OutputFormat::Text => println!("{node} serves again; the balancer gives it its share back"),
        OutputFormat::Json => {
            println!("{}", json!({"node": node.to_string(), "decommissioned": decommissioned}))
        }
    }
}

fn print_status(fmt: OutputFormat, s: &ClusterStatus) {
    match fmt {
        OutputFormat::Text => {
            println!(
                "cluster {} (id {}), meta leader {}",
                s.cluster_name,
                s.cluster_id,
                s.meta_leader.unwrap_or(0)
            );
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
                    "  {} {:<22} {:<5} primaries {:>4} replicas {:>4}{memory}{}",
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
                s.tables.iter().map(|t| format!("{} ({})", t.name, t.status)).collect::<Vec<_>>().join(", ")
            );
            match &s.balancing {
                None => println!("balance: balanced"),
                Some(b) => println!("balance: in progress ({b})"),
            }
            if s.unhealthy.is_empty() {
                println!("all partitions healthy");
            } else {
                println!("{} partitions not fully healthy:", s.unhealthy.len());
                for c in &s.unhealthy {
                    println!("  {c}");
                }
            }
        }
        OutputFormat::Json => println!(
            "{}",
            json!({
                "cluster": s.cluster_name,
                "cluster_id": s.cluster_id,
                "meta_leader": s.meta_leader.unwrap_or(0),
                "nodes": s.nodes.iter().map(|n| json!({
                    "node": n.node.to_string(), "addr": n.addr, "alive": n.alive,
                    "decommissioned": n.decommissioned, "primaries": n.primaries, "replicas": n.replicas,
                    "resident_bytes": n.memory.map(|m| m.resident_bytes),
                    "huge_page_bytes": n.memory.map(|m| m.huge_page_bytes),
                })).collect::<Vec<_>>(),
                "tables": s.tables.iter().map(table_json).collect::<Vec<_>>(),
                "balanced": s.balancing.is_none(),
                "balancing": s.balancing.as_deref().unwrap_or_default(),
                "unhealthy": s.unhealthy.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            })
        ),
    }
}

impl ClusterCmd {
    pub fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        runtime()?.block_on(async move {
            match self {
                ClusterCmd::Status { meta } => print_status(fmt, &client(&meta)?.cluster_status().await?),
                ClusterCmd::Decommission { node, meta } => {
                    let node = parse_node(&node)?;
                    client(&meta)?.decommission(node).await?;
                    print_decommissioned(fmt, node, true);
                }
                ClusterCmd::Recommission { node, meta } => {
                    let node = parse_node(&node)?;
                    client(&meta)?.recommission(node).await?;
                    print_decommissioned(fmt, node, false);
                }
                ClusterCmd::DrLease(cmd) => cmd.run(fmt).await?,
            }
            Ok(())
        })
    }
}
