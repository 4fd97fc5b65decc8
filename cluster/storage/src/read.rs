//! Read semantics, written once for every back end. Reads see only live records (not expired at
//! the store clock's "now", not tombstones).
//!
//! Paging: scans stop at the request's limits, or after examining
//! [`MAX_EXAMINED_PER_PAGE`] stored records (so a scan through many expired or filtered-out
//! records still returns in bounded time). A page that might not be the last carries a resume
//! point; a page that is known to be the last does not (the engine looks one qualifying record
//! ahead, so callers do not get a trailing empty page).

use std::ops::{Bound, ControlFlow};

use tern_core::key::{self, KeyRange, escape};
use tern_core::read::{
    KeyFilter, MultiGet, MultiGetResult, ReadLimits, Record, SortKeyPage, SortKeyScan, SortKeyValue,
    TablePage, TableScan, Ttl,
};
use tern_core::value::{self, ValueHeader};
use tern_core::{Error, Result};

use crate::store::PartitionStore;

/// Stored records one page may examine before it returns with a resume point.
pub const MAX_EXAMINED_PER_PAGE: u64 = 10_000;

/// Decodes a stored value, naming the key if it is corrupt.
pub fn decode_stored<'v>(key: &[u8], raw: &'v [u8]) -> Result<(ValueHeader, &'v [u8])> {
    value::decode(raw).map_err(|e| match e {
        Error::Fatal(tern_core::Fatal::Corruption(msg)) => {
            Error::corruption(format!("{msg} (storage key \"{}\")", escape(key, 80)))
        }
        other => other,
    })
}

pub(crate) fn get<S: PartitionStore + ?Sized>(s: &S, hk: &[u8], sk: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(live(s, hk, sk)?.map(|(_, v)| v))
}

fn live<S: PartitionStore + ?Sized>(s: &S, hk: &[u8], sk: &[u8]) -> Result<Option<(ValueHeader, Vec<u8>)>> {
    let k = key::encode(hk, sk)?;
    let Some(raw) = s.raw_get(&k)? else { return Ok(None) };
    let (h, v) = decode_stored(&k, &raw)?;
    Ok(h.is_live(s.clock().now_secs()).then(|| (h, v.to_vec())))
}

pub(crate) fn ttl<S: PartitionStore + ?Sized>(s: &S, hk: &[u8], sk: &[u8]) -> Result<Option<Ttl>> {
    let now = s.clock().now_secs();
    Ok(live(s, hk, sk)?.map(|(h, _)| match h.expire_ts {
        0 => Ttl::Persistent,
        ts => Ttl::Remaining(u64::from(ts) - now),
    }))
}

fn check_limits(l: &ReadLimits) -> Result<()> {
    if l.max_count == Some(0) || l.max_bytes == Some(0) {
        return Err(Error::InvalidArgument(
            "read limits must be at least 1 (leave a limit unset for none)".into(),
        ));
    }
    Ok(())
}

