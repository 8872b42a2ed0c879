//! AlterPartition (key 56, v2-3) on the controller listener: how a partition leader asks the
//! active controller to change its ISR, as Kafka's brokers do (`AlterPartitionManager`). Each
//! partition becomes one `ControllerCommand::AlterPartition`, validated inside apply in Kafka's
//! order (STALE_BROKER_EPOCH for the whole request; FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION,
//! INELIGIBLE_REPLICA, INVALID_REQUEST per partition); a committed change is answered with the
//! registration it produced. A leader whose active controller is another node sends this
//! request ([`send`]); a leader on the active controller's node writes the command in process.

use std::time::Duration;

use rafka_metadata::command::{CommandRejected, ControllerCommand};
use rafka_metadata::{LeaderRecoveryState, MetadataError, MetadataQuorum};
use rafka_protocol::kafka_protocol::messages::alter_partition_request::{
    BrokerState, PartitionData, TopicData,
};
use rafka_protocol::kafka_protocol::messages::alter_partition_response;
use rafka_protocol::kafka_protocol::messages::{
    AlterPartitionRequest, AlterPartitionResponse, BrokerId,
};
use rafka_protocol::kafka_protocol::ResponseError;
use rafka_replication::IsrChange;
use uuid::Uuid;

use super::controller_client::ControllerClient;
use crate::errors;

/// The version brokers send: broker epochs per ISR member (KIP-903).
const VERSION: i16 = 3;

/// How long a leader waits for the controller's answer before it may propose again.
const TIMEOUT_MS: u64 = 30_000;

fn recovery_state_code(s: LeaderRecoveryState) -> i8 {
    match s {
        LeaderRecoveryState::Recovered => 0,
        LeaderRecoveryState::Recovering => 1,
    }
}

/// The command a leader on the active controller's node writes in process for `change` (what
/// [`handle`] makes of the request [`send`] would send). The leader says RECOVERED, as Kafka's
/// brokers do from their first ISR change on (KIP-704).
pub fn command(
    broker_id: i32,
    broker_epoch: u64,
    (topic_id, partition): (Uuid, i32),
    change: &IsrChange,
) -> ControllerCommand {
    ControllerCommand::AlterPartition {
        broker_id,
        broker_epoch,
        topic_id,
        partition,
        leader_epoch: change.leader_epoch,
        partition_epoch: change.partition_epoch,
        new_isr: change
            .new_isr
            .iter()
            .map(|(id, epoch)| (*id, epoch.and_then(|e| u64::try_from(e).ok())))
            .collect(),
        leader_recovery_state: LeaderRecoveryState::Recovered,
    }
}

/// The controller's side.
pub async fn handle(
    quorum: &MetadataQuorum,
    request: AlterPartitionRequest,
    version: i16,
) -> AlterPartitionResponse {
    let mut response = AlterPartitionResponse::default();
    if quorum.controller().is_none() {
        response.error_code = ResponseError::NotController.code();
        return response;
    }
    let Ok(broker_epoch) = u64::try_from(request.broker_epoch) else {
        response.error_code = ResponseError::StaleBrokerEpoch.code();
        return response;
    };
    for t in request.topics {
        let mut topic = alter_partition_response::TopicData::default();
        topic.topic_id = t.topic_id;
        for p in t.partitions {
            let mut pr = alter_partition_response::PartitionData::default();
            pr.partition_index = p.partition_index;
            let state = match p.leader_recovery_state {
                0 => LeaderRecoveryState::Recovered,
                1 => LeaderRecoveryState::Recovering,
                _ => {
                    pr.error_code = ResponseError::InvalidRequest.code();
                    topic.partitions.push(pr);
                    continue;
                }
            };
            let new_isr = if version >= 3 {
                p.new_isr_with_epochs
                    .iter()
                    .map(|m| (m.broker_id.0, u64::try_from(m.broker_epoch).ok()))
                    .collect()
            } else {
                p.new_isr.iter().map(|b| (b.0, None)).collect()
            };
            let cmd = ControllerCommand::AlterPartition {
                broker_id: request.broker_id.0,
                broker_epoch,
                topic_id: t.topic_id,
                partition: p.partition_index,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr,
                leader_recovery_state: state,
            };
            match quorum.write(cmd).await {
                Ok(_) => {
                    let image = quorum.image();
                    match image
                        .topic_by_id(&t.topic_id)
                        .and_then(|x| x.partition(p.partition_index))
                    {
                        Some(now) => {
                            pr.leader_id = BrokerId(now.leader);
                            pr.leader_epoch = now.leader_epoch;
                            pr.isr = now.isr.iter().map(|b| BrokerId(*b)).collect();
                            pr.leader_recovery_state =
                                recovery_state_code(now.leader_recovery_state);
                            pr.partition_epoch = now.partition_epoch;
                        }
                        None => pr.error_code = ResponseError::UnknownTopicId.code(),
                    }
                }
                Err(e) if error_code(&e) == ResponseError::StaleBrokerEpoch => {
                    // Kafka checks the broker epoch once, for the whole request.
                    response.error_code = ResponseError::StaleBrokerEpoch.code();
                    response.topics.clear();
                    return response;
                }
                Err(e) => pr.error_code = error_code(&e).code(),
            }
            topic.partitions.push(pr);
        }
        response.topics.push(topic);
    }
    response
}

