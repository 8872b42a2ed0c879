//! ListPartitionReassignments (key 46, v0): the partitions whose reassignment is in progress,
//! with their replicas and the replicas being added and removed, read from this broker's image
//! (Kafka's controller answers from its own state; a broker's image lags it by at most one
//! metadata fetch). A null topic list means every partition; unknown topics and partitions that
//! are not moving are left out, as Kafka does.

use rafka_metadata::{MetadataImage, PartitionImage, TopicImage};
use rafka_protocol::kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;

pub fn handle(
    image: &MetadataImage,
    request: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut response = ListPartitionReassignmentsResponse::default();
    match &request.topics {
        None => {
            for topic in image.topics() {
                let ongoing = ongoing(topic, topic.partitions.keys().copied());
                push(&mut response, topic, ongoing);
            }
        }
        Some(topics) => {
            for wanted in topics {
                if let Some(topic) = image.topic_by_name(wanted.name.as_str()) {
                    let ongoing = ongoing(topic, wanted.partition_indexes.iter().copied());
                    push(&mut response, topic, ongoing);
                }
            }
        }
    }
    response
}

fn ongoing(
    topic: &TopicImage,
    indexes: impl Iterator<Item = i32>,
) -> Vec<OngoingPartitionReassignment> {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    indexes
        .filter_map(|i| {
            let p: &PartitionImage = topic.partition(i)?;
            p.is_reassigning().then(|| {
                let mut o = OngoingPartitionReassignment::default();
                o.partition_index = i;
                o.replicas = ids(&p.replicas);
                o.adding_replicas = ids(&p.adding_replicas);
                o.removing_replicas = ids(&p.removing_replicas);
                o
            })
        })
        .collect()
}

fn push(
    response: &mut ListPartitionReassignmentsResponse,
    topic: &TopicImage,
    partitions: Vec<OngoingPartitionReassignment>,
) {
    if partitions.is_empty() {
        return;
    }
    let mut t = OngoingTopicReassignment::default();
    t.name = TopicName(StrBytes::from_string(topic.name.clone()));
    t.partitions = partitions;
    response.topics.push(t);
}
