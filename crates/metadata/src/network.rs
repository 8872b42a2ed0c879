//! Raft RPC transport of the metadata quorum.
//!
//! [`QuorumNetwork`] sends openraft's messages over a [`Transport`] (the controller listener's
//! private API keys, see [`crate::rpc`]) to the address the configured voter list gives each
//! peer, and records when each peer last answered, for DescribeQuorum. A standalone quorum of
//! one voter never sends an RPC and uses [`LocalOnlyNetwork`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use serde::{Deserialize, Serialize};

use crate::raft_types::{Node, NodeId, TypeConfig};
use crate::rpc::{self, Caller, PrivateApi, RaftCall, RpcError, Transport, TransportError};

/// A network that reaches no one: correct for a quorum of one voter, which never sends RPCs.
#[derive(Debug, Clone, Default)]
pub struct LocalOnlyNetwork;

/// Client to a peer through [`LocalOnlyNetwork`]; every call fails with `Unreachable`.
#[derive(Debug, Clone)]
pub struct UnreachablePeer {
    target: NodeId,
    addr: String,
}

#[derive(Debug, thiserror::Error)]
#[error("metadata quorum peer {target} at {addr:?} is unreachable: this is a standalone quorum of one voter")]
struct NoNetwork {
    target: NodeId,
    addr: String,
}

impl UnreachablePeer {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<NodeId, Node, E> {
        RPCError::Unreachable(Unreachable::new(&NoNetwork {
            target: self.target,
            addr: self.addr.clone(),
        }))
    }
}

impl RaftNetworkFactory<TypeConfig> for LocalOnlyNetwork {
    type Network = UnreachablePeer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        UnreachablePeer {
            target,
            addr: node.addr.clone(),
        }
    }
}

impl RaftNetwork<TypeConfig> for UnreachablePeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        Err(self.unreachable())
    }
}

/// When a voter last answered the leader, for DescribeQuorum (wall-clock milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerProgress {
    /// Last successful AppendEntries answer.
    pub last_fetch_ms: i64,
    /// Last answer that left the peer with everything the leader had.
    pub last_caught_up_ms: i64,
}

/// What the leader knows about its peers' answers; filled by [`QuorumNetwork`].
#[derive(Debug, Default)]
pub struct PeerStats {
    progress: Mutex<BTreeMap<NodeId, PeerProgress>>,
    /// The leader's last log index, kept current by the quorum so an answer can be judged
    /// caught up.
    pub(crate) leader_last_index: AtomicU64,
}

impl PeerStats {
    pub fn get(&self, node: NodeId) -> Option<PeerProgress> {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .copied()
    }

    pub(crate) fn clear(&self) {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn record(&self, node: NodeId, caught_up: bool) {
        let now = wall_clock_ms();
        let mut map = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let p = map.entry(node).or_default();
        p.last_fetch_ms = now;
        if caught_up {
            p.last_caught_up_ms = now;
        }
    }
}

pub(crate) fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Everything a peer client needs; shared by all of them.
#[derive(Debug)]
pub(crate) struct NetworkContext {
    pub transport: Arc<dyn Transport>,
    pub caller: Caller,
    /// The configured voters and their controller listeners.
    pub voters: BTreeMap<NodeId, String>,
    pub stats: Arc<PeerStats>,
}

impl NetworkContext {
    pub fn voter_ids(&self) -> Vec<NodeId> {
        self.voters.keys().copied().collect()
    }
}

/// openraft's network over a [`Transport`].
#[derive(Debug, Clone)]
pub struct QuorumNetwork {
    ctx: Arc<NetworkContext>,
}

impl QuorumNetwork {
    pub(crate) fn new(ctx: Arc<NetworkContext>) -> Self {
        QuorumNetwork { ctx }
    }
}

/// One peer, as openraft's replication and election tasks see it.
#[derive(Debug)]
pub struct PeerClient {
    ctx: Arc<NetworkContext>,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for QuorumNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        // The configured list wins over the address in the membership entry: static voters
        // are configured, and an address may change between restarts.
        let addr = self
            .ctx
            .voters
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.addr.clone());
        PeerClient {
            ctx: self.ctx.clone(),
            target,
            addr,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        api: PrivateApi,
        rpc: Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: for<'de> Deserialize<'de>,
        E: std::error::Error + for<'de> Deserialize<'de>,
    {
        let call = RaftCall {
            caller: self.ctx.caller.clone(),
            voters: self.ctx.voter_ids(),
            rpc,
        };
        let reply: Result<Result<Resp, RaftError<NodeId, E>>, RpcError> = match rpc::call(
            self.ctx.transport.as_ref(),
            &self.addr,
            api,
            &call,
            option.hard_ttl(),
        )
        .await
        {
            Ok(r) => r,
            Err(e @ TransportError::Protocol { .. }) => {
                return Err(RPCError::Network(NetworkError::new(&e)))
            }
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
        };
        match reply {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(raft)) => Err(RPCError::RemoteError(RemoteError::new(self.target, raft))),
            Err(refused) => {
                // A peer with another cluster id or voter set: openraft backs off and retries,
                // which is right (the operator may fix the peer), and the cause is logged.
                tracing::warn!(peer = self.target, addr = %self.addr, code = refused.code,
                    "metadata quorum peer refused the request: {}", refused.message);
                Err(RPCError::Unreachable(Unreachable::new(&Refused(
                    refused.message,
                ))))
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let last_sent = rpc
            .entries
            .last()
            .map(|e| e.log_id.index)
            .or(rpc.prev_log_id.map(|l| l.index));
        let resp: AppendEntriesResponse<NodeId> = self
            .call(PrivateApi::RaftAppendEntries, rpc, &option)
            .await?;
        if resp.is_success() {
            let leader_last = self.ctx.stats.leader_last_index.load(Ordering::Relaxed);
            let caught_up = last_sent.is_some_and(|l| l >= leader_last);
            self.ctx.stats.record(self.target, caught_up);
        }
        Ok(resp)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(PrivateApi::RaftInstallSnapshot, rpc, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(PrivateApi::RaftVote, rpc, &option).await
    }
}
