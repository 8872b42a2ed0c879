//! OffsetDelete (key 47, KIP-496): removes committed offsets of a group for partitions it does
//! not consume; offsets of topics an active group subscribes to are refused
//! (GROUP_SUBSCRIBED_TO_TOPIC).

use rafka_group::{GroupError, Reply};
use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use rafka_protocol::kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::text;
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

pub async fn handle(
    image: &MetadataImage,
    groups: &GroupCoordinator,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = text(&request.group_id.0);
    let mut known = Vec::new();
    for t in &request.topics {
        let name = text(&t.name.0);
        let topic = image.topic_by_name(&name);
        for p in &t.partitions {
            if topic.is_some_and(|t| t.partition(p.partition_index).is_some()) {
                known.push((name.clone(), p.partition_index));
            }
        }
    }
    let result = match groups
        .change(move |c, _now, rid| c.delete_offsets(rid, &group_id, known))
        .await
    {
        Ok(Reply::OffsetDelete(r)) => r,
        Ok(_) => Err(GroupError::CoordinatorNotAvailable),
        Err(e) => Err(e),
    };
    let mut response = OffsetDeleteResponse::default();
    let results = match result {
        Ok(r) => r,
        Err(e) => {
            response.error_code = errors::group(e).code();
            return response;
        }
    };
    for t in &request.topics {
        let mut tr = OffsetDeleteResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = OffsetDeleteResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = match results
                .iter()
                .find(|(n, i, _)| n == t.name.0.as_str() && *i == p.partition_index)
            {
                Some((_, _, e)) => errors::group_code(*e),
                None => ResponseError::UnknownTopicOrPartition.code(),
            };
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    response
}
