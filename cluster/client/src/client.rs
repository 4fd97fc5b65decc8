//! `TernClient`: the data model over a cluster.
//!
//! It asks the meta server for a table's routing (partition configurations and server addresses),
//! hashes each hash key to its partition, sends to the primary, and retries by error class
//! within a deadline with bounded backoff, refreshing the routing when the error says it is out
//! of date. Writes that are not idempotent (incr, check-and-set, check-and-mutate) are retried
//! only when they certainly did not happen; after a timeout their outcome is unknown and the
//! error says so.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tern_core::mutation::WriteOutcome;
use tern_core::read::{ReadOp, ReadResult, TablePage, TableScan};
use tern_core::{
    ClusterId, DrRole, Error, ErrorCode, Gpid, NodeId, PartitionConfig, Result, Timetag, WriteOp,
    partition_of,
};
use tern_proto::convert::{
    check_sendable, gpid_to_pb, outcome_from_pb, put_to_pb, read_result_from_pb, read_to_pb, write_to_pb,
};
use tern_proto::pb;
use tern_proto::pb::kv_client::KvClient;

use crate::admin::convert::route_from_pb;
use crate::pipeline::Pipelines;
use crate::transport::error_of;
use crate::{MetaClient, Pool};
use pb::kv_answer::Answer;
use pb::kv_call::Call;

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Every meta server's `host:port`.
    pub meta: Vec<String>,
    /// How long one operation may take, retries included.
    pub timeout: Duration,
}

impl ClientOptions {
    pub fn new(meta: Vec<String>) -> ClientOptions {
        ClientOptions { meta, timeout: Duration::from_secs(10) }
    }
}

/// A table's routing as the meta server gave it.
#[derive(Debug)]
pub struct Route {
    pub table_id: u32,
    pub partitions: u32,
    pub configs: Vec<Option<PartitionConfig>>,
    pub addresses: HashMap<NodeId, String>,
    /// The table's DR role in the cluster this route leads to.
    pub role: DrRole,
}

impl Route {
    pub(crate) fn primary_addr(&self, partition: u32) -> Option<String> {
        let p = self.configs.get(partition as usize)?.as_ref()?.primary?;
        self.addresses.get(&p).cloned()
    }
}

/// A page of a whole-table scan, and where to continue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableScanCursor {
    pub partition: u32,
    pub token: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct TernClient {
    pub(crate) opts: ClientOptions,
    meta: MetaClient,
    pub(crate) pool: Pool,
    pipelines: Pipelines,
    routes: RwLock<HashMap<String, Arc<Route>>>,
    /// Asks for routes as the restore tool (`TernClient::for_restore`): a table being restored
    /// has no route for anyone else.
    for_restore: bool,
}

fn idempotent(op: &WriteOp) -> bool {
    matches!(
        op,
        WriteOp::Set { .. } | WriteOp::Del { .. } | WriteOp::MultiSet { .. } | WriteOp::MultiDel { .. }
    )
}

/// Whether `e` guarantees the write did not happen (so even a non-idempotent one may be
/// retried). `TIMEOUT`, `OUTCOME_UNKNOWN` and `TRANSPORT` do not.
fn certainly_not_applied(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::NotPrimary
            | ErrorCode::StaleBallot
            | ErrorCode::Busy
            | ErrorCode::Unavailable
            | ErrorCode::Standby
            | ErrorCode::NoDrLease
            | ErrorCode::Restoring
    )
}

/// What a shipper says of its sending partition with every batch and heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShipHeader {
    /// The sending cluster (every put's timetag carries it).
    pub from_cluster: ClusterId,
    pub source_table: u32,
    pub source_partition: u32,
    /// The sending table's partition count.
    pub source_partitions: u32,
    /// Every write of the sending partition with a timetag at or below this has been applied
    /// by the receiving table (as the sending cluster's meta servers recorded it).
    pub replicated_up_to: Timetag,
    /// The puts are records of a full sync (informational).
    pub full_sync: bool,
}

impl TernClient {
    pub fn new(opts: ClientOptions) -> Result<TernClient> {
        let meta = MetaClient::new(opts.meta.clone())?;
        Ok(TernClient {
            opts,
            meta,
            pool: Pool::new(),
            pipelines: Pipelines::default(),
            routes: RwLock::new(HashMap::new()),
            for_restore: false,
        })
    }

    /// A client for `tern backup restore`: it gets routes to tables being restored (which
    /// refuse other clients), to send them a backup's records with [`TernClient::restore`].
    pub fn for_restore(opts: ClientOptions) -> Result<TernClient> {
        Ok(TernClient { for_restore: true, ..TernClient::new(opts)? })
    }

