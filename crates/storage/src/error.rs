//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in storage.
///
/// Suggested Kafka error codes (the broker owns the mapping): `OffsetOutOfRange` ->
/// OFFSET_OUT_OF_RANGE (1); `InvalidBatch` -> CORRUPT_MESSAGE (2); `Io`, `Failed`, `Corrupt` ->
/// KAFKA_STORAGE_ERROR (56); `NonMonotonicOffset` -> UNKNOWN_SERVER_ERROR on a leader,
/// or a truncation/refetch on a follower.
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
