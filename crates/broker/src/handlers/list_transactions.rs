//! ListTransactions (key 66, KIP-664): the transactional ids this node coordinates, filtered by
//! state, producer id and (v1, KIP-994) how long the transaction has run. v2's id pattern
//! (KIP-1152) is not offered.

use rafka_protocol::kafka_protocol::messages::list_transactions_response::TransactionState;
use rafka_protocol::kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use rafka_txn::ListTransactionsFilter;

use super::groups::{sb, text};
use crate::errors;
use crate::txn_coordinator::TxnCoordinatorHandle;

pub async fn handle(
    txns: &TxnCoordinatorHandle,
    request: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let states: Vec<String> = request.state_filters.iter().map(text).collect();
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration_ms = if version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let result = txns
        .query(move |c, now| {
            let filter = ListTransactionsFilter {
                states: &states,
                producer_ids: &producer_ids,
                duration_ms,
                ..ListTransactionsFilter::default()
            };
            c.list_transactions(now, &filter)
        })
        .await
        .and_then(|r| r);
    let mut response = ListTransactionsResponse::default();
    match result {
        Ok(listed) => {
            response.unknown_state_filters =
                listed.unknown_state_filters.into_iter().map(sb).collect();
            response.transaction_states = listed
                .transactions
                .into_iter()
                .map(|t| {
                    let mut s = TransactionState::default();
                    s.transactional_id = TransactionalId(sb(t.transactional_id));
                    s.producer_id = ProducerId(t.producer_id);
                    s.transaction_state = sb(t.state.name());
                    s
                })
                .collect();
        }
        Err(e) => response.error_code = errors::txn(e).code(),
    }
    response
}
