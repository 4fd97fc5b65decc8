//! Write semantics: how each [`WriteOp`] changes a partition. Written once, used by every back
//! end through [`PartitionStore::apply_batch`].
//!
//! Determinism: every replica applies the same decrees with the same results. So "now" for TTLs
//! and expiry checks is the largest timetag applied so far (stamped by primaries), never a local
//! clock,
//! and size limits are not re-checked here (they were checked at admission; a node's config
//! must not change what a logged mutation does).

use std::cell::Cell;
use std::collections::BTreeMap;

use tern_core::key::{self, escape};
use tern_core::mutation::{CamOp, Check, CheckOutcome, CheckType, IncrTtl, WriteOutcome};
use tern_core::resolved::{RecordState, ResolvedOutcome};
use tern_core::value::{self, ValueHeader, expire_ts_after};
use tern_core::{Error, Result, Timetag, WriteOp};

use crate::store::{AppliedMark, ApplyEntry, PartitionStore, RawBatch};

pub(crate) fn apply_batch<S: PartitionStore + ?Sized>(
    store: &mut S,
    entries: &[ApplyEntry<'_>],
) -> Result<Vec<Vec<WriteOutcome>>> {
    let Some(last) = entries.last() else { return Ok(Vec::new()) };
    let mut expected = store.last_applied_decree().next();
    for e in entries {
        if e.decree != expected {
            return Err(Error::invariant(format!(
                "apply out of sequence: got decree {}, expected {expected}",
                e.decree
            )));
        }
        expected = expected.next();
    }

    let mut staged = Staged::new(&*store);
    let mut outcomes = Vec::with_capacity(entries.len());
    // "Now" for a write is the largest timetag applied so far, this one included: the same on
    // every replica (it depends only on the decree sequence) and never going back, even when a
    // new primary re-proposes an old uncommitted entry with an old timetag.
    let mut horizon = store.last_applied_timetag();
    for e in entries {
        horizon = horizon.max(e.timetag);
        if let Some(below) = e.mutation.purge_below {
            staged.purge_below.set(staged.purge_below.get().max(below));
        }
        let mut per_op = Vec::with_capacity(e.mutation.ops.len());
        for op in &e.mutation.ops {
            per_op.push(staged.apply_op(op, e.timetag, horizon.physical_secs())?);
        }
        outcomes.push(per_op);
    }
    // The mark bounds every record's timetag (what lets `write_if_newer` skip its read). A
    // duplicated put is always stamped into an entry newer than its own timetag (the primary's
    // clock moves past it first), so this is the horizon; the max makes it hold by construction.
    let timetag = horizon.max(staged.newest.get());
    let batch: RawBatch = staged.overlay.into_iter().collect();
    let ballot = entries.iter().map(|e| e.ballot).fold(store.last_applied_ballot(), std::cmp::Ord::max);
    let purge_below =
        entries.iter().filter_map(|e| e.mutation.purge_below).fold(store.purge_horizon(), std::cmp::Ord::max);
    store.raw_write(batch, AppliedMark { decree: last.decree, timetag, ballot, purge_below })?;
    Ok(outcomes)
}

/// Evaluates an atomic op (incr, check_and_set, check_and_mutate) against the store as it is,
/// at `now_secs`, without writing: the new state of every record it would write and the
/// client's outcome, as a [`WriteOp::Resolved`]. A refusal (not an integer, overflow) is an
/// `Err`, like a store failure. See `tern_core::resolved`.
pub(crate) fn resolve<S: PartitionStore + ?Sized>(store: &S, op: &WriteOp, now_secs: u64) -> Result<WriteOp> {
    if !op.is_atomic() {
        return Err(Error::invariant(format!("resolve called for a {} op", op.name())));
    }
    let staged = Staged::new(store);
    let mut writes = OpWrites::new();
    // The newest possible timetag: a resolution never loses to a stored record (the entry
    // that logs the result is stamped after everything the store holds).
    let tt = Timetag::from_u64(u64::MAX).with_delete(false);
    let outcome = match staged.evaluate(op, tt, now_secs, &mut writes)? {
        WriteOutcome::Failed(e) => return Err(e),
        o => ResolvedOutcome::from_write_outcome(&o)
            .ok_or_else(|| Error::invariant(format!("{} resolved to {o:?}", op.name())))?,
    };
    // One record may be written twice by one check_and_mutate: the later write is its state.
    let mut records: Vec<RecordState> = Vec::with_capacity(writes.len());
    for (k, v) in writes {
        let (_, sk) = key::decode(&k)?;
        let Some(raw) = v else { return Err(Error::invariant("resolution staged a hard delete")) };
        let (header, user) = value::decode(&raw)?;
        let state = RecordState {
            sort_key: sk.to_vec(),
            value: (!header.is_tombstone()).then(|| user.to_vec()),
            expire_ts: header.expire_ts,
        };
        match records.iter_mut().find(|r| r.sort_key == state.sort_key) {
            Some(r) => *r = state,
            None => records.push(state),
        }
    }
    Ok(WriteOp::Resolved { hash_key: op.hash_key().to_vec(), records, outcome })
}

/// The store as seen by a batch being built: its own earlier writes first.
struct Staged<'s, S: ?Sized> {
    store: &'s S,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// No record in the store or the overlay has a newer timetag than this (delete bit
    /// cleared): the store's applied mark, raised by every staged write.
    newest: Cell<Timetag>,
    /// The purge horizon as of the entry being applied.
    purge_below: Cell<Timetag>,
}

