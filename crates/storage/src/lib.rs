//! Partition logs in Apache Kafka's own on-disk layout: segments, sparse indexes, checkpoints,
//! crash recovery. Synchronous (no tokio): the broker calls it from blocking threads.
//!
//! # On-disk layout
//!
//! ```text
//! <log.dir>/                            one per log.dirs entry (LogDirs)
//!   meta.properties                     version=1, cluster.id=, node.id=, directory.id= (per dir)
//!   .kafka_cleanshutdown                present only between a clean shutdown and the next start
//!   recovery-point-offset-checkpoint    0\n<count>\n<topic> <partition> <offset>\n...
//!   log-start-offset-checkpoint         same format
//!   <topic>-<partition>/                topic names may contain '-': split at the last one
//!     00000000000000000000.log          record batches back to back, exactly the wire bytes
//!     00000000000000000000.index        sparse: (u32 offset - base, u32 position) big-endian
//!     00000000000000000000.timeindex    (i64 max timestamp so far, u32 offset - base)
//!     00000000000000000000.txnindex     aborted transactions whose ABORT marker is in this
//!                                       segment: 34-byte entries (Kafka's format, below)
//!     00000000000000012345.log ...      next segment, named by its 20-digit base offset
//!     00000000000000012345.snapshot     producer state below that offset (Kafka's format, below)
//!     00000000000000000000.log.deleted  a segment retention deleted (also .index.deleted,
//!                                       .timeindex.deleted, .txnindex.deleted), unlinked after
//!                                       file.delete.delay.ms; removed by the next open if left
//!     00000000000000000000.log.cleaned  the cleaner writing a cleaned segment (and its indexes);
//!                                       removed by the next open if left
//!     00000000000000000000.log.swap     a cleaned segment about to replace the old ones; the
//!                                       next open completes the swap if left
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
//!   append path. Its four files are memory-mapped (`mmap` holds the only `unsafe` and its
//!   safety argument) and reads hand out `Bytes` slices of the map. The active segment is read
//!   with positional reads; one cut to less than half of what it read is copied out, so a read
//!   never holds much more memory than it returns (`Segment::batches_at`).
//! - Checkpoints are written atomically: `<file>.tmp`, fsync, rename, fsync of the directory.
//!
//! # Producer state
//!
//! Each log keeps Kafka's idempotent-producer state ([`producer_state`]): per producer id its
//! epoch and its last five batches (sequence range, offsets, timestamp), its last timestamp,
//! coordinator epoch and open transaction. [`Log::append`] checks every batch with a producer id
//! before writing anything: a retry of a cached batch is answered with the original offsets and
//! nothing is written ([`AppendInfo::duplicate`]); an older epoch is
//! [`StorageError::InvalidProducerEpoch`], a sequence that does not follow (or a bumped epoch not
//! starting at 0) is [`StorageError::OutOfOrderSequence`]; a producer without state is accepted
//! at any sequence. [`Log::append_stamped`] applies batches without checks. The broker expires
//! idle producers with [`Log::expire_producers`] and describes them with
//! [`Log::active_producers`].
//!
//! Snapshots use Kafka's file format, `ProducerSnapshot` version 1, big-endian: i16 version (1),
//! u32 CRC-32C of everything after it, i32 count, then per producer i64 producer id, i16 epoch,
//! i32 last sequence, i64 last offset, i32 offset delta, i64 timestamp, i32 coordinator epoch,
//! i64 open transaction's first offset (-1 if none). Only the last batch of each producer is in
//! the file (as in Kafka). A snapshot named N holds the state after every batch below offset N.
//!
//! - One is written at every roll, named by the new segment's base offset; it is written with
//!   tmp + rename but fsynced later, with the sealed segments ([`Log::sealed_flush`] or
//!   [`Log::flush`]), to keep the fsync off the produce path as Kafka does.
//! - One is written (fsynced) at the log end by [`Log::close`], and by [`Log::open`] after it had
//!   to replay.
//! - Only the two newest are kept. Snapshots past the log end (after recovery cut the log, or
//!   after a truncation) or at or below the log start are deleted.
//! - [`Log::open`] loads the newest snapshot at or below the log end and replays batch headers
//!   from there to the log end (from the log start without one): after a clean close the
//!   snapshot is at the log end and nothing is replayed. When transaction indexes have to be
//!   rebuilt (below), a first replay starts at the newest snapshot at or below the first such
//!   segment instead; the state is then taken from the newest snapshot again (as Kafka's
//!   recovery uses a throwaway state), since a replay cannot restore producers whose batches
//!   retention deleted. A corrupt snapshot (bad CRC, torn, wrong version or size) is logged,
//!   deleted, and the next older one or the log is used. As in Kafka, a clean shutdown with no
//!   snapshot at all (a log written before producer state was kept) starts with empty state
//!   without scanning (a scan that only rebuilds transaction indexes drops its state).
//! - Truncation rebuilds the state the same way for the new log end.
//!
//! # Transactions
//!
//! A producer's first transactional batch opens its transaction at that batch's offset; the
//! end-transaction marker the transaction coordinator has written ([`Log::append_txn_marker`],
//! WriteTxnMarkers) closes it. Open transactions are part of the producer state, so they survive
//! restarts through snapshots and replay, and come back when a truncation cuts their marker off.
//!
//! - Leader checks, as Kafka's `ProducerAppendInfo`: a non-transactional batch from a producer
//!   with an open transaction is [`StorageError::InvalidTxnState`]; a marker with an older
//!   producer epoch is [`StorageError::InvalidProducerEpoch`], one with an older coordinator
//!   epoch [`StorageError::TransactionCoordinatorFenced`]. A marker for a producer without an
//!   open transaction is written anyway (Kafka does). Replicated and replayed batches are
//!   applied without checks.
//! - [`Log::first_unstable_offset`]: the first offset of the oldest open transaction;
//!   [`Log::has_ongoing_transaction`] for one producer.
//!   [`Log::last_stable_offset`] gives Kafka's LSO for a high watermark, which also holds back
//!   for closed transactions whose marker the high watermark has not passed yet
//!   ([`Log::on_high_watermark_updated`] forgets those below it).
//! - Each ABORT marker adds an entry to the `.txnindex` of the segment it lands in (leader,
//!   follower and replay alike): Kafka's `AbortedTxn`, version 0, 34 bytes big-endian: i16
//!   version, i64 producer id, i64 first offset, i64 last offset (the marker's), i64 last stable
//!   offset (the first offset of the oldest other open transaction, or the marker's offset + 1).
//!   [`Log::aborted_transactions`] answers READ_COMMITTED fetches from it as Kafka's
//!   `collectAbortedTransactions` does.
//! - The file is created (empty) with its segment; the active segment's entries are written at
//!   flush, roll and close like its other indexes, and the file is mapped once sealed. A
//!   recovered segment's transaction index is rebuilt by the producer-state replay at open, as
//!   is one that is missing or invalid (torn, unknown version, out of order, outside the
//!   segment's offsets). Truncation drops the entries whose marker it removes; deleting a
//!   segment deletes its `.txnindex`.
//!
//! # Retention
//!
//! [`Log::delete_old_segments`] is Kafka's `deleteOldSegments` for `cleanup.policy=delete`, which
//! the broker runs every `log.retention.check.interval.ms`. Three passes, each deleting the
//! oldest segments while its rule holds and stopping at the first segment it keeps:
//!
//! 1. segments entirely below the log start offset (the next segment starts at or below it);
//! 2. `retention.bytes`: while the log without the segment would still be at least that large;
//! 3. `retention.ms`: while the segment's largest timestamp (the `.log` file's modification time
//!    if no batch has one) is more than `retention.ms` old.
//!
//! - Nothing at or above the high watermark goes: a segment is deletable only if the next
//!   segment's base offset (the log end, for the active segment) is at most the high watermark.
//! - The active segment, if not empty, is deleted like the others when it qualifies (and the
//!   high watermark has reached the log end); as in Kafka the log is first rolled, so an empty
//!   segment at the log end remains. An empty active segment is never deleted.
//! - The log start offset moves to the first remaining segment's base offset (never backwards).
//! - Deletion is Kafka's two-step one: the segments leave the log at once and their four files
//!   are renamed `<name>.deleted`; [`Log::delete_expired_files`] unlinks them
//!   `file.delete.delay.ms` later ([`Log::close`] at once; [`Log::open`] removes leftovers of a
//!   crash). Reads that took `Bytes` from a deleted segment's maps keep them valid (`mmap`).
//! - A crash at any point leaves a log [`Log::open`] reconciles: leftover `.deleted` files and
//!   indexes without a `.log` are removed, and the log start is the larger of the checkpointed
//!   one and the first remaining segment's base offset. Segments that reappear below a
//!   checkpointed log start (renames that had not reached the disk) go at the next check.
//!
//! [`Log::delete_records`] is DeleteRecords (Kafka's `maybeIncrementLogStartOffset`): the log
//! start moves to the requested offset (-1: the high watermark; above the high watermark:
//! [`StorageError::LogStartOffsetOutOfRange`]; never backwards), the segments wholly below it are
//! deleted as above, and reads below it get [`StorageError::OffsetOutOfRange`]. The broker
//! persists the log start through its `log-start-offset-checkpoint` and hands it back to
//! [`Log::open`], which keeps it even inside a segment.
//!
//! When the log start moves, as in Kafka since KIP-360, producer state is kept (producers are
//! only forgotten by [`Log::expire_producers`]); closed transactions whose marker lies below the
//! log start stop holding back the last stable offset, producer snapshots at or below it are
//! deleted, and the leader epoch cache is folded to start at it. Transaction index entries go
//! with their segments.
//!
//! # Compaction
//!
//! `cleanup.policy=compact` logs are cleaned as Kafka's log cleaner does ([`Log::cleanable_info`],
//! [`Log::prepare_clean`], [`CleanTask::run`] outside the broker's lock, [`Log::finish_clean`]):
//! the latest record per key stays, offsets never change, tombstones and markers go after their
//! KIP-534 delete horizon, aborted transactions' batches go. See the `log::cleaner` module docs
//! for the rules and the crash-safe `.cleaned` / `.swap` protocol. The broker keeps where each
//! log was cleaned up to in the log dir's `cleaner-offset-checkpoint`
//! ([`LogDir::read_cleaner_offsets`]).
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
//! - [`log_dirs`](crate::LogDirs): all `log.dirs` together: `meta.properties` checks and
//!   formatting, where each partition lives, placement of new partitions ([`Placement`]).
//! - [`producer_state`]: the sans-IO producer state ([`ProducerStateManager`]), the snapshot
//!   encoding and the end-transaction marker batch; `snapshot`: the snapshot files.
//! - `txn_index`: the `.txnindex` files and their entries ([`AbortedTxn`]).
//! - `checkpoint`: the small text formats.

