//! `tern kv`: every operation of the data model, against a cluster (`--meta`, `--table`) or an
//! embedded single-partition store (`--data-dir`). Both build the same requests; only where they
//! go differs. Keys and values are taken as the UTF-8 bytes of the arguments.

use std::ops::Bound;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tern_client::{ClientOptions, TableScanCursor, TernClient};
use tern_core::WriteOp;
use tern_core::mutation::{CamOp, Check, CheckAndMutate, CheckAndSet, CheckType, IncrTtl, WriteOutcome};
use tern_core::read::{
    KeyFilter, MultiGet, ReadLimits, ReadOp, ReadResult, SortKeyScan, TablePage, TableScan,
};
use tern_core::units::{parse_bytes, parse_ttl_secs};
use tern_storage::PartitionStore;

use super::OutputFormat;
use crate::embedded::Embedded;
use crate::output;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  tern kv --data-dir ./tern-data set user:1 name alice --ttl 1h\n  \
    tern kv --data-dir ./tern-data get user:1 name\n  tern kv --data-dir ./tern-data scan user:1 --prefix na\n  \
    tern kv --data-dir ./tern-data cas user:1 version --check bytes-equal --operand 3 --value 4")]
pub struct KvArgs {
    /// A cluster: its meta servers, comma-separated `host:port` (use with --table).
    #[arg(long, env = "TERN_META", value_delimiter = ',', value_name = "ADDRS", conflicts_with = "data_dir")]
    pub meta: Option<Vec<String>>,

    /// The table to use in the cluster.
    #[arg(long, env = "TERN_TABLE", requires = "meta")]
    pub table: Option<String>,

    /// Embedded mode: use the single-partition store in DIR directly (created if missing), with
    /// no servers.
    #[arg(long, env = "TERN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: KvCommand,
}

fn ttl_arg(s: &str) -> Result<u32, String> {
    parse_ttl_secs(s).map_err(|e| e.to_string())
}

fn bytes_arg(s: &str) -> Result<u64, String> {
    parse_bytes(s).map_err(|e| e.to_string())
}

fn pair_arg(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not SORT_KEY=VALUE"))
}

fn check_arg(s: &str) -> Result<CheckType, String> {
    CheckType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = CheckType::ALL.iter().map(|c| c.name()).collect();
        format!("unknown check type {s:?}; one of: {}", names.join(", "))
    })
}

/// What `cas` and `cam` check: one record of a hash key.
#[derive(Debug, Args)]
pub struct CheckArgs {
    hash_key: String,
    check_sort_key: String,
    /// The check, e.g. not-exist, bytes-equal, int-less (see `tern kv cas --help`).
    #[arg(long = "check", value_name = "CHECK", value_parser = check_arg)]
    kind: CheckType,
    /// What the value is compared with.
    #[arg(long, default_value = "")]
    operand: String,
}

impl CheckArgs {
    fn check(&self) -> Check {
        Check { kind: self.kind, operand: b(&self.operand) }
    }
}

#[derive(Debug, Args)]
pub struct Limits {
    /// Return at most N records.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
    /// Stop after about this many bytes of keys and values (e.g. 64KiB).
    #[arg(long, value_name = "SIZE", value_parser = bytes_arg)]
    max_bytes: Option<u64>,
}

