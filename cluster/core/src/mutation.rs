//! Write operations as they are logged and replicated.
//!
//! A [`Mutation`] is what one decree carries: one or more client writes ([`WriteOp`]) that a
//! primary batched together. Every replica applies a mutation with the same result, so
//! applying must be deterministic: TTLs and expiry checks during a write use the mutation's
//! timetag as "now", never a local clock (see `docs/data-model.md`).
//!
//! A mutation may also carry partition-level state the primary replicates with it: the
//! partition's *purge horizon* (`purge_below`), below which replicas may drop dead records
//! (tombstones, expired records) because no duplicated write older than it can arrive any more
//! (`docs/duplication.md`). Every replica applies it at the entry's decree, so every replica
//! purges by the same bound.
//!
//! Encoding, all integers varint unless noted. Version 1 (written whenever there is no purge
//! horizon, so every mutation of a table without one is byte-identical to before):
//!
//! ```text
//! mutation = version:u8(=1) op_count op*
//!          | version:u8(=2) op_count op* purge_below:u64(timetag)
//! op       = tag:u8 fields...      (tags and fields in `encode_op`; never reuse a tag)
//! bytes    = len bytes
//! ```

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::resolved::{self, RecordState, ResolvedOutcome};
use crate::timetag::Timetag;

pub const MUTATION_V1: u8 = 1;
/// Version 1 followed by the purge horizon.
pub const MUTATION_V2: u8 = 2;

/// One client write. Within one op, everything happens atomically; ops batched in one
/// mutation are independent of each other (one failing does not undo another).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Store `value` under (hash_key, sort_key); `ttl_secs` 0 means no expiry.
    Set { hash_key: Vec<u8>, sort_key: Vec<u8>, value: Vec<u8>, ttl_secs: u32 },
    /// Remove (hash_key, sort_key); removing an absent record succeeds.
    Del { hash_key: Vec<u8>, sort_key: Vec<u8> },
    /// Several sets under one hash key, all with the same TTL.
    MultiSet { hash_key: Vec<u8>, entries: Vec<(Vec<u8>, Vec<u8>)>, ttl_secs: u32 },
    /// Several deletes under one hash key.
    MultiDel { hash_key: Vec<u8>, sort_keys: Vec<Vec<u8>> },
    /// Add `delta` to a decimal int64 value (absent or empty counts as 0).
    Incr { hash_key: Vec<u8>, sort_key: Vec<u8>, delta: i64, ttl: IncrTtl },
    /// If the check on `check_sort_key` passes, set `set_sort_key` to `set_value`.
    CheckAndSet(CheckAndSet),
    /// If the check on `check_sort_key` passes, apply every mutation in `mutations`.
    CheckAndMutate(CheckAndMutate),
    /// A record's exact new state: `value` (with an absolute expiry, 0 = none) or, when
    /// `value` is `None`, a tombstone. `timetag: None` stamps the entry's own timetag (a write
    /// the primary resolved: the result of an incr or a check-and-*); `Some` carries a write
    /// duplicated from another cluster with its origin timetag. Like every write it applies
    /// only if its timetag is not older than the stored record's (last-writer-wins).
    Put {
        hash_key: Vec<u8>,
        sort_key: Vec<u8>,
        value: Option<Vec<u8>>,
        expire_ts: u32,
        timetag: Option<Timetag>,
    },
    /// An incr / check_and_set / check_and_mutate as the primary resolved it: the new state of
    /// every record it writes (stamped with the entry's timetag) and the client's outcome. Only
    /// primaries create it (see `resolved.rs`); clients cannot send it.
    Resolved { hash_key: Vec<u8>, records: Vec<RecordState>, outcome: ResolvedOutcome },
}

/// A check_and_set (Pegasus's `check_and_set_request`): if the check on `check_sort_key`
/// passes, set `set_sort_key` to `set_value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckAndSet {
    pub hash_key: Vec<u8>,
    pub check_sort_key: Vec<u8>,
    pub check: Check,
    pub set_sort_key: Vec<u8>,
    pub set_value: Vec<u8>,
    /// 0 means no expiry.
    pub set_ttl_secs: u32,
    /// Also answer with the checked record's value.
    pub return_check_value: bool,
}

