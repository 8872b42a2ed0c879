//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in storage.
///
/// Suggested Kafka error codes (the broker owns the mapping): `OffsetOutOfRange` and
/// `LogStartOffsetOutOfRange` -> OFFSET_OUT_OF_RANGE (1); `InvalidBatch` -> CORRUPT_MESSAGE (2);
/// `Io`, `Failed`, `Corrupt` -> KAFKA_STORAGE_ERROR (56); `NonMonotonicOffset` ->
/// UNKNOWN_SERVER_ERROR on a leader, or a truncation/refetch on a follower;
/// `OutOfOrderSequence` -> OUT_OF_ORDER_SEQUENCE_NUMBER (45); `InvalidProducerEpoch` ->
/// INVALID_PRODUCER_EPOCH (47); `InvalidTxnState` -> INVALID_TXN_STATE (48);
/// `TransactionCoordinatorFenced` -> TRANSACTION_COORDINATOR_FENCED (52).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed. `path` names the file or directory involved.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A fetch or lookup asked for an offset outside `[log_start, log_end]`.
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// The log start offset.
        log_start: i64,
        /// The log end offset (next offset to be assigned).
        log_end: i64,
    },
    /// DeleteRecords asked to move the log start offset past the high watermark, or to a
    /// negative offset other than -1 (Kafka's `maybeIncrementLogStartOffset` /
    /// `deleteRecordsOnLeader` answer OFFSET_OUT_OF_RANGE). Nothing changed.
    #[error(
        "cannot move the log start offset to {requested}: it must lie between 0 and the high \
         watermark {high_watermark}"
    )]
    LogStartOffsetOutOfRange {
        /// The offset asked for (after -1 was turned into the high watermark).
        requested: i64,
        /// The high watermark it may not pass.
        high_watermark: i64,
    },
    /// The bytes handed to an append are not whole v2 batches.
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    /// A follower/replica append whose offsets do not continue the log.
    #[error(
        "non-monotonic offset: batch starts at {first_offset} but the log expects >= {expected}"
    )]
    NonMonotonicOffset {
        /// Base offset of the offending batch.
        first_offset: i64,
        /// The lowest acceptable base offset.
        expected: i64,
    },
    /// A file the crate owns has content it cannot accept (e.g. a checkpoint that does not parse).
    #[error("corrupt file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An idempotent producer's batch does not continue its sequence: a gap, a repeat that is not
    /// one of the cached batches, or a bumped epoch that does not start at 0. Nothing of the
    /// append was written.
    #[error(
        "out of order sequence number for producer {producer_id} at epoch {producer_epoch} \
         (current epoch {current_epoch}): batch starts at sequence {first_sequence}, expected \
         {expected_sequence}"
    )]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The batch's producer epoch.
        producer_epoch: i16,
        /// The producer's epoch in this partition (-1 if none yet).
        current_epoch: i16,
        /// The batch's base sequence.
        first_sequence: i32,
        /// The sequence the batch had to start at.
        expected_sequence: i32,
    },
    /// A batch's producer epoch is older than the producer's current epoch in this partition: a
    /// fenced (zombie) producer. Nothing of the append was written.
    #[error(
        "producer {producer_id} wrote with epoch {producer_epoch}, older than its current epoch \
         {current_epoch}"
    )]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's producer epoch.
        producer_epoch: i16,
        /// The producer's current epoch.
        current_epoch: i16,
    },
    /// A producer with an open transaction in this partition sent a non-transactional batch
    /// (Kafka's `InvalidTxnStateException`). Nothing of the append was written.
    #[error(
        "producer {producer_id} sent a non-transactional batch at offset {offset} while its \
         transaction from offset {txn_first_offset} is open"
    )]
    InvalidTxnState {
        /// The producer.
        producer_id: i64,
        /// The offset the batch would have had.
        offset: i64,
        /// First offset of the producer's open transaction.
        txn_first_offset: i64,
    },
    /// An end-transaction marker carries a coordinator epoch older than the last one seen for
    /// its producer: it comes from a fenced (zombie) transaction coordinator (Kafka's
    /// `TransactionCoordinatorFencedException`). Nothing was written.
    #[error(
        "marker for producer {producer_id} from coordinator epoch {coordinator_epoch}, older \
         than the current coordinator epoch {current_coordinator_epoch}"
    )]
    TransactionCoordinatorFenced {
        /// The producer.
        producer_id: i64,
        /// The marker's coordinator epoch.
        coordinator_epoch: i32,
        /// The coordinator epoch of the producer's last marker.
        current_coordinator_epoch: i32,
    },
    /// An earlier write or fsync failed and the state of the files is no longer known; like
    /// Kafka's offline log dir, this log refuses further writes until it is reopened (which
    /// recovers it).
    #[error("log {0} is offline after an earlier I/O failure")]
    Failed(PathBuf),
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
