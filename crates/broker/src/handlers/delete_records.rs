//! DeleteRecords (key 21): moves a partition's log start offset forward on request (the
//! `kafka-delete-records` tool, Kafka Streams repartition topics). Whole segments below the new
//! start are deleted; an offset of -1 means the high watermark; an offset above the high
//! watermark gets OFFSET_OUT_OF_RANGE, a topic whose `cleanup.policy` lacks `delete`
//! POLICY_VIOLATION.
//!
//! As in Kafka (`DelayedDeleteRecords`), the answer waits until the partition's low watermark,
//! the smallest log start over the leader and its followers on live brokers, has reached the
//! new start: followers move their log starts after the leader's through their fetches. The
//! answer carries that low watermark; at the request's `timeout_ms` it is REQUEST_TIMED_OUT, and
//! NOT_LEADER_OR_FOLLOWER if leadership moves meanwhile. A single replica answers at once.

use std::sync::Arc;
use std::time::Duration;

use rafka_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use rafka_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use rafka_protocol::kafka_protocol::ResponseError;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::groups::text;
use crate::errors;
use crate::now_ms;
use crate::partitions::Partition;
use crate::state::Shared;

/// Longest wait a request may ask for.
const TIMEOUT_MS_MAX: i32 = 300_000;

/// A partition whose leader moved its log start, waiting for the followers.
struct Waiting {
    topic: usize,
    slot: usize,
    partition: Arc<Partition>,
    required: i64,
}

pub async fn handle(shared: &Arc<Shared>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let image = shared.image();
    let deadline =
        Instant::now() + Duration::from_millis(request.timeout_ms.clamp(0, TIMEOUT_MS_MAX) as u64);
    let mut response = DeleteRecordsResponse::default();
    let mut waiting: Vec<Waiting> = Vec::new();
    for t in request.topics {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        let topic = image.topic_by_name(&text(&t.name.0));
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            let target = match topic {
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(topic) => shared
                    .partitions
                    .leader(topic, p.partition_index)
                    .map_err(errors::unavailable),
            };
            match target {
                Ok(part) if !part.settings().cleanup_delete => {
                    // Kafka: records of a compact-only topic are removed by the cleaner alone.
                    pr.error_code = ResponseError::PolicyViolation.code();
                }
                Ok(part) => {
                    let offset = p.offset;
                    // Deleting segments touches files: off the connection's thread.
                    let leader = part.clone();
                    let done = tokio::task::spawn_blocking(move || {
                        leader.delete_records(offset, now_ms())
                    })
                    .await;
                    match done {
                        Ok(Ok(start)) => waiting.push(Waiting {
                            topic: response.topics.len(),
                            slot: tr.partitions.len(),
                            partition: part,
                            required: start,
                        }),
                        Ok(Err(e)) => pr.error_code = errors::storage(&e).code(),
                        Err(_) => pr.error_code = ResponseError::UnknownServerError.code(),
                    }
                }
                Err(code) => pr.error_code = code.code(),
            }
            tr.partitions.push(pr);
        }
        response.topics.push(tr);
    }
    // The delayed part: wake on followers' fetches (they report their log starts), re-check.
    loop {
        let waiter = Arc::new(Notify::new());
        let image = shared.image();
        let alive = |id: i32| image.broker(id).is_some_and(|b| !b.fenced);
        waiting.retain(|w| {
            // Registered before the check, so a fetch in between still wakes this task.
            w.partition.register_waiter(waiter.clone());
            let pr = &mut response.topics[w.topic].partitions[w.slot];
            match w.partition.low_watermark(alive) {
                None => {
                    pr.error_code = ResponseError::NotLeaderOrFollower.code();
                    false
                }
                Some(low) if low >= w.required => {
                    pr.low_watermark = low;
                    false
                }
                Some(low) => {
                    pr.low_watermark = low;
                    true
                }
            }
        });
        if waiting.is_empty() {
            break;
        }
        if tokio::time::timeout_at(deadline, waiter.notified())
            .await
            .is_err()
        {
            for w in &waiting {
                let pr = &mut response.topics[w.topic].partitions[w.slot];
                pr.error_code = ResponseError::RequestTimedOut.code();
            }
            break;
        }
    }
    response
}