/// A check_and_mutate (Pegasus's `check_and_mutate_request`): if the check on `check_sort_key`
/// passes, apply every mutation in `mutations`, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckAndMutate {
    pub hash_key: Vec<u8>,
    pub check_sort_key: Vec<u8>,
    pub check: Check,
    pub mutations: Vec<CamOp>,
    /// Also answer with the checked record's value.
    pub return_check_value: bool,
}

/// What an incr does to the record's TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncrTtl {
    /// Keep the existing expiry (a new record gets none).
    Keep,
    /// Remove any expiry.
    Clear,
    /// Expire `n` seconds after the write (n > 0).
    Set(u32),
}

/// One write inside a check_and_mutate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CamOp {
    Put { sort_key: Vec<u8>, value: Vec<u8>, ttl_secs: u32 },
    Delete { sort_key: Vec<u8> },
}

/// A condition on one record's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckType,
    /// The value compared against (ignored by the existence checks).
    pub operand: Vec<u8>,
}

macro_rules! check_types {
    ($($variant:ident = $num:literal, $name:literal, $doc:literal;)*) => {
        /// The check types of check_and_set / check_and_mutate. Numbers are part of the log
        /// format and the wire protocol.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum CheckType {
            $(#[doc = $doc] $variant = $num,)*
        }

        impl CheckType {
            pub const ALL: &'static [CheckType] = &[$(CheckType::$variant,)*];

            pub fn from_u8(n: u8) -> Option<CheckType> {
                match n { $($num => Some(CheckType::$variant),)* _ => None }
            }

            /// Kebab-case name used by the CLI, e.g. `int-less`.
            pub fn name(self) -> &'static str {
                match self { $(CheckType::$variant => $name,)* }
            }

            pub fn from_name(s: &str) -> Option<CheckType> {
                match s { $($name => Some(CheckType::$variant),)* _ => None }
            }
        }
    };
}

check_types! {
    NoCheck = 0, "no-check", "Always passes.";
    NotExist = 1, "not-exist", "Passes if the record is absent.";
    NotExistOrEmpty = 2, "not-exist-or-empty", "Passes if the record is absent or its value is empty.";
    Exist = 3, "exist", "Passes if the record exists.";
    NotEmpty = 4, "not-empty", "Passes if the record exists with a non-empty value.";
    MatchAnywhere = 5, "match-anywhere", "Passes if the value contains the operand.";
    MatchPrefix = 6, "match-prefix", "Passes if the value starts with the operand.";
    MatchPostfix = 7, "match-postfix", "Passes if the value ends with the operand.";
    BytesLess = 8, "bytes-less", "Passes if value < operand, bytewise.";
    BytesLessOrEqual = 9, "bytes-less-or-equal", "Passes if value <= operand, bytewise.";
    BytesEqual = 10, "bytes-equal", "Passes if value == operand.";
    BytesGreaterOrEqual = 11, "bytes-greater-or-equal", "Passes if value >= operand, bytewise.";
    BytesGreater = 12, "bytes-greater", "Passes if value > operand, bytewise.";
    IntLess = 13, "int-less", "Passes if value < operand, both decimal int64.";
    IntLessOrEqual = 14, "int-less-or-equal", "Passes if value <= operand, both decimal int64.";
    IntEqual = 15, "int-equal", "Passes if value == operand, both decimal int64.";
    IntGreaterOrEqual = 16, "int-greater-or-equal", "Passes if value >= operand, both decimal int64.";
    IntGreater = 17, "int-greater", "Passes if value > operand, both decimal int64.";
}

impl CheckType {
    pub fn is_int_compare(self) -> bool {
        (CheckType::IntLess as u8..=CheckType::IntGreater as u8).contains(&(self as u8))
    }
}

