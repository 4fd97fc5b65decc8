//! The gRPC services of a replica server: `Kv` for clients, `Peer` for other replica servers
//! (checkpoint downloads; replica protocol messages come over peer links, `peer/wire.rs`),
//! `Control` for the meta server, `ReplicaBackup` for `tern backup` (a primary backing up its
//! partition, `host/backup.rs`).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tern_core::{Error, Gpid, NodeId};
use tern_proto::convert::{
    config_from_pb, gpid_from_pb, outcome_to_pb, read_from_pb, read_result_to_pb, write_from_pb,
};
use tern_proto::pb;
use tern_proto::status::to_status;
use tern_replica::Event;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status, Streaming};

use crate::host::checkpoint;
use crate::host::reply::ReplyTo;
use crate::host::task::Input;
use crate::node::Node;

#[derive(Clone, Debug)]
pub struct Services {
    pub node: Arc<Node>,
}

/// Most reads one `BatchRead` may carry.
pub const MAX_BATCH_READS: usize = 4096;

fn status(e: Error) -> Status {
    to_status(&e)
}

impl Services {
    /// One read, as `Read` and every item of `BatchRead` serve it.
    async fn serve_read(&self, req: pb::ReadRequest) -> Result<pb::ReadResponse, Status> {
        let (gpid, op) = read_from_pb(req).map_err(status)?;
        if let Some(e) = self.node.roles.refuse_restoring(gpid.table.0) {
            return Err(status(e));
        }
        let result = self.ask(gpid, false, |reply| Input::Read { op, reply: ReplyTo::Once(reply) }).await?;
        let mut resp = read_result_to_pb(&result);
        resp.possibly_stale = self.node.roles.standby(gpid.table.0).is_some();
        Ok(resp)
    }

    /// Hands a request to its replica and waits for the answer (`write`: it may change data).
    async fn ask<T>(
        &self,
        gpid: Gpid,
        write: bool,
        make: impl FnOnce(oneshot::Sender<tern_core::Result<T>>) -> Input,
    ) -> Result<T, Status> {
        let h = self.node.registry.get(gpid).ok_or_else(|| status(Error::NotPrimary { gpid }))?;
        let (tx, rx) = oneshot::channel();
        h.submit(make(tx)).map_err(status)?;
        match tokio::time::timeout(self.node.opts.request_timeout, rx).await {
            Ok(Ok(r)) => r.map_err(status),
            Ok(Err(_)) => Err(status(crate::host::reply::dropped(write))),
            Err(_) => Err(status(Error::OutcomeUnknown(format!(
                "partition {gpid} did not answer within {:?}",
                self.node.opts.request_timeout
            )))),
        }
    }
}

#[tonic::async_trait]
impl pb::kv_server::Kv for Services {
    type PipelineStream = super::pipeline::AnswerStream;

    async fn pipeline(
        &self,
        req: Request<Streaming<pb::KvCalls>>,
    ) -> Result<Response<Self::PipelineStream>, Status> {
        Ok(Response::new(super::pipeline::serve(self.node.clone(), req.into_inner())))
    }

    async fn write(&self, req: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        let (gpid, op) = write_from_pb(req.into_inner()).map_err(status)?;
        if let Some(e) = super::pipeline::refuse_write(&self.node, gpid, &op) {
            return Err(status(e));
        }
        let outcome = self.ask(gpid, true, |reply| Input::Write { op, reply: ReplyTo::Once(reply) }).await?;
        Ok(Response::new(outcome_to_pb(&outcome)))
    }

    async fn read(&self, req: Request<pb::ReadRequest>) -> Result<Response<pb::ReadResponse>, Status> {
        self.serve_read(req.into_inner()).await.map(Response::new)
    }

