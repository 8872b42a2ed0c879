//! TxnOffsetCommit (key 28): offsets committed inside a transaction. The group coordinator
//! writes them as a transactional batch of the producer and keeps them pending until the
//! transaction's marker reaches the group's `__consumer_offsets` partition.

use std::collections::HashMap;
use std::sync::Arc;

use rafka_group::{GroupError, Reply, TxnCommitRequest};
use rafka_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use rafka_protocol::kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::{opt_text, text};
use crate::errors;
use crate::node::Shared;

pub async fn handle(
    shared: &Arc<Shared>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let image = shared.image();
    let mut offsets = Vec::new();
    for t in &request.topics {
        let name = text(&t.name.0);
        let known = image.topic_by_name(&name);
        for p in &t.partitions {
            if known.is_some_and(|k| k.partition(p.partition_index).is_some()) {
                offsets.push((
                    name.clone(),
                    p.partition_index,
                    p.committed_offset,
                    if version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    opt_text(&p.committed_metadata),
                ));
            }
        }
    }
    let req = TxnCommitRequest {
        group_id: text(&request.group_id.0),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        generation_id: if version >= 3 {
            request.generation_id
        } else {
            -1
        },
        member_id: if version >= 3 {
            text(&request.member_id)
        } else {
            String::new()
        },
        group_instance_id: if version >= 3 {
            opt_text(&request.group_instance_id)
        } else {
            None
        },
        offsets,
    };
    let requested: Vec<(String, i32)> = req.offsets.iter().map(|o| (o.0.clone(), o.1)).collect();
    let results: HashMap<(String, i32), i16> = if requested.is_empty() {
        HashMap::new()
    } else {
        match shared
            .groups
            .change(move |c, now, id| c.txn_commit_offsets(now, id, req))
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
    let mut response = TxnOffsetCommitResponse::default();
    for t in &request.topics {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = results
                .get(&(text(&t.name.0), p.partition_index))
                .copied()
                .unwrap_or(ResponseError::UnknownTopicOrPartition.code());
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    response
}