pub mod backend;
mod batch;
mod checkpoint;
mod error;
mod index;
mod log;
mod log_dirs;
mod logdir;
mod mmap;
pub mod producer_state;
mod segment;
mod snapshot;
mod txn_index;

pub use backend::{Backend, Faults, FaultyBackend, FileBackend, StorageFile};
pub use checkpoint::{
    read_partition_metadata, uuid_from_base64, uuid_to_base64, write_partition_metadata,
    EpochEntry, MetaProperties, TopicPartition,
};
pub use error::StorageError;
pub use log::cleaner::{
    max_delete_horizon, CleanOutcome, CleanOutput, CleanTask, CleanableInfo, CleanerSettings,
    CleanerStats, OffsetMap, OFFSET_MAP_ENTRY_BYTES, OFFSET_MAP_LOAD_FACTOR,
};
pub use log::{AppendInfo, Log, LogConfig, LogRead, RetentionResult, SealedFlush, TimestampOffset};
pub use log_dirs::{filesystem_space, Formatted, LogDirs, LogDirsError, Placement, METADATA_TOPIC};
pub use logdir::LogDir;
pub use producer_state::{AppendOrigin, CompletedTxn, ProducerInfo, ProducerStateManager};
pub use txn_index::{AbortedTxn, ABORTED_TXN_BYTES, ABORTED_TXN_VERSION};

/// Kafka's per-log-dir clean-shutdown marker.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Per-log-dir checkpoint of recovery points.
pub const RECOVERY_POINT_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Per-log-dir checkpoint of the offsets the cleaner has compacted up to (Kafka's name).
pub const CLEANER_OFFSET_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Per-log-dir checkpoint of log start offsets.
pub const LOG_START_OFFSET_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
/// Per-log-dir checkpoint of high watermarks (Kafka's name).
pub const REPLICATION_OFFSET_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";
/// Per-log-dir identity file.
pub const META_PROPERTIES_FILE: &str = "meta.properties";
/// Per-partition leader epoch cache.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Per-partition topic id file.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