    pub fn meta(&self) -> &MetaClient {
        &self.meta
    }

    /// The table's routing, from the cache or the meta server.
    pub async fn route(&self, table: &str, refresh: bool) -> Result<Arc<Route>> {
        if !refresh && let Some(r) = self.routes.read().unwrap_or_else(|e| e.into_inner()).get(table) {
            return Ok(r.clone());
        }
        let name = table.to_string();
        let for_restore = self.for_restore;
        let r = self
            .meta
            .call(|mut c| {
                let name = name.clone();
                async move { c.get_route(pb::RouteRequest { table: name, for_restore }).await }
            })
            .await
            .and_then(route_from_pb)?;
        let mut configs = vec![None; r.table.partitions as usize];
        for c in r.partitions {
            if let Some(slot) = configs.get_mut(c.gpid.partition.0 as usize) {
                *slot = Some(c);
            }
        }
        let route = Arc::new(Route {
            table_id: r.table.id.0,
            partitions: r.table.partitions,
            configs,
            addresses: r.addresses.into_iter().collect(),
            role: r.table.role,
        });
        self.routes.write().unwrap_or_else(|e| e.into_inner()).insert(table.to_string(), route.clone());
        Ok(route)
    }

    /// Runs `attempt` against the primary of `partition` until it succeeds, fails for good, or
    /// the deadline passes.
    async fn with_retries<T, F, Fut>(
        &self,
        table: &str,
        partition: Option<u32>,
        hash_key: &[u8],
        may_retry: impl Fn(&Error) -> bool,
        attempt: F,
    ) -> Result<T>
    where
        F: Fn(String, Gpid) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        let mut refresh = false;
        let mut backoff = Duration::from_millis(10);
        loop {
            let err = match self.route(table, refresh).await {
                Ok(route) => {
                    let p = partition.unwrap_or_else(|| partition_of(hash_key, route.partitions).0);
                    let gpid = Gpid::new(route.table_id, p);
                    match route.primary_addr(p) {
                        None => Error::Unavailable(format!("partition {gpid} has no primary right now")),
                        Some(addr) => {
                            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                            match tokio::time::timeout(
                                left.min(Duration::from_secs(5)),
                                attempt(addr.clone(), gpid),
                            )
                            .await
                            {
                                Ok(Ok(v)) => return Ok(v),
                                Ok(Err(e)) => e,
                                Err(_) => {
                                    Error::Timeout(format!("partition {gpid} at {addr} did not answer"))
                                }
                            }
                        }
                    }
                }
                Err(e) => e,
            };
            // A standby answered: through a proxy, the refreshed route leads to the active
            // cluster (a role change); straight from a cluster's meta, it is still the standby.
            // (Mid-move, a proxy may briefly know no active copy: that is worth waiting for.)
            let follow = err.code() == ErrorCode::Standby
                && match self.route(table, true).await {
                    Ok(r) => r.role == DrRole::Active,
                    Err(e) => e.is_retryable(),
                };
            if !(err.is_retryable() || follow)
                || !may_retry(&err)
                || tokio::time::Instant::now() + backoff >= deadline
            {
                return Err(err);
            }
            refresh = true;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    pub async fn write(&self, table: &str, op: WriteOp) -> Result<WriteOutcome> {
        let hash_key = op.hash_key().to_vec();
        let idem = idempotent(&op);
        let may_retry = move |e: &Error| idem || certainly_not_applied(e);
        // Refused here, before any routing, if the op cannot be sent at all.
        check_sendable(&op)?;
        self.with_retries(table, None, &hash_key, may_retry, |addr, gpid| {
            let req = write_to_pb(gpid, &op).expect("checked above");
            async move {
                match self.pipelined(&addr, Call::Write(req)).await? {
                    Answer::Write(w) => Ok(w),
                    Answer::Read(_) => Err(Error::invariant(format!("{addr} answered a write with a read"))),
                }
            }
        })
        .await
        .and_then(outcome_from_pb)
    }

    /// Sends duplicated writes (puts carrying their origin cluster's timetags) to partition
    /// `partition` of `table`, as the shipper of a duplication link does, with what the sending
    /// partition says of itself (`header`). Every put must hash to that partition; no puts is a
    /// heartbeat. Always retried: applying a put twice changes nothing (last-writer-wins).
    pub async fn duplicate(
        &self,
        table: &str,
        partition: u32,
        header: &ShipHeader,
        puts: &[WriteOp],
    ) -> Result<pb::DuplicateResponse> {
        let puts = puts.iter().map(put_to_pb).collect::<Result<Vec<_>>>()?;
        // Tables are never split: the partition count the shipper routed by stays right.
        let partition_count = self.route(table, false).await?.partitions;
        self.with_retries(
            table,
            Some(partition),
            &[],
            |_| true,
            |addr, gpid| {
                let req = pb::DuplicateRequest {
                    gpid: Some(gpid_to_pb(gpid)),
                    from_cluster: u32::from(header.from_cluster.get()),
                    partition_count,
                    puts: puts.clone(),
                    full_sync: header.full_sync,
                    source_table: header.source_table,
                    source_partition: header.source_partition,
                    source_partitions: header.source_partitions,
                    replicated_up_to: header.replicated_up_to.as_u64(),
                };
                async move {
                    let mut c = KvClient::new(self.pool.channel(&addr)?);
                    c.duplicate(req).await.map(|r| r.into_inner()).map_err(|s| error_of(&s))
                }
            },
        )
        .await
    }

    /// Sends records of `backup` (puts with the timetags they were written with) to partition
    /// `partition` of `table`, which is being restored from that backup (a client made by
    /// [`TernClient::for_restore`]). Every put must hash to that partition under the table's
    /// partition count. Always retried: applying a put twice changes nothing (last-writer-wins).
    pub async fn restore(
        &self,
        table: &str,
        partition: u32,
        backup: &str,
        puts: &[WriteOp],
    ) -> Result<pb::RestoreResponse> {
        let puts = puts.iter().map(put_to_pb).collect::<Result<Vec<_>>>()?;
        let partition_count = self.route(table, false).await?.partitions;
        self.with_retries(
            table,
            Some(partition),
            &[],
            |_| true,
            |addr, gpid| {
                let req = pb::RestoreRequest {
                    gpid: Some(gpid_to_pb(gpid)),
                    partition_count,
                    backup: backup.to_string(),
                    puts: puts.clone(),
                };
                async move {
                    let mut c = KvClient::new(self.pool.channel(&addr)?);
                    c.restore(req).await.map(|r| r.into_inner()).map_err(|s| error_of(&s))
                }
            },
        )
        .await
    }

    /// A read of one hash key's records (everything but a table scan).
    pub async fn read(&self, table: &str, op: ReadOp) -> Result<ReadResult> {
        self.read_marked(table, op).await.map(|(r, _)| r)
    }

    /// [`TernClient::read`], and whether the answer may lag: the table is a DR standby in the
    /// cluster that answered (it gets writes only by duplication from the active cluster).
    pub async fn read_marked(&self, table: &str, op: ReadOp) -> Result<(ReadResult, bool)> {
        let hash_key = match &op {
            ReadOp::Get { hash_key, .. }
            | ReadOp::MultiGet { hash_key, .. }
            | ReadOp::Scan { hash_key, .. }
            | ReadOp::Count { hash_key }
            | ReadOp::Ttl { hash_key, .. } => hash_key.clone(),
            ReadOp::ScanTable { .. } => {
                return Err(Error::InvalidArgument("use scan_table for table scans".into()));
            }
        };
        let once = || {
            self.with_retries(table, None, &hash_key, |_| true, |addr, gpid| self.read_at(addr, gpid, &op))
        };
        let r = once().await?;
        // A standby answered although the route said active: the role moved. Through a proxy
        // the refreshed route leads to the new active copy; read there (once).
        let r = if r.possibly_stale
            && self.route(table, false).await.is_ok_and(|r| r.role == DrRole::Active)
            && self.route(table, true).await?.role == DrRole::Active
        {
            once().await?
        } else {
            r
        };
        let stale = r.possibly_stale;
        read_result_from_pb(r).map(|r| (r, stale))
    }

    /// `call` over the pipeline to the server at `addr`.
    async fn pipelined(&self, addr: &str, call: Call) -> Result<Answer> {
        self.pipelines.call(addr, || self.pool.channel(addr), call).await
    }

    /// One attempt of `op` at the primary of `gpid`, at `addr`.
    async fn read_at(&self, addr: String, gpid: Gpid, op: &ReadOp) -> Result<pb::ReadResponse> {
        match self.pipelined(&addr, Call::Read(read_to_pb(gpid, op))).await? {
            Answer::Read(r) => Ok(r),
            Answer::Write(_) => Err(Error::invariant(format!("{addr} answered a read with a write"))),
        }
    }

    /// One page of a whole-table scan (partition by partition). `None` as the next cursor means
    /// the table is done.
    pub async fn scan_table(
        &self,
        table: &str,
        cursor: &TableScanCursor,
        scan: &TableScan,
    ) -> Result<(TablePage, Option<TableScanCursor>)> {
        let route = self.route(table, false).await?;
        let mut scan = scan.clone();
        scan.resume_token = cursor.token.clone();
        let op = ReadOp::ScanTable { scan };
        let page = self
            .with_retries(
                table,
                Some(cursor.partition),
                &[],
                |_| true,
                |addr, gpid| self.read_at(addr, gpid, &op),
            )
            .await
            .and_then(read_result_from_pb)?;
        let ReadResult::ScanTable(page) = page else {
            return Err(Error::invariant("a table scan returned another result"));
        };
        let next = match &page.resume_token {
            Some(t) => Some(TableScanCursor { partition: cursor.partition, token: Some(t.clone()) }),
            None if cursor.partition + 1 < route.partitions => {
                Some(TableScanCursor { partition: cursor.partition + 1, token: None })
            }
            None => None,
        };
        Ok((page, next))
    }
}

/// The retry rules for writes: which writes may be sent again after which errors, and why.
#[cfg(test)]
mod tests {
    use tern_core::testing::every_kind_of_write;
    use tern_core::{ErrorCode, WriteOp};
    use tonic::{Code, Status};

