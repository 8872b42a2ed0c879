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
//! - `log_store`, `state_machine`, [`network`]: openraft storage and transport.
//! - [`quorum`]: [`MetadataQuorum`], which the broker starts, reads and writes.
//!
//! On disk (one directory, `<metadata.log.dir>/__cluster_metadata-0/`): `quorum.meta` (cluster
//! and node id), `raft.log` (checksummed, fsynced entries), `vote`, `committed`, `snapshot`.

pub mod command;
pub mod error;
mod fsio;
pub mod image;
mod log_store;
pub mod network;
pub mod quorum;
mod raft_types;
pub mod records;
mod state_machine;

pub use command::{
    apply, apply_in_place, CommandOutcome, CommandRejected, ControllerCommand, PartitionAssignment,
};
pub use error::MetadataError;
pub use image::{BrokerConfigsImage, BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use log_store::FileLogStore;
pub use quorum::{quorum_dir, MetadataQuorum, QuorumConfig};
pub use raft_types::{CommandResponse, LogEntry, Node, NodeId, TypeConfig};
pub use records::{
    BrokerRegistration, Endpoint, MetadataRecord, PartitionChangeRecord, PartitionRecord, NO_LEADER,
};
pub use state_machine::{MetadataSnapshotBuilder, MetadataStateMachine};