/// The unit of replication: what one decree carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mutation {
    pub ops: Vec<WriteOp>,
    /// A new purge horizon for the partition (see the module docs), carried by an entry the
    /// primary logs for it.
    pub purge_below: Option<Timetag>,
}

/// The result of applying one [`WriteOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// set, del, multi_set, multi_del.
    Done,
    /// incr: the value after the increment.
    Incr { new_value: i64 },
    /// check_and_set / check_and_mutate.
    Checked(CheckOutcome),
    /// A put that lost last-writer-wins: the stored record's timetag is newer, nothing was
    /// written. Deterministic like every outcome.
    Superseded { stored: Timetag },
    /// A put that won last-writer-wins over a stored record (tombstones included): it was
    /// written, and `stored` is the timetag of the record it replaced. A put that found no
    /// record reports `Done`. Deterministic like every outcome.
    Replaced { stored: Timetag },
    /// The op was refused; nothing of it was written. Deterministic: every replica refuses it.
    Failed(Error),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Whether the check passed (and so the writes were applied).
    pub passed: bool,
    /// The checked record's value when `return_check_value` was set: `Some(None)` if it was
    /// absent, `Some(Some(v))` if present, `None` if not requested.
    pub check_value: Option<Option<Vec<u8>>>,
}

impl WriteOp {
    /// Bytes of keys and values carried: what batch limits count.
    pub fn payload_bytes(&self) -> u64 {
        op_payload_bytes(self)
    }

    /// The hash key every record of this op lives under.
    pub fn hash_key(&self) -> &[u8] {
        match self {
            WriteOp::Set { hash_key, .. }
            | WriteOp::Del { hash_key, .. }
            | WriteOp::MultiSet { hash_key, .. }
            | WriteOp::MultiDel { hash_key, .. }
            | WriteOp::Incr { hash_key, .. }
            | WriteOp::Put { hash_key, .. }
            | WriteOp::Resolved { hash_key, .. } => hash_key,
            WriteOp::CheckAndSet(c) => &c.hash_key,
            WriteOp::CheckAndMutate(c) => &c.hash_key,
        }
    }

    /// Short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            WriteOp::Set { .. } => "set",
            WriteOp::Del { .. } => "del",
            WriteOp::MultiSet { .. } => "multi_set",
            WriteOp::MultiDel { .. } => "multi_del",
            WriteOp::Incr { .. } => "incr",
            WriteOp::CheckAndSet(_) => "check_and_set",
            WriteOp::CheckAndMutate(_) => "check_and_mutate",
            WriteOp::Put { .. } => "put",
            WriteOp::Resolved { .. } => "resolved",
        }
    }

    /// Whether the op reads before it writes (and so is resolved by the primary).
    pub fn is_atomic(&self) -> bool {
        matches!(self, WriteOp::Incr { .. } | WriteOp::CheckAndSet(_) | WriteOp::CheckAndMutate(_))
    }
}

// Op tags of encoding version 1. Never reuse a number.
const TAG_SET: u8 = 1;
const TAG_DEL: u8 = 2;
const TAG_MULTI_SET: u8 = 3;
const TAG_MULTI_DEL: u8 = 4;
const TAG_INCR: u8 = 5;
const TAG_CHECK_AND_SET: u8 = 6;
const TAG_CHECK_AND_MUTATE: u8 = 7;
const TAG_PUT: u8 = 8;
const TAG_RESOLVED: u8 = 9;
const PUT_HAS_VALUE: u8 = 1;
const PUT_HAS_TIMETAG: u8 = 2;
const CAM_PUT: u8 = 1;
const CAM_DELETE: u8 = 2;
const INCR_TTL_KEEP: u8 = 0;
const INCR_TTL_CLEAR: u8 = 1;
const INCR_TTL_SET: u8 = 2;

impl Mutation {
    pub fn new(ops: Vec<WriteOp>) -> Mutation {
        Mutation { ops, purge_below: None }
    }