    use super::{Error, certainly_not_applied, idempotent};

    /// Whether applying `op` twice is the same as applying it once, and why. No wildcard: a new
    /// kind of write does not compile until someone decides whether it may be sent twice.
    fn expected_idempotent(op: &WriteOp) -> (bool, &'static str) {
        match op {
            WriteOp::Set { .. } | WriteOp::MultiSet { .. } => (true, "sets the same value again"),
            WriteOp::Del { .. } | WriteOp::MultiDel { .. } => (true, "removing an absent record succeeds"),
            WriteOp::Incr { .. } => (false, "a second increment adds again"),
            WriteOp::CheckAndSet(_) | WriteOp::CheckAndMutate(_) => {
                (false, "the second check sees the first one's write: another result")
            }
            WriteOp::Put { .. } => (
                false,
                "conservative: a put without an origin timetag is stamped when applied, so a \
                 second one can undo a later write; the shipper's puts go through `duplicate`, \
                 which always retries (last-writer-wins on their origin timetags)",
            ),
            WriteOp::Resolved { .. } => (false, "never sent by a client (`check_sendable` refuses it)"),
        }
    }

    #[test]
    fn only_writes_that_can_be_applied_twice_are_idempotent() {
        let writes = every_kind_of_write();
        let kinds: std::collections::BTreeSet<&str> = writes.iter().map(|w| w.name()).collect();
        assert_eq!(kinds.len(), 9, "every kind");
        for op in &writes {
            let (expected, why) = expected_idempotent(op);
            assert_eq!(idempotent(op), expected, "{}: {why}", op.name());
        }
    }

