//! Conversions between Tern's types and the generated messages. Decoding from the wire checks
//! shapes and returns `INVALID_ARGUMENT` naming the field; it never panics. The administration
//! states (DR role, link status, ...) convert in [`admin`].

pub mod admin;

use std::ops::Bound as RangeBound;

use tern_core::mutation::{CamOp, Check, CheckAndMutate, CheckAndSet, CheckOutcome, IncrTtl, WriteOutcome};
use tern_core::read::{
    KeyFilter, MultiGet, MultiGetResult, ReadLimits, ReadOp, ReadResult, Record, SortKeyPage, SortKeyScan,
    SortKeyValue, TablePage, TableScan, Ttl,
};
use tern_core::{
    Ballot, CheckType, Decree, Error, Gpid, NodeId, PartitionConfig, ReplicaReport, ReplicaStatus, Result,
    Timetag, WriteOp,
};

pub use self::admin::{
    PbEnum, link_change_from_pb, link_change_to_pb, table_status_from_pb, table_status_to_pb,
};
use crate::pb;

fn missing(field: &str) -> Error {
    Error::InvalidArgument(format!("request is missing {field}"))
}

// ---- ids and configurations ----

pub fn gpid_to_pb(g: Gpid) -> pb::Gpid {
    pb::Gpid { table: g.table.0, partition: g.partition.0 }
}

pub fn gpid_from_pb(g: Option<&pb::Gpid>) -> Result<Gpid> {
    let g = g.ok_or_else(|| missing("gpid"))?;
    Ok(Gpid::new(g.table, g.partition))
}

pub fn config_to_pb(c: &PartitionConfig) -> pb::PartitionConfig {
    pb::PartitionConfig {
        gpid: Some(gpid_to_pb(c.gpid)),
        ballot: c.ballot.0,
        primary: c.primary.map(|p| p.0).unwrap_or(0),
        secondaries: c.secondaries.iter().map(|s| s.0).collect(),
    }
}

pub fn config_from_pb(c: &pb::PartitionConfig) -> Result<PartitionConfig> {
    Ok(PartitionConfig {
        gpid: gpid_from_pb(c.gpid.as_ref())?,
        ballot: Ballot(c.ballot),
        primary: (c.primary != 0).then_some(NodeId(c.primary)),
        secondaries: c.secondaries.iter().map(|s| NodeId(*s)).collect(),
    })
}

fn status_to_pb(s: ReplicaStatus) -> u32 {
    match s {
        ReplicaStatus::Primary => 0,
        ReplicaStatus::Secondary => 1,
        ReplicaStatus::Learner => 2,
        ReplicaStatus::Inactive => 3,
        ReplicaStatus::Error => 4,
    }
}

fn status_from_pb(s: u32) -> Result<ReplicaStatus> {
    Ok(match s {
        0 => ReplicaStatus::Primary,
        1 => ReplicaStatus::Secondary,
        2 => ReplicaStatus::Learner,
        3 => ReplicaStatus::Inactive,
        4 => ReplicaStatus::Error,
        _ => return Err(Error::InvalidArgument(format!("unknown replica status {s}"))),
    })
}

pub fn report_to_pb(r: &ReplicaReport) -> pb::ReplicaReport {
    pb::ReplicaReport {
        gpid: Some(gpid_to_pb(r.gpid)),
        ballot: r.ballot.0,
        status: status_to_pb(r.status),
        committed: r.committed.0,
        last_prepared: r.last_prepared.0,
    }
}

pub fn report_from_pb(r: &pb::ReplicaReport) -> Result<ReplicaReport> {
    Ok(ReplicaReport {
        gpid: gpid_from_pb(r.gpid.as_ref())?,
        ballot: Ballot(r.ballot),
        status: status_from_pb(r.status)?,
        committed: Decree(r.committed),
        last_prepared: Decree(r.last_prepared),
    })
}

// ---- writes ----

fn check_to_pb(c: &Check) -> pb::Check {
    pb::Check { kind: u32::from(c.kind as u8), operand: c.operand.clone() }
}

