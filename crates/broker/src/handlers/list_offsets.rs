//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), earliest local (-4),
//! earliest pending upload (-5), and by timestamp through the time index.

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use rafka_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use crate::errors;
use crate::partitions::{Partition, Partitions};

const LATEST: i64 = -1;
const READ_COMMITTED: i8 = 1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub fn handle(
    image: &MetadataImage,
    partitions: &Partitions,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.to_string();
        let topic = image.topic_by_name(&name);
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            pr.leader_epoch = -1;
            let target = match topic {
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(topic) => partitions
                    .leader(topic, p.partition_index)
                    .map_err(errors::unavailable),
            };
            match target.and_then(|part| {
                lookup(
                    &part,
                    p.timestamp,
                    p.current_leader_epoch,
                    request.isolation_level,
                )
            }) {
                Ok((offset, timestamp, epoch)) => {
                    pr.offset = offset;
                    pr.timestamp = timestamp;
                    // The field exists from v4; kafka-protocol refuses to encode it set below that.
                    if version >= 4 {
                        pr.leader_epoch = epoch;
                    }
                }
                Err(code) => pr.error_code = code.code(),
            }
            tr.partitions.push(pr);
        }
        topics.push(tr);
    }
    let mut response = ListOffsetsResponse::default();
    response.topics = topics;
    response
}

/// Returns (offset, timestamp, leader epoch) or the error code for the partition.
fn lookup(
    p: &Partition,
    timestamp: i64,
    current_leader_epoch: i32,
    isolation: i8,
) -> Result<(i64, i64, i32), ResponseError> {
    let epoch = p
        .check_leader_epoch(current_leader_epoch)
        .map_err(errors::epoch)?;
    // KIP-207: a new leader whose high watermark has not reached the start of its epoch yet
    // would answer offsets lower than its predecessor did; the client retries instead.
    if p.high_watermark_behind_epoch_start() {
        return Err(ResponseError::OffsetNotAvailable);
    }
    match timestamp {
        // read_committed consumers see the log up to the last stable offset.
        LATEST if isolation == READ_COMMITTED => Ok((p.last_stable_offset(), -1, epoch)),
        LATEST => Ok((p.high_watermark(), -1, epoch)),
        EARLIEST | EARLIEST_LOCAL => Ok((p.log_start_offset(), -1, epoch)),
        // No tiered storage: nothing is pending upload.
        EARLIEST_PENDING_UPLOAD => Ok((-1, -1, -1)),
        MAX_TIMESTAMP => Ok(match p.max_timestamp().map_err(|e| errors::storage(&e))? {
            Some(t) => (t.offset, t.timestamp, t.leader_epoch.unwrap_or(epoch)),
            None => (-1, -1, -1),
        }),
        ts if ts >= 0 => match p
            .offset_for_timestamp(ts)
            .map_err(|e| errors::storage(&e))?
        {
            // Only offsets below the high watermark are visible to clients.
            Some(t) if t.offset < p.high_watermark() => {
                Ok((t.offset, t.timestamp, t.leader_epoch.unwrap_or(epoch)))
            }
            _ => Ok((-1, -1, -1)),
        },
        _ => Err(ResponseError::InvalidRequest),
    }
}
