//! `tern dup …`: duplication links that ship a table's writes to a table of another cluster.
//! Every verb talks to this cluster's meta servers (`--meta`); `add --mode two-way` also talks to
//! the other cluster's (`--to-meta`).

mod output;
mod seed;

use clap::{Args, Subcommand, ValueEnum};
use tern_client::AdminClient;
use tern_client::admin::NewLink;
use tern_core::{LinkChange, LinkMode};

use self::output::{print_changed, print_conflicts, print_list, print_pair, print_status};
use super::OutputFormat;
use super::common::{MetaAddrs, bytes_arg, confirm, runtime};

const AFTER_HELP: &str = "\
Examples:
  tern dup add --meta a1:34601 --table users --to dc-b --to-meta b1:34601,b2:34601
  tern dup add --meta a1:34601 --table users --to dc-b --to-meta b1:34601 --mode two-way
  tern dup add --meta a1:34601 --table users --to dc-b --to-meta b1:34601 \\
      --seed-from-backup --target s3://backups/tern --endpoint http://127.0.0.1:9000
  tern dup set-throttle --meta a1:34601 3 10MiB
  tern dup status --meta a1:34601 --table users
  tern dup pause --meta a1:34601 3
  tern dup conflicts --meta a1:34601 3 --output json";

/// Links ship every write of a table, partition by partition, to a table of another cluster,
/// where it applies by last-writer-wins on the write's timetag. A link lives in the source
/// cluster's meta servers; its status goes init → syncing-checkpoint → shipping ⇄ paused →
/// removed (removal is final).
#[derive(Debug, Subcommand)]
#[command(after_help = AFTER_HELP)]
pub enum DupCmd {
    /// Add a link from a table of this cluster to a table of another cluster.
    ///
    /// The remote table must exist (any partition count). Without --full-sync, shipping starts,
    /// in each partition, from the moment its primary picks the link up: records already in the
    /// table are not copied. With --full-sync, each partition first copies its records (the
    /// link shows `syncing-checkpoint` and per-partition progress in `tern dup status`), then
    /// ships its log from where the copy began. With --seed-from-backup, the remote table is
    /// created from a backup of this table and the link ships only the log written since
    /// (docs/backup.md, "Seeding a duplication peer"). Cluster names and ids must differ.
    Add(Box<AddArgs>),
    /// List links with their lag summed over partitions.
    List {
        /// Only links from this table.
        #[arg(long)]
        table: Option<String>,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Per-partition progress of links: confirmed and committed decrees, how far behind in
    /// decrees, bytes and seconds, shipped and failed counts, each partition's share of the
    /// throttle and the wire bytes per second it sends, the last error, conflicts.
    Status {
        /// Only links from this table.
        #[arg(long)]
        table: Option<String>,
        /// Only this link.
        #[arg(long, value_name = "ID")]
        link: Option<u64>,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Stop shipping on a link; the log is held from where it stopped until it resumes.
    Pause {
        /// The link's id (see `tern dup list`).
        id: u64,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Resume shipping on a paused link, from where it stopped.
    Resume {
        /// The link's id (see `tern dup list`).
        id: u64,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Remove a link for good: shipping stops, replicas stop holding log for it. A two-way
    /// pair is two links: remove the other one in the other cluster too.
    Remove {
        /// The link's id (see `tern dup list`).
        id: u64,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Limit the bytes per second a link ships: wire bytes (the encoded size of every request
    /// sent to the other cluster), summed over all its partitions' primaries, full sync and
    /// resync included.
    ///
    /// The meta leader splits the limit among the partitions by what each needs, and each
    /// primary throttles at its share: a partition with little to ship keeps a small share and
    /// the rest goes to the busy ones. `tern dup status` shows each partition's share and the
    /// rate it sends.
    SetThrottle {
        /// The link's id (see `tern dup list`).
        id: u64,
        /// Wire bytes per second for the whole link, with an optional unit (e.g. 10MiB); 0 or
        /// `unlimited` for no limit.
        #[arg(value_name = "BYTES_PER_SEC", value_parser = rate_arg)]
        bytes_per_sec: u64,
        #[command(flatten)]
        meta: MetaAddrs,
    },
    /// Show a link's conflicts, both kinds: shipped writes that lost last-writer-wins to a
    /// newer record of the remote cluster, and records written in the remote cluster that a
    /// newer shipped write replaced. Totals, then the most recent ones with both timetags and
    /// which side won (how many are kept is the meta option --dup-conflict-journal). Entries a
    /// replica server had to drop while its meta server was unreachable are counted.
    Conflicts {
        /// The link's id (see `tern dup list`).
        id: u64,
        #[command(flatten)]
        meta: MetaAddrs,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Ship this table to the remote table.
    OneWay,
    /// Also add the reverse link in the remote cluster (its meta servers are told ours, the
    /// --meta addresses, which must be reachable from there).
    TwoWay,
}

impl From<Mode> for LinkMode {
    fn from(m: Mode) -> LinkMode {
        match m {
            Mode::OneWay => LinkMode::OneWay,
            Mode::TwoWay => LinkMode::TwoWay,
        }
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The table of this cluster to ship.
    #[arg(long, env = "TERN_TABLE")]
    table: String,
    /// The remote cluster's name (as its meta servers were started with --cluster-name).
    #[arg(long, value_name = "CLUSTER", env = "TERN_DUP_TO")]
    to: String,
    /// The remote cluster's meta servers, comma-separated `host:port`, reachable from this
    /// cluster's meta servers and replica servers.
    #[arg(long, value_name = "ADDRS", env = "TERN_DUP_TO_META", value_delimiter = ',')]
    to_meta: Vec<String>,
    /// The table in the remote cluster (default: the same name).
    #[arg(long, value_name = "TABLE", env = "TERN_DUP_REMOTE_TABLE")]
    remote_table: Option<String>,
    /// one-way, or two-way: also the reverse link, from the remote table back to this one.
    #[arg(long, value_enum, default_value_t = Mode::OneWay, env = "TERN_DUP_MODE")]
    mode: Mode,
    /// First copy the table's existing records (written in this cluster) to the remote table,
    /// then ship the log from where the copy began. Safe to interrupt: a partition whose
    /// primary changes starts its copy again.
    #[arg(long, env = "TERN_DUP_FULL_SYNC")]
    full_sync: bool,
    /// Wire bytes per second the link may ship, summed over all its partitions (e.g. 10MiB);
    /// 0 or `unlimited` for no limit. See `tern dup set-throttle --help`.
    #[arg(long, value_name = "N", value_parser = rate_arg, env = "TERN_DUP_MAX_BYTES_PER_SEC")]
    max_bytes_per_sec: Option<u64>,
    #[command(flatten)]
    seed: seed::SeedArgs,
    #[command(flatten)]
    meta: MetaAddrs,
}

fn rate_arg(s: &str) -> Result<u64, String> {
    if s.trim().eq_ignore_ascii_case("unlimited") {
        return Ok(0);
    }
    bytes_arg(s)
}

fn client(addrs: &[String]) -> anyhow::Result<AdminClient> {
    Ok(AdminClient::connect(addrs.to_vec())?)
}

/// Not an error, but easy to miss: said where the operator looks.
fn note_no_sync(a: &AddArgs) {
    if !a.full_sync {
        eprintln!(
            "note: table {} ships only writes from now on; records already in it are not copied \
             to {} (remove the link and add it with --full-sync to copy them first)",
            a.table, a.to
        );
    }
}

async fn add(fmt: OutputFormat, a: AddArgs) -> anyhow::Result<()> {
    let to_meta: Vec<String> =
        a.to_meta.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if to_meta.is_empty() {
        anyhow::bail!("unknown cluster {}: give its meta addresses (--to-meta)", a.to);
    }
    if a.seed.wanted() {
        if a.full_sync {
            anyhow::bail!("--seed-from-backup and --full-sync are two ways to copy the table: pick one");
        }
        if a.mode == Mode::TwoWay {
            anyhow::bail!("--seed-from-backup adds a one-way link; add the reverse link afterwards");
        }
        let link = seed::LinkSide {
            table: a.table.clone(),
            to: a.to.clone(),
            remote_table: a.remote_table.clone().unwrap_or_else(|| a.table.clone()),
            to_meta,
            max_bytes_per_sec: a.max_bytes_per_sec.unwrap_or(0),
            meta: a.meta.meta.clone(),
        };
        return seed::run(fmt, link, &a.seed).await;
    }
    if a.seed.dry_run {
        anyhow::bail!("--dry-run is for --seed-from-backup");
    }
    let admin = client(&a.meta.meta)?;
    let link = NewLink {
        table: a.table.clone(),
        remote_cluster: a.to.clone(),
        remote_metas: to_meta.clone(),
        remote_table: a.remote_table.clone(),
        full_sync: a.full_sync,
        max_bytes_per_sec: a.max_bytes_per_sec.unwrap_or(0),
        mode: a.mode.into(),
    };
    match a.mode {
        Mode::OneWay => {
            let added = admin.add_link(&link).await?;
            note_no_sync(&a);
            print_changed(fmt, &added, &admin.table_states().await.unwrap_or_default());
        }
        Mode::TwoWay => {
            let pair = admin.add_two_way(&link).await?;
            note_no_sync(&a);
            let tables = admin.table_states().await.unwrap_or_default();
            let remote_tables = client(&to_meta)?.table_states().await.unwrap_or_default();
            print_pair(fmt, &pair, &tables, &remote_tables);
        }
    }
    Ok(())
}

impl DupCmd {
    pub fn run(self, fmt: OutputFormat) -> anyhow::Result<()> {
        if let DupCmd::Remove { id, yes: false, .. } = &self
            && !confirm(&format!("Remove duplication link {id}? Removal is final."))?
        {
            anyhow::bail!("not removed");
        }
        runtime()?.block_on(async move {
            match self {
                DupCmd::Add(a) => add(fmt, *a).await,
                DupCmd::List { table, meta } => {
                    let c = client(&meta.meta)?;
                    let links = c.links(table.as_deref()).await?;
                    print_list(fmt, &links, &c.table_states().await?);
                    Ok(())
                }
                DupCmd::Status { table, link, meta } => {
                    let c = client(&meta.meta)?;
                    let mut links = c.links(table.as_deref()).await?;
                    if let Some(id) = link {
                        links.retain(|s| s.link.id == id);
                        if links.is_empty() {
                            anyhow::bail!("no link {id} (see `tern dup list`)");
                        }
                    }
                    let mut incoming = c.incoming(table.as_deref()).await?;
                    if link.is_some() {
                        incoming.clear();
                    }
                    let now_ms = tern_core::Clock::now_ms(&tern_storage::SystemClock);
                    print_status(fmt, &links, &incoming, &c.table_states().await?, now_ms);
                    Ok(())
                }
                DupCmd::Pause { id, meta } => change(fmt, &meta, id, LinkChange::Pause).await,
                DupCmd::Resume { id, meta } => change(fmt, &meta, id, LinkChange::Resume).await,
                DupCmd::Remove { id, meta, .. } => change(fmt, &meta, id, LinkChange::Remove).await,
                DupCmd::SetThrottle { id, bytes_per_sec, meta } => {
                    let change_to = LinkChange::SetThrottle { max_bytes_per_sec: bytes_per_sec };
                    change(fmt, &meta, id, change_to).await
                }
                DupCmd::Conflicts { id, meta } => {
                    print_conflicts(fmt, id, &client(&meta.meta)?.link_conflicts(id).await?);
                    Ok(())
                }
            }
        })
    }
}

async fn change(fmt: OutputFormat, meta: &MetaAddrs, id: u64, change: LinkChange) -> anyhow::Result<()> {
    let c = client(&meta.meta)?;
    let s = c.change_link(id, change).await?;
    print_changed(fmt, &s, &c.table_states().await.unwrap_or_default());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::output::throttle;
    use super::*;
    use crate::cli::common::human_bytes;

    #[test]
    fn sizes_print_in_the_units_they_are_given_in() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(300), "300B");
        assert_eq!(human_bytes(10 << 20), "10MiB");
        assert_eq!(human_bytes(1536), "1.5KiB");
        assert_eq!(throttle(0), "unlimited");
        assert_eq!(rate_arg("unlimited"), Ok(0));
        assert_eq!(rate_arg("10MiB"), Ok(10 << 20));
        assert!(rate_arg("ten").is_err());
    }
}
