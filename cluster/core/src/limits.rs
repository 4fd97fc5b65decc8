//! Size limits, checked when a request is admitted (before it is logged), never while applying:
//! applying a logged mutation must not depend on a node's local configuration.

use crate::error::{Error, Result};
use crate::key::MAX_HASH_KEY_BYTES;
use crate::mutation::{CamOp, IncrTtl, Mutation, WriteOp, op_payload_bytes};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest hash key; at most 65535 (the key codec stores its length in a u16).
    pub max_hash_key_bytes: u32,
    pub max_sort_key_bytes: u32,
    pub max_value_bytes: u32,
    /// Largest total of keys and values in one request.
    pub max_batch_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_hash_key_bytes: MAX_HASH_KEY_BYTES as u32,
            max_sort_key_bytes: 64 * 1024,
            max_value_bytes: 1024 * 1024,
            max_batch_bytes: 4 * 1024 * 1024,
        }
    }
}

fn over(what: &'static str, size: usize, max: u64, setting: &'static str) -> Result<()> {
    if size as u64 > max {
        Err(Error::LimitExceeded { what, size: size as u64, max, setting })
    } else {
        Ok(())
    }
}

impl Limits {
    /// Checks the limits themselves (from a config file).
    pub fn validate(&self) -> Result<()> {
        if self.max_hash_key_bytes as usize > MAX_HASH_KEY_BYTES {
            return Err(Error::InvalidArgument(format!(
                "max-hash-key-bytes is {}, but hash keys cannot exceed {MAX_HASH_KEY_BYTES} bytes",
                self.max_hash_key_bytes
            )));
        }
        Ok(())
    }

    pub fn check_hash_key(&self, hk: &[u8]) -> Result<()> {
        over("hash key", hk.len(), self.max_hash_key_bytes.into(), "max-hash-key-bytes")
    }

    pub fn check_sort_key(&self, sk: &[u8]) -> Result<()> {
        over("sort key", sk.len(), self.max_sort_key_bytes.into(), "max-sort-key-bytes")
    }

    pub fn check_value(&self, v: &[u8]) -> Result<()> {
        over("value", v.len(), self.max_value_bytes.into(), "max-value-bytes")
    }

    /// Admission check of one client write: sizes, and shapes that can never be valid.
    pub fn check_op(&self, op: &WriteOp) -> Result<()> {
        self.check_hash_key(op.hash_key())?;
        over("request", op_payload_bytes(op) as usize, self.max_batch_bytes, "max-batch-bytes")?;
        match op {
            WriteOp::Set { sort_key, value, .. } => {
                self.check_sort_key(sort_key)?;
                self.check_value(value)?;
            }
            WriteOp::Del { sort_key, .. } => self.check_sort_key(sort_key)?,
            WriteOp::MultiSet { entries, .. } => {
                if entries.is_empty() {
                    return Err(Error::InvalidArgument("multi_set needs at least one entry".into()));
                }
                for (sk, v) in entries {
                    self.check_sort_key(sk)?;
                    self.check_value(v)?;
                }
            }
            WriteOp::MultiDel { sort_keys, .. } => {
                if sort_keys.is_empty() {
                    return Err(Error::InvalidArgument("multi_del needs at least one sort key".into()));
                }
                for sk in sort_keys {
                    self.check_sort_key(sk)?;
                }
            }
            WriteOp::Incr { sort_key, ttl, .. } => {
                self.check_sort_key(sort_key)?;
                if *ttl == IncrTtl::Set(0) {
                    return Err(Error::InvalidArgument(
                        "incr TTL must be positive (to remove the expiry, clear it instead)".into(),
                    ));
                }
            }
            WriteOp::CheckAndSet(c) => {
                self.check_sort_key(&c.check_sort_key)?;
                self.check_value(&c.check.operand)?;
                self.check_sort_key(&c.set_sort_key)?;
                self.check_value(&c.set_value)?;
            }
            WriteOp::CheckAndMutate(c) => {
                self.check_sort_key(&c.check_sort_key)?;
                self.check_value(&c.check.operand)?;
                if c.mutations.is_empty() {
                    return Err(Error::InvalidArgument(
                        "check_and_mutate needs at least one mutation".into(),
                    ));
                }
                for m in &c.mutations {
                    match m {
                        CamOp::Put { sort_key, value, .. } => {
                            self.check_sort_key(sort_key)?;
                            self.check_value(value)?;
                        }
                        CamOp::Delete { sort_key } => self.check_sort_key(sort_key)?,
                    }
                }
            }
            WriteOp::Put { sort_key, value, .. } => {
                self.check_sort_key(sort_key)?;
                if let Some(v) = value {
                    self.check_value(v)?;
                }
            }
            WriteOp::Resolved { records, .. } => {
                for r in records {
                    self.check_sort_key(&r.sort_key)?;
                    if let Some(v) = &r.value {
                        self.check_value(v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Admission check of a whole mutation (every op, and the total size).
    pub fn check_mutation(&self, m: &Mutation) -> Result<()> {
        for op in &m.ops {
            self.check_op(op)?;
        }
        over("mutation", m.payload_bytes() as usize, self.max_batch_bytes, "max-batch-bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(value_len: usize) -> WriteOp {
        WriteOp::Set {
            hash_key: b"h".to_vec(),
            sort_key: b"s".to_vec(),
            value: vec![0; value_len],
            ttl_secs: 0,
        }
    }

    #[test]
    fn default_limits() {
        let l = Limits::default();
        l.validate().unwrap();
        l.check_op(&set(1024 * 1024)).unwrap();
        let e = l.check_op(&set(1024 * 1024 + 1)).unwrap_err();
        assert_eq!(
            e,
            Error::LimitExceeded {
                what: "value",
                size: 1_048_577,
                max: 1_048_576,
                setting: "max-value-bytes"
            }
        );
    }

    #[test]
    fn batch_limit_counts_all_entries() {
        let l = Limits::default();
        let entries = (0..5).map(|i| (vec![i], vec![0u8; 1024 * 1024])).collect();
        let e = l.check_op(&WriteOp::MultiSet { hash_key: b"h".to_vec(), entries, ttl_secs: 0 }).unwrap_err();
        assert!(matches!(e, Error::LimitExceeded { what: "request", setting: "max-batch-bytes", .. }), "{e}");
    }

    #[test]
    fn sort_key_and_hash_key_limits() {
        let l = Limits::default();
        let e = l.check_op(&WriteOp::Del { hash_key: vec![0; 65_536], sort_key: vec![] }).unwrap_err();
        assert!(matches!(e, Error::LimitExceeded { what: "hash key", size: 65_536, .. }), "{e}");
        let e = l.check_op(&WriteOp::Del { hash_key: vec![], sort_key: vec![0; 65_537] }).unwrap_err();
        assert!(matches!(e, Error::LimitExceeded { what: "sort key", size: 65_537, .. }), "{e}");
    }

    #[test]
    fn shapes_that_are_never_valid() {
        let l = Limits::default();
        assert!(l.check_op(&WriteOp::MultiSet { hash_key: vec![], entries: vec![], ttl_secs: 0 }).is_err());
        assert!(l.check_op(&WriteOp::MultiDel { hash_key: vec![], sort_keys: vec![] }).is_err());
        let incr = WriteOp::Incr { hash_key: vec![], sort_key: vec![], delta: 1, ttl: IncrTtl::Set(0) };
        assert!(l.check_op(&incr).is_err());
        let bad = Limits { max_hash_key_bytes: 70_000, ..Limits::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("max-hash-key-bytes"));
    }
}
