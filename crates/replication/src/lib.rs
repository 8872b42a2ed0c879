//! Kafka's ISR replication bookkeeping as synchronous state machines (DESIGN.md §6): no sockets,
//! no clocks, no files. Time comes in as `now_ms` arguments; what the I/O shell in the broker
//! must do comes out as return values.
//!
//! - [`epochs`]: a log's leader epoch history (`leader-epoch-checkpoint`) and the lookups built
//!   on it: Kafka's end offset for an epoch (OffsetForLeaderEpoch) and the diverging-epoch check
//!   a leader applies to a follower's fetch (KIP-101, KIP-279, KIP-320).
//! - [`leader`]: one partition on its leader: each follower's log end offset and last caught-up
//!   time, the high watermark (the minimum over the ISR, never moving back, and after a leader
//!   change only moving once followers have fetched at the new epoch), and the ISR shrinks and
//!   expands to propose to the controller (one AlterPartition in flight at a time).
//! - [`follower`]: one partition on a follower: where to truncate when the leader says the logs
//!   diverge (never to the high watermark: KIP-101, KIP-279), and its high watermark.
//!
//! acks=all produces wait in the broker (`partitions::ReplicationWait`, woken by the
//! partition's high watermark moves), bounded by its connections.
//!
//! Offsets and epochs use Kafka's sentinels where Kafka's wire formats need them
//! ([`UNDEFINED_EPOCH`], [`UNDEFINED_OFFSET`]); inside the crate an unknown value is an `Option`.

pub mod epochs;
pub mod follower;
pub mod leader;

/// Kafka's `UNDEFINED_EPOCH` (-1).
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET` (-1).
pub const UNDEFINED_OFFSET: i64 = -1;

pub use epochs::{EpochEndOffset, EpochHistory, EpochStart};
pub use follower::{follower_high_watermark, truncation, Truncation};
pub use leader::{
    FollowerFetch, IsrChange, LeaderConfig, LeaderPartition, Progress, ReplicaProgress,
};