fn check_from_pb(c: Option<&pb::Check>) -> Result<Check> {
    let c = c.ok_or_else(|| missing("check"))?;
    let kind = u8::try_from(c.kind)
        .ok()
        .and_then(CheckType::from_u8)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown check type {}", c.kind)))?;
    Ok(Check { kind, operand: c.operand.clone() })
}

/// Whether `op` can travel as a client write: `WriteOp::Resolved` cannot (only primaries
/// create it, in their logs).
pub fn check_sendable(op: &WriteOp) -> Result<()> {
    match op {
        WriteOp::Resolved { .. } => Err(Error::InvalidArgument(format!(
            "a {} op is logged by a primary, never sent by a client",
            op.name()
        ))),
        _ => Ok(()),
    }
}

/// A client write as a request; see [`check_sendable`].
pub fn write_to_pb(gpid: Gpid, op: &WriteOp) -> Result<pb::WriteRequest> {
    check_sendable(op)?;
    use pb::write_request::Op;
    let op = match op {
        WriteOp::Set { hash_key, sort_key, value, ttl_secs } => Op::Set(pb::SetOp {
            hash_key: hash_key.clone(),
            sort_key: sort_key.clone(),
            value: value.clone(),
            ttl_secs: *ttl_secs,
        }),
        WriteOp::Del { hash_key, sort_key } => {
            Op::Del(pb::DelOp { hash_key: hash_key.clone(), sort_key: sort_key.clone() })
        }
        WriteOp::MultiSet { hash_key, entries, ttl_secs } => Op::MultiSet(pb::MultiSetOp {
            hash_key: hash_key.clone(),
            entries: entries
                .iter()
                .map(|(s, v)| pb::SortKeyValue { sort_key: s.clone(), value: v.clone() })
                .collect(),
            ttl_secs: *ttl_secs,
        }),
        WriteOp::MultiDel { hash_key, sort_keys } => {
            Op::MultiDel(pb::MultiDelOp { hash_key: hash_key.clone(), sort_keys: sort_keys.clone() })
        }
        WriteOp::Incr { hash_key, sort_key, delta, ttl } => {
            let (mode, secs) = match ttl {
                IncrTtl::Keep => (pb::incr_op::TtlMode::Keep, 0),
                IncrTtl::Clear => (pb::incr_op::TtlMode::Clear, 0),
                IncrTtl::Set(n) => (pb::incr_op::TtlMode::Set, *n),
            };
            Op::Incr(pb::IncrOp {
                hash_key: hash_key.clone(),
                sort_key: sort_key.clone(),
                delta: *delta,
                ttl_mode: mode as i32,
                ttl_secs: secs,
            })
        }
        WriteOp::CheckAndSet(c) => Op::CheckAndSet(pb::CheckAndSetOp {
            hash_key: c.hash_key.clone(),
            check_sort_key: c.check_sort_key.clone(),
            check: Some(check_to_pb(&c.check)),
            set_sort_key: c.set_sort_key.clone(),
            set_value: c.set_value.clone(),
            set_ttl_secs: c.set_ttl_secs,
            return_check_value: c.return_check_value,
        }),
        WriteOp::CheckAndMutate(c) => Op::CheckAndMutate(pb::CheckAndMutateOp {
            hash_key: c.hash_key.clone(),
            check_sort_key: c.check_sort_key.clone(),
            check: Some(check_to_pb(&c.check)),
            mutations: c
                .mutations
                .iter()
                .map(|m| match m {
                    CamOp::Put { sort_key, value, ttl_secs } => pb::CamOp {
                        delete: false,
                        sort_key: sort_key.clone(),
                        value: value.clone(),
                        ttl_secs: *ttl_secs,
                    },
                    CamOp::Delete { sort_key } => {
                        pb::CamOp { delete: true, sort_key: sort_key.clone(), value: vec![], ttl_secs: 0 }
                    }
                })
                .collect(),
            return_check_value: c.return_check_value,
        }),
        WriteOp::Put { .. } => Op::Put(put_to_pb(op)?),
        WriteOp::Resolved { .. } => unreachable!("refused by check_sendable"),
    };
    Ok(pb::WriteRequest { gpid: Some(gpid_to_pb(gpid)), op: Some(op) })
}