/// The AlterPartition error for a command the quorum did not commit.
pub fn error_code(e: &MetadataError) -> ResponseError {
    match e {
        MetadataError::Rejected(CommandRejected::StaleBrokerEpoch { .. }) => {
            ResponseError::StaleBrokerEpoch
        }
        MetadataError::Rejected(CommandRejected::UnknownTopic { .. }) => {
            ResponseError::UnknownTopicId
        }
        e => errors::metadata(e).code,
    }
}

/// The leader's side: `change` for partition `index` of `topic_id`, as an AlterPartition to the
/// remote active controller. `Err` says why the change was not committed.
pub async fn send(
    client: &ControllerClient,
    quorum: &MetadataQuorum,
    broker_id: i32,
    broker_epoch: u64,
    (topic_id, index): (Uuid, i32),
    change: &IsrChange,
) -> Result<(), SendError> {
    let mut p = PartitionData::default();
    p.partition_index = index;
    p.leader_epoch = change.leader_epoch;
    p.partition_epoch = change.partition_epoch;
    // KIP-704: a leader takes over RECOVERING as RECOVERED at once, as Kafka's do, so its first
    // ISR change ends the state an unclean election set.
    p.leader_recovery_state = recovery_state_code(LeaderRecoveryState::Recovered);
    p.new_isr_with_epochs = change
        .new_isr
        .iter()
        .map(|(id, epoch)| {
            BrokerState::default()
                .with_broker_id(BrokerId(*id))
                .with_broker_epoch(epoch.unwrap_or(-1))
        })
        .collect();
    let mut t = TopicData::default();
    t.topic_id = topic_id;
    t.partitions = vec![p];
    let mut req = AlterPartitionRequest::default();
    req.broker_id = BrokerId(broker_id);
    req.broker_epoch = i64::try_from(broker_epoch).unwrap_or(i64::MAX);
    req.topics = vec![t];
    let resp = client
        .send(quorum, &req, VERSION, Duration::from_millis(TIMEOUT_MS))
        .await
        .map_err(|e| SendError::Unanswered(e.to_string()))?;
    let code = if resp.error_code != 0 {
        resp.error_code
    } else {
        resp.topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == index)
            .map_or(ResponseError::UnknownServerError.code(), |p| p.error_code)
    };
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(e) => Err(SendError::Answered(e)),
    }
}

/// Why an AlterPartition did not succeed.
#[derive(Debug)]
pub enum SendError {
    /// The controller answered with this error.
    Answered(ResponseError),
    /// No answer (connection lost, timeout, no controller): the change may have been applied.
    Unanswered(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Answered(e) => write!(f, "{e:?} ({})", e.code()),
            SendError::Unanswered(why) => write!(f, "no answer: {why}"),
        }
    }
}