    /// A mutation that only raises the partition's purge horizon.
    pub fn purge_horizon(below: Timetag) -> Mutation {
        Mutation { ops: vec![], purge_below: Some(below) }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len_hint());
        let version = if self.purge_below.is_some() { MUTATION_V2 } else { MUTATION_V1 };
        w.u8(version).varint(self.ops.len() as u64);
        for op in &self.ops {
            encode_op(&mut w, op);
        }
        if let Some(t) = self.purge_below {
            w.varint(t.as_u64());
        }
        w.finish()
    }

    pub fn decode(data: &[u8]) -> Result<Mutation> {
        let mut r = Reader::new(data, "mutation");
        let version = r.u8("version")?;
        if version != MUTATION_V1 && version != MUTATION_V2 {
            return Err(Error::corruption(format!(
                "mutation has unknown encoding version {version} (this build reads versions {MUTATION_V1} and {MUTATION_V2})"
            )));
        }
        let count = r.len("op count")?;
        let mut ops = Vec::with_capacity(count);
        for _ in 0..count {
            ops.push(decode_op(&mut r)?);
        }
        let purge_below =
            if version == MUTATION_V2 { Some(Timetag::from_u64(r.varint("purge horizon")?)) } else { None };
        r.finish()?;
        Ok(Mutation { ops, purge_below })
    }

    /// Bytes of keys and values carried: what batch limits and throttles count.
    pub fn payload_bytes(&self) -> u64 {
        self.ops.iter().map(op_payload_bytes).sum()
    }

    fn encoded_len_hint(&self) -> usize {
        2 + self.payload_bytes() as usize + 8 * self.ops.len()
    }
}

pub(crate) fn op_payload_bytes(op: &WriteOp) -> u64 {
    let n = |b: &Vec<u8>| b.len() as u64;
    match op {
        WriteOp::Set { hash_key, sort_key, value, .. } => n(hash_key) + n(sort_key) + n(value),
        WriteOp::Del { hash_key, sort_key } => n(hash_key) + n(sort_key),
        WriteOp::MultiSet { hash_key, entries, .. } => {
            n(hash_key) + entries.iter().map(|(s, v)| n(s) + n(v)).sum::<u64>()
        }
        WriteOp::MultiDel { hash_key, sort_keys } => n(hash_key) + sort_keys.iter().map(n).sum::<u64>(),
        WriteOp::Incr { hash_key, sort_key, .. } => n(hash_key) + n(sort_key),
        WriteOp::Put { hash_key, sort_key, value, .. } => {
            n(hash_key) + n(sort_key) + value.as_ref().map_or(0, n)
        }
        WriteOp::Resolved { hash_key, records, .. } => {
            n(hash_key) + records.iter().map(|r| n(&r.sort_key) + r.value.as_ref().map_or(0, n)).sum::<u64>()
        }
        WriteOp::CheckAndSet(c) => {
            n(&c.hash_key) + n(&c.check_sort_key) + n(&c.check.operand) + n(&c.set_sort_key) + n(&c.set_value)
        }
        WriteOp::CheckAndMutate(c) => {
            n(&c.hash_key)
                + n(&c.check_sort_key)
                + n(&c.check.operand)
                + c.mutations
                    .iter()
                    .map(|m| match m {
                        CamOp::Put { sort_key, value, .. } => n(sort_key) + n(value),
                        CamOp::Delete { sort_key } => n(sort_key),
                    })
                    .sum::<u64>()
        }
    }
}

