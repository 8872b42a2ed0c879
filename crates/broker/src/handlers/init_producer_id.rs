//! InitProducerId (key 22): a producer id and epoch for an idempotent producer. Every call
//! without a transactional id gets a fresh id at epoch 0, as Kafka's coordinator answers (this is
//! also how KIP-360 producers recover from UNKNOWN_PRODUCER_ID or a sequence error). Transactional
//! ids need the transaction coordinator, which is not here yet: they get NOT_COORDINATOR, and
//! FindCoordinator never names a transaction coordinator, so clients do not get this far.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use rafka_protocol::kafka_protocol::ResponseError;

use crate::node::Shared;

pub async fn handle(
    shared: &Arc<Shared>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if request.transactional_id.is_some() {
        response.error_code = ResponseError::NotCoordinator.code();
        return response;
    }
    match shared.producer_ids.next_id(shared).await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => response.error_code = e.code(),
    }
    response
}