    async fn batch_read(
        &self,
        req: Request<pb::BatchReadRequest>,
    ) -> Result<Response<pb::BatchReadResponse>, Status> {
        let reads = req.into_inner().reads;
        if reads.len() > MAX_BATCH_READS {
            return Err(status(Error::InvalidArgument(format!(
                "a batch read carries {} reads; at most {MAX_BATCH_READS}",
                reads.len()
            ))));
        }
        // Every read goes to its replica's queue at once; answers are collected in order.
        let answers = reads.into_iter().map(|r| self.serve_read(r));
        let items = futures::future::join_all(answers)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(result) => {
                    pb::BatchReadItem { result: Some(result), error_code: 0, error_message: String::new() }
                }
                Err(s) => {
                    let e = tern_proto::status::from_status(&s);
                    pb::BatchReadItem {
                        result: None,
                        error_code: u32::from(e.code() as u16),
                        error_message: e.to_string(),
                    }
                }
            })
            .collect();
        Ok(Response::new(pb::BatchReadResponse { items }))
    }

    async fn duplicate(
        &self,
        req: Request<pb::DuplicateRequest>,
    ) -> Result<Response<pb::DuplicateResponse>, Status> {
        crate::dup::receive::duplicate(&self.node.dup, req.into_inner())
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn restore(
        &self,
        req: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        crate::dup::restore::restore(&self.node.dup, req.into_inner())
            .await
            .map(Response::new)
            .map_err(status)
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::CheckpointChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_server::Peer for Services {
    type FetchCheckpointStream = ChunkStream;

    async fn fetch_checkpoint(
        &self,
        req: Request<pb::FetchCheckpointRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let req = req.into_inner();
        let gpid = gpid_from_pb(req.gpid.as_ref()).map_err(status)?;
        let path = checkpoint::path_of(self.node.registry.env(), gpid, req.id);
        let files = checkpoint::files(&path).map_err(|_| {
            status(Error::InvalidArgument(format!(
                "no checkpoint {} of {gpid} here (it may have been replaced)",
                req.id
            )))
        })?;
        let total: u64 = files.iter().map(|(_, n)| n).sum();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            for (name, size) in files {
                let mut f = match tokio::fs::File::open(path.join(&name)).await {
                    Ok(f) => f,
                    Err(e) => {
                        let _ =
                            tx.send(Err(status(Error::io(format!("open checkpoint file {name}"), e)))).await;
                        return;
                    }
                };
                let mut offset = 0u64;
                loop {
                    let mut buf = vec![0u8; checkpoint::CHUNK];
                    let n = match f.read(&mut buf).await {
                        Ok(n) => n,
                        Err(e) => {
                            let _ = tx
                                .send(Err(status(Error::io(format!("read checkpoint file {name}"), e))))
                                .await;
                            return;
                        }
                    };
                    if n == 0 && offset > 0 {
                        break;
                    }
                    buf.truncate(n);
                    let chunk = pb::CheckpointChunk {
                        file: name.clone(),
                        offset,
                        data: buf,
                        file_size: size,
                        total_bytes: total,
                    };
                    offset += n as u64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                    if n == 0 {
                        break; // an empty file: one empty chunk creates it
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl pb::control_server::Control for Services {
    async fn push(&self, req: Request<pb::ControlMessage>) -> Result<Response<pb::Empty>, Status> {
        let m = req.into_inner();
        self.node.peers.addresses().learn(m.addresses.into_iter().map(|a| (NodeId(a.node), a.addr)));
        use pb::control_message::Msg;
        match m.msg {
            Some(Msg::ConfigUpdate(c)) => self.node.registry.on_config(config_from_pb(&c).map_err(status)?),
            Some(Msg::CreateReplica(c)) => {
                let config = config_from_pb(&c).map_err(status)?;
                let registry = &self.node.registry;
                let fresh = !registry.replica_dir(config.gpid).exists();
                if fresh || registry.get(config.gpid).is_some() {
                    registry.open(config.gpid, Some(Event::Create { config })).map_err(status)?;
                }
            }
            Some(Msg::AddLearner(a)) => {
                let config = config_from_pb(a.config.as_ref().ok_or_else(|| {
                    status(Error::InvalidArgument("add-learner without a configuration".into()))
                })?)
                .map_err(status)?;
                self.node
                    .registry
                    .deliver(config.gpid, Event::AddLearner { config, learner: NodeId(a.learner) });
            }
            None => {}
        }
        Ok(Response::new(pb::Empty {}))
    }
}

type BackupProgressStream = Pin<Box<dyn Stream<Item = Result<pb::BackupPartitionProgress, Status>> + Send>>;

#[tonic::async_trait]
impl pb::replica_backup_server::ReplicaBackup for Services {
    type BackupPartitionStream = BackupProgressStream;

    async fn backup_partition(
        &self,
        req: Request<pb::BackupPartitionRequest>,
    ) -> Result<Response<BackupProgressStream>, Status> {
        use futures::StreamExt;
        let req = req.into_inner();
        let gpid = gpid_from_pb(req.gpid.as_ref()).map_err(status)?;
        let id: tern_backup::model::BackupId = req
            .backup_id
            .parse()
            .map_err(|e: tern_backup::Error| status(Error::InvalidArgument(format!("backup id: {e}"))))?;
        let target = tern_client::admin::backup::target_from_pb(req.target.as_ref()).map_err(status)?;
        let handle = self.node.registry.get(gpid).ok_or_else(|| {
            status(Error::Remote {
                code: tern_core::ErrorCode::NotPrimary,
                message: format!(
                    "cannot back up partition {gpid} on {}: no replica of it here",
                    self.node.registry.env().id
                ),
            })
        })?;
        let limit = (req.limit_bytes_per_sec > 0).then_some(req.limit_bytes_per_sec);
        let rx = crate::host::backup::start(self.node.registry.env().clone(), handle, id, target, limit);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|r| r.map_err(status));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn seed_log_coverage(
        &self,
        req: Request<pb::SeedLogCoverageRequest>,
    ) -> Result<Response<pb::SeedLogCoverageResponse>, Status> {
        let req = req.into_inner();
        let node = self.node.clone();
        let replicas = tokio::task::spawn_blocking(move || seed_log_coverage(&node, &req))
            .await
            .map_err(|e| status(Error::invariant(format!("seed log coverage task: {e}"))))?;
        Ok(Response::new(pb::SeedLogCoverageResponse { node: self.node.registry.env().id.0, replicas }))
    }
}

/// The log of every replica of `req.table` here, each read after checking whether the link is
/// known (see `SeedReplicaLog`). Blocking (reads the log writer's answer).
fn seed_log_coverage(node: &Node, req: &pb::SeedLogCoverageRequest) -> Vec<pb::SeedReplicaLog> {
    let env = node.registry.env();
    let mut out = Vec::new();
    for r in node.registry.reports().into_iter().filter(|r| r.gpid.table.0 == req.table) {
        let link = (req.link != 0).then(|| env.links.get(req.link)).flatten();
        let link_confirmed = link
            .as_ref()
            .map(|l| crate::dup::links::progress_of(l, r.gpid))
            .filter(|p| p.started)
            .map_or(0, |p| p.confirmed.0);
        let range = env.logs.read(r.gpid, tern_core::Decree(u64::MAX), 0).ok().and_then(|(range, _)| range);
        out.push(pb::SeedReplicaLog {
            partition: r.gpid.partition.0,
            status: r.status as u32,
            log_empty: range.is_none(),
            log_first: range.map_or(0, |(first, _)| first.0),
            log_last: range.map_or(0, |(_, last)| last.0),
            applied: r.committed.0,
            link_known: link.is_some(),
            link_confirmed,
        });
    }
    out
}
