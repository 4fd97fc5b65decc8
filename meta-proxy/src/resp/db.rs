//! One Redis database on Tern: a table, where a Redis key is a hash key with an empty sort key.
//! The Tern operations the commands are built from, the mapping of Tern errors to Redis replies,
//! and the optimistic read-check-write loop for the commands that Tern has no atomic op for.

use std::sync::Arc;

use tern_client::TernClient;
use tern_core::mutation::{CamOp, Check, CheckAndMutate, CheckAndSet, CheckOutcome, CheckType, WriteOutcome};
use tern_core::read::{ReadOp, ReadResult, Ttl};
use tern_core::{Error, ErrorCode, WriteOp};

use super::Reply;
use super::args::NOT_INTEGER;
use super::coalesce::Coalescer;

/// The sort key of every record the gateway writes.
const SORT_KEY: Vec<u8> = Vec::new();

/// How often a read-check-write is tried before giving up on a key that keeps changing.
const MAX_TRIES: usize = 20;

/// A command's outcome: a reply, or an error reply (both are sent; `Err` ends the command early).
pub type Res<T> = Result<T, Reply>;

/// A Tern error as Redis clients expect errors.
pub fn error_reply(e: &Error) -> Reply {
    Reply::Error(match e.code() {
        ErrorCode::NotAnInteger => NOT_INTEGER.into(),
        ErrorCode::IntegerOverflow => "ERR increment or decrement would overflow".into(),
        // Only when the route itself still leads to a standby (no active copy to follow to).
        ErrorCode::Standby => format!("READONLY {e}"),
        _ => format!("ERR {e}"),
    })
}

/// What a read-check-write decided to do with the key.
#[derive(Debug)]
pub enum Change {
    /// Write this value with this TTL (0: none).
    Put {
        value: Vec<u8>,
        ttl_secs: u32,
    },
    Delete,
    /// Write nothing: the answer follows from what was read.
    Keep,
}

/// The key as the decision of a read-check-write sees it.
#[derive(Debug)]
pub struct Current<'v> {
    pub value: Option<&'v [u8]>,
    /// Seconds left (`None`: no expiry, or the key is absent). Read only when asked for.
    pub ttl: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
pub struct Db<'a> {
    pub client: &'a TernClient,
    /// Reads go here: batched with the other reads in flight.
    pub reads: &'a Arc<Coalescer>,
    pub table: &'a str,
}

impl<'a> Db<'a> {
    pub async fn get(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
        match self.read(ReadOp::Get { hash_key: key.to_vec(), sort_key: SORT_KEY }).await? {
            ReadResult::Get(v) => Ok(v),
            other => Err(unexpected(&other)),
        }
    }

    /// `None` if the key is absent.
    pub async fn ttl(&self, key: &[u8]) -> Res<Option<Ttl>> {
        match self.read(ReadOp::Ttl { hash_key: key.to_vec(), sort_key: SORT_KEY }).await? {
            ReadResult::Ttl(t) => Ok(t),
            other => Err(unexpected(&other)),
        }
    }

    async fn read(&self, op: ReadOp) -> Res<ReadResult> {
        self.reads.read(self.table, op).await.map_err(|e| error_reply(&e))
    }

    pub async fn write(&self, op: WriteOp) -> Res<WriteOutcome> {
        self.client.write(self.table, op).await.map_err(|e| error_reply(&e))
    }

    pub async fn set(&self, key: &[u8], value: Vec<u8>, ttl_secs: u32) -> Res<()> {
        self.write(WriteOp::Set { hash_key: key.to_vec(), sort_key: SORT_KEY, value, ttl_secs }).await?;
        Ok(())
    }