impl Limits {
    fn read_limits(&self) -> anyhow::Result<ReadLimits> {
        if self.max_bytes == Some(0) {
            anyhow::bail!("--max-bytes must be at least 1 byte");
        }
        Ok(ReadLimits { max_count: self.limit, max_bytes: self.max_bytes })
    }
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct Filter {
    /// Only keys that start with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Only keys that end with this.
    #[arg(long)]
    postfix: Option<String>,
    /// Only keys that contain this.
    #[arg(long)]
    contains: Option<String>,
}

impl Filter {
    fn key_filter(&self) -> Option<KeyFilter> {
        let b = |s: &String| s.as_bytes().to_vec();
        (self.prefix.as_ref().map(|p| KeyFilter::Prefix(b(p))))
            .or(self.postfix.as_ref().map(|p| KeyFilter::Postfix(b(p))))
            .or(self.contains.as_ref().map(|p| KeyFilter::Anywhere(b(p))))
    }
}

#[derive(Debug, Args)]
pub struct Range {
    /// First sort key of the range (inclusive unless --start-exclusive).
    #[arg(long)]
    start: Option<String>,
    #[arg(long, requires = "start")]
    start_exclusive: bool,
    /// End of the range (exclusive unless --end-inclusive).
    #[arg(long)]
    end: Option<String>,
    #[arg(long, requires = "end")]
    end_inclusive: bool,
}

impl Range {
    fn bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let start = match &self.start {
            None => Bound::Unbounded,
            Some(s) if self.start_exclusive => Bound::Excluded(s.as_bytes().to_vec()),
            Some(s) => Bound::Included(s.as_bytes().to_vec()),
        };
        let end = match &self.end {
            None => Bound::Unbounded,
            Some(e) if self.end_inclusive => Bound::Included(e.as_bytes().to_vec()),
            Some(e) => Bound::Excluded(e.as_bytes().to_vec()),
        };
        (start, end)
    }
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Read one record.
    Get { hash_key: String, sort_key: String },
    /// Write one record.
    Set {
        hash_key: String,
        sort_key: String,
        /// The value (or use --value-file).
        #[arg(required_unless_present = "value_file")]
        value: Option<String>,
        /// Read the value's bytes from a file (`-` for standard input): for large or binary values.
        #[arg(long, value_name = "PATH", conflicts_with = "value")]
        value_file: Option<PathBuf>,
        /// Expire the record after this long (e.g. 30s, 1h).
        #[arg(long, value_parser = ttl_arg)]
        ttl: Option<u32>,
    },
    /// Delete one record (deleting an absent record succeeds).
    Del { hash_key: String, sort_key: String },
    /// Read several sort keys of one hash key; with none given, all of them.
    MultiGet {
        hash_key: String,
        sort_keys: Vec<String>,
        /// Keys only.
        #[arg(long)]
        no_value: bool,
        #[command(flatten)]
        limits: Limits,
    },
    /// Write several records under one hash key atomically.
    MultiSet {
        hash_key: String,
        /// SORT_KEY=VALUE pairs.
        #[arg(required = true, value_parser = pair_arg)]
        pairs: Vec<(String, String)>,
        #[arg(long, value_parser = ttl_arg)]
        ttl: Option<u32>,
    },
    /// Delete several records under one hash key atomically.
    MultiDel {
        hash_key: String,
        #[arg(required = true)]
        sort_keys: Vec<String>,
    },
    /// Add to a decimal int64 value (an absent or empty value counts as 0) and print the result.
    Incr {
        hash_key: String,
        sort_key: String,
        /// The amount to add (may be negative).
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        by: i64,
        /// Set the record to expire after this long.
        #[arg(long, value_parser = ttl_arg, conflicts_with = "clear_ttl")]
        ttl: Option<u32>,
        /// Remove the record's expiry. Without --ttl or --clear-ttl the expiry is kept.
        #[arg(long)]
        clear_ttl: bool,
    },
    /// Check-and-set: if the check on CHECK_SORT_KEY passes, write a value.
    Cas {
        #[command(flatten)]
        check: CheckArgs,
        /// Sort key to write (default: the checked one).
        #[arg(long)]
        set_sort_key: Option<String>,
        /// Value to write if the check passes.
        #[arg(long)]
        value: String,
        #[arg(long, value_parser = ttl_arg)]
        ttl: Option<u32>,
        /// Also print the checked record's value.
        #[arg(long)]
        return_check_value: bool,
    },
    /// Check-and-mutate: if the check passes, apply puts and then deletes atomically.
    Cam {
        #[command(flatten)]
        check: CheckArgs,
        /// SORT_KEY=VALUE to write if the check passes (repeatable).
        #[arg(long = "put", value_parser = pair_arg)]
        puts: Vec<(String, String)>,
        /// Sort key to delete if the check passes (repeatable).
        #[arg(long = "del")]
        dels: Vec<String>,
        /// TTL of the puts.
        #[arg(long, value_parser = ttl_arg)]
        ttl: Option<u32>,
        /// Also print the checked record's value.
        #[arg(long)]
        return_check_value: bool,
    },
    /// Scan the sort keys of one hash key, in order, by pages.
    Scan {
        hash_key: String,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        filter: Filter,
        /// Descending order.
        #[arg(long)]
        reverse: bool,
        #[arg(long)]
        no_value: bool,
        #[command(flatten)]
        limits: Limits,
        /// Continue after this sort key (from a previous page).
        #[arg(long, value_name = "SORT_KEY")]
        after: Option<String>,
        /// Follow every page to the end.
        #[arg(long)]
        all: bool,
    },
    /// Count the records of one hash key.
    Count { hash_key: String },
    /// Show the remaining TTL of a record.
    Ttl { hash_key: String, sort_key: String },
    /// Scan every record of the table by pages (unordered across hash keys).
    ScanTable {
        /// Only hash keys that start with this.
        #[arg(long)]
        hash_key_prefix: Option<String>,
        #[arg(long)]
        no_value: bool,
        #[command(flatten)]
        limits: Limits,
        /// Continue from a previous page's token.
        #[arg(long, value_name = "TOKEN")]
        resume: Option<String>,
    },
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub fn run(args: KvArgs, fmt: OutputFormat) -> anyhow::Result<()> {
    let mut target = match (args.data_dir, args.meta, args.table) {
        (Some(dir), _, _) => Target::Embedded(Box::new(Embedded::open(&dir)?)),
        (None, Some(meta), Some(table)) => {
            let rt = super::common::runtime()?;
            Target::Cluster(Box::new(Remote {
                client: TernClient::new(ClientOptions::new(meta))?,
                table,
                rt,
            }))
        }
        (None, Some(_), None) => {
            anyhow::bail!("tern kv --meta needs --table (or TERN_TABLE): which table to use")
        }
        (None, None, _) => anyhow::bail!(
            "tern kv needs a target: --meta ADDRS --table NAME for a cluster, or --data-dir DIR for an embedded store"
        ),
    };
    execute(&mut target, args.command, fmt)
}

/// Where `tern kv` sends its requests.
/// A table of a running cluster.
struct Remote {
    client: TernClient,
    table: String,
    rt: tokio::runtime::Runtime,
}

enum Target {
    Embedded(Box<Embedded>),
    Cluster(Box<Remote>),
}

impl Target {
    fn limits(&self) -> tern_core::Limits {
        match self {
            Target::Embedded(db) => *db.limits(),
            Target::Cluster(_) => tern_core::Limits::default(),
        }
    }

