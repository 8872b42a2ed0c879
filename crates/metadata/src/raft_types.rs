//! The openraft type configuration of the metadata quorum.

use std::io::Cursor;

use openraft::{BasicNode, StorageError};

use crate::runtime::RafkaRuntime;
use serde::{Deserialize, Serialize};

use crate::command::{CommandOutcome, CommandRejected, ControllerCommand};

/// Raft node id of a controller (Kafka's `node.id`, widened to openraft's `u64`).
pub type NodeId = u64;

/// How a node is reached. `BasicNode { addr }` holds `host:port` of the controller listener
/// once the cluster network exists; a single voter never dials it.
pub type Node = BasicNode;

/// One entry of the metadata Raft log.
pub type LogEntry = openraft::Entry<TypeConfig>;

pub(crate) type StorageResult<T> = Result<T, StorageError<NodeId>>;

openraft::declare_raft_types!(
    /// Type configuration of the metadata Raft group.
    pub TypeConfig:
        D = ControllerCommand,
        R = CommandResponse,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = RafkaRuntime,
);

/// What applying one log entry answered; the proposer receives it from `client_write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    Applied(CommandOutcome),
    Rejected(CommandRejected),
    /// Blank and membership entries carry no command.
    NoCommand,
}
