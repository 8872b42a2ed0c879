//! Cluster metadata for rafka: records, the in-memory image, and the Raft quorum ordering them.
//!
//! All cluster state (brokers, topics, partitions, configs) changes only through one Raft log,
//! as in Kafka's KRaft. Layout, from pure to I/O:
//!
//! - [`records`]: [`MetadataRecord`], the unit of state change.
//! - [`image`]: [`MetadataImage`], state as of one log index, shared as `Arc` so request handlers
//!   read it without ever waiting on the quorum.
//! - [`command`]: [`ControllerCommand`], the log entries. Applying one validates it against the
//!   image in log order (so checks are race-free and replay is deterministic) and either emits its
//!   records or yields a typed [`CommandRejected`]. [`apply`] is the pure core.
//! - [`placement`]: Kafka's striped replica placement, run inside apply.
//! - [`lifecycle`]: broker sessions and the heartbeat rules of KIP-631, as a plain state
//!   machine; [`controller`] is its shell on the active controller.
//! - `log_store`, `state_machine`: openraft storage, on storage's `Backend` (so tests can crash
//!   it); [`runtime`]: tokio with a seedable random source for openraft.
//! - [`rpc`]: the controller listener's private API keys and bodies, and the [`Transport`]
//!   trait they travel over; [`network`]: openraft's network on it.
//! - `observer`: how broker-only nodes fetch and apply the committed log.
//! - [`quorum`]: [`MetadataQuorum`] in its three roles (standalone, voter, observer), which the
//!   broker starts, reads and writes (writes are forwarded to the active controller), and
//!   [`QuorumServer`], the server side of the private RPCs.
//!
//! On disk (one directory, `<metadata.log.dir>/__cluster_metadata-0/`): `quorum.meta` (cluster
//! and node id), `raft.log` (checksummed, fsynced entries), `vote`, `committed`, `snapshot` (an
//! observer keeps only `quorum.meta` and `snapshot`).

pub mod command;
pub mod controller;
pub mod error;
mod fsio;
pub mod image;
pub mod initial_voters;
mod legacy;
pub mod lifecycle;
mod log_store;
pub mod network;
mod observer;
pub mod partition_change;
pub mod placement;
pub mod quorum;
mod raft_types;
pub mod records;
pub mod rpc;
pub mod runtime;
mod state_machine;

pub use command::{
    apply, apply_in_place, CommandOutcome, CommandRejected, ControllerCommand, PartitionAssignment,
    Placement,
};
pub use controller::{Controller, HeartbeatReply, LifecycleError, RegistrationRequest};
pub use error::MetadataError;
pub use image::{BrokerConfigsImage, BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use lifecycle::Heartbeat;
pub use log_store::FileLogStore;
pub use quorum::{
    quorum_dir, MetadataQuorum, QuorumConfig, QuorumDescription, QuorumOptions, QuorumRole,
    QuorumServer, ReplicaDescription,
};
pub use raft_types::{CommandResponse, LogEntry, Node, NodeId, TypeConfig};
pub use records::{
    BrokerRegistration, Endpoint, LeaderRecoveryState, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, NO_LEADER,
};
pub use rpc::{LeaderHint, PrivateApi, RpcError, Transport, TransportError};
pub use state_machine::{apply_entry, MetadataSnapshotBuilder, MetadataStateMachine};
