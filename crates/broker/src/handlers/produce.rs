//! Produce (key 0), the write hot path.
//!
//! Records are never decoded into objects: each partition's bytes are validated batch by batch
//! (magic, CRC-32C, framing, size, and a walk over the records, decompressed first for a
//! compressed batch), then offsets and the leader epoch are stamped into the batch header in
//! place and the bytes go to the log as they came. To stamp without copying, the request is
//! decoded as slices of the frame, the slices are turned into byte ranges, the decoded request is
//! dropped, and the then-unique frame buffer is reclaimed as mutable memory. Only a topic whose
//! `compression.type` names a codec other than the batch's makes the broker build a new batch
//! (`rafka_records::recompress_batch`), which is appended instead of the frame's bytes.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rafka_protocol::kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, ProduceRequest, ProduceResponse, TopicName,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use rafka_records::{RecordError, TimestampBounds, TimestampType, ValidationLimits};
use uuid::Uuid;

use crate::errors;
use crate::metrics::TopicHandle;
use crate::now_ms;
use crate::partitions::ReplicationWait;
use crate::state::Shared;
use crate::txn_membership;

pub enum ProduceOutcome {
    Respond(ProduceResponse),
    NoResponse,
    Close(String),
}

/// One partition's part of the request once the request itself is gone.
struct Item {
    topic_index: usize,
    partition: i32,
    /// Where the records sit in the frame (or in `copied` when the frame could not be reclaimed).
    range: Option<Range<usize>>,
}

struct TopicRef {
    name: String,
    topic_id: Uuid,
}

/// Where the record bytes live for stamping: the reclaimed frame, or a copy of it.
enum Records {
    Frame(BytesMut),
    None,
}

