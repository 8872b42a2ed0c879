//! OffsetForLeaderEpoch (key 23, KIP-101/KIP-320): for each partition, where the asked leader
//! epoch ends in the leader's log. A consumer that sees a new leader epoch asks it with the
//! epoch of the last record it read; if the answer ends below its position, its log diverged
//! (an unclean election) and it truncates there rather than resetting. Only the leader answers,
//! for consumers and followers alike (Kafka's `fetchOnlyFromLeader`), after the same
//! current-leader-epoch check as Fetch and ListOffsets.

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use rafka_protocol::kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::text;
use crate::errors;
use crate::partitions::Partitions;

pub fn handle(
    image: &MetadataImage,
    partitions: &Partitions,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    for t in request.topics {
        let topic = image.topic_by_name(&text(&t.topic.0));
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut pr = EpochEndOffset::default();
            pr.partition = p.partition;
            pr.leader_epoch = rafka_replication::UNDEFINED_EPOCH;
            pr.end_offset = rafka_replication::UNDEFINED_OFFSET;
            let found = match topic {
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(topic) => partitions
                    .leader(topic, p.partition)
                    .map_err(errors::unavailable),
            }
            .and_then(|part| {
                part.check_leader_epoch(p.current_leader_epoch)
                    .map_err(errors::epoch)?;
                Ok(part.end_offset_for_epoch(p.leader_epoch))
            });
            match found {
                Ok(end) => {
                    pr.leader_epoch = end.epoch;
                    pr.end_offset = end.end_offset;
                }
                Err(code) => pr.error_code = code.code(),
            }
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    response
}