/// A `WriteOp::Put` as a message (duplicated writes travel this way).
pub fn put_to_pb(op: &WriteOp) -> Result<pb::PutOp> {
    let WriteOp::Put { hash_key, sort_key, value, expire_ts, timetag } = op else {
        return Err(Error::InvalidArgument(format!("expected a put, got a {}", op.name())));
    };
    Ok(pb::PutOp {
        hash_key: hash_key.clone(),
        sort_key: sort_key.clone(),
        tombstone: value.is_none(),
        value: value.clone().unwrap_or_default(),
        expire_ts: *expire_ts,
        has_timetag: timetag.is_some(),
        timetag: timetag.map_or(0, Timetag::as_u64),
    })
}

/// A put message as a `WriteOp::Put`.
pub fn put_from_pb(o: pb::PutOp) -> Result<WriteOp> {
    if o.tombstone && !o.value.is_empty() {
        return Err(Error::InvalidArgument("a put that is a tombstone carries no value".into()));
    }
    Ok(WriteOp::Put {
        hash_key: o.hash_key,
        sort_key: o.sort_key,
        value: (!o.tombstone).then_some(o.value),
        expire_ts: o.expire_ts,
        timetag: o.has_timetag.then(|| Timetag::from_u64(o.timetag)),
    })
}

pub fn write_from_pb(r: pb::WriteRequest) -> Result<(Gpid, WriteOp)> {
    use pb::write_request::Op;
    let gpid = gpid_from_pb(r.gpid.as_ref())?;
    let op = match r.op.ok_or_else(|| missing("a write operation"))? {
        Op::Set(o) => {
            WriteOp::Set { hash_key: o.hash_key, sort_key: o.sort_key, value: o.value, ttl_secs: o.ttl_secs }
        }
        Op::Del(o) => WriteOp::Del { hash_key: o.hash_key, sort_key: o.sort_key },
        Op::MultiSet(o) => WriteOp::MultiSet {
            hash_key: o.hash_key,
            entries: o.entries.into_iter().map(|e| (e.sort_key, e.value)).collect(),
            ttl_secs: o.ttl_secs,
        },
        Op::MultiDel(o) => WriteOp::MultiDel { hash_key: o.hash_key, sort_keys: o.sort_keys },
        Op::Incr(o) => {
            let ttl = match pb::incr_op::TtlMode::try_from(o.ttl_mode) {
                Ok(pb::incr_op::TtlMode::Keep) => IncrTtl::Keep,
                Ok(pb::incr_op::TtlMode::Clear) => IncrTtl::Clear,
                Ok(pb::incr_op::TtlMode::Set) => IncrTtl::Set(o.ttl_secs),
                Err(_) => {
                    return Err(Error::InvalidArgument(format!("unknown incr TTL mode {}", o.ttl_mode)));
                }
            };
            WriteOp::Incr { hash_key: o.hash_key, sort_key: o.sort_key, delta: o.delta, ttl }
        }
        Op::CheckAndSet(o) => WriteOp::CheckAndSet(CheckAndSet {
            check: check_from_pb(o.check.as_ref())?,
            hash_key: o.hash_key,
            check_sort_key: o.check_sort_key,
            set_sort_key: o.set_sort_key,
            set_value: o.set_value,
            set_ttl_secs: o.set_ttl_secs,
            return_check_value: o.return_check_value,
        }),
        Op::CheckAndMutate(o) => WriteOp::CheckAndMutate(CheckAndMutate {
            check: check_from_pb(o.check.as_ref())?,
            hash_key: o.hash_key,
            check_sort_key: o.check_sort_key,
            mutations: o
                .mutations
                .into_iter()
                .map(|m| {
                    if m.delete {
                        CamOp::Delete { sort_key: m.sort_key }
                    } else {
                        CamOp::Put { sort_key: m.sort_key, value: m.value, ttl_secs: m.ttl_secs }
                    }
                })
                .collect(),
            return_check_value: o.return_check_value,
        }),
        Op::Put(o) => put_from_pb(o)?,
    };
    Ok((gpid, op))
}

