//! AlterPartitionReassignments (key 45, v0-1): moves partitions to new replicas, or cancels a
//! move in progress (a null replica list). Each partition is one `ReassignPartition` controller
//! command, decided on the image it is applied to (Kafka's `changePartitionReassignment` /
//! `cancelPartitionReassignment`): the answer only says the move was accepted; the data moves as
//! the new replicas fetch, and ListPartitionReassignments shows it until the controller completes
//! it (see `rafka_metadata::partition_change`).

use std::sync::Arc;
use std::time::Duration;

use rafka_metadata::command::ControllerCommand;
use rafka_protocol::kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use rafka_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use tokio::time::Instant;

use crate::errors::{self, ApiError};
use crate::state::Shared;

/// Longest time a request may take, whatever it asks for.
const TIMEOUT_MS_MAX: i32 = 300_000;

pub async fn handle(
    shared: &Arc<Shared>,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default();
    // KIP-860: before v1 every reassignment may change the replication factor.
    let allow_replication_factor_change = version < 1 || request.allow_replication_factor_change;
    response.allow_replication_factor_change = allow_replication_factor_change;
    let deadline =
        Instant::now() + Duration::from_millis(request.timeout_ms.clamp(1, TIMEOUT_MS_MAX) as u64);
    let image = shared.image();
    for topic in request.topics {
        let mut topic_response = ReassignableTopicResponse::default();
        topic_response.name = topic.name.clone();
        for p in topic.partitions {
            let result = match image.topic_by_name(topic.name.as_str()) {
                None => Err(ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("Unable to find a topic named {}.", topic.name.as_str()),
                )),
                Some(t) => {
                    let cmd = ControllerCommand::ReassignPartition {
                        topic_id: t.topic_id,
                        partition: p.partition_index,
                        target: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                        allow_replication_factor_change,
                    };
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        Err(ApiError::new(
                            ResponseError::RequestTimedOut,
                            "The request's timeout passed before this partition's turn.".into(),
                        ))
                    } else {
                        shared
                            .quorum
                            .write_within(cmd, left)
                            .await
                            .map(|_| ())
                            .map_err(|e| errors::metadata(&e))
                    }
                }
            };
            let mut pr = ReassignablePartitionResponse::default();
            pr.partition_index = p.partition_index;
            if let Err(e) = result {
                tracing::info!(topic = %topic.name.as_str(), partition = p.partition_index,
                    error = %e.message, "Unable to alter partition reassignment");
                pr.error_code = e.code();
                pr.error_message = Some(StrBytes::from_string(e.message));
            }
            topic_response.partitions.push(pr);
        }
        response.responses.push(topic_response);
    }
    response
}
