//! AddPartitionsToTxn (key 24): a transactional producer announces the partitions it is about
//! to write, before its first batch to each. v4+ batches several transactions (brokers use it,
//! with `verify_only`, to check a partition is in a transaction before accepting its batch); v5
//! without `verify_only` adds partitions to a Transactions V2 transaction.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use rafka_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use rafka_protocol::kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};
use rafka_protocol::kafka_protocol::ResponseError;
use rafka_txn::{TxnApi, TxnError};

use super::groups::{sb, text};
use crate::errors;
use crate::state::Shared;

pub async fn handle(
    shared: &Arc<Shared>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    if version <= 3 {
        response.results_by_topic_v3_and_below = one(
            shared,
            text(&request.v3_and_below_transactional_id.0),
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            false,
            &request.v3_and_below_topics,
            version,
        )
        .await;
        return response;
    }
    for t in &request.transactions {
        let mut r = AddPartitionsToTxnResult::default();
        r.transactional_id = TransactionalId(t.transactional_id.0.clone());
        r.topic_results = one(
            shared,
            text(&t.transactional_id.0),
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &t.topics,
            version,
        )
        .await;
        response.results_by_transaction.push(r);
    }
    response
}

/// One transaction's partitions: unknown partitions fail the request for all of them (the
/// others get OPERATION_NOT_ATTEMPTED), as Kafka's request handler answers.
async fn one(
    shared: &Arc<Shared>,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let image = shared.image();
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (text(&t.name.0), *p)))
        .collect();
    let unknown: Vec<bool> = wanted
        .iter()
        .map(|(t, p)| {
            image
                .topic_by_name(t)
                .is_none_or(|ti| ti.partition(*p).is_none())
        })
        .collect();
    let codes: Vec<i16> = if unknown.iter().any(|u| *u) {
        unknown
            .iter()
            .map(|u| {
                if *u {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect()
    } else if verify_only {
        let parts = wanted.clone();
        let result = shared
            .txns
            .query(move |c, _| {
                c.verify_partitions_in_txn(&transactional_id, producer_id, producer_epoch, &parts)
            })
            .await
            .and_then(|r| r);
        match result {
            Ok(per) => per.into_iter().map(|(_, _, e)| code(e, version)).collect(),
            Err(e) => vec![code(Some(e), version); wanted.len()],
        }
    } else {
        let parts = wanted.clone();
        // Kafka's `TransactionVersion.transactionVersionForAddPartitionsToTxn`: v5 is what
        // leaders send for a Transactions V2 client's implicit add.
        let client_version = if version >= 5 {
            rafka_txn::TransactionVersion::V2
        } else {
            rafka_txn::TransactionVersion::V0
        };
        let result = crate::txn_membership::add_locally(
            shared,
            transactional_id,
            producer_id,
            producer_epoch,
            parts,
            client_version,
        )
        .await;
        vec![code(result.err(), version); wanted.len()]
    };
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), c) in wanted.into_iter().zip(codes) {
        let mut pr = AddPartitionsToTxnPartitionResult::default();
        pr.partition_index = partition;
        pr.partition_error_code = c;
        match out.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(pr),
            None => {
                let mut t = AddPartitionsToTxnTopicResult::default();
                t.name = TopicName(sb(topic));
                t.results_by_partition.push(pr);
                out.push(t);
            }
        }
    }
    out
}

fn code(e: Option<TxnError>, version: i16) -> i16 {
    e.map_or(0, |e| {
        errors::txn(e.for_request_version(TxnApi::AddPartitionsToTxn, version)).code()
    })
}
