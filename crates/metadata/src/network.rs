//! Raft RPC transport of the metadata quorum.
//!
//! A single voter never sends an RPC, so for now the only transport is [`LocalOnlyNetwork`],
//! which reports every peer unreachable. The controller-to-controller network lands with the
//! cluster issue as another [`RaftNetworkFactory`] passed to
//! [`MetadataQuorum::start_with_network`](crate::MetadataQuorum::start_with_network).

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};

use crate::raft_types::{Node, NodeId, TypeConfig};

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
#[error("metadata quorum peer {target} at {addr:?} is unreachable: no controller network yet (single-voter quorum)")]
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