pub async fn handle(
    shared: &Arc<Shared>,
    listener: &str,
    request: ProduceRequest,
    version: i16,
    frame: Option<Bytes>,
) -> ProduceOutcome {
    let acks = request.acks;
    let request_timeout_ms = request.timeout_ms;
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|t| t.0.as_str().to_string());
    let base = frame.as_ref().map(|f| f.as_ptr() as usize);
    let frame_len = frame.as_ref().map(Bytes::len).unwrap_or(0);

    let mut topics = Vec::with_capacity(request.topic_data.len());
    let mut items = Vec::new();
    for (ti, t) in request.topic_data.into_iter().enumerate() {
        topics.push(TopicRef {
            name: t.name.0.to_string(),
            topic_id: t.topic_id,
        });
        for p in t.partition_data {
            let range = p.records.as_ref().and_then(|r| {
                let start = (r.as_ptr() as usize).checked_sub(base?)?;
                (start + r.len() <= frame_len).then(|| start..start + r.len())
            });
            items.push(Item {
                topic_index: ti,
                partition: p.index,
                range,
            });
        }
    }
    // Every slice of the frame is gone now, so the frame is unique and can be written in place.
    let mut records = match frame.map(Bytes::try_into_mut) {
        Some(Ok(buf)) => Records::Frame(buf),
        // Not unique (a decoder change kept a slice alive): copying keeps us correct.
        Some(Err(shared_frame)) => Records::Frame(BytesMut::from(&shared_frame[..])),
        None => Records::None,
    };

    // KIP-890 part 1: a transactional batch is accepted only for a partition its transaction
    // has added (AddPartitionsToTxn); the coordinator is asked before anything is written.
    // KIP-890 part 2: from v12 on (a Transactions V2 client) the leader adds the partitions
    // itself instead of only verifying them (Kafka's `addPartition` supported operation).
    let verify_errors: Vec<Option<ResponseError>> = match (&transactional_id, &records) {
        (Some(txn), Records::Frame(buf)) => {
            verify_transaction(shared, txn, &topics, &items, buf, version >= 12).await
        }
        _ => vec![None; items.len()],
    };

    let image = shared.image();
    let now = now_ms();
    let mut responses: Vec<TopicProduceResponse> = topics
        .iter()
        .map(|t| {
            let mut r = TopicProduceResponse::default();
            r.name = TopicName(StrBytes::from_string(t.name.clone()));
            r.topic_id = t.topic_id;
            r
        })
        .collect();
    let mut any_error = false;
    let mut node_endpoints: Vec<NodeEndpoint> = Vec::new();
    // acks=all appends whose answers wait for the followers: (topic index, response index).
    let mut awaiting: Vec<(usize, usize, ReplicationWait)> = Vec::new();
    // Kafka's BrokerTopicStats: counted per partition of the request, under topics that exist
    // (a client naming arbitrary topics must not grow the series without bound).
    let topic_stats: Vec<TopicHandle> = topics
        .iter()
        .map(|t| {
            let known = if version >= 13 {
                image.topic_by_id(&t.topic_id)
            } else {
                image.topic_by_name(&t.name)
            };
            known.map_or_else(TopicHandle::none, |k| shared.metrics.topic(&k.name))
        })
        .collect();
    for (item, verify_error) in items.into_iter().zip(verify_errors) {
        let topic = &topics[item.topic_index];
        let stats = shared.metrics.stats(&topic_stats[item.topic_index]);
        stats.produce_request();
        let batch_bytes = item.range.as_ref().map_or(0, |r| r.len() as u64);
        let mut pr = PartitionProduceResponse::default();
        pr.index = item.partition;
        pr.base_offset = -1;
        pr.log_append_time_ms = -1;
        pr.log_start_offset = -1;
        let mut record_error = None;
        let result = produce_partition(
            shared,
            &image,
            version,
            topic,
            &item,
            &mut records,
            acks,
            verify_error,
            now,
            &mut record_error,
        );
        match result {
            Ok(done) => {
                stats.appended(done.records, batch_bytes);
                pr.base_offset = done.base_offset;
                pr.log_append_time_ms = done.log_append_time_ms;
                pr.log_start_offset = done.log_start_offset;
                if let Some(wait) = done.replication {
                    let index = responses[item.topic_index].partition_responses.len();
                    awaiting.push((item.topic_index, index, wait));
                }
            }
            Err((code, message)) => {
                stats.produce_failed();
                any_error = true;
                pr.error_code = code.code();
                // KIP-951 (v10+): name the current leader so the client need not ask Metadata.
                if code == ResponseError::NotLeaderOrFollower && version >= 10 {
                    let topic_image = if version >= 13 {
                        image.topic_by_id(&topic.topic_id)
                    } else {
                        image.topic_by_name(&topic.name)
                    };
                    if let Some((id, epoch, broker, endpoint)) = topic_image.and_then(|t| {
                        super::metadata::current_leader(&image, t, item.partition, listener)
                    }) {
                        pr.current_leader.leader_id = BrokerId(id);
                        pr.current_leader.leader_epoch = epoch;
                        if !node_endpoints.iter().any(|n| n.node_id.0 == id) {
                            let mut n = NodeEndpoint::default();
                            n.node_id = BrokerId(id);
                            n.host = StrBytes::from_string(endpoint.host.clone());
                            n.port = i32::from(endpoint.port);
                            n.rack = broker.rack.clone().map(StrBytes::from_string);
                            node_endpoints.push(n);
                        }
                    }
                }
                if matches!(
                    code,
                    ResponseError::InvalidRecord
                        | ResponseError::CorruptMessage
                        | ResponseError::InvalidTimestamp
                ) {
                    let (index, record_message) =
                        record_error.unwrap_or_else(|| (0, message.clone()));
                    let mut be = BatchIndexAndErrorMessage::default();
                    be.batch_index = index;
                    be.batch_index_error_message = Some(StrBytes::from_string(record_message));
                    pr.record_errors = vec![be];
                }
                pr.error_message = Some(StrBytes::from_string(message));
            }
        }
        responses[item.topic_index].partition_responses.push(pr);
    }
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(request_timeout_ms.max(0)).unwrap_or(0));
    for (topic_index, index, wait) in awaiting {
        if let Err(e) = wait.wait(deadline).await {
            let pr = &mut responses[topic_index].partition_responses[index];
            pr.error_code = errors::replication(e).code();
            pr.error_message = Some(StrBytes::from_string(format!(
                "{:?}: {e}",
                wait.partition()
            )));
        }
    }
    if acks == 0 {
        // With acks=0 the client reads no answer; closing is how Kafka tells it something failed.
        return if any_error {
            ProduceOutcome::Close(
                "acks=0 produce failed; closing so the client notices".to_string(),
            )
        } else {
            ProduceOutcome::NoResponse
        };
    }
    let mut response = ProduceResponse::default();
    response.responses = responses;
    response.node_endpoints = node_endpoints;
    ProduceOutcome::Respond(response)
}