fn encode_op(w: &mut Writer, op: &WriteOp) {
    match op {
        WriteOp::Set { hash_key, sort_key, value, ttl_secs } => {
            w.u8(TAG_SET).bytes(hash_key).bytes(sort_key).bytes(value).varint((*ttl_secs).into());
        }
        WriteOp::Del { hash_key, sort_key } => {
            w.u8(TAG_DEL).bytes(hash_key).bytes(sort_key);
        }
        WriteOp::MultiSet { hash_key, entries, ttl_secs } => {
            w.u8(TAG_MULTI_SET).bytes(hash_key).varint((*ttl_secs).into());
            w.varint(entries.len() as u64);
            for (sk, v) in entries {
                w.bytes(sk).bytes(v);
            }
        }
        WriteOp::MultiDel { hash_key, sort_keys } => {
            w.u8(TAG_MULTI_DEL).bytes(hash_key).varint(sort_keys.len() as u64);
            for sk in sort_keys {
                w.bytes(sk);
            }
        }
        WriteOp::Incr { hash_key, sort_key, delta, ttl } => {
            w.u8(TAG_INCR).bytes(hash_key).bytes(sort_key).varint_i64(*delta);
            match ttl {
                IncrTtl::Keep => w.u8(INCR_TTL_KEEP),
                IncrTtl::Clear => w.u8(INCR_TTL_CLEAR),
                IncrTtl::Set(n) => w.u8(INCR_TTL_SET).varint((*n).into()),
            };
        }
        WriteOp::CheckAndSet(c) => {
            w.u8(TAG_CHECK_AND_SET).bytes(&c.hash_key).bytes(&c.check_sort_key);
            w.u8(c.check.kind as u8).bytes(&c.check.operand);
            w.bytes(&c.set_sort_key).bytes(&c.set_value).varint(c.set_ttl_secs.into());
            w.u8(u8::from(c.return_check_value));
        }
        WriteOp::CheckAndMutate(c) => {
            w.u8(TAG_CHECK_AND_MUTATE).bytes(&c.hash_key).bytes(&c.check_sort_key);
            w.u8(c.check.kind as u8).bytes(&c.check.operand);
            w.varint(c.mutations.len() as u64);
            for m in &c.mutations {
                match m {
                    CamOp::Put { sort_key, value, ttl_secs } => {
                        w.u8(CAM_PUT).bytes(sort_key).bytes(value).varint((*ttl_secs).into());
                    }
                    CamOp::Delete { sort_key } => {
                        w.u8(CAM_DELETE).bytes(sort_key);
                    }
                }
            }
            w.u8(u8::from(c.return_check_value));
        }
        WriteOp::Put { hash_key, sort_key, value, expire_ts, timetag } => {
            let flags = if value.is_some() { PUT_HAS_VALUE } else { 0 }
                | if timetag.is_some() { PUT_HAS_TIMETAG } else { 0 };
            w.u8(TAG_PUT).bytes(hash_key).bytes(sort_key).u8(flags).varint((*expire_ts).into());
            if let Some(v) = value {
                w.bytes(v);
            }
            if let Some(t) = timetag {
                w.u64_be(t.as_u64());
            }
        }
        WriteOp::Resolved { hash_key, records, outcome } => {
            w.u8(TAG_RESOLVED);
            resolved::encode(w, hash_key, records, outcome);
        }
    }
}

fn ttl(r: &mut Reader<'_>, field: &str) -> Result<u32> {
    let v = r.varint(field)?;
    u32::try_from(v).map_err(|_| Error::corruption(format!("mutation: {field} {v} exceeds u32")))
}

fn flag(r: &mut Reader<'_>, field: &str) -> Result<bool> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(Error::corruption(format!("mutation: {field} is {b}, not a boolean"))),
    }
}

fn check(r: &mut Reader<'_>) -> Result<Check> {
    let k = r.u8("check type")?;
    let kind = CheckType::from_u8(k)
        .ok_or_else(|| Error::corruption(format!("mutation: unknown check type {k}")))?;
    Ok(Check { kind, operand: r.bytes_vec("check operand")? })
}

fn cam_ops(r: &mut Reader<'_>) -> Result<Vec<CamOp>> {
    let n = r.len("mutation count")?;
    let mut mutations = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        mutations.push(match r.u8("cam op tag")? {
            CAM_PUT => CamOp::Put {
                sort_key: r.bytes_vec("sort key")?,
                value: r.bytes_vec("value")?,
                ttl_secs: ttl(r, "ttl")?,
            },
            CAM_DELETE => CamOp::Delete { sort_key: r.bytes_vec("sort key")? },
            t => return Err(Error::corruption(format!("mutation: unknown cam op tag {t}"))),
        });
    }
    Ok(mutations)
}

