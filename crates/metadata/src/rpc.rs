//! The controller listener's private RPCs: API keys, request and response bodies, and the
//! transport they travel over.
//!
//! On the wire every call is a Kafka request frame (size prefix, request header v2 with the API
//! key below and version 0, then the body) answered by a Kafka response frame (size prefix,
//! response header v0, body). The bodies are JSON: they carry openraft's own messages, whose
//! serde form openraft defines, and they only ever travel between rafka nodes of the same
//! build. Client listeners refuse these keys (an unknown API key closes the connection), and
//! the controller listener does not advertise them in ApiVersions.
//!
//! Every request names the sender's cluster id, so a node started with another `CLUSTER_ID`
//! gets INCONSISTENT_CLUSTER_ID instead of joining; Raft requests also carry the sender's
//! configured voter set, and a node whose voters differ answers INCONSISTENT_VOTER_SET
//! (Kafka's codes, so operators recognise them).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::command::{CommandOutcome, CommandRejected, ControllerCommand};
use crate::raft_types::{LogEntry, NodeId, TypeConfig};

/// Private API keys, far above Kafka's (which end below 100), so they never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum PrivateApi {
    /// openraft `Vote`.
    RaftVote = 32000,
    /// openraft `AppendEntries` (also the leader's heartbeat).
    RaftAppendEntries = 32001,
    /// openraft `InstallSnapshot` (one chunk).
    RaftInstallSnapshot = 32002,
    /// A broker-only node fetching committed metadata entries (KRaft's observer fetch).
    MetadataFetch = 32003,
    /// A node proposing a [`ControllerCommand`] to the active controller.
    ForwardCommand = 32004,
    /// Would the peer vote for the sender? Asked before an election (Kafka's pre-vote,
    /// KIP-996), so a voter with a stale log or cut off from the leader never raises the term.
    RaftPreVote = 32005,
}

impl PrivateApi {
    pub const ALL: [PrivateApi; 6] = [
        PrivateApi::RaftVote,
        PrivateApi::RaftAppendEntries,
        PrivateApi::RaftInstallSnapshot,
        PrivateApi::MetadataFetch,
        PrivateApi::ForwardCommand,
        PrivateApi::RaftPreVote,
    ];

    pub fn from_key(key: i16) -> Option<PrivateApi> {
        Self::ALL.into_iter().find(|a| *a as i16 == key)
    }

    pub fn key(self) -> i16 {
        self as i16
    }
}

/// Kafka error codes the private RPCs answer with.
pub mod codes {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const INVALID_REQUEST: i16 = 42;
    pub const INCONSISTENT_VOTER_SET: i16 = 94;
    pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
}

/// A refusal, with its Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (error {code})")]
pub struct RpcError {
    pub code: i16,
    pub message: String,
    /// For NOT_CONTROLLER: the leader this node knows of, if any.
    #[serde(default)]
    pub leader: Option<LeaderHint>,
}

impl RpcError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            leader: None,
        }
    }
}

/// Who leads the quorum, as far as the answering node knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    pub node_id: NodeId,
    /// The leader's controller listener, `host:port`.
    pub addr: String,
    /// The Raft term it leads in (Kafka's leader epoch).
    pub term: u64,
}

/// What every private request starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub cluster_id: String,
    pub node_id: NodeId,
}

/// A Raft message with the sender's configured voters (sorted).
#[derive(Debug, Serialize, Deserialize)]
pub struct RaftCall<T> {
    pub caller: Caller,
    pub voters: Vec<NodeId>,
    pub rpc: T,
}

pub type VoteCall = RaftCall<VoteRequest<NodeId>>;
pub type AppendCall = RaftCall<AppendEntriesRequest<TypeConfig>>;
pub type SnapshotCall = RaftCall<InstallSnapshotRequest<TypeConfig>>;
pub type PreVoteCall = RaftCall<PreVoteRequest>;

/// openraft's answer or its error, both serialised as openraft defines them.
pub type VoteReply = Result<VoteResponse<NodeId>, openraft::error::RaftError<NodeId>>;
pub type AppendReply = Result<AppendEntriesResponse<NodeId>, openraft::error::RaftError<NodeId>>;
pub type SnapshotReply = Result<
    InstallSnapshotResponse<NodeId>,
    openraft::error::RaftError<NodeId, openraft::error::InstallSnapshotError>,
>;

/// A would-be candidate's question before it stands for election.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The term it would stand in.
    pub term: u64,
    /// Term and index of its last log entry.
    pub last_log: Option<(u64, u64)>,
}

/// Whether the peer would grant that vote now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteResponse {
    pub granted: bool,
}

/// A broker-only node asking for committed entries from `fetch_index` on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    pub caller: Caller,
    /// The first log index the observer has not applied.
    pub fetch_index: u64,
    /// How long to wait for an entry at `fetch_index` to commit before answering empty.
    pub max_wait_ms: u64,
    pub max_entries: u32,
}

/// Committed entries, or the whole image when `fetch_index` is no longer in the log.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchResponse {
    pub leader: Option<LeaderHint>,
    /// Index of the last committed (applied) entry of the answering controller.
    pub committed_index: u64,
    pub entries: Vec<LogEntry>,
    pub snapshot: Option<SnapshotPayload>,
}

/// An image as of `last_index` (JSON of [`crate::MetadataImage`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotPayload {
    pub last_index: u64,
    pub last_term: u64,
    #[serde(with = "json_bytes")]
    pub image_json: Vec<u8>,
}

/// A command proposed through the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardRequest {
    pub caller: Caller,
    pub command: ControllerCommand,
    /// How long the controller may wait for the command to commit.
    pub timeout_ms: u64,
}

/// What apply said, and where: the caller waits until its own image has that index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardResponse {
    pub log_index: u64,
    pub result: Result<CommandOutcome, CommandRejected>,
}

/// Serializes bytes as a JSON string of base-16 digits would be wasteful; as the raw JSON
/// text they are (an image is UTF-8 JSON), with a fallback array form for anything else.
mod json_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.serialize(s),
            Err(_) => bytes.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Bytes(Vec<u8>),
        }
        Ok(match Form::deserialize(d)? {
            Form::Text(t) => t.into_bytes(),
            Form::Bytes(b) => b,
        })
    }
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Could not connect, or the connection broke: the peer may be down.
    #[error("{addr} is unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("no answer from {addr} within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    /// The answer could not be read.
    #[error("bad answer from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends one private request and returns the response body. The real implementation frames it
/// over TCP to the peer's controller listener (resolving the host on every connect); the
/// simulation routes it in memory through a faulty network.
pub trait Transport: Send + Sync + 'static {
    fn call<'a>(
        &'a self,
        addr: &'a str,
        api: PrivateApi,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>>;
}

impl fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transport")
    }
}

/// Serialises a body. Only types defined here are sent, and they always serialise.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(addr: &str, body: &'a [u8]) -> Result<T, TransportError> {
    serde_json::from_slice(body).map_err(|e| TransportError::Protocol {
        addr: addr.to_string(),
        reason: e.to_string(),
    })
}

/// A typed call: encodes `request`, decodes `Result<Resp, RpcError>`.
pub async fn call<Req: Serialize, Resp: for<'de> Deserialize<'de>>(
    transport: &dyn Transport,
    addr: &str,
    api: PrivateApi,
    request: &Req,
    timeout: Duration,
) -> Result<Result<Resp, RpcError>, TransportError> {
    let body = transport.call(addr, api, encode(request), timeout).await?;
    decode(addr, &body)
}
