//! Atomic operations as a primary resolved them.
//!
//! incr, check_and_set and check_and_mutate read before they write. A primary evaluates them
//! against its store (once every earlier write to the same hash key is applied) and logs the
//! *result*: the new state of each record it writes, and the outcome the client gets. Every
//! replica then applies plain record states, so nothing in the log needs a read to apply
//! (last-writer-wins aside), and a duplicated table ships the result, not the operation (see
//! `docs/duplication.md`, "Atomic operations").
//!
//! Encoding inside a mutation (op tag 9, see `mutation.rs`):
//!
//! ```text
//! resolved = hash_key record_count record* outcome
//! record   = sort_key flags:u8 (bit 0: has value) expire_ts:varint [value]
//! outcome  = 1 new_value:zigzag-varint                          (incr)
//!          | 2 passed:u8 check:u8 (0 none, 1 absent, 2 value) [value]  (checked)
//! ```

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::mutation::{CheckOutcome, WriteOutcome};

/// One record's new state: a value with an absolute expiry (seconds since the epoch, 0 = none)
/// or, when `value` is `None`, a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordState {
    pub sort_key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub expire_ts: u32,
}

/// What the client of a resolved atomic operation is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedOutcome {
    Incr { new_value: i64 },
    Checked(CheckOutcome),
}

impl ResolvedOutcome {
    pub fn to_write_outcome(&self) -> WriteOutcome {
        match self {
            ResolvedOutcome::Incr { new_value } => WriteOutcome::Incr { new_value: *new_value },
            ResolvedOutcome::Checked(c) => WriteOutcome::Checked(c.clone()),
        }
    }

    /// The outcome of a resolution, if it is one a resolved op can carry.
    pub fn from_write_outcome(o: &WriteOutcome) -> Option<ResolvedOutcome> {
        match o {
            WriteOutcome::Incr { new_value } => Some(ResolvedOutcome::Incr { new_value: *new_value }),
            WriteOutcome::Checked(c) => Some(ResolvedOutcome::Checked(c.clone())),
            _ => None,
        }
    }
}

const HAS_VALUE: u8 = 1;
const OUTCOME_INCR: u8 = 1;
const OUTCOME_CHECKED: u8 = 2;
const CHECK_VALUE_NONE: u8 = 0;
const CHECK_VALUE_ABSENT: u8 = 1;
const CHECK_VALUE_PRESENT: u8 = 2;

pub(crate) fn encode(w: &mut Writer, hash_key: &[u8], records: &[RecordState], outcome: &ResolvedOutcome) {
    w.bytes(hash_key).varint(records.len() as u64);
    for r in records {
        w.bytes(&r.sort_key).u8(if r.value.is_some() { HAS_VALUE } else { 0 });
        w.varint(r.expire_ts.into());
        if let Some(v) = &r.value {
            w.bytes(v);
        }
    }
    match outcome {
        ResolvedOutcome::Incr { new_value } => {
            w.u8(OUTCOME_INCR).varint_i64(*new_value);
        }
        ResolvedOutcome::Checked(c) => {
            w.u8(OUTCOME_CHECKED).u8(u8::from(c.passed));
            match &c.check_value {
                None => w.u8(CHECK_VALUE_NONE),
                Some(None) => w.u8(CHECK_VALUE_ABSENT),
                Some(Some(v)) => w.u8(CHECK_VALUE_PRESENT).bytes(v),
            };
        }
    }
}

pub(crate) fn decode(r: &mut Reader<'_>) -> Result<(Vec<u8>, Vec<RecordState>, ResolvedOutcome)> {
    let hash_key = r.bytes_vec("hash key")?;
    let n = r.len("record count")?;
    let mut records = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let sort_key = r.bytes_vec("sort key")?;
        let flags = r.u8("record flags")?;
        if flags & !HAS_VALUE != 0 {
            return Err(Error::corruption(format!("mutation: unknown record flags {flags:#x}")));
        }
        let expire = r.varint("expire_ts")?;
        let expire_ts = u32::try_from(expire)
            .map_err(|_| Error::corruption(format!("mutation: expire_ts {expire} exceeds u32")))?;
        let value = if flags & HAS_VALUE != 0 { Some(r.bytes_vec("value")?) } else { None };
        records.push(RecordState { sort_key, value, expire_ts });
    }
    let outcome = match r.u8("outcome tag")? {
        OUTCOME_INCR => ResolvedOutcome::Incr { new_value: r.varint_i64("new value")? },
        OUTCOME_CHECKED => {
            let passed = match r.u8("passed")? {
                0 => false,
                1 => true,
                b => return Err(Error::corruption(format!("mutation: passed is {b}, not a boolean"))),
            };
            let check_value = match r.u8("check value tag")? {
                CHECK_VALUE_NONE => None,
                CHECK_VALUE_ABSENT => Some(None),
                CHECK_VALUE_PRESENT => Some(Some(r.bytes_vec("check value")?)),
                t => return Err(Error::corruption(format!("mutation: unknown check value tag {t}"))),
            };
            ResolvedOutcome::Checked(CheckOutcome { passed, check_value })
        }
        t => return Err(Error::corruption(format!("mutation: unknown outcome tag {t}"))),
    };
    Ok((hash_key, records, outcome))
}
