//! openraft's network over the node-to-node transport: each RPC is one request on the
//! outbound link to its target, its typed value postcard-encoded in the frame's payload
//! (doc 3.2), and the peer's answer (or openraft's own error from its Raft) comes back on
//! the same link. A link that is down is `Unreachable` (openraft backs off); no answer in
//! the RPC's time is a `Timeout`.

use super::transport::{Frame, LinkError, Links, Payload, META};
use super::{GroupSnapshot, NodeId, PeerAddr, Tc};
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::Snapshot;
use openraft::{SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A whole snapshot as one request (phase 1 takes none; the frame limit bounds it).
#[derive(Serialize, Deserialize)]
pub struct FullSnapshot {
    pub vote: Vote<NodeId>,
    pub meta: SnapshotMeta<NodeId, PeerAddr>,
    pub data: GroupSnapshot,
}

/// Makes a client per target, all on the same links.
pub struct Network<L: Links> {
    pub me: NodeId,
    pub links: Arc<L>,
}

impl<L: Links> RaftNetworkFactory<Tc> for Network<L> {
    type Network = Client<L>;

    async fn new_client(&mut self, target: NodeId, _node: &PeerAddr) -> Client<L> {
        Client {
            me: self.me,
            target,
            links: self.links.clone(),
        }
    }
}

/// The RPCs to one peer.
pub struct Client<L: Links> {
    me: NodeId,
    target: NodeId,
    links: Arc<L>,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, PeerAddr, RaftError<NodeId, E>>;

impl<L: Links> Client<L> {
    /// One request and its typed answer.
    async fn call<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        action: RPCTypes,
        frame: impl FnOnce(Payload) -> Frame,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<NodeId, PeerAddr, RaftError<NodeId>>> {
        let payload = Payload::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self.links.request(self.target, frame(payload), ttl).await;
        let rpc = match answer {
            Ok(
                Frame::AppendEntriesReply { rpc, .. }
                | Frame::VoteReply { rpc, .. }
                | Frame::SnapshotReply { rpc, .. },
            ) => rpc,
            Ok(Frame::Failed { reason }) => {
                return Err(RPCError::Network(NetworkError::new(
                    &std::io::Error::other(reason),
                )))
            }
            Ok(other) => {
                let e = std::io::Error::other(format!("unexpected answer {other:?}"));
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
            Err(LinkError::Timeout) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.me,
                    target: self.target,
                    timeout: ttl,
                }))
            }
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
        };
        let result: Result<Resp, RaftError<NodeId>> = rpc
            .decode()
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<L: Links> RaftNetwork<Tc> for Client<L> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Tc>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let frame = |rpc| Frame::AppendEntries { group: META, rpc };
        self.call(RPCTypes::AppendEntries, frame, &rpc, option.soft_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let frame = |rpc| Frame::Vote { group: META, rpc };
        self.call(RPCTypes::Vote, frame, &rpc, option.soft_ttl())
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<Tc>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<Tc, Fatal<NodeId>>> {
        let req = FullSnapshot {
            vote,
            meta: snapshot.meta,
            data: *snapshot.snapshot,
        };
        let frame = |rpc| Frame::SnapshotBegin { group: META, rpc };
        self.call(RPCTypes::InstallSnapshot, frame, &req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                RPCError::Timeout(t) => StreamingError::Timeout(t),
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                other => StreamingError::Network(NetworkError::new(&other)),
            })
    }
}