    /// Every error code: whether it proves the write did not happen (so that even a write that
    /// is not idempotent may be sent again), and why.
    const NOT_APPLIED: &[(ErrorCode, bool, &str)] = &[
        (ErrorCode::LimitExceeded, false, "moot: not retryable, the same write is refused again"),
        (ErrorCode::InvalidArgument, false, "moot: not retryable"),
        (ErrorCode::NotAnInteger, false, "moot: not retryable (every replica refuses it alike)"),
        (ErrorCode::IntegerOverflow, false, "moot: not retryable"),
        (ErrorCode::TableNotFound, false, "moot: not retryable"),
        (ErrorCode::NotPrimary, true, "refused before logging: the replica is not the primary"),
        (ErrorCode::StaleBallot, true, "refused before logging: a ballot check"),
        (
            ErrorCode::Unavailable,
            true,
            "refused before it was logged (no lease, reconciling, queued when the primary \
             stepped down, replica closing); a refused write that was logged is \
             OUTCOME_UNKNOWN instead",
        ),
        (ErrorCode::Timeout, false, "the write may have been logged and may still commit"),
        (ErrorCode::Busy, true, "refused at admission (too many writes in flight or waiting)"),
        (ErrorCode::Corruption, false, "moot: not retryable"),
        (ErrorCode::InvariantViolated, false, "moot: not retryable"),
        (ErrorCode::Io, false, "moot: not retryable"),
        (ErrorCode::OutcomeUnknown, false, "logged: a later primary may still commit it"),
        (ErrorCode::Transport, false, "the connection failed: the request may have arrived"),
        (ErrorCode::Standby, true, "a standby takes no client writes: it refused it"),
        (ErrorCode::EpochConflict, false, "moot: not retryable (and not a write error)"),
        (ErrorCode::ClockAhead, false, "moot: not retryable (only duplicated writes get it)"),
        (ErrorCode::NoDrLease, true, "refused at admission: the cluster does not hold the DR lease"),
        (ErrorCode::Restoring, true, "refused at admission: the table is being restored"),
    ];

