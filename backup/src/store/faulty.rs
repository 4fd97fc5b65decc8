//! A wrapper that injects faults into another store, and counts calls, for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{ByteRange, ListPage, ObjectMeta, ObjectStore, PartReader, PutBody, PutReceipt, Transfer};
use crate::error::{Error, Result};

/// The operations of [`ObjectStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Put,
    Get,
    Head,
    List,
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The call fails with [`Error::Injected`], retryable or not; nothing reaches the store.
    Fail { retryable: bool },
    /// A put stores, or a get returns, the body without its second half.
    Truncate,
    /// A put stores, or a get returns, the body with its first byte flipped.
    Corrupt,
}

/// One fault rule: which calls it hits and what it does to them.
#[derive(Debug, Clone)]
pub struct Fault {
    op: Option<Op>,
    key_contains: Option<String>,
    skip: u64,
    times: u64,
    kind: FaultKind,
}

impl Fault {
    /// Hits every call (of any op, on any key) once; narrow it with the builder methods.
    pub fn new(kind: FaultKind) -> Self {
        Fault { op: None, key_contains: None, skip: 0, times: 1, kind }
    }

    /// A failing call, retryable or permanent.
    pub fn fail(retryable: bool) -> Self {
        Fault::new(FaultKind::Fail { retryable })
    }

    /// Only calls of `op`.
    pub fn on(mut self, op: Op) -> Self {
        self.op = Some(op);
        self
    }

    /// Only calls whose key (or list prefix) contains `needle`.
    pub fn on_key(mut self, needle: impl Into<String>) -> Self {
        self.key_contains = Some(needle.into());
        self
    }

    /// Hits the `n`-th matching call (1-based) rather than the first.
    pub fn nth(mut self, n: u64) -> Self {
        self.skip = n.saturating_sub(1);
        self
    }

    /// Hits this many matching calls in a row.
    pub fn times(mut self, n: u64) -> Self {
        self.times = n;
        self
    }

    /// Hits every matching call from then on.
    pub fn always(self) -> Self {
        self.times(u64::MAX)
    }

    fn matches(&self, op: Op, key: &str) -> bool {
        self.op.is_none_or(|o| o == op) && self.key_contains.as_deref().is_none_or(|n| key.contains(n))
    }
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<(Fault, u64)>,
    calls: BTreeMap<Op, u64>,
}

/// Wraps a store; each call first consults the fault rules, in the order they were added.
#[derive(Debug)]
pub struct FaultyObjectStore {
    inner: Arc<dyn ObjectStore>,
    state: Mutex<State>,
}

impl FaultyObjectStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FaultyObjectStore { inner, state: Mutex::new(State::default()) }
    }

    /// Adds a fault rule.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push((fault, 0));
    }

    /// Removes every fault rule (the call counts stay).
    pub fn heal(&self) {
        self.lock().faults.clear();
    }

    /// How many calls of `op` were made (including the ones that failed).
    pub fn calls(&self, op: Op) -> u64 {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }

    pub fn reset_calls(&self) {
        self.lock().calls.clear();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the call and returns the fault that hits it, if any.
    fn check(&self, op: Op, key: &str) -> Option<FaultKind> {
        let mut state = self.lock();
        *state.calls.entry(op).or_default() += 1;
        for (fault, matched) in state.faults.iter_mut() {
            if fault.matches(op, key) {
                *matched += 1;
                if *matched > fault.skip && *matched - fault.skip <= fault.times {
                    return Some(fault.kind);
                }
            }
        }
        None
    }

    fn fail(op: Op, key: &str, kind: Option<FaultKind>) -> Result<()> {
        match kind {
            Some(FaultKind::Fail { retryable }) => {
                Err(Error::Injected { op: op.name(), key: key.to_string(), retryable })
            }
            _ => Ok(()),
        }
    }
}

fn damage(body: Bytes, kind: FaultKind) -> Bytes {
    match kind {
        FaultKind::Truncate => body.slice(..body.len() / 2),
        FaultKind::Corrupt => {
            let mut b = BytesMut::from(&body[..]);
            if let Some(first) = b.first_mut() {
                *first ^= 0xff;
            } else {
                b.extend_from_slice(b"!");
            }
            b.freeze()
        }
        FaultKind::Fail { .. } => body,
    }
}

#[async_trait]
impl ObjectStore for FaultyObjectStore {
    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }

    fn read_chunk_bytes(&self) -> u64 {
        self.inner.read_chunk_bytes()
    }

    async fn put(&self, key: &str, body: PutBody, transfer: &Transfer) -> Result<PutReceipt> {
        let kind = self.check(Op::Put, key);
        Self::fail(Op::Put, key, kind)?;
        match kind {
            Some(k @ (FaultKind::Truncate | FaultKind::Corrupt)) => {
                let mut reader = PartReader::open(body, u64::MAX).await?;
                let all = reader.read_all().await?;
                self.inner.put(key, PutBody::Bytes(damage(all, k)), transfer).await
            }
            _ => self.inner.put(key, body, transfer).await,
        }
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Bytes> {
        let kind = self.check(Op::Get, key);
        Self::fail(Op::Get, key, kind)?;
        let body = self.inner.get(key, range).await?;
        Ok(match kind {
            Some(k) => damage(body, k),
            None => body,
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        Self::fail(Op::Head, key, self.check(Op::Head, key))?;
        self.inner.head(key).await
    }

    async fn list_page(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        Self::fail(Op::List, prefix, self.check(Op::List, prefix))?;
        self.inner.list_page(prefix, continuation).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        Self::fail(Op::Delete, key, self.check(Op::Delete, key))?;
        self.inner.delete(key).await
    }
}