    fn write(&mut self, op: WriteOp) -> anyhow::Result<WriteOutcome> {
        match self {
            Target::Embedded(db) => db.write(op),
            Target::Cluster(r) => match r.rt.block_on(r.client.write(&r.table, op))? {
                WriteOutcome::Failed(e) => Err(e.into()),
                o => Ok(o),
            },
        }
    }

    fn read(&mut self, op: ReadOp) -> anyhow::Result<ReadResult> {
        match self {
            Target::Embedded(db) => Ok(db.store().read(&op)?),
            Target::Cluster(r) => {
                let (result, stale) = r.rt.block_on(r.client.read_marked(&r.table, op))?;
                if stale {
                    eprintln!(
                        "note: table {} is a standby in this cluster: the answer may lag its active cluster",
                        r.table
                    );
                }
                Ok(result)
            }
        }
    }

    /// One page of a table scan; `token` is what the previous page printed.
    fn scan_table(
        &mut self,
        scan: TableScan,
        token: Option<&str>,
    ) -> anyhow::Result<(TablePage, Option<String>)> {
        let cursor = match token {
            None => TableScanCursor::default(),
            Some(t) => parse_table_token(t)?,
        };
        match self {
            Target::Embedded(db) => {
                let mut scan = scan;
                scan.resume_token = cursor.token;
                let page = db.store().scan_table(&scan)?;
                let next = page
                    .resume_token
                    .as_ref()
                    .map(|t| table_token(&TableScanCursor { partition: 0, token: Some(t.clone()) }));
                Ok((page, next))
            }
            Target::Cluster(r) => {
                let (page, next) = r.rt.block_on(r.client.scan_table(&r.table, &cursor, &scan))?;
                Ok((page, next.as_ref().map(table_token)))
            }
        }
    }
}

/// A table-scan resume token as printed: `PARTITION.HEX` (the hex part may be empty).
fn table_token(c: &TableScanCursor) -> String {
    format!("{}.{}", c.partition, c.token.as_deref().map(output::hex).unwrap_or_default())
}

fn parse_table_token(t: &str) -> anyhow::Result<TableScanCursor> {
    let bad = || anyhow::anyhow!("--resume {t:?} is not a token printed by scan-table");
    let (p, hex) = t.split_once('.').ok_or_else(bad)?;
    let partition = p.parse().map_err(|_| bad())?;
    let token = if hex.is_empty() { None } else { Some(output::unhex(hex).ok_or_else(bad)?) };
    Ok(TableScanCursor { partition, token })
}

fn execute(target: &mut Target, command: KvCommand, fmt: OutputFormat) -> anyhow::Result<()> {
    let limits = target.limits();
    let check_keys = |hk: &str, sk: Option<&str>| -> anyhow::Result<()> {
        limits.check_hash_key(hk.as_bytes())?;
        if let Some(sk) = sk {
            limits.check_sort_key(sk.as_bytes())?;
        }
        Ok(())
    };
    match command {
        KvCommand::Get { hash_key, sort_key } => {
            check_keys(&hash_key, Some(&sort_key))?;
            match target.read(ReadOp::Get { hash_key: b(&hash_key), sort_key: b(&sort_key) })? {
                ReadResult::Get(v) => output::value(fmt, v.as_deref()),
                other => anyhow::bail!("unexpected answer to get: {other:?}"),
            }
        }
        KvCommand::Set { hash_key, sort_key, value, value_file, ttl } => {
            let value = match (value, value_file) {
                (Some(v), _) => b(&v),
                (None, Some(path)) => read_value_file(&path)?,
                (None, None) => anyhow::bail!("give a VALUE or --value-file"),
            };
            target.write(WriteOp::Set {
                hash_key: b(&hash_key),
                sort_key: b(&sort_key),
                value,
                ttl_secs: ttl.unwrap_or(0),
            })?;
            output::ok(fmt);
        }
        KvCommand::Del { hash_key, sort_key } => {
            target.write(WriteOp::Del { hash_key: b(&hash_key), sort_key: b(&sort_key) })?;
            output::ok(fmt);
        }
        KvCommand::MultiGet { hash_key, sort_keys, no_value, limits: l } => {
            check_keys(&hash_key, None)?;
            let request = MultiGet::Keys {
                sort_keys: sort_keys.iter().map(|s| b(s)).collect(),
                no_value,
                limits: l.read_limits()?,
            };
            match target.read(ReadOp::MultiGet { hash_key: b(&hash_key), request })? {
                ReadResult::MultiGet(r) => output::records(fmt, &r.records, no_value, None, r.complete),
                other => anyhow::bail!("unexpected answer to multi-get: {other:?}"),
            }
        }
        KvCommand::MultiSet { hash_key, pairs, ttl } => {
            let entries = pairs.iter().map(|(k, v)| (b(k), b(v))).collect();
            target.write(WriteOp::MultiSet {
                hash_key: b(&hash_key),
                entries,
                ttl_secs: ttl.unwrap_or(0),
            })?;
            output::ok(fmt);
        }
        KvCommand::MultiDel { hash_key, sort_keys } => {
            target.write(WriteOp::MultiDel {
                hash_key: b(&hash_key),
                sort_keys: sort_keys.iter().map(|s| b(s)).collect(),
            })?;
            output::ok(fmt);
        }
        KvCommand::Incr { hash_key, sort_key, by, ttl, clear_ttl } => {
            let ttl = match (ttl, clear_ttl) {
                (Some(n), _) => IncrTtl::Set(n),
                (None, true) => IncrTtl::Clear,
                (None, false) => IncrTtl::Keep,
            };
            match target.write(WriteOp::Incr {
                hash_key: b(&hash_key),
                sort_key: b(&sort_key),
                delta: by,
                ttl,
            })? {
                WriteOutcome::Incr { new_value } => output::incr(fmt, new_value),
                other => anyhow::bail!("unexpected outcome of incr: {other:?}"),
            }
        }
        KvCommand::Cas { check: c, set_sort_key, value, ttl, return_check_value } => {
            let op = WriteOp::CheckAndSet(CheckAndSet {
                hash_key: b(&c.hash_key),
                set_sort_key: b(set_sort_key.as_deref().unwrap_or(&c.check_sort_key)),
                check_sort_key: b(&c.check_sort_key),
                check: c.check(),
                set_value: b(&value),
                set_ttl_secs: ttl.unwrap_or(0),
                return_check_value,
            });
            print_checked(fmt, target.write(op)?)?;
        }
        KvCommand::Cam { check: c, puts, dels, ttl, return_check_value } => {
            let mut mutations: Vec<CamOp> = puts
                .iter()
                .map(|(k, v)| CamOp::Put { sort_key: b(k), value: b(v), ttl_secs: ttl.unwrap_or(0) })
                .collect();
            mutations.extend(dels.iter().map(|k| CamOp::Delete { sort_key: b(k) }));
            let op = WriteOp::CheckAndMutate(CheckAndMutate {
                hash_key: b(&c.hash_key),
                check_sort_key: b(&c.check_sort_key),
                check: c.check(),
                mutations,
                return_check_value,
            });
            print_checked(fmt, target.write(op)?)?;
        }
        KvCommand::Scan { hash_key, range, filter, reverse, no_value, limits: l, after, all } => {
            check_keys(&hash_key, None)?;
            let (start, end) = range.bounds();
            let mut spec = SortKeyScan {
                start,
                end,
                filter: filter.key_filter(),
                reverse,
                no_value,
                limits: l.read_limits()?,
            };
            if let Some(a) = &after {
                spec = spec.resume_after(a.as_bytes());
            }
            let mut records = Vec::new();
            let resume = loop {
                let page = match target.read(ReadOp::Scan { hash_key: b(&hash_key), scan: spec.clone() })? {
                    ReadResult::Scan(p) => p,
                    other => anyhow::bail!("unexpected answer to scan: {other:?}"),
                };
                records.extend(page.records);
                match page.resume {
                    Some(r) if all => spec = spec.resume_after(&r),
                    other => break other,
                }
            };
            output::records(fmt, &records, no_value, resume.as_deref(), true);
        }
        KvCommand::Count { hash_key } => {
            check_keys(&hash_key, None)?;
            match target.read(ReadOp::Count { hash_key: b(&hash_key) })? {
                ReadResult::Count(n) => output::count(fmt, n),
                other => anyhow::bail!("unexpected answer to count: {other:?}"),
            }
        }
        KvCommand::Ttl { hash_key, sort_key } => {
            check_keys(&hash_key, Some(&sort_key))?;
            match target.read(ReadOp::Ttl { hash_key: b(&hash_key), sort_key: b(&sort_key) })? {
                ReadResult::Ttl(t) => output::ttl(fmt, t),
                other => anyhow::bail!("unexpected answer to ttl: {other:?}"),
            }
        }
        KvCommand::ScanTable { hash_key_prefix, no_value, limits: l, resume } => {
            let spec = TableScan {
                resume_token: None,
                hash_key_filter: hash_key_prefix.map(|p| KeyFilter::Prefix(b(&p))),
                sort_key_filter: None,
                no_value,
                limits: l.read_limits()?,
            };
            let (page, next) = target.scan_table(spec, resume.as_deref())?;
            output::table_page(fmt, &page, next.as_deref(), no_value);
        }
    }
    Ok(())
}

fn print_checked(fmt: OutputFormat, outcome: WriteOutcome) -> anyhow::Result<()> {
    match outcome {
        WriteOutcome::Checked(c) => {
            output::checked(fmt, &c);
            Ok(())
        }
        other => anyhow::bail!("unexpected outcome of a checked write: {other:?}"),
    }
}

/// Reads a value from `path`, or from standard input when `path` is `-`.
fn read_value_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut buf).context("read the value from standard input")?;
    } else {
        buf = std::fs::read(path).with_context(|| format!("read --value-file {}", path.display()))?;
    }
    Ok(buf)
}