/// A successful outcome as a response. (`WriteOutcome::Failed` travels as a status instead.)
pub fn outcome_to_pb(o: &WriteOutcome) -> pb::WriteResponse {
    use pb::write_response::Outcome;
    let outcome = match o {
        WriteOutcome::Done | WriteOutcome::Failed(_) => Outcome::Done(pb::Empty {}),
        WriteOutcome::Incr { new_value } => Outcome::IncrValue(*new_value),
        WriteOutcome::Checked(c) => Outcome::Checked(pb::CheckResult {
            passed: c.passed,
            check_value_returned: c.check_value.is_some(),
            check_value_found: matches!(c.check_value, Some(Some(_))),
            check_value: c.check_value.clone().flatten().unwrap_or_default(),
        }),
        WriteOutcome::Superseded { stored } => Outcome::SupersededBy(stored.as_u64()),
        WriteOutcome::Replaced { stored } => Outcome::Replaced(stored.as_u64()),
    };
    pb::WriteResponse { outcome: Some(outcome) }
}

pub fn outcome_from_pb(r: pb::WriteResponse) -> Result<WriteOutcome> {
    use pb::write_response::Outcome;
    Ok(match r.outcome.ok_or_else(|| missing("an outcome"))? {
        Outcome::Done(_) => WriteOutcome::Done,
        Outcome::IncrValue(new_value) => WriteOutcome::Incr { new_value },
        Outcome::SupersededBy(t) => WriteOutcome::Superseded { stored: Timetag::from_u64(t) },
        Outcome::Replaced(t) => WriteOutcome::Replaced { stored: Timetag::from_u64(t) },
        Outcome::Checked(c) => WriteOutcome::Checked(CheckOutcome {
            passed: c.passed,
            check_value: c.check_value_returned.then(|| c.check_value_found.then_some(c.check_value)),
        }),
    })
}

// ---- reads ----

fn limits_to_pb(l: &ReadLimits) -> pb::ReadLimits {
    pb::ReadLimits { max_count: l.max_count.unwrap_or(0), max_bytes: l.max_bytes.unwrap_or(0) }
}

fn limits_from_pb(l: Option<&pb::ReadLimits>) -> ReadLimits {
    let l = l.cloned().unwrap_or_default();
    ReadLimits {
        max_count: (l.max_count != 0).then_some(l.max_count),
        max_bytes: (l.max_bytes != 0).then_some(l.max_bytes),
    }
}

fn filter_to_pb(f: &Option<KeyFilter>) -> Option<pb::KeyFilter> {
    use pb::key_filter::Kind;
    f.as_ref().map(|f| match f {
        KeyFilter::Prefix(p) => pb::KeyFilter { kind: Kind::Prefix as i32, pattern: p.clone() },
        KeyFilter::Postfix(p) => pb::KeyFilter { kind: Kind::Postfix as i32, pattern: p.clone() },
        KeyFilter::Anywhere(p) => pb::KeyFilter { kind: Kind::Anywhere as i32, pattern: p.clone() },
    })
}

fn filter_from_pb(f: Option<&pb::KeyFilter>) -> Result<Option<KeyFilter>> {
    use pb::key_filter::Kind;
    let Some(f) = f else { return Ok(None) };
    Ok(match Kind::try_from(f.kind) {
        Ok(Kind::None) => None,
        Ok(Kind::Prefix) => Some(KeyFilter::Prefix(f.pattern.clone())),
        Ok(Kind::Postfix) => Some(KeyFilter::Postfix(f.pattern.clone())),
        Ok(Kind::Anywhere) => Some(KeyFilter::Anywhere(f.pattern.clone())),
        Err(_) => return Err(Error::InvalidArgument(format!("unknown key filter kind {}", f.kind))),
    })
}

