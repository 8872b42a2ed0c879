//! DescribeTopicPartitions (key 75, v0; KIP-966): Metadata's partition view with the eligible
//! leader replicas and the last known ELR, paginated. Topics come sorted by name (all of them
//! when the request names none); at most `response_partition_limit` partitions are answered
//! (capped at Kafka's `max.request.partition.size.limit` default, 2000), and the cursor says
//! where the next request resumes, as Kafka's `DescribeTopicPartitionsRequestHandler` does.

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use uuid::Uuid;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one answer holds.
const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

pub fn handle(
    image: &MetadataImage,
    listener: &str,
    request: &DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let mut response = DescribeTopicPartitionsResponse::default();
    let mut names: Vec<String> = if request.topics.is_empty() {
        image.topics().map(|t| t.name.clone()).collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut budget = request
        .response_partition_limit
        .clamp(1, PARTITIONS_PER_RESPONSE_MAX);
    for name in names {
        if cursor_topic.as_ref().is_some_and(|c| name < *c) {
            continue;
        }
        let first = if cursor_topic.as_ref() == Some(&name) {
            cursor_partition
        } else {
            0
        };
        let Some(topic) = image.topic_by_name(&name) else {
            let mut t = DescribeTopicPartitionsResponseTopic::default();
            t.error_code = ResponseError::UnknownTopicOrPartition.code();
            t.name = Some(TopicName(StrBytes::from_string(name)));
            t.topic_id = Uuid::nil();
            response.topics.push(t);
            continue;
        };
        if budget == 0 {
            // Full: the next request starts with this topic.
            response.next_cursor = Some(cursor(&name, first));
            break;
        }
        // Metadata's view of the topic (leader, replicas, ISR, offline replicas, errors).
        let described = super::metadata::describe_topic(image, topic, true, listener, 12);
        let mut t = DescribeTopicPartitionsResponseTopic::default();
        t.name = Some(TopicName(StrBytes::from_string(name.clone())));
        t.topic_id = topic.topic_id;
        t.is_internal = described.is_internal;
        t.topic_authorized_operations = described.topic_authorized_operations;
        for m in described.partitions {
            if m.partition_index < first {
                continue;
            }
            if budget == 0 {
                response.next_cursor = Some(cursor(&name, m.partition_index));
                break;
            }
            budget -= 1;
            let image_partition = topic.partition(m.partition_index);
            let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
            let mut p = DescribeTopicPartitionsResponsePartition::default();
            p.error_code = m.error_code;
            p.partition_index = m.partition_index;
            p.leader_id = m.leader_id;
            p.leader_epoch = m.leader_epoch;
            p.replica_nodes = m.replica_nodes;
            p.isr_nodes = m.isr_nodes;
            p.offline_replicas = m.offline_replicas;
            p.eligible_leader_replicas = image_partition.map(|ip| ids(&ip.elr));
            p.last_known_elr = image_partition.map(|ip| ids(&ip.last_known_elr));
            t.partitions.push(p);
        }
        response.topics.push(t);
        if response.next_cursor.is_some() {
            break;
        }
    }
    response
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    let mut c = Cursor::default();
    c.topic_name = TopicName(StrBytes::from_string(topic.to_string()));
    c.partition_index = partition;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_metadata::{MetadataRecord, PartitionRecord};
    use rafka_protocol::kafka_protocol::messages::describe_topic_partitions_request::{
        Cursor as RequestCursor, TopicRequest,
    };

    fn image() -> MetadataImage {
        let mut image = MetadataImage::empty("c");
        for (name, id) in [("b", 2u128), ("a", 1u128)] {
            let topic_id = Uuid::from_u128(id);
            image.apply_record(&MetadataRecord::Topic {
                name: name.into(),
                topic_id,
            });
            for partition in 0..3 {
                image.apply_record(&MetadataRecord::Partition(PartitionRecord {
                    topic_id,
                    partition,
                    replicas: vec![1, 2],
                    isr: vec![1],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    elr: vec![2],
                    last_known_elr: Vec::new(),
                }));
            }
        }
        image
    }

    fn listed(r: &DescribeTopicPartitionsResponse) -> Vec<(String, i32)> {
        r.topics
            .iter()
            .flat_map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                t.partitions
                    .iter()
                    .map(move |p| (name.clone(), p.partition_index))
            })
            .collect()
    }

    #[test]
    fn pages_follow_the_cursor_and_carry_the_elr() {
        let image = image();
        let mut req = DescribeTopicPartitionsRequest::default();
        req.response_partition_limit = 4;
        let first = handle(&image, "PLAINTEXT", &req);
        let at = |t: &str, p: i32| (t.to_string(), p);
        assert_eq!(
            listed(&first),
            vec![at("a", 0), at("a", 1), at("a", 2), at("b", 0)]
        );
        let p = &first.topics[0].partitions[0];
        assert_eq!(p.eligible_leader_replicas, Some(vec![BrokerId(2)]));
        assert_eq!(p.last_known_elr, Some(vec![]));
        let next = first.next_cursor.expect("more to come");
        assert_eq!((next.topic_name.0.as_str(), next.partition_index), ("b", 1));

        req.cursor = Some(
            RequestCursor::default()
                .with_topic_name(next.topic_name)
                .with_partition_index(next.partition_index),
        );
        let second = handle(&image, "PLAINTEXT", &req);
        assert_eq!(listed(&second), vec![at("b", 1), at("b", 2)]);
        assert!(second.next_cursor.is_none());

        // Named topics only; an unknown one is an error entry.
        let mut req = DescribeTopicPartitionsRequest::default();
        req.response_partition_limit = 100;
        req.topics = vec![
            TopicRequest::default().with_name(TopicName(StrBytes::from_static_str("zz"))),
            TopicRequest::default().with_name(TopicName(StrBytes::from_static_str("b"))),
        ];
        let r = handle(&image, "PLAINTEXT", &req);
        assert_eq!(listed(&r), vec![at("b", 0), at("b", 1), at("b", 2)]);
        assert_eq!(
            r.topics[1].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
