//! DescribeProducers (key 61, KIP-664): the producers with state in each partition (epoch, last
//! sequence, last timestamp, open transaction), as `kafka-transactions describe-producers`
//! shows them.

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use rafka_protocol::kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::text;
use crate::errors;
use crate::partitions::Partitions;

pub fn handle(
    image: &MetadataImage,
    partitions: &Partitions,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut response = DescribeProducersResponse::default();
    for t in request.topics {
        let mut tr = TopicResponse::default();
        tr.name = t.name.clone();
        let topic = image.topic_by_name(&text(&t.name.0));
        for index in t.partition_indexes {
            let mut pr = PartitionResponse::default();
            pr.partition_index = index;
            let part = match topic {
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(topic) => partitions.leader(topic, index).map_err(errors::unavailable),
            };
            match part {
                Ok(p) => {
                    pr.active_producers = p
                        .active_producers()
                        .into_iter()
                        .map(|a| {
                            let mut s = ProducerState::default();
                            s.producer_id = ProducerId(a.producer_id);
                            s.producer_epoch = i32::from(a.producer_epoch);
                            s.last_sequence = a.last_sequence;
                            s.last_timestamp = a.last_timestamp;
                            s.coordinator_epoch = a.coordinator_epoch;
                            s.current_txn_start_offset = a.current_txn_start_offset.unwrap_or(-1);
                            s
                        })
                        .collect();
                }
                Err(code) => pr.error_code = code.code(),
            }
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    response
}
