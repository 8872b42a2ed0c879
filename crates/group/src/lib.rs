//! The consumer group coordinator without I/O: Kafka's classic group protocol as a plain
//! synchronous state machine with time passed in, plus committed offsets and the record formats
//! they are kept in.
//!
//! - [`coordinator`]: [`Coordinator`], which takes JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//!   OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups and OffsetDelete as method
//!   calls and answers with an [`Output`]: records to append to `__consumer_offsets` and replies
//!   to send once those records are written. Some replies come later than the call that caused
//!   them (a JoinGroup waits for the rest of the group), so every reply carries the caller's
//!   [`ReplyId`].
//! - [`group`]: one classic group: members, states, generation, protocol choice.
//! - [`offsets`]: committed and pending transactional offsets by group id, apart from the
//!   groups (Kafka's `OffsetMetadataManager`), so they do not depend on the kind of group.
//! - [`timers`]: session, join, sync and offset-expiration deadlines.
//! - [`consumer_protocol`]: the consumer embedded protocol: subscriptions (topics, owned
//!   partitions) inside JoinGroup metadata, and assignments.
//! - [`assignor`]: the server-side assignors of KIP-848 consumer groups (`uniform`, `range`).
//! - [`consumer_records`]: the `__consumer_offsets` records of KIP-848 consumer groups.
//! - [`reconcile`]: how a KIP-848 member moves to its target assignment, heartbeat by heartbeat.
//! - [`consumer_group`]: KIP-848 consumer groups: ConsumerGroupHeartbeat, timeouts and replay,
//!   classic members inside them and the records of online migration both ways.
//! - [`records`]: the key and value formats of `__consumer_offsets`.
//!
//! The shell (the broker) owns sockets, the log and the clock. It appends the records of an
//! [`Output`] and only then sends its replies, so an answer never claims more than the log holds;
//! if an append fails it unloads the partition ([`Coordinator::unload_partition`]) and the state
//! is rebuilt from the log when the partition is loaded again.

pub mod assignor;
pub mod consumer_group;
pub mod consumer_protocol;
pub mod consumer_records;
pub mod coordinator;
pub mod group;
pub mod offsets;
pub mod reconcile;
pub mod records;
pub mod timers;

pub use coordinator::{
    Append, CommitRequest, Coordinator, DescribedGroup, DescribedMember, GroupSummary, JoinRequest,
    JoinResponse, JoinResponseMember, LeaveMember, ListedGroup, MemberSummary,
    OffsetFetchPartition, Output, PendingReply, Reply, ReplyId, SyncRequest, SyncResponse,
    TxnCommitRequest,
};
pub use group::GroupState;

/// Settings of the coordinator, with Kafka's config names and defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`.
    pub max_size: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.num.partitions`: which partition a group lives in depends on it.
    pub num_partitions: i32,
    /// The KIP-848 consumer groups' settings (`group.consumer.*`).
    pub consumer: consumer_group::ConsumerGroupConfig,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            num_partitions: 50,
            consumer: consumer_group::ConsumerGroupConfig::default(),
        }
    }
}

/// A new member's join must complete within this long (Kafka's `NewMemberJoinTimeoutMs`), or
/// the member is dropped; this bounds how long a member that never rejoins can hold a rebalance.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// Every group error the coordinator answers with. The broker maps these to Kafka error codes
/// in its one error mapping; the names are Kafka's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("this node is not the coordinator for the group")]
    NotCoordinator,
    #[error("the coordinator is loading the group's partition")]
    CoordinatorLoadInProgress,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the group id is not valid")]
    InvalidGroupId,
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    #[error("the generation id is not the group's current generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error(
        "the session timeout is outside group.min.session.timeout.ms..group.max.session.timeout.ms"
    )]
    InvalidSessionTimeout,
    #[error("the group has reached group.max.size")]
    GroupMaxSizeReached,
    #[error("a member id is required to join; rejoin with the member id in this response")]
    MemberIdRequired,
    #[error("another member with the same group.instance.id has joined")]
    FencedInstanceId,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the offset metadata is larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("a transactional offset commit for the partition is pending")]
    UnstableOffsetCommit,
    #[error("the member epoch is not the member's current epoch")]
    StaleMemberEpoch,
    #[error(
        "OffsetCommit version 9 or above must be used by members using the modern group protocol"
    )]
    UnsupportedVersion,
}

pub use rafka_coordinator_common::partition_for;