/// Asks the transaction's coordinator (on this node or another broker) whether each partition
/// is in the producer's transaction or, with `add` (Produce v12+), adds the partitions to it.
/// A partition where the producer's transaction is already open at this epoch is not asked
/// about again: the coordinator vouched for it with the first batch (Kafka's leaders skip
/// verification for `hasOngoingTransaction` likewise).
async fn verify_transaction(
    shared: &Arc<Shared>,
    transactional_id: &str,
    topics: &[TopicRef],
    items: &[Item],
    buf: &BytesMut,
    add: bool,
) -> Vec<Option<ResponseError>> {
    // The producer id and epoch are in every batch header; the first readable one speaks for
    // the request (a mismatch fails that batch's own checks in the log).
    let producer = items.iter().find_map(|i| {
        let bytes = buf.get(i.range.clone()?)?;
        let h = rafka_records::BatchView::parse(bytes).ok()?;
        Some((h.header().producer_id, h.header().producer_epoch))
    });
    let Some((pid, epoch)) = producer else {
        return vec![None; items.len()];
    };
    // v13 names topics by id only. An unknown partition is not asked about (nor added, so no
    // marker is ever owed to it): it fails later with UNKNOWN_TOPIC_OR_PARTITION.
    let image = shared.image();
    let mut parts: Vec<Option<(String, i32)>> = Vec::with_capacity(items.len());
    for i in items {
        let t = &topics[i.topic_index];
        let topic = if t.name.is_empty() {
            image.topic_by_id(&t.topic_id)
        } else {
            image.topic_by_name(&t.name)
        };
        let Some(topic) = topic.filter(|ti| ti.partition(i.partition).is_some()) else {
            parts.push(None);
            continue;
        };
        let open = shared
            .partitions
            .get(&topic.topic_id, i.partition)
            .is_some_and(|p| p.has_ongoing_transaction(pid, epoch));
        parts.push((!open).then(|| (topic.name.clone(), i.partition)));
    }
    let mut asked: Vec<(String, i32)> = parts.iter().flatten().cloned().collect();
    asked.sort();
    asked.dedup();
    if asked.is_empty() {
        return vec![None; items.len()];
    }
    let ask = if add {
        txn_membership::Ask::Add(rafka_txn::TransactionVersion::V2)
    } else {
        txn_membership::Ask::Verify
    };
    let answers = txn_membership::ask(
        shared,
        transactional_id.to_string(),
        pid,
        epoch,
        asked.clone(),
        ask,
    )
    .await;
    parts
        .iter()
        .map(|part| {
            let part = part.as_ref()?;
            let at = asked.binary_search(part).ok()?;
            answers[at].map(verification_error)
        })
        .collect()
}

/// What a produce answers when the coordinator refused: as Kafka's `ReplicaManager` does,
/// coordinator-side conditions the producer cannot act on (a previous transaction's markers
/// still being written, a coordinator moving or unreachable) become the retriable
/// NOT_ENOUGH_REPLICAS, and a fenced producer gets INVALID_PRODUCER_EPOCH (which every client
/// treats as fatal) rather than PRODUCER_FENCED.
fn verification_error(e: rafka_txn::TxnError) -> ResponseError {
    match e {
        rafka_txn::TxnError::ConcurrentTransactions
        | rafka_txn::TxnError::CoordinatorLoadInProgress
        | rafka_txn::TxnError::CoordinatorNotAvailable
        | rafka_txn::TxnError::NotCoordinator => ResponseError::NotEnoughReplicas,
        rafka_txn::TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        other => errors::txn(other),
    }
}

struct Appended {
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
    /// Records in the appended batches (a retried duplicate counts again, as in Kafka).
    records: u64,
    /// acks=all: what the answer waits for.
    replication: Option<ReplicationWait>,
}

