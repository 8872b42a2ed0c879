//! The one place where errors of the libraries become Kafka error codes. Handlers never pick a
//! code for a library error themselves; they call these functions.

use rafka_group::consumer_group::HeartbeatError;
use rafka_group::GroupError;
use rafka_metadata::{CommandRejected, MetadataError};
use rafka_protocol::kafka_protocol::ResponseError;
use rafka_records::RecordError;
use rafka_storage::StorageError;
use rafka_txn::TxnError;

use crate::config::validate::ConfigRejected;
use crate::fetch_sessions::SessionError;
use crate::partitions::{EpochMismatch, ReplicationError, Unavailable};

/// A Kafka error code with the message that goes into `error_message` where the API has one.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ResponseError,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ResponseError, message: String) -> Self {
        ApiError { code, message }
    }

    pub fn code(&self) -> i16 {
        self.code.code()
    }
}

pub fn rejected(r: CommandRejected) -> ApiError {
    let code = match &r {
        CommandRejected::TopicAlreadyExists { .. }
        | CommandRejected::TopicIdAlreadyExists { .. } => ResponseError::TopicAlreadyExists,
        CommandRejected::InvalidTopicName { .. } | CommandRejected::TopicNameCollision { .. } => {
            ResponseError::InvalidTopicException
        }
        CommandRejected::UnknownTopic { .. } => ResponseError::UnknownTopicOrPartition,
        CommandRejected::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
        CommandRejected::InvalidReplicaAssignment { .. } => ResponseError::InvalidReplicaAssignment,
        CommandRejected::InvalidBrokerRegistration { .. } => ResponseError::InvalidRequest,
        CommandRejected::InvalidConfig { .. } => ResponseError::InvalidConfig,
        CommandRejected::ProducerIdBlockTaken { .. } => ResponseError::UnknownServerError,
        CommandRejected::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
        CommandRejected::StaleBrokerEpoch { .. } => ResponseError::StaleBrokerEpoch,
        CommandRejected::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition,
        CommandRejected::NewerEpochThanController { .. } => ResponseError::NotController,
        CommandRejected::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        CommandRejected::InvalidUpdateVersion { .. } => ResponseError::InvalidUpdateVersion,
        CommandRejected::InvalidRequest { .. } => ResponseError::InvalidRequest,
        CommandRejected::IneligibleReplica { .. } => ResponseError::IneligibleReplica,
        CommandRejected::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
    };
    ApiError::new(code, r.to_string())
}

/// Refused config changes (CreateTopics configs, AlterConfigs, IncrementalAlterConfigs).
pub fn config_rejected(e: ConfigRejected) -> ApiError {
    match e {
        ConfigRejected::InvalidConfig(m) => ApiError::new(ResponseError::InvalidConfig, m),
        ConfigRejected::InvalidRequest(m) => ApiError::new(ResponseError::InvalidRequest, m),
    }
}

pub fn metadata(e: &MetadataError) -> ApiError {
    match e {
        MetadataError::Rejected(r) => rejected(r.clone()),
        MetadataError::NotLeader { .. } => {
            ApiError::new(ResponseError::NotController, e.to_string())
        }
        MetadataError::LeaderTimeout { .. } | MetadataError::Timeout { .. } => {
            ApiError::new(ResponseError::RequestTimedOut, e.to_string())
        }
        _ => ApiError::new(ResponseError::UnknownServerError, e.to_string()),
    }
}

/// Produce-side batch validation failures, as Kafka's LogValidator reports them.
pub fn records(e: &RecordError) -> ResponseError {
    match e {
        RecordError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        RecordError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        RecordError::InvalidRecord { .. } => ResponseError::InvalidRecord,
        RecordError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
        _ => ResponseError::CorruptMessage,
    }
}

pub fn storage(e: &StorageError) -> ResponseError {
    match e {
        StorageError::OffsetOutOfRange { .. } | StorageError::LogStartOffsetOutOfRange { .. } => {
            ResponseError::OffsetOutOfRange
        }
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        StorageError::TransactionCoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced
        }
        _ => ResponseError::KafkaStorageError,
    }
}

/// A log dir that cannot be described (its file system cannot be queried): Kafka answers
/// KAFKA_STORAGE_ERROR for an IOException there.
pub fn log_dir_io(_e: &std::io::Error) -> ResponseError {
    ResponseError::KafkaStorageError
}

pub fn unavailable(u: Unavailable) -> ResponseError {
    match u {
        Unavailable::UnknownPartition => ResponseError::UnknownTopicOrPartition,
        Unavailable::NotLeader => ResponseError::NotLeaderOrFollower,
    }
}

