//! Partition logs in Apache Kafka's own on-disk layout: segments, sparse indexes, checkpoints,
//! crash recovery. Synchronous (no tokio): the broker calls it from blocking threads.
//!
//! # On-disk layout
//!
//! ```text
//! <log.dir>/
//!   meta.properties                     version=1, cluster.id=, node.id=, directory.id=
//!   .kafka_cleanshutdown                present only between a clean shutdown and the next start
//!   recovery-point-offset-checkpoint    0\n<count>\n<topic> <partition> <offset>\n...
//!   log-start-offset-checkpoint         same format
//!   <topic>-<partition>/                topic names may contain '-': split at the last one
//!     00000000000000000000.log          record batches back to back, exactly the wire bytes
//!     00000000000000000000.index        sparse: (u32 offset - base, u32 position) big-endian
//!     00000000000000000000.timeindex    (i64 max timestamp so far, u32 offset - base)
//!     00000000000000012345.log ...      next segment, named by its 20-digit base offset
//!     leader-epoch-checkpoint           0\n<count>\n<epoch> <start offset>\n...
//!     partition.metadata                version: 0\ntopic_id: <base64url uuid>\n
//!   <topic>-<partition>.<hex id>-delete/  a partition being deleted
//! ```
//!
//! - One offset-index entry per `index_interval_bytes` of log (Kafka's rule: when more than that
//!   was written since the last entry, index the next batch's last offset at its position). A
//!   time-index entry (max timestamp so far, offset of the batch holding it) goes in alongside,
//!   if the max timestamp grew, and once more when the segment is sealed or closed.
//! - The active segment's indexes are preallocated to `segment_index_bytes` and trimmed to their
//!   entries when the segment is sealed (rolled) or the log is closed, as in Kafka. Their entries
//!   are kept in memory and written in one positional write at flush/roll/close.
//! - A rolled (sealed) segment is never written again; it is fsynced by the next flush
//!   ([`Log::flush`], or [`Log::sealed_flush`] which runs outside the log's lock), not on the
//!   append path. Its three files are memory-mapped ([`mmap`](crate::mmap) holds the only `unsafe` and its safety argument) and
//!   reads hand out `Bytes` slices of the map. The active segment is read with positional reads.
//! - Checkpoints are written atomically: `<file>.tmp`, fsync, rename, fsync of the directory.
//!
//! # Recovery
//!
//! [`Log::open`] without a clean shutdown walks every batch from the segment containing the
//! recovery point on, checks framing, magic and CRC-32C, truncates at the first torn or corrupt
//! batch, deletes all later segments and rebuilds the indexes of what it walked. Even after a
//! clean shutdown, any index that is missing, not a whole number of entries, out of order or
//! pointing past its log is rebuilt the same way.
//!
//! # Modules
//!
//! - [`backend`]: the narrow file-system interface ([`Backend`], [`StorageFile`]), the real
//!   [`FileBackend`] and the fault-injecting [`FaultyBackend`].
//! - [`log`](crate::Log): one partition. `segment` and `index` are its parts.
//! - [`logdir`](crate::LogDir): per-log-dir files and partition directories.
//! - `checkpoint`: the small text formats.

pub mod backend;
mod batch;
mod checkpoint;
mod error;
mod index;
mod log;
mod logdir;
mod mmap;
mod segment;

pub use backend::{Backend, Faults, FaultyBackend, FileBackend, StorageFile};
pub use checkpoint::{
    read_partition_metadata, uuid_from_base64, uuid_to_base64, write_partition_metadata,
    EpochEntry, MetaProperties, TopicPartition,
};
pub use error::StorageError;
pub use log::{AppendInfo, Log, LogConfig, LogRead, SealedFlush, TimestampOffset};
pub use logdir::LogDir;

/// Kafka's per-log-dir clean-shutdown marker.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Per-log-dir checkpoint of recovery points.
pub const RECOVERY_POINT_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Per-log-dir checkpoint of log start offsets.
pub const LOG_START_OFFSET_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
/// Per-log-dir identity file.
pub const META_PROPERTIES_FILE: &str = "meta.properties";
/// Per-partition leader epoch cache.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Per-partition topic id file.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
