//! EndTxn (key 26): commit or abort. Answered once the coordinator has recorded
//! PrepareCommit/PrepareAbort; the markers follow (the transaction is complete when every
//! partition has one).

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use rafka_txn::{Reply, TxnApi, TxnError};

use super::groups::text;
use crate::errors;
use crate::node::Shared;

pub async fn handle(shared: &Arc<Shared>, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let mut response = EndTxnResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    let transactional_id = text(&request.transactional_id.0);
    let (pid, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let result = match shared
        .txns
        .change(move |c, now, id| c.end_txn(now, id, &transactional_id, pid, epoch, commit))
        .await
    {
        Ok(Reply::EndTxn(r)) => r,
        Ok(_) => Err(TxnError::UnknownServerError),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        response.error_code = errors::txn(e.for_request_version(TxnApi::EndTxn, version)).code();
    }
    response
}