/// Writes of one op, committed to the overlay only if the whole op succeeds.
type OpWrites = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl<'s, S: PartitionStore + ?Sized> Staged<'s, S> {
    fn new(store: &'s S) -> Self {
        let newest = Cell::new(store.last_applied_timetag().with_delete(false));
        Staged { store, overlay: BTreeMap::new(), newest, purge_below: Cell::new(store.purge_horizon()) }
    }

    /// Applies one op. Refusals become [`WriteOutcome::Failed`]; only fatal errors (corrupt data,
    /// failed I/O) abort the batch.
    fn apply_op(&mut self, op: &WriteOp, timetag: Timetag, now: u64) -> Result<WriteOutcome> {
        let mut writes = OpWrites::new();
        match self.evaluate(op, timetag, now, &mut writes) {
            Ok(outcome) => {
                if !matches!(outcome, WriteOutcome::Failed(_)) {
                    self.overlay.extend(writes);
                }
                Ok(outcome)
            }
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => Ok(WriteOutcome::Failed(e)),
        }
    }

    /// `tt` is stored with every record written; `now` (seconds) decides TTLs and expiry.
    ///
    /// Every write is last-writer-wins: it replaces a record only if its timetag is not older
    /// than the stored one (see [`Staged::superseded`]), and a delete leaves a tombstone (a
    /// header with the delete bit and no value) so that a late, older write cannot bring the
    /// record back. Local writes always pass (a primary's clock runs past every timetag it
    /// stored); duplicated writes ([`WriteOp::Put`] with a timetag) may lose.
    fn evaluate(&self, op: &WriteOp, tt: Timetag, now: u64, w: &mut OpWrites) -> Result<WriteOutcome> {
        let put = |w: &mut OpWrites, hk: &[u8], sk: &[u8], v: &[u8], ttl_secs: u32| -> Result<()> {
            let header = ValueHeader { expire_ts: expire_ts_after(now, ttl_secs), timetag: tt };
            self.write_if_newer(now, w, key::encode(hk, sk)?, &header, v)?;
            Ok(())
        };
        let del = |w: &mut OpWrites, hk: &[u8], sk: &[u8]| -> Result<()> {
            self.write_if_newer(now, w, key::encode(hk, sk)?, &ValueHeader::tombstone(tt), &[])?;
            Ok(())
        };
        match op {
            WriteOp::Set { hash_key, sort_key, value, ttl_secs } => {
                put(w, hash_key, sort_key, value, *ttl_secs)?;
            }
            WriteOp::Del { hash_key, sort_key } => del(w, hash_key, sort_key)?,
            WriteOp::MultiSet { hash_key, entries, ttl_secs } => {
                for (sk, v) in entries {
                    put(w, hash_key, sk, v, *ttl_secs)?;
                }
            }
            WriteOp::MultiDel { hash_key, sort_keys } => {
                for sk in sort_keys {
                    del(w, hash_key, sk)?;
                }
            }
            WriteOp::Incr { hash_key, sort_key, delta, ttl } => {
                let current = self.read_live(hash_key, sort_key, now)?;
                let (base, old_expire) = match &current {
                    None => (0, 0),
                    // incr counts an empty value as 0 (as Pegasus does); checks do not.
                    Some((h, v)) if v.is_empty() => (0, h.expire_ts),
                    Some((h, v)) => (parse_int(v, || describe(hash_key, sort_key))?, h.expire_ts),
                };
                let new_value = base.checked_add(*delta).ok_or_else(|| {
                    Error::IntegerOverflow(format!(
                        "{} is {base}; adding {delta} leaves the int64 range",
                        describe(hash_key, sort_key)
                    ))
                })?;
                let expire_ts = match ttl {
                    IncrTtl::Keep => old_expire,
                    IncrTtl::Clear => 0,
                    IncrTtl::Set(n) => expire_ts_after(now, *n),
                };
                let header = ValueHeader { expire_ts, timetag: tt };
                let k = key::encode(hash_key, sort_key)?;
                self.write_if_newer(now, w, k, &header, new_value.to_string().as_bytes())?;
                return Ok(WriteOutcome::Incr { new_value });
            }
            WriteOp::CheckAndSet(c) => {
                let out = self.check(&c.hash_key, &c.check_sort_key, &c.check, c.return_check_value, now)?;
                if out.passed {
                    put(w, &c.hash_key, &c.set_sort_key, &c.set_value, c.set_ttl_secs)?;
                }
                return Ok(WriteOutcome::Checked(out));
            }
            WriteOp::CheckAndMutate(c) => {
                let out = self.check(&c.hash_key, &c.check_sort_key, &c.check, c.return_check_value, now)?;
                if out.passed {
                    for m in &c.mutations {
                        match m {
                            CamOp::Put { sort_key, value, ttl_secs } => {
                                put(w, &c.hash_key, sort_key, value, *ttl_secs)?
                            }
                            CamOp::Delete { sort_key } => del(w, &c.hash_key, sort_key)?,
                        }
                    }
                }
                return Ok(WriteOutcome::Checked(out));
            }
            WriteOp::Put { hash_key, sort_key, value, expire_ts, timetag } => {
                let tt = timetag.unwrap_or(tt);
                let header = match value {
                    Some(_) => ValueHeader { expire_ts: *expire_ts, timetag: tt.with_delete(false) },
                    None => ValueHeader::tombstone(tt),
                };
                let k = key::encode(hash_key, sort_key)?;
                let user = value.as_deref().unwrap_or_default();
                // A put always reads the record it would replace, even when it is newer than
                // everything stored: its outcome says what it replaced (the input of the
                // conflict journal, `tern_duplication::judge_put`).
                let stored = self.stored_timetag(&k, now)?;
                if let Some(stored) = stored
                    && stored.with_delete(false) > tt.with_delete(false)
                {
                    return Ok(WriteOutcome::Superseded { stored });
                }
                self.stage(w, k, &header, user);
                if let Some(stored) = stored {
                    return Ok(WriteOutcome::Replaced { stored });
                }
            }
            WriteOp::Resolved { hash_key, records, outcome } => {
                for r in records {
                    let header = match &r.value {
                        Some(_) => ValueHeader { expire_ts: r.expire_ts, timetag: tt.with_delete(false) },
                        None => ValueHeader::tombstone(tt),
                    };
                    let user = r.value.as_deref().unwrap_or_default();
                    self.write_if_newer(now, w, key::encode(hash_key, &r.sort_key)?, &header, user)?;
                }
                return Ok(outcome.to_write_outcome());
            }
        }
        Ok(WriteOutcome::Done)
    }

    /// Stages `header | user` under `k` unless the stored record is newer; returns the stored
    /// record's timetag when it is (the write lost last-writer-wins).
    fn write_if_newer(
        &self,
        now: u64,
        w: &mut OpWrites,
        k: Vec<u8>,
        header: &ValueHeader,
        user: &[u8],
    ) -> Result<Option<Timetag>> {
        let tt = header.timetag.with_delete(false);
        // A local write is stamped after everything the store holds: no record can be newer,
        // and the read (a memtable and SST lookup per key) is skipped. Entries re-proposed
        // with an older timetag still read; duplicated puts always read (the `Put` arm).
        if tt < self.newest.get()
            && let Some(stored) = self.superseded(&k, header.timetag, now)?
        {
            return Ok(Some(stored));
        }
        self.stage(w, k, header, user);
        Ok(None)
    }

    /// Stages `header | user` under `k`, unconditionally.
    fn stage(&self, w: &mut OpWrites, k: Vec<u8>, header: &ValueHeader, user: &[u8]) {
        // Raised even if the op fails later and this write is dropped: a bound, not exact.
        self.newest.set(self.newest.get().max(header.timetag.with_delete(false)));
        w.push((k, Some(value::encode(header, user))));
    }

    /// The timetag of the record stored under `k` (delete bit included), if there is one.
    ///
    /// A stored record that compaction may drop (dead and older than the purge horizon,
    /// [`crate::purgeable`]) counts as absent whether or not this replica's compaction has
    /// dropped it yet: replicas compact at different times, and only this makes a late write
    /// apply the same on all of them (at `now`, the applied horizon, a replicated value).
    fn stored_timetag(&self, k: &[u8], now: u64) -> Result<Option<Timetag>> {
        let Some(raw) = self.raw(k)? else { return Ok(None) };
        let (header, _) = value::decode(&raw)?;
        if crate::store::purgeable_at(&header, now, self.purge_below.get()) {
            return Ok(None);
        }
        Ok(Some(header.timetag))
    }

    /// The stored record's timetag if it is newer than `tt`. The delete bit is ignored: one op
    /// may write a record twice under one timetag (check-and-mutate), and then the later write
    /// wins; two different writes never share a timetag (HLC time, logical counter, cluster).
    fn superseded(&self, k: &[u8], tt: Timetag, now: u64) -> Result<Option<Timetag>> {
        let stored = self.stored_timetag(k, now)?;
        Ok(stored.filter(|s| s.with_delete(false) > tt.with_delete(false)))
    }

    /// Evaluates a check; returns whether it passed and, if asked, the checked value.
    #[allow(clippy::type_complexity)]
    fn check(
        &self,
        hk: &[u8],
        sk: &[u8],
        check: &Check,
        return_value: bool,
        now: u64,
    ) -> Result<CheckOutcome> {
        let current = self.read_live(hk, sk, now)?.map(|(_, v)| v);
        let passed = check_passes(check, current.as_deref(), || describe(hk, sk))?;
        Ok(CheckOutcome { passed, check_value: return_value.then_some(current) })
    }

    /// The live record (not expired at `now_secs`, not a tombstone) under (hk, sk).
    fn read_live(&self, hk: &[u8], sk: &[u8], now_secs: u64) -> Result<Option<(ValueHeader, Vec<u8>)>> {
        let Some(raw) = self.raw(&key::encode(hk, sk)?)? else { return Ok(None) };
        let (header, user) = value::decode(&raw)?;
        Ok(header.is_live(now_secs).then(|| (header, user.to_vec())))
    }

    /// The stored bytes under `k` as this batch sees them: its own earlier writes first.
    fn raw(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.overlay.get(k) {
            Some(staged) => Ok(staged.clone()),
            None => self.store.raw_get(k),
        }
    }
}

