//! Errors of the metadata layer.

use std::io;
use std::path::PathBuf;

use crate::command::CommandRejected;
use crate::raft_types::NodeId;

/// Everything that can go wrong starting, writing to or stopping the metadata quorum.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The command reached the log and was refused by apply; map to the Kafka code on the
    /// variant.
    #[error("metadata command rejected: {0}")]
    Rejected(#[from] CommandRejected),
    /// This node is not the active controller (`NOT_CONTROLLER`).
    #[error("not the metadata quorum leader; leader is {leader:?}")]
    NotLeader { leader: Option<NodeId> },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory was formatted for another cluster or node; refusing protects both.
    #[error("{path} belongs to {what} {found:?}, but this node was started with {expected:?}")]
    IdentityMismatch {
        path: PathBuf,
        what: &'static str,
        found: String,
        expected: String,
    },
    #[error("invalid quorum config: {0}")]
    Config(String),
    /// This node did not become leader within `leader_wait_timeout_ms`.
    #[error("no metadata quorum leader after {waited_ms} ms")]
    LeaderTimeout { waited_ms: u64 },
    /// A write or wait ran out of time (`REQUEST_TIMED_OUT`).
    #[error("timed out waiting for {what}")]
    Timeout { what: String },
    /// The Raft task stopped (after a storage error, or shutdown); the quorum is unusable.
    #[error("metadata quorum stopped: {0}")]
    Stopped(String),
    /// Any other openraft error.
    #[error("metadata quorum error: {0}")]
    Raft(String),
}
