//! The server side of Raft RPCs: the gRPC `Raft` service that hands peers' requests to the local
//! openraft node.
//!
//! A request payload is the JSON of openraft's request; the response payload is the JSON of
//! `Result<Response, RaftError>` (see [`super::network`]). A payload that does not decode is an
//! `InvalidArgument` status.

use std::fmt;

use openraft::Raft;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tern_proto::pb::RaftMessage;
use tern_proto::pb::raft_server::RaftServer;
use tonic::{Request, Response, Status};

use super::Replicated;
use super::network::MAX_MESSAGE;
use super::types::Types;

/// The gRPC `Raft` service of one member. Add it to a tonic server with
/// `RaftServer::new(group.service())`, or use [`RaftService::into_server`] (which also raises
/// the message size limits to what peers may send).
pub struct RaftService<S: Replicated> {
    raft: Raft<Types<S>>,
}

impl<S: Replicated> Clone for RaftService<S> {
    fn clone(&self) -> Self {
        RaftService { raft: self.raft.clone() }
    }
}

impl<S: Replicated> fmt::Debug for RaftService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftService")
    }
}

impl<S: Replicated> RaftService<S> {
    pub(crate) fn new(raft: Raft<Types<S>>) -> RaftService<S> {
        RaftService { raft }
    }

    /// The tonic server for this service, accepting messages up to the size peers may send.
    pub fn into_server(self) -> RaftServer<RaftService<S>> {
        RaftServer::new(self).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftMessage>) -> Result<T, Status> {
    serde_json::from_slice(&req.into_inner().payload)
        .map_err(|e| Status::invalid_argument(format!("undecodable Raft request: {e}")))
}

fn encode<T: Serialize>(result: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = serde_json::to_vec(result)
        .map_err(|e| Status::internal(format!("unencodable Raft response: {e}")))?;
    Ok(Response::new(RaftMessage { payload }))
}

#[tonic::async_trait]
impl<S: Replicated> tern_proto::pb::raft_server::Raft for RaftService<S> {
    async fn append_entries(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(req)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(req)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(req)?;
        encode(&self.raft.install_snapshot(rpc).await)
    }
}
