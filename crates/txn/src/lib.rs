//! The transaction coordinator without I/O: Kafka's transactional-id state machine
//! (Transactions V1, and Transactions V2 of KIP-890 part 2 for clients that ask for it with
//! EndTxn v5+ / Produce v12+ / TxnOffsetCommit v5+, chosen per transaction as Kafka 4.1 does) as
//! a plain synchronous type with time and producer-id allocation passed in, plus the record
//! formats of `__transaction_state`.
//!
//! - [`coordinator`]: [`TxnCoordinator`], which takes InitProducerId, AddPartitionsToTxn (and its
//!   verify-only form), AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions as
//!   method calls and answers with an [`Output`]: records to append to `__transaction_state`,
//!   replies to send once those records are written, and [`WriteMarkers`] effects: transaction
//!   markers the shell must write to the data partitions before it reports back with
//!   [`TxnCoordinator::markers_written`].
//! - [`metadata`]: one transactional id: its producer id and epoch, state, partitions and
//!   timestamps, and the transitions between Kafka's states.
//! - [`timers`]: the periodic scans (timed-out transactions, expired transactional ids).
//! - [`records`]: the key and value formats of `__transaction_state`.
//!
//! The shell (the broker) owns sockets, logs, the clock and the producer-id blocks. It appends the
//! records of an [`Output`] and only then sends its replies and starts its marker writes, so an
//! answer never claims more than the log holds; if an append fails it fails the replies that
//! depended on it, drops the markers of that partition and unloads the partition
//! ([`TxnCoordinator::unload_partition`]); the state is rebuilt from the log when the partition is
//! loaded again, and transactions found half-way through a commit or abort get their markers
//! again ([`TxnCoordinator::finish_load`]).

pub mod coordinator;
pub mod metadata;
pub mod records;
pub mod timers;

pub use coordinator::{
    Append, DescribedTransaction, ListTransactionsFilter, ListedTransaction, ListedTransactions,
    Output, PendingReply, ProducerIdAndEpoch, ProducerIdSource, Reply, ReplyId, TxnCoordinator,
    WriteMarkers,
};
pub use metadata::{TransactionMetadata, TransactionState};

/// The internal topic that holds transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The internal topic whose partition AddOffsetsToTxn adds to a transaction.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// "No producer id" on the wire and in the log (Kafka's `RecordBatch.NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;

/// "No producer epoch" (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// A `transaction.version` feature level (Kafka's `TransactionVersion`). As the cluster's
/// setting ([`TxnConfig::transaction_version`]) it decides which `TransactionLogValue` version is
/// written; as a transaction's `client_transaction_version` it decides whether that transaction
/// follows Transactions V2 (an epoch bump with every commit or abort). Which one a transaction
/// gets comes from the request versions its client uses (EndTxn v5+, Produce v12+ and
/// TxnOffsetCommit v5+ are V2; everything older is V0), as in Kafka 4.1; clients only send
/// those versions when the broker finalizes level 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TransactionVersion {
    /// The original coordinator: `TransactionLogValue` version 0.
    V0,
    /// Flexible transaction records (`TransactionLogValue` version 1), nothing else changes.
    V1,
    /// KIP-890 part 2: the coordinator bumps the producer epoch with every EndTxn and returns
    /// it; partitions are added implicitly by the leader on Produce v12+.
    V2,
}

impl TransactionVersion {
    /// The highest level this coordinator implements.
    pub const LATEST: TransactionVersion = TransactionVersion::V2;

    /// The feature level Kafka names this version by.
    pub fn feature_level(self) -> i16 {
        match self {
            TransactionVersion::V0 => 0,
            TransactionVersion::V1 => 1,
            TransactionVersion::V2 => 2,
        }
    }

    /// The version of a feature level (levels above the latest are the latest).
    pub fn from_feature_level(level: i16) -> TransactionVersion {
        match level {
            i16::MIN..=0 => TransactionVersion::V0,
            1 => TransactionVersion::V1,
            _ => TransactionVersion::V2,
        }
    }

    /// The `TransactionLogValue` version Kafka writes at this level
    /// (`TransactionVersion.transactionLogValueVersion`).
    pub fn log_value_version(self) -> i16 {
        match self {
            TransactionVersion::V0 => 0,
            TransactionVersion::V1 | TransactionVersion::V2 => 1,
        }
    }