    #[test]
    fn only_errors_that_prove_nothing_was_written_are_certainly_not_applied() {
        let codes: Vec<ErrorCode> = NOT_APPLIED.iter().map(|&(c, ..)| c).collect();
        assert_eq!(codes, ErrorCode::ALL, "every code has a row");
        for &(code, expected, why) in NOT_APPLIED {
            // As errors arrive from a server: a code and a message.
            let e = Error::Remote { code, message: "m".into() };
            assert_eq!(certainly_not_applied(&e), expected, "{code}: {why}");
        }
        // The client's own errors classify by code too.
        let gpid = tern_core::Gpid::new(1, 0);
        assert!(certainly_not_applied(&Error::NotPrimary { gpid }));
        assert!(certainly_not_applied(&Error::Unavailable("partition 1.0 has no primary right now".into())));
        assert!(!certainly_not_applied(&Error::Timeout("partition 1.0 at a:1 did not answer".into())));
    }

    /// UNAVAILABLE from a Tern server (it never logged the write) and UNAVAILABLE from the
    /// transport (the request may have arrived) are told apart by the Tern code a server adds.
    #[test]
    fn a_transport_failure_is_not_taken_for_a_refusal() {
        let from_server = tern_proto::status::to_status(&Error::Unavailable("no lease".into()));
        assert_eq!(from_server.code(), Code::Unavailable);
        assert!(certainly_not_applied(&tern_proto::status::from_status(&from_server)));
        let from_transport = Status::unavailable("connection reset");
        assert!(!certainly_not_applied(&tern_proto::status::from_status(&from_transport)));
    }

    /// `with_retries`' gate for a failed write attempt (deadline permitting): the error is
    /// retryable, or a standby that the refreshed route leads away from (assumed here), and the
    /// write's own rule (`write`: idempotent, or certainly not applied) allows it.
    fn sent_again(op: &WriteOp, e: &Error) -> bool {
        let follow = e.code() == ErrorCode::Standby;
        (e.is_retryable() || follow) && (idempotent(op) || certainly_not_applied(e))
    }

    /// Every error code against both classes of write: (code, an idempotent write is sent
    /// again, a write that is not idempotent is sent again).
    const SENT_AGAIN: &[(ErrorCode, bool, bool)] = &[
        (ErrorCode::LimitExceeded, false, false),
        (ErrorCode::InvalidArgument, false, false),
        (ErrorCode::NotAnInteger, false, false),
        (ErrorCode::IntegerOverflow, false, false),
        (ErrorCode::TableNotFound, false, false),
        (ErrorCode::NotPrimary, true, true),
        (ErrorCode::StaleBallot, true, true),
        (ErrorCode::Unavailable, true, true),
        (ErrorCode::Timeout, true, false),
        (ErrorCode::Busy, true, true),
        (ErrorCode::Corruption, false, false),
        (ErrorCode::InvariantViolated, false, false),
        (ErrorCode::Io, false, false),
        (ErrorCode::OutcomeUnknown, true, false),
        (ErrorCode::Transport, true, false),
        (ErrorCode::Standby, true, true),
        (ErrorCode::EpochConflict, false, false),
        (ErrorCode::ClockAhead, false, false),
        (ErrorCode::NoDrLease, true, true),
        (ErrorCode::Restoring, false, false),
    ];

    #[test]
    fn which_writes_are_sent_again_after_which_errors() {
        let codes: Vec<ErrorCode> = SENT_AGAIN.iter().map(|&(c, ..)| c).collect();
        assert_eq!(codes, ErrorCode::ALL, "every code has a row");
        for op in every_kind_of_write() {
            for &(code, if_idempotent, otherwise) in SENT_AGAIN {
                let e = Error::Remote { code, message: "m".into() };
                let expected = if idempotent(&op) { if_idempotent } else { otherwise };
                assert_eq!(sent_again(&op, &e), expected, "{} after {code}", op.name());
            }
        }
    }
}