/// An acks=all append that was not confirmed, as Produce answers it.
pub fn replication(e: ReplicationError) -> ResponseError {
    match e {
        ReplicationError::NotEnoughReplicas => ResponseError::NotEnoughReplicas,
        ReplicationError::NotEnoughReplicasAfterAppend => {
            ResponseError::NotEnoughReplicasAfterAppend
        }
        ReplicationError::NotLeader => ResponseError::NotLeaderOrFollower,
        ReplicationError::TimedOut => ResponseError::RequestTimedOut,
    }
}

pub fn epoch(e: EpochMismatch) -> ResponseError {
    match e {
        EpochMismatch::Unknown => ResponseError::UnknownLeaderEpoch,
        EpochMismatch::Fenced => ResponseError::FencedLeaderEpoch,
    }
}

/// Fetch session errors (KIP-227).
pub fn fetch_session(e: SessionError) -> ResponseError {
    match e {
        SessionError::NotFound => ResponseError::FetchSessionIdNotFound,
        SessionError::InvalidEpoch => ResponseError::InvalidFetchSessionEpoch,
        SessionError::TopicIdMismatch => ResponseError::FetchSessionTopicIdError,
    }
}

/// Group coordinator errors; the names are Kafka's, so the mapping is one to one.
pub fn group(e: GroupError) -> ResponseError {
    match e {
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        GroupError::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::UnsupportedVersion => ResponseError::UnsupportedVersion,
    }
}

/// ConsumerGroupHeartbeat errors (KIP-848), with Kafka's message where it sends one.
pub fn consumer_heartbeat(e: &HeartbeatError) -> (ResponseError, Option<String>) {
    let message = Some(e.to_string());
    let code = match e {
        HeartbeatError::InvalidRequest(_) => ResponseError::InvalidRequest,
        HeartbeatError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
        HeartbeatError::GroupIdNotFound(_) => ResponseError::GroupIdNotFound,
        HeartbeatError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        HeartbeatError::UnknownMemberId(_) => ResponseError::UnknownMemberId,
        HeartbeatError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        HeartbeatError::FencedInstanceId(_) => ResponseError::FencedInstanceId,
        HeartbeatError::UnreleasedInstanceId(_) => ResponseError::UnreleasedInstanceId,
        HeartbeatError::InvalidRegularExpression(_) => ResponseError::InvalidRegularExpression,
    };
    (code, message)
}

/// Transaction coordinator errors as another broker's coordinator answered them (the inverse
/// of [`txn`]); `None` for 0. A code the coordinator never sends is a server error.
pub fn txn_from_code(code: i16) -> Option<TxnError> {
    const KNOWN: [TxnError; 13] = [
        TxnError::NotCoordinator,
        TxnError::CoordinatorLoadInProgress,
        TxnError::CoordinatorNotAvailable,
        TxnError::InvalidRequest,
        TxnError::InvalidTransactionTimeout,
        TxnError::ConcurrentTransactions,
        TxnError::ProducerFenced,
        TxnError::InvalidProducerEpoch,
        TxnError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState,
        TxnError::TransactionalIdNotFound,
        TxnError::TransactionAbortable,
        TxnError::UnknownServerError,
    ];
    if code == 0 {
        return None;
    }
    Some(
        KNOWN
            .into_iter()
            .find(|e| txn(*e).code() == code)
            .unwrap_or(TxnError::UnknownServerError),
    )
}

/// The error code field for an optional group error (0 = none).
pub fn group_code(e: Option<GroupError>) -> i16 {
    e.map_or(0, |e| group(e).code())
}

/// Transaction coordinator errors; the names are Kafka's.
pub fn txn(e: TxnError) -> ResponseError {
    match e {
        TxnError::NotCoordinator => ResponseError::NotCoordinator,
        TxnError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        TxnError::InvalidRequest => ResponseError::InvalidRequest,
        TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::ProducerFenced => ResponseError::ProducerFenced,
        TxnError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
        TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
        TxnError::TransactionAbortable => ResponseError::TransactionAbortable,
        TxnError::UnknownServerError => ResponseError::UnknownServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_codes_round_trip() {
        for e in [
            TxnError::NotCoordinator,
            TxnError::ConcurrentTransactions,
            TxnError::ProducerFenced,
            TxnError::InvalidProducerEpoch,
            TxnError::TransactionAbortable,
        ] {
            assert_eq!(txn_from_code(txn(e).code()), Some(e));
        }
        assert_eq!(txn_from_code(0), None);
        assert_eq!(
            txn_from_code(ResponseError::OffsetOutOfRange.code()),
            Some(TxnError::UnknownServerError)
        );
    }
}
