//! OffsetCommit (key 8): stores consumer positions as records in `__consumer_offsets`; the
//! answer goes out once they are in the log.

use std::collections::{HashMap, HashSet};

use rafka_group::{CommitRequest, GroupError, Reply};
use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use rafka_protocol::kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::{opt_text, text};
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

pub async fn handle(
    image: &MetadataImage,
    groups: &GroupCoordinator,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    // Partitions of unknown topics are answered here, as Kafka's request handler does, before
    // the coordinator sees the rest.
    let mut unknown = HashSet::new();
    let mut offsets = Vec::new();
    for t in &request.topics {
        let name = text(&t.name.0);
        let topic = image.topic_by_name(&name);
        for p in &t.partitions {
            if topic.is_some_and(|t| t.partition(p.partition_index).is_some()) {
                offsets.push((
                    name.clone(),
                    p.partition_index,
                    p.committed_offset,
                    if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    opt_text(&p.committed_metadata),
                ));
            } else {
                unknown.insert((name.clone(), p.partition_index));
            }
        }
    }
    let req = CommitRequest {
        group_id: text(&request.group_id.0),
        generation_id: request.generation_id_or_member_epoch,
        member_id: text(&request.member_id),
        group_instance_id: opt_text(&request.group_instance_id),
        retention_time_ms: if (2..=4).contains(&version) {
            request.retention_time_ms
        } else {
            -1
        },
        api_version: version,
        offsets,
    };
    let requested: Vec<(String, i32)> = req.offsets.iter().map(|o| (o.0.clone(), o.1)).collect();
    let results: HashMap<(String, i32), i16> = if req.offsets.is_empty() {
        HashMap::new()
    } else {
        match groups
            .change(move |c, now, id| c.commit_offsets(now, id, req))
            .await
        {
            Ok(Reply::Commit(r)) => r
                .into_iter()
                .map(|(t, p, e)| ((t, p), errors::group_code(e)))
                .collect(),
            Ok(_) | Err(_) => requested
                .into_iter()
                .map(|k| (k, errors::group(GroupError::CoordinatorNotAvailable).code()))
                .collect(),
        }
    };
    let unknown_code = ResponseError::UnknownTopicOrPartition.code();
    let mut response = OffsetCommitResponse::default();
    // Answer in request order.
    for t in &request.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let key = (text(&t.name.0), p.partition_index);
            let code = if unknown.contains(&key) {
                unknown_code
            } else {
                results.get(&key).copied().unwrap_or(0)
            };
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = code;
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    response
}
