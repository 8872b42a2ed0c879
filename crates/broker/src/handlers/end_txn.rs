//! EndTxn (key 26): commit or abort. Answered once the coordinator has recorded
//! PrepareCommit/PrepareAbort; the markers follow (the transaction is complete when every
//! partition has one). v5+ is Transactions V2 (KIP-890 part 2): the coordinator bumps the epoch
//! and the response carries the producer id and epoch the client continues with.

use rafka_protocol::kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use rafka_txn::{Reply, TransactionVersion, TxnApi, TxnError};

use super::groups::text;
use crate::errors;
use crate::txn_coordinator::TxnCoordinatorHandle;

pub async fn handle(
    txns: &TxnCoordinatorHandle,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let mut response = EndTxnResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    let transactional_id = text(&request.transactional_id.0);
    let (pid, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    // Kafka's `KafkaApis.handleEndTxnRequest`: v5+ is a Transactions V2 client.
    let client_version = if version >= 5 {
        TransactionVersion::V2
    } else {
        TransactionVersion::V0
    };
    let result = match txns
        .change(move |c, now, id| {
            c.end_txn_with_version(
                now,
                id,
                &transactional_id,
                pid,
                epoch,
                commit,
                client_version,
            )
        })
        .await
    {
        Ok(Reply::EndTxn(r)) => r,
        Ok(_) => Err(TxnError::UnknownServerError),
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => {
            response.producer_id = ProducerId(p.producer_id);
            response.producer_epoch = p.producer_epoch;
        }
        Err(e) => {
            response.error_code =
                errors::txn(e.for_request_version(TxnApi::EndTxn, version)).code();
        }
    }
    response
}