    pub async fn incr(&self, key: &[u8], delta: i64) -> Res<i64> {
        let op = WriteOp::Incr {
            hash_key: key.to_vec(),
            sort_key: SORT_KEY,
            delta,
            ttl: tern_core::mutation::IncrTtl::Keep,
        };
        match self.write(op).await? {
            WriteOutcome::Incr { new_value } => Ok(new_value),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets the key if `check` passes on it (atomically, in its partition).
    pub async fn check_and_set(
        &self,
        key: &[u8],
        check: Check,
        value: Vec<u8>,
        ttl_secs: u32,
        return_old: bool,
    ) -> Res<CheckOutcome> {
        let op = WriteOp::CheckAndSet(CheckAndSet {
            hash_key: key.to_vec(),
            check_sort_key: SORT_KEY,
            check,
            set_sort_key: SORT_KEY,
            set_value: value,
            set_ttl_secs: ttl_secs,
            return_check_value: return_old,
        });
        checked(self.write(op).await?)
    }

    /// Deletes the key if `check` passes on it.
    pub async fn check_and_delete(&self, key: &[u8], check: Check, return_old: bool) -> Res<CheckOutcome> {
        let op = WriteOp::CheckAndMutate(CheckAndMutate {
            hash_key: key.to_vec(),
            check_sort_key: SORT_KEY,
            check,
            mutations: vec![CamOp::Delete { sort_key: SORT_KEY }],
            return_check_value: return_old,
        });
        checked(self.write(op).await?)
    }

    /// A read-check-write for what Tern has no atomic op for (APPEND, EXPIRE, PERSIST, KEEPTTL):
    /// reads the value (and, with `with_ttl`, its TTL), lets `decide` choose a [`Change`] and an
    /// answer, and writes the change only if the value is still the one read (check-and-set on
    /// the bytes, or on absence); otherwise starts again, at most [`MAX_TRIES`] times.
    ///
    /// Not atomic with respect to the TTL alone: a concurrent EXPIRE that leaves the value as it
    /// was is not detected, one of the two TTLs wins.
    pub async fn update<T>(
        &self,
        key: &[u8],
        with_ttl: bool,
        mut decide: impl FnMut(Current<'_>) -> Res<(Change, T)>,
    ) -> Res<T> {
        for _ in 0..MAX_TRIES {
            let value = self.get(key).await?;
            let ttl = match (&value, with_ttl) {
                (Some(_), true) => match self.ttl(key).await? {
                    Some(Ttl::Remaining(s)) => Some(s),
                    Some(Ttl::Persistent) => None,
                    // Gone between the two reads: look again.
                    None => continue,
                },
                _ => None,
            };
            let (change, answer) = decide(Current { value: value.as_deref(), ttl })?;
            let check = match &value {
                None => Check { kind: CheckType::NotExist, operand: vec![] },
                Some(v) => Check { kind: CheckType::BytesEqual, operand: v.clone() },
            };
            let outcome = match change {
                Change::Keep => return Ok(answer),
                Change::Delete if value.is_none() => return Ok(answer),
                Change::Delete => self.check_and_delete(key, check, false).await?,
                Change::Put { value, ttl_secs } => {
                    self.check_and_set(key, check, value, ttl_secs, false).await?
                }
            };
            if outcome.passed {
                return Ok(answer);
            }
        }
        Err(Reply::Error(format!(
            "ERR key changed by other clients {MAX_TRIES} times while this command ran; try again"
        )))
    }
}

pub fn check(kind: CheckType) -> Check {
    Check { kind, operand: vec![] }
}

fn checked(outcome: WriteOutcome) -> Res<CheckOutcome> {
    match outcome {
        WriteOutcome::Checked(c) => Ok(c),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(what: &dyn std::fmt::Debug) -> Reply {
    Reply::Error(format!("ERR unexpected answer from Tern: {what:?}"))
}

/// The old value a check-and-* returned (asked for with `return_check_value`).
pub fn old_value(c: &CheckOutcome) -> Reply {
    match &c.check_value {
        Some(Some(v)) => Reply::Bulk(v.clone()),
        _ => Reply::Nil,
    }
}