fn decode_op(r: &mut Reader<'_>) -> Result<WriteOp> {
    let tag = r.u8("op tag")?;
    Ok(match tag {
        TAG_SET => WriteOp::Set {
            hash_key: r.bytes_vec("hash key")?,
            sort_key: r.bytes_vec("sort key")?,
            value: r.bytes_vec("value")?,
            ttl_secs: ttl(r, "ttl")?,
        },
        TAG_DEL => WriteOp::Del { hash_key: r.bytes_vec("hash key")?, sort_key: r.bytes_vec("sort key")? },
        TAG_MULTI_SET => {
            let hash_key = r.bytes_vec("hash key")?;
            let ttl_secs = ttl(r, "ttl")?;
            let n = r.len("entry count")?;
            let mut entries = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                entries.push((r.bytes_vec("sort key")?, r.bytes_vec("value")?));
            }
            WriteOp::MultiSet { hash_key, entries, ttl_secs }
        }
        TAG_MULTI_DEL => {
            let hash_key = r.bytes_vec("hash key")?;
            let n = r.len("sort key count")?;
            let mut sort_keys = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                sort_keys.push(r.bytes_vec("sort key")?);
            }
            WriteOp::MultiDel { hash_key, sort_keys }
        }
        TAG_INCR => {
            let hash_key = r.bytes_vec("hash key")?;
            let sort_key = r.bytes_vec("sort key")?;
            let delta = r.varint_i64("delta")?;
            let ttl = match r.u8("incr ttl mode")? {
                INCR_TTL_KEEP => IncrTtl::Keep,
                INCR_TTL_CLEAR => IncrTtl::Clear,
                INCR_TTL_SET => IncrTtl::Set(ttl(r, "incr ttl")?),
                m => return Err(Error::corruption(format!("mutation: unknown incr ttl mode {m}"))),
            };
            WriteOp::Incr { hash_key, sort_key, delta, ttl }
        }
        TAG_CHECK_AND_SET => WriteOp::CheckAndSet(CheckAndSet {
            hash_key: r.bytes_vec("hash key")?,
            check_sort_key: r.bytes_vec("check sort key")?,
            check: check(r)?,
            set_sort_key: r.bytes_vec("set sort key")?,
            set_value: r.bytes_vec("set value")?,
            set_ttl_secs: ttl(r, "set ttl")?,
            return_check_value: flag(r, "return check value")?,
        }),
        TAG_CHECK_AND_MUTATE => WriteOp::CheckAndMutate(CheckAndMutate {
            hash_key: r.bytes_vec("hash key")?,
            check_sort_key: r.bytes_vec("check sort key")?,
            check: check(r)?,
            mutations: cam_ops(r)?,
            return_check_value: flag(r, "return check value")?,
        }),
        TAG_PUT => {
            let hash_key = r.bytes_vec("hash key")?;
            let sort_key = r.bytes_vec("sort key")?;
            let flags = r.u8("put flags")?;
            if flags & !(PUT_HAS_VALUE | PUT_HAS_TIMETAG) != 0 {
                return Err(Error::corruption(format!("mutation: unknown put flags {flags:#x}")));
            }
            let expire_ts = ttl(r, "expire_ts")?;
            let value = if flags & PUT_HAS_VALUE != 0 { Some(r.bytes_vec("value")?) } else { None };
            let timetag = if flags & PUT_HAS_TIMETAG != 0 {
                Some(Timetag::from_u64(r.u64_be("timetag")?))
            } else {
                None
            };
            WriteOp::Put { hash_key, sort_key, value, expire_ts, timetag }
        }
        TAG_RESOLVED => {
            let (hash_key, records, outcome) = resolved::decode(r)?;
            WriteOp::Resolved { hash_key, records, outcome }
        }
        t => return Err(Error::corruption(format!("mutation: unknown op tag {t}"))),
    })
}

#[cfg(test)]
#[path = "mutation_tests.rs"]
mod tests;
