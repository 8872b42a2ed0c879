//! TxnOffsetCommit (key 28): offsets committed inside a transaction. The group coordinator
//! writes them as a transactional batch of the producer and keeps them pending until the
//! transaction's marker reaches the group's `__consumer_offsets` partition. v5+ is a
//! Transactions V2 client (KIP-890 part 2): the group's `__consumer_offsets` partition is added
//! to the transaction here, in place of the AddOffsetsToTxn a V1 client sends first.

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
use crate::state::Shared;

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
    if version >= 5 && !requested.is_empty() {
        if let Err(code) = add_offsets_partition(shared, &request, &req.group_id).await {
            return all_failed(&request, code);
        }
    }
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

/// The implicit AddOffsetsToTxn of a V2 transaction: the group's `__consumer_offsets`
/// partition joins the producer's transaction (at client transaction version 2), so the
/// EndTxn markers settle these offsets. A fenced producer gets INVALID_PRODUCER_EPOCH, as
/// Kafka's verification path answers.
async fn add_offsets_partition(
    shared: &Arc<Shared>,
    request: &TxnOffsetCommitRequest,
    group_id: &str,
) -> Result<(), i16> {
    if let Err(e) = super::find_coordinator::ensure_offsets_topic(shared).await {
        return Err(e.code());
    }
    let offsets_partition = shared
        .image()
        .topic_by_name(crate::group_coordinator::OFFSETS_TOPIC)
        .map(|t| rafka_group::partition_for(group_id, t.partitions.len() as i32))
        .unwrap_or(0);
    let transactional_id = text(&request.transactional_id.0);
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let parts = vec![(
        crate::group_coordinator::OFFSETS_TOPIC.to_string(),
        offsets_partition,
    )];
    let answers = crate::txn_membership::ask(
        shared,
        transactional_id,
        pid,
        epoch,
        parts,
        crate::txn_membership::Ask::Add(rafka_txn::TransactionVersion::V2),
    )
    .await;
    match answers.into_iter().next().flatten() {
        None => Ok(()),
        Some(rafka_txn::TxnError::ProducerFenced) => {
            Err(ResponseError::InvalidProducerEpoch.code())
        }
        Some(other) => Err(errors::txn(other).code()),
    }
}

/// Every partition of the request answered with `code`.
fn all_failed(request: &TxnOffsetCommitRequest, code: i16) -> TxnOffsetCommitResponse {
    let mut response = TxnOffsetCommitResponse::default();
    for t in &request.topics {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = code;
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    response
}
