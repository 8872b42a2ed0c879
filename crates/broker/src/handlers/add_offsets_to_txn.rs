//! AddOffsetsToTxn (key 25): adds a group's `__consumer_offsets` partition to the transaction,
//! so the offsets the producer then commits with TxnOffsetCommit are settled by its markers.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use rafka_txn::{Reply, TxnApi, TxnError};

use super::groups::text;
use crate::errors;
use crate::state::Shared;

pub async fn handle(
    shared: &Arc<Shared>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    let group_id = text(&request.group_id.0);
    // The group's partition of __consumer_offsets, which must exist for the marker.
    if let Err(e) = super::find_coordinator::ensure_offsets_topic(shared).await {
        response.error_code = e.code();
        return response;
    }
    let offsets_partition = shared
        .image()
        .topic_by_name(crate::group_coordinator::OFFSETS_TOPIC)
        .map(|t| rafka_group::partition_for(&group_id, t.partitions.len() as i32))
        .unwrap_or(0);
    let transactional_id = text(&request.transactional_id.0);
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let result = match shared
        .txns
        .change(move |c, now, id| {
            c.add_offsets_to_txn(now, id, &transactional_id, pid, epoch, offsets_partition)
        })
        .await
    {
        Ok(Reply::AddOffsets(r)) => r,
        Ok(_) => Err(TxnError::UnknownServerError),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        response.error_code =
            errors::txn(e.for_request_version(TxnApi::AddOffsetsToTxn, version)).code();
    }
    response
}
