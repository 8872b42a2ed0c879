//! InitProducerId (key 22): a producer id and epoch. Without a transactional id every call gets
//! a fresh id at epoch 0, as Kafka's coordinator answers (this is also how KIP-360 producers
//! recover from UNKNOWN_PRODUCER_ID or a sequence error). With one, the transaction coordinator
//! bumps the epoch (fencing older instances) or hands out the first id for it.

use rafka_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use rafka_txn::{Reply, TxnApi, TxnError};

use crate::errors;

use crate::producer_ids::ProducerIds;
use crate::txn_coordinator::TxnCoordinatorHandle;

pub async fn handle(
    txns: &TxnCoordinatorHandle,
    producer_ids: &ProducerIds,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if let Some(txn_id) = &request.transactional_id {
        let txn_id = txn_id.0.as_str().to_string();
        let (timeout, pid, epoch) = (
            request.transaction_timeout_ms,
            request.producer_id.0,
            request.producer_epoch,
        );
        let result = match txns
            .change(move |c, now, id| {
                c.init_producer_id(now, id, Some(&txn_id), timeout, pid, epoch)
            })
            .await
        {
            Ok(Reply::InitProducerId(r)) => r,
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
                    errors::txn(e.for_request_version(TxnApi::InitProducerId, version)).code()
            }
        }
        return response;
    }
    match producer_ids.next_id().await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => response.error_code = e.code(),
    }
    response
}