fn bound_to_pb(b: &RangeBound<Vec<u8>>) -> Option<pb::Bound> {
    match b {
        RangeBound::Included(k) => Some(pb::Bound { key: k.clone(), inclusive: true }),
        RangeBound::Excluded(k) => Some(pb::Bound { key: k.clone(), inclusive: false }),
        RangeBound::Unbounded => None,
    }
}

fn bound_from_pb(b: Option<&pb::Bound>) -> RangeBound<Vec<u8>> {
    match b {
        Some(b) if b.inclusive => RangeBound::Included(b.key.clone()),
        Some(b) => RangeBound::Excluded(b.key.clone()),
        None => RangeBound::Unbounded,
    }
}

fn scan_to_pb(s: &SortKeyScan) -> pb::SortKeyScan {
    pb::SortKeyScan {
        start: bound_to_pb(&s.start),
        end: bound_to_pb(&s.end),
        filter: filter_to_pb(&s.filter),
        reverse: s.reverse,
        no_value: s.no_value,
        limits: Some(limits_to_pb(&s.limits)),
    }
}

fn scan_from_pb(s: Option<&pb::SortKeyScan>) -> Result<SortKeyScan> {
    let s = s.cloned().unwrap_or_default();
    Ok(SortKeyScan {
        start: bound_from_pb(s.start.as_ref()),
        end: bound_from_pb(s.end.as_ref()),
        filter: filter_from_pb(s.filter.as_ref())?,
        reverse: s.reverse,
        no_value: s.no_value,
        limits: limits_from_pb(s.limits.as_ref()),
    })
}

pub fn read_to_pb(gpid: Gpid, op: &ReadOp) -> pb::ReadRequest {
    use pb::read_request::Op;
    let op = match op {
        ReadOp::Get { hash_key, sort_key } => {
            Op::Get(pb::GetOp { hash_key: hash_key.clone(), sort_key: sort_key.clone() })
        }
        ReadOp::MultiGet { hash_key, request } => Op::MultiGet(match request {
            MultiGet::Keys { sort_keys, no_value, limits } => pb::MultiGetOp {
                hash_key: hash_key.clone(),
                sort_keys: sort_keys.clone(),
                range: None,
                no_value: *no_value,
                limits: Some(limits_to_pb(limits)),
            },
            MultiGet::Range(scan) => pb::MultiGetOp {
                hash_key: hash_key.clone(),
                sort_keys: vec![],
                range: Some(scan_to_pb(scan)),
                no_value: scan.no_value,
                limits: Some(limits_to_pb(&scan.limits)),
            },
        }),
        ReadOp::Scan { hash_key, scan } => {
            Op::Scan(pb::ScanOp { hash_key: hash_key.clone(), scan: Some(scan_to_pb(scan)) })
        }
        ReadOp::Count { hash_key } => Op::Count(pb::CountOp { hash_key: hash_key.clone() }),
        ReadOp::Ttl { hash_key, sort_key } => {
            Op::Ttl(pb::TtlOp { hash_key: hash_key.clone(), sort_key: sort_key.clone() })
        }
        ReadOp::ScanTable { scan } => Op::ScanTable(pb::ScanTableOp {
            has_resume_token: scan.resume_token.is_some(),
            resume_token: scan.resume_token.clone().unwrap_or_default(),
            hash_key_filter: filter_to_pb(&scan.hash_key_filter),
            sort_key_filter: filter_to_pb(&scan.sort_key_filter),
            no_value: scan.no_value,
            limits: Some(limits_to_pb(&scan.limits)),
        }),
    };
    pb::ReadRequest { gpid: Some(gpid_to_pb(gpid)), op: Some(op) }
}

