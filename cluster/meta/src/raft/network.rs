//! The client side of Raft RPCs: openraft's `RaftNetworkFactory`/`RaftNetwork` over the gRPC
//! `Raft` service, with openraft's requests and responses as JSON in `RaftMessage.payload`.
//!
//! A response payload is the JSON of `Result<Response, RaftError>`: an `Err` is the remote Raft's
//! own error (returned as openraft's `RemoteError`). Transport failures map to openraft's errors:
//! an unreachable peer (`Unavailable` status: connection refused, reset) to `Unreachable`, so
//! openraft backs off before retrying; the `RPCOption` hard TTL passing to `Timeout`; anything
//! else to `NetworkError`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tern_client::Pool;
use tern_proto::pb::RaftMessage;
use tern_proto::pb::raft_client::RaftClient;

use super::Replicated;
use super::types::Types;

/// The largest message sent or accepted (tonic's default decoding limit). An append-entries
/// request over it is split by openraft ([`PayloadTooLarge`]); snapshots go in chunks far below.
pub(crate) const MAX_MESSAGE: usize = 4 << 20;

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

/// Makes one [`Peer`] per target member.
pub(crate) struct Network<S> {
    id: u64,
    pool: Arc<Pool>,
    _s: PhantomData<fn() -> S>,
}

impl<S> Network<S> {
    pub(crate) fn new(id: u64, pool: Arc<Pool>) -> Network<S> {
        Network { id, pool, _s: PhantomData }
    }
}

impl<S: Replicated> RaftNetworkFactory<Types<S>> for Network<S> {
    type Network = Peer<S>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer<S> {
        Peer { id: self.id, target, node: node.clone(), pool: self.pool.clone(), _s: PhantomData }
    }
}

/// The connection to one peer.
pub(crate) struct Peer<S> {
    id: u64,
    target: u64,
    node: BasicNode,
    pool: Arc<Pool>,
    _s: PhantomData<fn() -> S>,
}

impl<S: Replicated> Peer<S> {
    fn timeout<E: std::error::Error>(&self, action: RPCTypes, ttl: Duration) -> RpcErr<E> {
        RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout: ttl })
    }

    async fn call<Resp, E>(
        &self,
        action: RPCTypes,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Resp, RpcErr<E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel =
            self.pool.channel(&self.node.addr).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut request = tonic::Request::new(RaftMessage { payload });
        request.set_timeout(ttl);
        let call = async {
            match action {
                RPCTypes::AppendEntries => client.append_entries(request).await,
                RPCTypes::Vote => client.vote(request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let response = match tokio::time::timeout(ttl, call).await {
            Err(_) => return Err(self.timeout(action, ttl)),
            Ok(Err(status)) => return Err(self.status_err(action, ttl, status)),
            Ok(Ok(r)) => r.into_inner(),
        };
        let result: Result<Resp, RaftError<u64, E>> = serde_json::from_slice(&response.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result
            .map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }

    fn status_err<E: std::error::Error>(
        &self,
        action: RPCTypes,
        ttl: Duration,
        status: tonic::Status,
    ) -> RpcErr<E> {
        match status.code() {
            tonic::Code::Unavailable => {
                // Start over with a fresh channel next time (the peer may have restarted).
                self.pool.forget(&self.node.addr);
                RPCError::Unreachable(Unreachable::new(&status))
            }
            tonic::Code::DeadlineExceeded => self.timeout(action, ttl),
            _ => RPCError::Network(NetworkError::new(&status)),
        }
    }
}

fn encode<T: Serialize>(req: &T) -> Result<Vec<u8>, NetworkError> {
    serde_json::to_vec(req).map_err(|e| NetworkError::new(&e))
}

impl<S: Replicated> RaftNetwork<Types<S>> for Peer<S> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Types<S>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let entries = rpc.entries.len() as u64;
        let payload = encode(&rpc).map_err(RPCError::Network)?;
        if payload.len() > MAX_MESSAGE - 1024 && entries > 1 {
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)));
        }
        self.call(RPCTypes::AppendEntries, payload, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Types<S>>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        let payload = encode(&rpc).map_err(RPCError::Network)?;
        self.call(RPCTypes::InstallSnapshot, payload, option.hard_ttl()).await
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Result<VoteResponse<u64>, RpcErr> {
        let payload = encode(&rpc).map_err(RPCError::Network)?;
        self.call(RPCTypes::Vote, payload, option.hard_ttl()).await
    }
}
