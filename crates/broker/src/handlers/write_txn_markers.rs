//! WriteTxnMarkers (key 27): a transaction coordinator asks this partition leader to write
//! COMMIT/ABORT markers. On one node the coordinator writes its own markers directly; this API
//! serves coordinators elsewhere (and tools), with the same per-partition checks: a stale
//! producer epoch gets INVALID_PRODUCER_EPOCH, a stale coordinator epoch
//! TRANSACTION_COORDINATOR_FENCED.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use rafka_protocol::kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::groups::text;
use crate::state::Shared;
use crate::txn_coordinator::{marker_replicated, write_marker_to, Marker};

pub async fn handle(
    shared: &Arc<Shared>,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut response = WriteTxnMarkersResponse::default();
    // Half the request timeout, so a coordinator (which sends with the same timeout) hears
    // why rather than timing out itself.
    let timeout = std::time::Duration::from_millis(shared.config.request_timeout_ms / 2);
    let mut waits = Vec::new();
    for m in request.markers {
        let mut mr = WritableTxnMarkerResult::default();
        mr.producer_id = m.producer_id;
        for t in m.topics {
            let topic = text(&t.name.0);
            let mut tr = WritableTxnMarkerTopicResult::default();
            tr.name = t.name.clone();
            for partition in t.partition_indexes {
                let marker = Marker {
                    producer_id: m.producer_id.0,
                    producer_epoch: m.producer_epoch,
                    coordinator_epoch: m.coordinator_epoch,
                    commit: m.transaction_result,
                };
                let result = write_marker_to(
                    &shared.image(),
                    &shared.partitions,
                    &shared.groups,
                    marker,
                    &topic,
                    partition,
                )
                .await;
                let mut pr = WritableTxnMarkerPartitionResult::default();
                pr.partition_index = partition;
                match result {
                    // Answered once the followers have it (Kafka writes markers with acks=all);
                    // the waits run after every marker is written, so they overlap.
                    Ok(wait) => waits.push((
                        response.markers.len(),
                        mr.topics.len(),
                        tr.partitions.len(),
                        wait,
                    )),
                    Err(e) => pr.error_code = e.code().code(),
                }
                tr.partitions.push(pr);
            }
            mr.topics.push(tr);
        }
        response.markers.push(mr);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    for (m, t, p, wait) in waits {
        if let Err(e) = marker_replicated(wait.wait(deadline).await) {
            response.markers[m].topics[t].partitions[p].error_code = e.code().code();
        }
    }
    response
}