pub fn read_from_pb(r: pb::ReadRequest) -> Result<(Gpid, ReadOp)> {
    use pb::read_request::Op;
    let gpid = gpid_from_pb(r.gpid.as_ref())?;
    let op = match r.op.ok_or_else(|| missing("a read operation"))? {
        Op::Get(o) => ReadOp::Get { hash_key: o.hash_key, sort_key: o.sort_key },
        Op::MultiGet(o) => ReadOp::MultiGet {
            request: match &o.range {
                Some(scan) => MultiGet::Range(scan_from_pb(Some(scan))?),
                None => MultiGet::Keys {
                    sort_keys: o.sort_keys,
                    no_value: o.no_value,
                    limits: limits_from_pb(o.limits.as_ref()),
                },
            },
            hash_key: o.hash_key,
        },
        Op::Scan(o) => ReadOp::Scan { scan: scan_from_pb(o.scan.as_ref())?, hash_key: o.hash_key },
        Op::Count(o) => ReadOp::Count { hash_key: o.hash_key },
        Op::Ttl(o) => ReadOp::Ttl { hash_key: o.hash_key, sort_key: o.sort_key },
        Op::ScanTable(o) => ReadOp::ScanTable {
            scan: TableScan {
                resume_token: o.has_resume_token.then_some(o.resume_token),
                hash_key_filter: filter_from_pb(o.hash_key_filter.as_ref())?,
                sort_key_filter: filter_from_pb(o.sort_key_filter.as_ref())?,
                no_value: o.no_value,
                limits: limits_from_pb(o.limits.as_ref()),
            },
        },
    };
    Ok((gpid, op))
}

fn skvs_to_pb(v: &[SortKeyValue]) -> Vec<pb::SortKeyValue> {
    v.iter().map(|r| pb::SortKeyValue { sort_key: r.sort_key.clone(), value: r.value.clone() }).collect()
}

fn skvs_from_pb(v: Vec<pb::SortKeyValue>) -> Vec<SortKeyValue> {
    v.into_iter().map(|r| SortKeyValue { sort_key: r.sort_key, value: r.value }).collect()
}

pub fn read_result_to_pb(r: &ReadResult) -> pb::ReadResponse {
    use pb::read_response::Result as R;
    let result = match r {
        ReadResult::Get(v) => {
            R::Get(pb::GetResult { found: v.is_some(), value: v.clone().unwrap_or_default() })
        }
        ReadResult::MultiGet(m) => {
            R::MultiGet(pb::MultiGetResult { records: skvs_to_pb(&m.records), complete: m.complete })
        }
        ReadResult::Scan(p) => R::Scan(pb::ScanResult {
            records: skvs_to_pb(&p.records),
            has_resume: p.resume.is_some(),
            resume: p.resume.clone().unwrap_or_default(),
        }),
        ReadResult::Count(n) => R::Count(*n),
        ReadResult::Ttl(t) => R::Ttl(match t {
            None => pb::TtlResult { found: false, persistent: false, remaining_secs: 0 },
            Some(Ttl::Persistent) => pb::TtlResult { found: true, persistent: true, remaining_secs: 0 },
            Some(Ttl::Remaining(s)) => pb::TtlResult { found: true, persistent: false, remaining_secs: *s },
        }),
        ReadResult::ScanTable(p) => R::ScanTable(pb::ScanTableResult {
            records: p
                .records
                .iter()
                .map(|r| pb::Record {
                    hash_key: r.hash_key.clone(),
                    sort_key: r.sort_key.clone(),
                    value: r.value.clone(),
                })
                .collect(),
            has_resume_token: p.resume_token.is_some(),
            resume_token: p.resume_token.clone().unwrap_or_default(),
        }),
    };
    pb::ReadResponse { result: Some(result), possibly_stale: false }
}

