//! ConsumerGroupHeartbeat (key 68, KIP-848): a consumer-protocol member joins, heartbeats and
//! leaves; the coordinator computes assignments on the broker and answers each member with the
//! partitions it may own now. Served when `group.version` is finalized at 1 or above and
//! `group.coordinator.rebalance.protocols` contains `consumer`; otherwise UNSUPPORTED_VERSION,
//! as Kafka answers.

use std::sync::Arc;

use rafka_group::consumer_group::{HeartbeatRequest, TopicsView};
use rafka_group::consumer_records::TopicPartitions;
use rafka_group::coordinator::HeartbeatFailure;
use rafka_group::Reply;
use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::error::ResponseError;
use rafka_protocol::kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions as WireTopicPartitions,
};
use rafka_protocol::kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use uuid::Uuid;

use super::groups::{client_host, opt_text, sb, text};
use crate::connection::ConnectionContext;
use crate::errors;
use crate::state::Shared;

/// Kafka's feature for the consumer group protocol: level 1 is KIP-848.
pub const GROUP_VERSION_FEATURE: &str = "group.version";

/// The topics of one metadata image, as the consumer groups see them.
pub struct ImageTopics(pub Arc<MetadataImage>);

impl TopicsView for ImageTopics {
    fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.0.topic_by_name(name).map(|t| t.topic_id)
    }

    fn partition_count(&self, topic_id: &Uuid) -> Option<i32> {
        self.0
            .topic_by_id(topic_id)
            .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
    }

    fn topic_name(&self, topic_id: &Uuid) -> Option<String> {
        self.0.topic_by_id(topic_id).map(|t| t.name.clone())
    }

    fn topic_names(&self) -> Vec<String> {
        self.0.topics().map(|t| t.name.clone()).collect()
    }

    fn version(&self) -> i64 {
        i64::try_from(self.0.last_applied_index).unwrap_or(i64::MAX)
    }
}

/// Whether the consumer protocol is served: `group.version` finalized at 1 or above and
/// `consumer` in `group.coordinator.rebalance.protocols` (Kafka's
/// `isConsumerGroupProtocolEnabled`).
pub fn consumer_protocol_enabled(shared: &Shared, image: &MetadataImage) -> bool {
    image.feature_level(GROUP_VERSION_FEATURE) >= 1
        && shared.config.consumer_group.consumer_protocol_enabled
}

fn error_response(code: ResponseError, message: Option<String>) -> ConsumerGroupHeartbeatResponse {
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.error_code = code.code();
    response.error_message = message.map(sb);
    response.member_epoch = -1;
    response
}

pub async fn handle(
    shared: &Shared,
    ctx: &ConnectionContext,
    client_id: String,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    let image = shared.image();
    if !consumer_protocol_enabled(shared, &image) {
        return error_response(
            ResponseError::UnsupportedVersion,
            Some("The new consumer group protocol is not enabled on this cluster (group.version 0, or group.coordinator.rebalance.protocols without consumer)".into()),
        );
    }
    let req = HeartbeatRequest {
        version,
        group_id: text(&request.group_id.0),
        member_id: text(&request.member_id),
        member_epoch: request.member_epoch,
        instance_id: opt_text(&request.instance_id),
        rack_id: opt_text(&request.rack_id),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.iter().map(|n| text(&n.0)).collect()),
        subscribed_topic_regex: opt_text(&request.subscribed_topic_regex),
        server_assignor: opt_text(&request.server_assignor),
        topic_partitions: request.topic_partitions.map(|tps| {
            let mut owned = TopicPartitions::new();
            for tp in tps {
                owned.entry(tp.topic_id).or_default().extend(tp.partitions);
            }
            owned
        }),
        client_id,
        client_host: client_host(&ctx.peer),
    };
    let topics = ImageTopics(image);
    let result = shared
        .groups
        .change(move |c, now, id| c.consumer_group_heartbeat(now, id, &req, &topics))
        .await;
    match result {
        Ok(Reply::ConsumerHeartbeat(Ok(r))) => {
            let mut response = ConsumerGroupHeartbeatResponse::default();
            response.member_id = Some(sb(r.member_id));
            response.member_epoch = r.member_epoch;
            response.heartbeat_interval_ms = r.heartbeat_interval_ms;
            response.assignment = r.assignment.map(|a| {
                let mut assignment = Assignment::default();
                assignment.topic_partitions = a
                    .into_iter()
                    .map(|(topic_id, partitions)| {
                        let mut t = WireTopicPartitions::default();
                        t.topic_id = topic_id;
                        t.partitions = partitions.into_iter().collect();
                        t
                    })
                    .collect();
                assignment
            });
            response
        }
        Ok(Reply::ConsumerHeartbeat(Err(HeartbeatFailure::Group(e)))) => {
            let (code, message) = errors::consumer_heartbeat(&e);
            error_response(code, message)
        }
        Ok(Reply::ConsumerHeartbeat(Err(HeartbeatFailure::Coordinator(e)))) => {
            error_response(errors::group(e), None)
        }
        Ok(_) => error_response(ResponseError::UnknownServerError, None),
        Err(e) => error_response(errors::group(e), None),
    }
}