fn describe(hk: &[u8], sk: &[u8]) -> String {
    format!("value of hash key \"{}\" sort key \"{}\"", escape(hk, 64), escape(sk, 64))
}

/// Parses a decimal int64: an optional sign and digits, nothing else (no spaces, not empty).
pub fn parse_int(v: &[u8], what: impl FnOnce() -> String) -> Result<i64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Error::NotAnInteger { what: what(), value: escape(v, 64) })
}

/// Whether `check` passes against the record's current value (`None` = absent).
pub fn check_passes(check: &Check, current: Option<&[u8]>, what: impl FnOnce() -> String) -> Result<bool> {
    use CheckType::*;
    let operand = check.operand.as_slice();
    Ok(match check.kind {
        NoCheck => true,
        NotExist => current.is_none(),
        NotExistOrEmpty => current.is_none_or(|v| v.is_empty()),
        Exist => current.is_some(),
        NotEmpty => current.is_some_and(|v| !v.is_empty()),
        MatchAnywhere => {
            current.is_some_and(|v| operand.is_empty() || v.windows(operand.len()).any(|w| w == operand))
        }
        MatchPrefix => current.is_some_and(|v| v.starts_with(operand)),
        MatchPostfix => current.is_some_and(|v| v.ends_with(operand)),
        BytesLess => current.is_some_and(|v| v < operand),
        BytesLessOrEqual => current.is_some_and(|v| v <= operand),
        BytesEqual => current.is_some_and(|v| v == operand),
        BytesGreaterOrEqual => current.is_some_and(|v| v >= operand),
        BytesGreater => current.is_some_and(|v| v > operand),
        IntLess | IntLessOrEqual | IntEqual | IntGreaterOrEqual | IntGreater => {
            let want = parse_int(operand, || "check operand".to_string())?;
            let Some(v) = current else { return Ok(false) };
            let have = parse_int(v, what)?;
            match check.kind {
                IntLess => have < want,
                IntLessOrEqual => have <= want,
                IntEqual => have == want,
                IntGreaterOrEqual => have >= want,
                _ => have > want,
            }
        }
    })
}