pub fn read_result_from_pb(r: pb::ReadResponse) -> Result<ReadResult> {
    use pb::read_response::Result as R;
    Ok(match r.result.ok_or_else(|| missing("a read result"))? {
        R::Get(g) => ReadResult::Get(g.found.then_some(g.value)),
        R::MultiGet(m) => {
            ReadResult::MultiGet(MultiGetResult { records: skvs_from_pb(m.records), complete: m.complete })
        }
        R::Scan(s) => ReadResult::Scan(SortKeyPage {
            records: skvs_from_pb(s.records),
            resume: s.has_resume.then_some(s.resume),
        }),
        R::Count(n) => ReadResult::Count(n),
        R::Ttl(t) => ReadResult::Ttl(match (t.found, t.persistent) {
            (false, _) => None,
            (true, true) => Some(Ttl::Persistent),
            (true, false) => Some(Ttl::Remaining(t.remaining_secs)),
        }),
        R::ScanTable(p) => ReadResult::ScanTable(TablePage {
            records: p
                .records
                .into_iter()
                .map(|r| Record { hash_key: r.hash_key, sort_key: r.sort_key, value: r.value })
                .collect(),
            resume_token: p.has_resume_token.then_some(p.resume_token),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_round_trip() {
        let g = Gpid::new(3, 1);
        // Every kind a client can send (a resolved op is made by primaries only).
        let ops = tern_core::testing::every_kind_of_write()
            .into_iter()
            .filter(|op| !matches!(op, WriteOp::Resolved { .. }));
        for op in ops {
            assert_eq!(write_from_pb(write_to_pb(g, &op).unwrap()).unwrap(), (g, op));
        }
    }

    #[test]
    fn outcomes_and_reads_round_trip() {
        for o in [
            WriteOutcome::Done,
            WriteOutcome::Incr { new_value: -3 },
            WriteOutcome::Superseded { stored: Timetag::from_u64(5) },
            WriteOutcome::Replaced { stored: Timetag::from_u64(6) },
            WriteOutcome::Checked(CheckOutcome { passed: true, check_value: None }),
            WriteOutcome::Checked(CheckOutcome { passed: false, check_value: Some(None) }),
            WriteOutcome::Checked(CheckOutcome { passed: false, check_value: Some(Some(b"v".to_vec())) }),
        ] {
            assert_eq!(outcome_from_pb(outcome_to_pb(&o)).unwrap(), o);
        }
        let g = Gpid::new(1, 0);
        let scan = SortKeyScan {
            start: RangeBound::Included(b"a".to_vec()),
            end: RangeBound::Excluded(b"z".to_vec()),
            filter: Some(KeyFilter::Postfix(b"x".to_vec())),
            reverse: true,
            no_value: true,
            limits: ReadLimits { max_count: Some(5), max_bytes: None },
        };
        for op in [
            ReadOp::Get { hash_key: b"h".to_vec(), sort_key: b"s".to_vec() },
            ReadOp::MultiGet {
                hash_key: b"h".to_vec(),
                request: MultiGet::Keys {
                    sort_keys: vec![b"a".to_vec()],
                    no_value: false,
                    limits: ReadLimits::default(),
                },
            },
            ReadOp::MultiGet { hash_key: b"h".to_vec(), request: MultiGet::Range(scan.clone()) },
            ReadOp::Scan { hash_key: b"h".to_vec(), scan },
            ReadOp::Count { hash_key: b"h".to_vec() },
            ReadOp::Ttl { hash_key: b"h".to_vec(), sort_key: vec![] },
            ReadOp::ScanTable { scan: TableScan { resume_token: Some(vec![0, 1]), ..TableScan::default() } },
        ] {
            assert_eq!(read_from_pb(read_to_pb(g, &op)).unwrap(), (g, op));
        }
        for r in [
            ReadResult::Get(None),
            ReadResult::Get(Some(vec![])),
            ReadResult::Count(7),
            ReadResult::Ttl(Some(Ttl::Remaining(3))),
            ReadResult::Ttl(Some(Ttl::Persistent)),
            ReadResult::Scan(SortKeyPage {
                records: vec![SortKeyValue { sort_key: b"a".to_vec(), value: b"1".to_vec() }],
                resume: Some(b"a".to_vec()),
            }),
            ReadResult::ScanTable(TablePage { records: vec![], resume_token: None }),
        ] {
            assert_eq!(read_result_from_pb(read_result_to_pb(&r)).unwrap(), r);
        }
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let e = write_from_pb(pb::WriteRequest { gpid: None, op: None }).unwrap_err();
        assert!(e.to_string().contains("gpid"), "{e}");
        let e = write_from_pb(pb::WriteRequest { gpid: Some(gpid_to_pb(Gpid::new(1, 0))), op: None })
            .unwrap_err();
        assert!(e.to_string().contains("write operation"), "{e}");
    }
}
