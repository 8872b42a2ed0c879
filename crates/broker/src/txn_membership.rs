//! Asking a transaction's coordinator, wherever it runs, about the transaction's partitions:
//! whether they are in it (KIP-890 part 1 verification, before a leader appends a transactional
//! batch) or to add them (the implicit add of Transactions V2, by a Produce v12+ or a
//! TxnOffsetCommit v5). The coordinator is the leader of the transactional id's
//! `__transaction_state` partition: this node's own coordinator task when it leads it, otherwise
//! that broker, asked with AddPartitionsToTxn v4+ as Kafka's leaders do (`verify_only` for a
//! verification).
//!
//! The AddPartitionsToTxn handler answers with the local coordinator only, never forwarding, so
//! two brokers that disagree about who leads (one image behind) cannot bounce a request between
//! them: the one asked answers NOT_COORDINATOR and the asker fails this try.

use std::sync::Arc;
use std::time::Duration;

use rafka_protocol::kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use rafka_protocol::kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_txn::{Reply, TransactionVersion, TxnError, TRANSACTION_STATE_TOPIC};

use crate::errors;
use crate::state::Shared;

/// What to ask the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Whether each partition is in the transaction.
    Verify,
    /// Add the partitions (a client of this transaction version).
    Add(TransactionVersion),
}

/// Where the transactional id's coordinator runs, as this node's image says.
enum Coordinator {
    Local,
    Remote(i32),
    /// Its partition has no leader.
    None,
}

fn coordinator_of(shared: &Shared, transactional_id: &str) -> Coordinator {
    let image = shared.image();
    // Without the topic the local coordinator answers (it knows no such id: NOT_COORDINATOR).
    let Some(topic) = image.topic_by_name(TRANSACTION_STATE_TOPIC) else {
        return Coordinator::Local;
    };
    let p = rafka_txn::partition_for(transactional_id, topic.partitions.len() as i32);
    match topic.partition(p).map(|p| p.leader) {
        Some(leader) if leader == shared.node_id => Coordinator::Local,
        Some(leader) if leader >= 0 => Coordinator::Remote(leader),
        _ => Coordinator::None,
    }
}

/// The coordinator's answer for each of `parts`, in order (`None`: in the transaction, or
/// added). A coordinator that cannot be reached answers COORDINATOR_NOT_AVAILABLE for all.
pub async fn ask(
    shared: &Arc<Shared>,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    parts: Vec<(String, i32)>,
    ask: Ask,
) -> Vec<Option<TxnError>> {
    let n = parts.len();
    let all = |e: Option<TxnError>| vec![e; n];
    match coordinator_of(shared, &transactional_id) {
        Coordinator::None => all(Some(TxnError::CoordinatorNotAvailable)),
        Coordinator::Local => match ask {
            Ask::Verify => {
                let result = shared
                    .txns
                    .query(move |c, _| {
                        c.verify_partitions_in_txn(
                            &transactional_id,
                            producer_id,
                            producer_epoch,
                            &parts,
                        )
                    })
                    .await
                    .and_then(|r| r);
                match result {
                    Ok(per) => per.into_iter().map(|(_, _, e)| e).collect(),
                    Err(e) => all(Some(e)),
                }
            }
            Ask::Add(version) => all(add_locally(
                shared,
                transactional_id,
                producer_id,
                producer_epoch,
                parts,
                version,
            )
            .await
            .err()),
        },
        Coordinator::Remote(node_id) => {
            let request = request(&transactional_id, producer_id, producer_epoch, &parts, ask);
            let timeout = Duration::from_millis(shared.config.request_timeout_ms);
            let sent = shared
                .brokers
                .send(&shared.image(), node_id, &request, timeout)
                .await;
            match sent {
                Ok(response) => answers(&response, &parts),
                Err(e) => {
                    // The producer is told to retry; every produce while the coordinator is
                    // away would log this, so it stays at debug.
                    tracing::debug!(txn = %transactional_id, error = %e,
                        "Could not reach the transaction coordinator");
                    all(Some(TxnError::CoordinatorNotAvailable))
                }
            }
        }
    }
}