/// Collects records of `range` that `pick` accepts, up to `limits`. Returns them and, if the
/// page may not be the last, the storage key to resume after.
fn page<S, T, F>(
    s: &S,
    range: &KeyRange,
    reverse: bool,
    limits: &ReadLimits,
    mut pick: F,
) -> Result<(Vec<T>, Option<Vec<u8>>)>
where
    S: PartitionStore + ?Sized,
    F: FnMut(&[u8], &[u8]) -> Result<Option<(T, u64)>>,
{
    check_limits(limits)?;
    let mut out = Vec::new();
    if range.is_empty() {
        return Ok((out, None));
    }
    let now = s.clock().now_secs();
    let (mut count, mut bytes, mut examined) = (0u32, 0u64, 0u64);
    let mut full = false;
    let mut last_returned: Option<Vec<u8>> = None;
    let mut resume: Option<Vec<u8>> = None;
    s.raw_scan(range, reverse, &mut |k, raw| {
        examined += 1;
        let (h, user) = decode_stored(k, raw)?;
        if h.is_live(now)
            && let Some((item, size)) = pick(k, user)?
        {
            if full {
                // One more qualifying record exists: resume after the last one returned.
                resume = last_returned.take();
                return Ok(ControlFlow::Break(()));
            }
            out.push(item);
            count += 1;
            bytes += size;
            last_returned = Some(k.to_vec());
            full =
                limits.max_count.is_some_and(|m| count >= m) || limits.max_bytes.is_some_and(|m| bytes >= m);
        }
        if examined >= MAX_EXAMINED_PER_PAGE {
            // Everything examined so far was returned or did not qualify.
            resume = Some(k.to_vec());
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok((out, resume))
}

fn bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn filtered(f: &Option<KeyFilter>, k: &[u8]) -> bool {
    f.as_ref().is_none_or(|f| f.matches(k))
}

pub(crate) fn scan<S: PartitionStore + ?Sized>(s: &S, hk: &[u8], spec: &SortKeyScan) -> Result<SortKeyPage> {
    let range = KeyRange::sort_keys(hk, bound(&spec.start), bound(&spec.end))?;
    let prefix_len = 2 + hk.len();
    let (records, resume) = page(s, &range, spec.reverse, &spec.limits, |k, v| {
        let sk = &k[prefix_len..];
        if !filtered(&spec.filter, sk) {
            return Ok(None);
        }
        let value = if spec.no_value { Vec::new() } else { v.to_vec() };
        let size = (sk.len() + value.len()) as u64;
        Ok(Some((SortKeyValue { sort_key: sk.to_vec(), value }, size)))
    })?;
    Ok(SortKeyPage { records, resume: resume.map(|k| k[prefix_len..].to_vec()) })
}

pub(crate) fn multi_get<S: PartitionStore + ?Sized>(
    s: &S,
    hk: &[u8],
    req: &MultiGet,
) -> Result<MultiGetResult> {
    match req {
        MultiGet::Range(spec) => {
            let page = scan(s, hk, spec)?;
            Ok(MultiGetResult { complete: page.resume.is_none(), records: page.records })
        }
        MultiGet::Keys { sort_keys, no_value, limits } if sort_keys.is_empty() => {
            let spec = SortKeyScan { no_value: *no_value, limits: *limits, ..SortKeyScan::default() };
            multi_get(s, hk, &MultiGet::Range(spec))
        }
        MultiGet::Keys { sort_keys, no_value, limits } => {
            check_limits(limits)?;
            let mut keys: Vec<&[u8]> = sort_keys.iter().map(Vec::as_slice).collect();
            keys.sort_unstable();
            keys.dedup();
            let mut result = MultiGetResult { records: Vec::new(), complete: true };
            let (mut count, mut bytes) = (0u32, 0u64);
            for sk in keys {
                let Some(v) = get(s, hk, sk)? else { continue };
                let full = limits.max_count.is_some_and(|m| count >= m)
                    || limits.max_bytes.is_some_and(|m| bytes >= m);
                if full {
                    result.complete = false;
                    break;
                }
                let value = if *no_value { Vec::new() } else { v };
                count += 1;
                bytes += (sk.len() + value.len()) as u64;
                result.records.push(SortKeyValue { sort_key: sk.to_vec(), value });
            }
            Ok(result)
        }
    }
}

pub(crate) fn sort_key_count<S: PartitionStore + ?Sized>(s: &S, hk: &[u8]) -> Result<u64> {
    let range = KeyRange::sort_keys(hk, Bound::Unbounded, Bound::Unbounded)?;
    let now = s.clock().now_secs();
    let mut n = 0;
    s.raw_scan(&range, false, &mut |k, raw| {
        if decode_stored(k, raw)?.0.is_live(now) {
            n += 1;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(n)
}

pub(crate) fn scan_table<S: PartitionStore + ?Sized>(s: &S, spec: &TableScan) -> Result<TablePage> {
    let range = KeyRange {
        start: match &spec.resume_token {
            Some(t) => Bound::Excluded(t.clone()),
            None => Bound::Unbounded,
        },
        end: Bound::Unbounded,
    };
    let (records, resume_token) = page(s, &range, false, &spec.limits, |k, v| {
        let (hk, sk) = key::decode(k)?;
        if !filtered(&spec.hash_key_filter, hk) || !filtered(&spec.sort_key_filter, sk) {
            return Ok(None);
        }
        let value = if spec.no_value { Vec::new() } else { v.to_vec() };
        let size = (hk.len() + sk.len() + value.len()) as u64;
        Ok(Some((Record { hash_key: hk.to_vec(), sort_key: sk.to_vec(), value }, size)))
    })?;
    Ok(TablePage { records, resume_token })
}
