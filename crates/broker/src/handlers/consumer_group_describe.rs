//! ConsumerGroupDescribe (key 69, KIP-848): a consumer group's epochs, assignor and members,
//! each with what it owns now and what the target assignment gives it. An id that is not a
//! consumer group (unknown, or a classic group) answers GROUP_ID_NOT_FOUND; the admin clients
//! then fall back to DescribeGroups. Gated like ConsumerGroupHeartbeat.

use rafka_group::consumer_group::DescribedConsumerGroup;
use rafka_group::consumer_records::TopicPartitions;
use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::error::ResponseError;
use rafka_protocol::kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions as WireTopicPartitions,
};
use rafka_protocol::kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use super::consumer_group_heartbeat::consumer_protocol_enabled;
use super::describe_groups::GROUP_OPERATIONS_ALL;
use super::groups::{sb, text};
use super::metadata::OPERATIONS_OMITTED;
use crate::errors;
use crate::state::Shared;

/// KIP-1099's member types (v1).
const MEMBER_TYPE_CLASSIC: i8 = 0;
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub async fn handle(
    shared: &Shared,
    request: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let image = shared.image();
    let enabled = consumer_protocol_enabled(shared, &image);
    let mut response = ConsumerGroupDescribeResponse::default();
    for id in request.group_ids {
        let mut d = DescribedGroup::default();
        d.authorized_operations = if request.include_authorized_operations {
            GROUP_OPERATIONS_ALL
        } else {
            OPERATIONS_OMITTED
        };
        if !enabled {
            d.group_id = id;
            d.error_code = ResponseError::UnsupportedVersion.code();
            response.groups.push(d);
            continue;
        }
        let gid = text(&id.0);
        let result = shared
            .groups
            .query(move |c, _| c.describe_consumer_group(&gid))
            .await
            .and_then(|r| r);
        d.group_id = id;
        match result {
            Ok(Ok(g)) => fill(&mut d, g, &image, version),
            Ok(Err(message)) => {
                d.error_code = ResponseError::GroupIdNotFound.code();
                d.error_message = Some(sb(message));
            }
            Err(e) => d.error_code = errors::group(e).code(),
        }
        response.groups.push(d);
    }
    response
}

fn fill(d: &mut DescribedGroup, g: DescribedConsumerGroup, image: &MetadataImage, version: i16) {
    d.group_state = sb(g.state.name());
    d.group_epoch = g.epoch;
    d.assignment_epoch = g.assignment_epoch;
    d.assignor_name = sb(g.assignor);
    d.members = g
        .members
        .into_iter()
        .map(|m| {
            let mut r = Member::default();
            r.member_id = sb(m.member_id);
            r.member_epoch = m.member_epoch;
            r.instance_id = m.metadata.instance_id.map(sb);
            r.rack_id = m.metadata.rack_id.map(sb);
            r.client_id = sb(m.metadata.client_id);
            r.client_host = sb(m.metadata.client_host);
            r.subscribed_topic_names = m
                .metadata
                .subscribed_topic_names
                .into_iter()
                .map(|n| TopicName(sb(n)))
                .collect();
            r.subscribed_topic_regex = m.metadata.subscribed_topic_regex.map(sb);
            r.assignment = assignment(&m.assigned, image);
            r.target_assignment = assignment(&m.target, image);
            if version >= 1 {
                r.member_type = if m.metadata.classic_member_metadata.is_some() {
                    MEMBER_TYPE_CLASSIC
                } else {
                    MEMBER_TYPE_CONSUMER
                };
            }
            r
        })
        .collect();
}

/// Partitions by topic id, with names; a topic deleted since is left out, as Kafka does.
fn assignment(partitions: &TopicPartitions, image: &MetadataImage) -> Assignment {
    let mut a = Assignment::default();
    a.topic_partitions = partitions
        .iter()
        .filter_map(|(topic_id, ps)| {
            let topic = image.topic_by_id(topic_id)?;
            let mut t = WireTopicPartitions::default();
            t.topic_id = *topic_id;
            t.topic_name = TopicName(sb(topic.name.clone()));
            t.partitions = ps.iter().copied().collect();
            Some(t)
        })
        .collect();
    a
}
