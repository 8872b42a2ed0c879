//! DescribeTransactions (key 65, KIP-664): state, producer id/epoch, timeout, start time and
//! partitions of each transactional id.

use rafka_protocol::kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState,
};
use rafka_protocol::kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};

use super::groups::{sb, text};
use crate::errors;
use crate::txn_coordinator::TxnCoordinatorHandle;

pub async fn handle(
    txns: &TxnCoordinatorHandle,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    for id in request.transactional_ids {
        let txn_id = text(&id.0);
        let result = txns
            .query(move |c, _| c.describe_transaction(&txn_id))
            .await
            .and_then(|r| r);
        let mut s = TransactionState::default();
        s.transactional_id = id;
        s.producer_id = ProducerId(-1);
        s.producer_epoch = -1;
        s.transaction_start_time_ms = -1;
        match result {
            Ok(d) => {
                s.transaction_state = sb(d.state.name());
                s.transaction_timeout_ms = d.transaction_timeout_ms;
                s.transaction_start_time_ms = d.transaction_start_time_ms;
                s.producer_id = ProducerId(d.producer_id);
                s.producer_epoch = d.producer_epoch;
                s.topics = d
                    .topics
                    .into_iter()
                    .map(|(t, ps)| {
                        let mut td = TopicData::default();
                        td.topic = TopicName(sb(t));
                        td.partitions = ps;
                        td
                    })
                    .collect();
            }
            Err(e) => s.error_code = errors::txn(e).code(),
        }
        response.transaction_states.push(s);
    }
    response
}