    /// Whether EndTxn bumps the epoch (Kafka's `supportsEpochBump`).
    pub fn supports_epoch_bump(self) -> bool {
        self >= TransactionVersion::V2
    }
}

/// Settings of the coordinator, with Kafka's config names and defaults.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transactional.id.expiration.ms`: an idle transactional id (no transaction in progress)
    /// is forgotten, with a tombstone, this long after its last update.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.max.timeout.ms`: the largest `transaction_timeout_ms` InitProducerId accepts.
    pub max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions`: which partition a transactional id lives in
    /// depends on it.
    pub num_partitions: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions
    /// running past their timeout are looked for (and aborted).
    pub abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired
    /// transactional ids are looked for.
    pub remove_expired_transaction_cleanup_interval_ms: i64,
    /// The finalized `transaction.version` of the cluster (see [`TransactionVersion`]).
    pub transaction_version: TransactionVersion,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            max_timeout_ms: 15 * 60 * 1000,
            num_partitions: 50,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 60 * 60 * 1000,
            transaction_version: TransactionVersion::V1,
        }
    }
}

/// Every error the coordinator answers with. The broker maps these to Kafka error codes in its
/// one error mapping; the names are Kafka's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("this node is not the coordinator for the transactional id")]
    NotCoordinator,
    #[error("the coordinator is loading the transactional id's partition")]
    CoordinatorLoadInProgress,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the request is not valid")]
    InvalidRequest,
    #[error("the transaction timeout is not in 1..=transaction.max.timeout.ms")]
    InvalidTransactionTimeout,
    #[error("a previous transaction of this producer is still being completed; retry")]
    ConcurrentTransactions,
    #[error("a newer producer with the same transactional id has fenced this one")]
    ProducerFenced,
    /// What [`TxnError::ProducerFenced`] becomes for clients too old to know it
    /// ([`TxnError::for_request_version`]).
    #[error("the producer epoch is not the current one")]
    InvalidProducerEpoch,
    #[error("the producer id is not the one mapped to the transactional id")]
    InvalidProducerIdMapping,
    #[error("the request is not valid in the transaction's current state")]
    InvalidTxnState,
    #[error("the transactional id is not known")]
    TransactionalIdNotFound,
    #[error("the partition is not part of the ongoing transaction; abort it")]
    TransactionAbortable,
    #[error("unexpected server error")]
    UnknownServerError,
}

/// The transactional APIs whose old versions predate PRODUCER_FENCED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnApi {
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
}

impl TxnError {
    /// The error as a client speaking `version` of `api` understands it: PRODUCER_FENCED
    /// (KIP-588) is answered as INVALID_PRODUCER_EPOCH to InitProducerId below v4 and to
    /// AddPartitionsToTxn, AddOffsetsToTxn and EndTxn below v2, as Kafka's `KafkaApis` does.
    #[must_use]
    pub fn for_request_version(self, api: TxnApi, version: i16) -> TxnError {
        let first_version_with_fenced = match api {
            TxnApi::InitProducerId => 4,
            TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::EndTxn => 2,
        };
        if self == TxnError::ProducerFenced && version < first_version_with_fenced {
            TxnError::InvalidProducerEpoch
        } else {
            self
        }
    }
}

pub use rafka_coordinator_common::partition_for;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_becomes_invalid_epoch_for_old_clients() {
        let f = TxnError::ProducerFenced;
        assert_eq!(
            f.for_request_version(TxnApi::InitProducerId, 3),
            TxnError::InvalidProducerEpoch
        );
        assert_eq!(
            f.for_request_version(TxnApi::InitProducerId, 4),
            TxnError::ProducerFenced
        );
        assert_eq!(
            f.for_request_version(TxnApi::EndTxn, 1),
            TxnError::InvalidProducerEpoch
        );
        assert_eq!(
            f.for_request_version(TxnApi::AddPartitionsToTxn, 2),
            TxnError::ProducerFenced
        );
        assert_eq!(
            TxnError::ConcurrentTransactions.for_request_version(TxnApi::AddOffsetsToTxn, 0),
            TxnError::ConcurrentTransactions
        );
    }
}
