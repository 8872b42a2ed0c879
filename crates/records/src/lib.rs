//! Kafka's v2 record batch format (magic 2), as the broker sees it on the produce path, in the log
//! and on the fetch path.
//!
//! The crate works on borrowed bytes: the hot paths never copy or decompress a batch. Layout:
//!
//! - [`header`]: byte offsets of every v2 batch header field, [`BatchHeader`], [`Compression`],
//!   [`TimestampType`] and the attribute bits.
//! - [`varint`]: Kafka's zigzag varint / varlong encoding used inside records.
//! - [`view`]: [`BatchView`] (one batch, zero-copy), [`BatchIter`] / [`batches`] (back-to-back
//!   batches, telling a torn tail from corruption) and [`Record`] iteration for uncompressed
//!   batches.
//! - [`validate`]: [`validate_produce`], the checks Kafka's broker runs on the bytes a producer
//!   sent for one partition (mirroring `ProduceRequest.validateRecords`,
//!   `UnifiedLog.analyzeAndValidateRecords` and `LogValidator.validateBatch`).
//! - [`stamp`]: in-place edits the leader makes before appending: [`stamp_batch`] (base offset and
//!   partition leader epoch, both outside the CRC) and [`set_log_append_time`] (inside the CRC, so
//!   it re-hashes).
//! - [`timestamp`]: [`TimestampBounds`], KIP-937's bounds on CreateTime timestamps, checked in
//!   [`validate_produce`]'s record walk.
//! - [`builder`]: [`BatchBuilder`], which writes batches (any codec) with a correct CRC: for
//!   tests, internal records, broker-side recompression and the log cleaner.
//! - [`compression`]: gzip, snappy, lz4 and zstd in Kafka's framing, with capped decompression;
//!   [`BatchView::decode_records`] uses it to read the records of a compressed batch.
//! - [`recompress`]: [`recompress_batch`], a produce batch rewritten in the topic's codec
//!   (Kafka's broker-side recompression).
//!
//! Errors are one enum, [`RecordError`]; mapping them to Kafka error codes is the broker's job.
//! Nothing in this crate panics on malformed input: every read of untrusted bytes is checked.

pub mod builder;
pub mod compression;
pub mod header;
pub mod recompress;
pub mod stamp;
pub mod timestamp;
pub mod validate;
pub mod varint;
pub mod view;

pub use builder::BatchBuilder;
pub use header::{
    BatchHeader, Compression, TimestampType, ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET,
    BASE_SEQUENCE_OFFSET, BASE_TIMESTAMP_OFFSET, BATCH_HEADER_LEN, BATCH_LENGTH_OFFSET, CRC_OFFSET,
    CRC_START, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD_LEN, MAGIC_OFFSET, MAX_TIMESTAMP_OFFSET,
    MIN_BATCH_LENGTH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP, PARTITION_LEADER_EPOCH_OFFSET,
    PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET, RECORDS_COUNT_OFFSET, RECORDS_OFFSET, V2_MAGIC,
};
pub use recompress::recompress_batch;
pub use stamp::{
    compute_crc, set_log_append_time, set_max_timestamp, stamp_batch, stamp_batches, update_crc,
};
pub use timestamp::TimestampBounds;
pub use validate::{
    max_uncompressed_bytes_for, validate_produce, ProduceSummary, ValidationLimits,
};
pub use view::{batches, BatchIter, BatchView, DecodedRecords, Record, RecordIter};

/// Everything that can be wrong with record bytes.
///
/// Suggested Kafka error codes (the broker owns the mapping): `CorruptMessage` and `Truncated` ->
/// CORRUPT_MESSAGE (2), `InvalidRecord` and `UnsupportedMagic` on produce -> INVALID_RECORD (87),
/// `BatchTooLarge` -> MESSAGE_TOO_LARGE (10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The buffer ends inside a batch (or inside a batch header). In a log this is a torn tail; in
    /// a produce request it is a malformed request.
    #[error("truncated record batch: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the batch claims (or the minimum needed to read its header).
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// The magic byte is not 2. Kafka 4 no longer accepts v0/v1 message sets.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// CRC mismatch or batch-level framing that cannot be right (Kafka: CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    /// A structurally valid batch whose contents Kafka would refuse (Kafka: INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// One batch is larger than `message.max.bytes` (Kafka: MESSAGE_TOO_LARGE).
    #[error("record batch of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    BatchTooLarge {
        /// Whole batch size, including the 12-byte log overhead.
        size_bytes: usize,
        /// The configured limit.
        max_bytes: usize,
    },
    /// A CreateTime timestamp outside `message.timestamp.before.max.ms` /
    /// `message.timestamp.after.max.ms` (Kafka: INVALID_TIMESTAMP).
    #[error("{message}")]
    InvalidTimestamp {
        /// Index of the offending record within the partition's records.
        record_index: usize,
        message: String,
    },
    /// Record-level access through [`BatchView::records`] was asked of a compressed batch (use
    /// [`BatchView::decode_records`]).
    #[error("batch is compressed with {0:?}; records cannot be read without decompression")]
    Compressed(Compression),
}