/// AddPartitionsToTxn v4+ (the batched form brokers send) for one transaction. `Add` of a
/// Transactions V2 client relies on the negotiated version being v5, which is how the
/// coordinator tells a V2 client's add (Kafka's `transactionVersionForAddPartitionsToTxn`).
fn request(
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    parts: &[(String, i32)],
    ask: Ask,
) -> AddPartitionsToTxnRequest {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (topic, partition) in parts {
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(*partition),
            None => {
                let mut t = AddPartitionsToTxnTopic::default();
                t.name = TopicName(StrBytes::from_string(topic.clone()));
                t.partitions = vec![*partition];
                topics.push(t);
            }
        }
    }
    let mut txn = AddPartitionsToTxnTransaction::default();
    txn.transactional_id = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
    txn.producer_id = ProducerId(producer_id);
    txn.producer_epoch = producer_epoch;
    txn.verify_only = ask == Ask::Verify;
    txn.topics = topics;
    let mut request = AddPartitionsToTxnRequest::default();
    request.transactions = vec![txn];
    request
}

/// Each partition's answer from the coordinator's response; a partition it did not answer for
/// gets a server error.
fn answers(
    response: &rafka_protocol::kafka_protocol::messages::AddPartitionsToTxnResponse,
    parts: &[(String, i32)],
) -> Vec<Option<TxnError>> {
    if response.error_code != 0 {
        return vec![errors::txn_from_code(response.error_code); parts.len()];
    }
    parts
        .iter()
        .map(|(topic, partition)| {
            response
                .results_by_transaction
                .iter()
                .flat_map(|t| &t.topic_results)
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| &t.results_by_partition)
                .find(|p| p.partition_index == *partition)
                .map_or(Some(TxnError::UnknownServerError), |p| {
                    errors::txn_from_code(p.partition_error_code)
                })
        })
        .collect()
}

/// Adds `parts` to the producer's transaction through this node's coordinator (a committed
/// `__transaction_state` record): the AddPartitionsToTxn handler's work, and [`ask`]'s when the
/// coordinator is here.
pub async fn add_locally(
    shared: &Arc<Shared>,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    parts: Vec<(String, i32)>,
    client_version: rafka_txn::TransactionVersion,
) -> Result<(), TxnError> {
    match shared
        .txns
        .change(move |c, now, id| {
            c.add_partitions_to_txn_with_version(
                now,
                id,
                &transactional_id,
                producer_id,
                producer_epoch,
                &parts,
                client_version,
            )
        })
        .await
    {
        Ok(Reply::AddPartitions(r)) => r,
        Ok(_) => Err(TxnError::UnknownServerError),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
    };
    use rafka_protocol::kafka_protocol::messages::AddPartitionsToTxnResponse;
    use rafka_protocol::kafka_protocol::ResponseError;

    #[test]
    fn the_request_groups_partitions_by_topic() {
        let parts = vec![
            ("a".to_string(), 0),
            ("b".to_string(), 1),
            ("a".to_string(), 2),
        ];
        let r = request("t", 7, 3, &parts, Ask::Verify);
        let txn = &r.transactions[0];
        assert!(txn.verify_only);
        assert_eq!((txn.producer_id.0, txn.producer_epoch), (7, 3));
        let shape: Vec<(&str, &[i32])> = txn
            .topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partitions.as_slice()))
            .collect();
        assert_eq!(shape, vec![("a", &[0, 2][..]), ("b", &[1][..])]);
        assert!(
            !request("t", 7, 3, &parts, Ask::Add(TransactionVersion::V2)).transactions[0]
                .verify_only
        );
    }

    #[test]
    fn answers_follow_the_partitions_asked() {
        let mut p0 = AddPartitionsToTxnPartitionResult::default();
        p0.partition_index = 0;
        let mut p1 = AddPartitionsToTxnPartitionResult::default();
        p1.partition_index = 1;
        p1.partition_error_code = ResponseError::TransactionAbortable.code();
        let mut t = AddPartitionsToTxnTopicResult::default();
        t.name = TopicName(StrBytes::from_static_str("a"));
        t.results_by_partition = vec![p1, p0];
        let mut tr = AddPartitionsToTxnResult::default();
        tr.topic_results = vec![t];
        let mut response = AddPartitionsToTxnResponse::default();
        response.results_by_transaction = vec![tr];
        let parts = vec![
            ("a".to_string(), 0),
            ("a".to_string(), 1),
            ("b".to_string(), 0),
        ];
        assert_eq!(
            answers(&response, &parts),
            vec![
                None,
                Some(TxnError::TransactionAbortable),
                Some(TxnError::UnknownServerError)
            ]
        );
        response.error_code = ResponseError::NotCoordinator.code();
        assert_eq!(
            answers(&response, &parts),
            vec![Some(TxnError::NotCoordinator); 3]
        );
    }
}