#[allow(clippy::too_many_arguments)]
fn produce_partition(
    shared: &Arc<Shared>,
    image: &rafka_metadata::MetadataImage,
    version: i16,
    topic: &TopicRef,
    item: &Item,
    records: &mut Records,
    acks: i16,
    verify_error: Option<ResponseError>,
    now: i64,
    // The record a per-record refusal is about (its index in the batch, Kafka's message).
    record_error: &mut Option<(i32, String)>,
) -> Result<Appended, (ResponseError, String)> {
    if !matches!(acks, -1..=1) {
        return Err((
            ResponseError::InvalidRequiredAcks,
            format!("Invalid required acks {acks}"),
        ));
    }
    if let Some(code) = verify_error {
        return Err((
            code,
            format!(
                "{}-{} is not part of the producer's ongoing transaction",
                topic.name, item.partition
            ),
        ));
    }
    let topic_image = if version >= 13 {
        image.topic_by_id(&topic.topic_id).ok_or((
            ResponseError::UnknownTopicId,
            format!("unknown topic id {}", topic.topic_id),
        ))?
    } else {
        image.topic_by_name(&topic.name).ok_or((
            ResponseError::UnknownTopicOrPartition,
            format!(
                "This server does not host this topic-partition: {}-{}",
                topic.name, item.partition
            ),
        ))?
    };
    if crate::group_coordinator::is_internal_topic(&topic_image.name) {
        // Only the coordinators write there (Kafka: ReplicaManager refuses internal topics).
        return Err((
            ResponseError::InvalidTopicException,
            format!("Cannot append to internal topic {}", topic_image.name),
        ));
    }
    let partition = shared
        .partitions
        .leader(topic_image, item.partition)
        .map_err(|u| {
            let code = errors::unavailable(u);
            (
                code,
                format!("{}-{}: {}", topic_image.name, item.partition, code),
            )
        })?;
    let settings = partition.settings();
    // Kafka's Partition.appendRecordsToLeader: acks=all needs min.insync.replicas in sync
    // (capped at the replica count), checked before the records are looked at.
    if acks == -1 {
        let (isr, replicas) = topic_image
            .partition(item.partition)
            .map_or((0, 0), |p| (p.isr.len(), p.replicas.len()));
        if !settings.enough_in_sync(isr, replicas) {
            return Err((
                ResponseError::NotEnoughReplicas,
                format!(
                    "The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {} for partition {}-{}",
                    settings.min_insync_replicas, topic_image.name, item.partition
                ),
            ));
        }
    }
    let (Some(range), Records::Frame(buf)) = (item.range.clone(), records) else {
        return Err((
            ResponseError::InvalidRecord,
            "produce request without records".to_string(),
        ));
    };
    let Some(bytes) = buf.get_mut(range) else {
        return Err((
            ResponseError::CorruptMessage,
            "records outside the request".to_string(),
        ));
    };
    // Since v3 a partition's data must be exactly one batch (Kafka's
    // ProduceRequest.validateRecords); the default limits require that. Compressed batches are
    // decompressed (at most `max_uncompressed_bytes`) so their records are checked too.
    let max_message_bytes = usize::try_from(settings.max_message_bytes).unwrap_or(0);
    let max_uncompressed_bytes = rafka_records::max_uncompressed_bytes_for(max_message_bytes);
    let limits = ValidationLimits {
        max_batch_bytes: max_message_bytes,
        max_uncompressed_bytes,
        // KIP-937 bounds, checked record by record in the validation walk (CreateTime only).
        create_time_bounds: (!settings.log_append_time).then_some(TimestampBounds {
            now_ms: now,
            before_max_ms: settings.timestamp_before_max_ms,
            after_max_ms: settings.timestamp_after_max_ms,
        }),
        ..ValidationLimits::default()
    };
    // Kafka checks the codec against the request version (ProduceRequest.validateRecords)
    // before it looks inside the batch.
    if version < 7
        && rafka_records::BatchView::parse(bytes)
            .is_ok_and(|v| v.header().compression() == Some(rafka_records::Compression::Zstd))
    {
        return Err((
            ResponseError::UnsupportedCompressionType,
            "zstd needs Produce v7 or later".to_string(),
        ));
    }
    let summary = rafka_records::validate_produce(bytes, &limits).map_err(|e| {
        if let RecordError::InvalidTimestamp {
            record_index,
            message,
        } = &e
        {
            *record_error = Some((i32::try_from(*record_index).unwrap_or(0), message.clone()));
        }
        (errors::records(&e), e.to_string())
    })?;
    if settings.cleanup_compact && summary.keyless_records > 0 {
        return Err(keyless_refused(topic_image, item, &summary, record_error));
    }
    let log_append_time_ms = if settings.log_append_time { now } else { -1 };
    // Broker-side recompression (LogValidator.buildRecordsAndAssignOffsets): a batch whose codec
    // is not the topic's `compression.type` is rewritten; `producer` keeps every batch as it came.
    let mut rewritten;
    let bytes: &mut [u8] = match settings.compression.rewrite_target(summary.compression) {
        Some((codec, level)) => {
            rewritten = rafka_records::recompress_batch(
                bytes,
                codec,
                level,
                settings.log_append_time.then_some(now),
                max_uncompressed_bytes,
            )
            .map_err(|e| (errors::records(&e), e.to_string()))?;
            // The rewrite can grow a batch (to uncompressed, or a weaker codec): Kafka checks
            // the size again.
            if rewritten.len() > max_message_bytes {
                return Err((
                    ResponseError::MessageTooLarge,
                    format!(
                        "Message batch size is {} bytes in append to partition {}-{} which exceeds the maximum configured size of {max_message_bytes}.",
                        rewritten.len(),
                        topic_image.name,
                        item.partition
                    ),
                ));
            }
            &mut rewritten
        }
        None => {
            if settings.log_append_time {
                rafka_records::set_log_append_time(bytes, now)
                    .map_err(|e| (errors::records(&e), e.to_string()))?;
            } else if summary.timestamp_type != TimestampType::CreateTime
                || summary.records_max_timestamp != summary.max_timestamp
            {
                // Kafka keeps such a batch in place but writes the records' real maximum and
                // the topic's timestamp type into its header (the time index relies on it).
                rafka_records::set_max_timestamp(
                    bytes,
                    TimestampType::CreateTime,
                    summary.records_max_timestamp,
                )
                .map_err(|e| (errors::records(&e), e.to_string()))?;
            }
            bytes
        }
    };
    let info = partition
        .append(bytes, now)
        .map_err(|e| (errors::storage(&e), e.to_string()))?;
    // A retried idempotent batch is answered with the offsets it got the first time.
    let log_append_time_ms = match (info.duplicate, settings.log_append_time) {
        (false, _) => log_append_time_ms,
        (true, true) => info.log_append_time_ms.unwrap_or(-1),
        (true, false) => -1,
    };
    let replication = (acks == -1).then(|| {
        ReplicationWait::new(
            partition.clone(),
            info.last_offset + 1,
            partition.leader_epoch(),
            topic_image
                .partition(item.partition)
                .map_or(1, |p| p.replicas.len()),
        )
    });
    Ok(Appended {
        base_offset: info.base_offset,
        log_append_time_ms,
        log_start_offset: partition.log_start_offset(),
        records: u64::try_from(info.last_offset - info.base_offset + 1).unwrap_or(0),
        replication,
    })
}

/// Kafka's answer to records without a key on a compacted topic (`LogValidator.validateKey`):
/// INVALID_RECORD for the whole batch, naming the offending record.
fn keyless_refused(
    topic: &rafka_metadata::TopicImage,
    item: &Item,
    summary: &rafka_records::ProduceSummary,
    record_error: &mut Option<(i32, String)>,
) -> (ResponseError, String) {
    let index = summary
        .first_keyless_record
        .and_then(|i| i32::try_from(i).ok())
        .unwrap_or(0);
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {}-{}.",
        topic.name, item.partition
    );
    let summary_message = format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [RecordError(batchIndex={index}, message='{message}')]",
        summary.keyless_records
    );
    *record_error = Some((index, message));
    (ResponseError::InvalidRecord, summary_message)
}
