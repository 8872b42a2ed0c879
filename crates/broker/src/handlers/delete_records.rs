//! DeleteRecords (key 21): moves a partition's log start offset forward on request (the
//! `kafka-delete-records` tool, Kafka Streams repartition topics). Whole segments below the new
//! start are deleted; an offset of -1 means the high watermark; an offset above the high
//! watermark gets OFFSET_OUT_OF_RANGE, a topic whose `cleanup.policy` lacks `delete`
//! POLICY_VIOLATION. The answer carries the new low watermark.

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use rafka_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::text;
use crate::errors;
use crate::now_ms;
use crate::partitions::Partitions;

pub async fn handle(
    image: &MetadataImage,
    partitions: &Partitions,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
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
                Some(topic) => partitions
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
                    let done =
                        tokio::task::spawn_blocking(move || part.delete_records(offset, now_ms()))
                            .await;
                    match done {
                        Ok(Ok(low)) => pr.low_watermark = low,
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
    response
}
