//! Produce-side validation of the bytes a producer sent for one partition.
//!
//! Mirrors, in Kafka's order, the checks of `ProduceRequest.validateRecords` (at least one and,
//! for produce v3+, exactly one batch of magic 2), `UnifiedLog.analyzeAndValidateRecords` (CRC,
//! then `message.max.bytes` per batch) and `LogValidator.validateBatch` for client appends
//! (`lastOffsetDelta + 1 > 0`, `recordsCount > 0`, the two agreeing, no control batches, a
//! producer id implies a non-negative base sequence).
//!
//! Like Kafka (`LogValidator.validateMessagesAndAssignOffsetsCompressed`), the records of every
//! batch are walked: uncompressed batches in place (no allocation, no copying), compressed ones
//! after decompressing their records section into one buffer of at most
//! [`ValidationLimits::max_uncompressed_bytes`] (a small "bomb" batch that inflates beyond it is
//! refused with [`RecordError::InvalidRecord`], malformed compressed data is
//! [`RecordError::CorruptMessage`]). The walk checks each record's length prefix against its
//! fields, that the batch holds exactly `recordsCount` records with nothing after them (Kafka:
//! "Incorrect declared batch size"), and that offset deltas are 0, 1, ..., n-1. It also counts
//! records without a key, which compacted topics refuse.
//!
//! Where we differ, and why:
//! - Kafka does not check inner offsets of v2 batches: it never trusts them for uncompressed
//!   batches and rewrites a compressed batch whose inner offsets are off. We store batches
//!   verbatim, so a bad delta would reach consumers as a wrong offset, and we reject it as
//!   INVALID_RECORD instead (no client writes other deltas).
//! - Kafka trims a trailing partial batch silently; we reject it ([`RecordError::Truncated`]).
//! - Kafka answers a compressed stream it cannot read with UNKNOWN_SERVER_ERROR (a
//!   `KafkaException` escapes the validator); ours is CORRUPT_MESSAGE.
//! - Timestamp bounds (`message.timestamp.*`), compacted-topic key checks, and
//!   UNSUPPORTED_COMPRESSION_TYPE for zstd before produce v7 need topic config or the request
//!   version; the broker does them using [`ProduceSummary`].

use crate::header::{BatchHeader, Compression, TimestampType, NO_TIMESTAMP, RECORDS_OFFSET};
use crate::view::parse_record;
use crate::{BatchView, RecordError, TimestampBounds};

/// Kafka's default `message.max.bytes`.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 1_048_588;

/// How many times `max.message.bytes` the records of one compressed batch may inflate to.
/// Producers bound their batches before compression (librdkafka's `batch.size`, the Java
/// client's `batch.size` and `max.request.size`), so real batches stay far below this; a batch
/// beyond it is a decompression bomb, not data.
const UNCOMPRESSED_BATCH_FACTOR: usize = 32;
/// Floor and ceiling of that limit, whatever `max.message.bytes` is.
const UNCOMPRESSED_BYTES_MIN: usize = 32 << 20;
const UNCOMPRESSED_BYTES_MAX: usize = 1 << 30;

/// The decompression limit for one batch on a topic whose largest batch is `max_batch_bytes`:
/// 32 times that, at least 32 MiB and at most 1 GiB.
pub fn max_uncompressed_bytes_for(max_batch_bytes: usize) -> usize {
    max_batch_bytes
        .saturating_mul(UNCOMPRESSED_BATCH_FACTOR)
        .clamp(UNCOMPRESSED_BYTES_MIN, UNCOMPRESSED_BYTES_MAX)
}

/// The smallest encoded record (length, attributes, two deltas, key and value lengths, header
/// count: one byte each). Bounds how many records a batch of a given size can hold.
const RECORD_LEN_MIN: usize = 7;

/// Knobs for [`validate_produce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationLimits {
    /// Largest batch accepted, in bytes including the 12-byte log overhead (Kafka's
    /// `message.max.bytes` / topic `max.message.bytes`).
    pub max_batch_bytes: usize,
    /// Produce v3+ carries exactly one batch per partition; Kafka answers INVALID_RECORD
    /// otherwise. Turn off only for internal appends.
    pub require_single_batch: bool,
    /// Reject client batches whose `baseOffset` is not 0. Off by default: clients write 0 and the
    /// broker overwrites it anyway.
    pub require_zero_base_offset: bool,
    /// Walk the records of uncompressed batches (see the module docs).
    pub walk_uncompressed_records: bool,
    /// Decompress compressed batches and walk their records (see the module docs).
    pub walk_compressed_records: bool,
    /// Most bytes the records of one compressed batch may decompress to (see
    /// [`max_uncompressed_bytes_for`]).
    pub max_uncompressed_bytes: usize,
    /// KIP-937 bounds each record of a CreateTime batch must meet (INVALID_TIMESTAMP), checked
    /// during the record walk; `None`: not checked (LogAppendTime topics, internal appends).
    pub create_time_bounds: Option<TimestampBounds>,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            require_single_batch: true,
            require_zero_base_offset: false,
            walk_uncompressed_records: true,
            walk_compressed_records: true,
            max_uncompressed_bytes: max_uncompressed_bytes_for(DEFAULT_MAX_BATCH_BYTES),
            create_time_bounds: None,
        }
    }
}

/// What the broker needs to know about a validated produce payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceSummary {
    /// Batches in the payload.
    pub batch_count: usize,
    /// Records over all batches (the number of offsets to assign).
    pub record_count: u64,
    /// Payload size in bytes.
    pub size_bytes: usize,
    /// Producer id of the first batch (-1 if not idempotent).
    pub first_producer_id: i64,
    /// Producer epoch of the first batch.
    pub first_producer_epoch: i16,
    /// Base sequence of the first batch.
    pub first_sequence: i32,
    /// Producer id of the last batch.
    pub last_producer_id: i64,
    /// Producer epoch of the last batch.
    pub last_producer_epoch: i16,
    /// Sequence of the last record of the last batch (wrapping like Kafka).
    pub last_sequence: i32,
    /// Largest batch `maxTimestamp` (-1 if none).
    pub max_timestamp: i64,
    /// Offset of the record carrying `max_timestamp`, relative to the first offset of the
    /// payload. For a walked batch it is that record's offset; otherwise the batch's last offset,
    /// as Kafka reports for in-place compressed appends.
    pub max_timestamp_offset_delta: i64,
    /// Any batch is transactional.
    pub is_transactional: bool,
    /// Codec of the first batch.
    pub compression: Compression,
    /// Any batch is compressed.
    pub any_compressed: bool,
    /// Timestamp type of the first batch.
    pub timestamp_type: TimestampType,
    /// Every batch had its records walked (decompressed first if compressed).
    pub records_walked: bool,
    /// Records without a key (counted in walked batches only); compacted topics refuse them.
    pub keyless_records: u32,
    /// Index, within the payload, of the first record without a key.
    pub first_keyless_record: Option<u32>,
    /// The largest record timestamp as Kafka reads the records (a batch that claims
    /// LogAppendTime reads as its `maxTimestamp`); the header's `maxTimestamp` for batches whose
    /// records were not walked. Kafka writes this into the header of a batch it keeps in place.
    pub records_max_timestamp: i64,
}

/// Validates the record bytes of one partition of a produce request; see the module docs for
/// exactly what is checked. Does not modify the bytes.
pub fn validate_produce(
    buf: &[u8],
    limits: &ValidationLimits,
) -> Result<ProduceSummary, RecordError> {
    if buf.is_empty() {
        return Err(RecordError::InvalidRecord(
            "produce request must carry at least one record batch".into(),
        ));
    }
    let mut summary: Option<ProduceSummary> = None;
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let view = BatchView::parse(rest)?;
        if limits.require_single_batch && summary.is_some() {
            return Err(RecordError::InvalidRecord(
                "produce request may carry only one record batch per partition".into(),
            ));
        }
        let header = *view.header();
        let walk = validate_batch(&view, limits)?;
        let walked_max_delta = walk.map(|w| w.max_timestamp_delta);
        let compression = header.compression().unwrap_or(Compression::None);
        let count = u64::try_from(header.records_count).unwrap_or(0);
        let base_delta = summary.map_or(0, |s| s.record_count);
        let max_ts_delta = base_delta.saturating_add(match walked_max_delta {
            Some(d) => u64::try_from(d).unwrap_or(0),
            None => u64::try_from(header.last_offset_delta).unwrap_or(0),
        });
        let max_ts_delta = i64::try_from(max_ts_delta).unwrap_or(i64::MAX);
        let walked = walked_max_delta.is_some();
        let keyless = walk.map_or(0, |w| w.keyless);
        let records_max_timestamp = walk.map_or(header.max_timestamp, |w| w.max_timestamp);
        let first_keyless = walk
            .and_then(|w| w.first_keyless)
            .and_then(|i| u64::try_from(i).ok())
            .and_then(|i| u32::try_from(base_delta.saturating_add(i)).ok());
        summary = Some(match summary {
            None => ProduceSummary {
                batch_count: 1,
                record_count: count,
                size_bytes: view.total_len(),
                first_producer_id: header.producer_id,
                first_producer_epoch: header.producer_epoch,
                first_sequence: header.base_sequence,
                last_producer_id: header.producer_id,
                last_producer_epoch: header.producer_epoch,
                last_sequence: header.last_sequence(),
                max_timestamp: header.max_timestamp,
                max_timestamp_offset_delta: max_ts_delta,
                is_transactional: header.is_transactional(),
                compression,
                any_compressed: compression != Compression::None,
                timestamp_type: header.timestamp_type(),
                records_walked: walked,
                keyless_records: keyless,
                first_keyless_record: first_keyless,
                records_max_timestamp,
            },
            Some(mut s) => {
                s.batch_count += 1;
                s.record_count = s.record_count.saturating_add(count);
                s.size_bytes += view.total_len();
                s.last_producer_id = header.producer_id;
                s.last_producer_epoch = header.producer_epoch;
                s.last_sequence = header.last_sequence();
                if header.max_timestamp > s.max_timestamp {
                    s.max_timestamp = header.max_timestamp;
                    s.max_timestamp_offset_delta = max_ts_delta;
                }
                s.is_transactional |= header.is_transactional();
                s.any_compressed |= compression != Compression::None;
                s.records_walked &= walked;
                s.keyless_records = s.keyless_records.saturating_add(keyless);
                s.first_keyless_record = s.first_keyless_record.or(first_keyless);
                s.records_max_timestamp = s.records_max_timestamp.max(records_max_timestamp);
                s
            }
        });
        pos += view.total_len();
    }
    summary.ok_or_else(|| RecordError::InvalidRecord("no record batch".into()))
}

/// What walking a batch's records found.
#[derive(Debug, Clone, Copy)]
struct Walk {
    /// Offset delta of the first record whose timestamp is the batch's `maxTimestamp` (the
    /// last delta if none is).
    max_timestamp_delta: i32,
    keyless: u32,
    /// Index in the batch of the first record without a key.
    first_keyless: Option<i32>,
    /// Largest record timestamp (see [`ProduceSummary::records_max_timestamp`]).
    max_timestamp: i64,
}

/// Checks one batch; returns what the record walk found, if the records were walked.
fn validate_batch(
    view: &BatchView<'_>,
    limits: &ValidationLimits,
) -> Result<Option<Walk>, RecordError> {
    let h: &BatchHeader = view.header();
    if limits.require_zero_base_offset && h.base_offset != 0 {
        return Err(RecordError::InvalidRecord(format!(
            "base offset of a produced batch must be 0, not {}",
            h.base_offset
        )));
    }
    view.verify_crc()?;
    if view.total_len() > limits.max_batch_bytes {
        return Err(RecordError::BatchTooLarge {
            size_bytes: view.total_len(),
            max_bytes: limits.max_batch_bytes,
        });
    }
    let count_from_offsets = i64::from(h.last_offset_delta) + 1;
    if count_from_offsets <= 0 {
        return Err(RecordError::InvalidRecord(format!(
            "invalid offset range: last offset delta {}",
            h.last_offset_delta
        )));
    }
    if h.records_count <= 0 {
        return Err(RecordError::InvalidRecord(format!(
            "invalid record count {}",
            h.records_count
        )));
    }
    if count_from_offsets != i64::from(h.records_count) {
        return Err(RecordError::InvalidRecord(format!(
            "last offset delta {} does not match record count {}",
            h.last_offset_delta, h.records_count
        )));
    }
    if h.is_control() {
        return Err(RecordError::InvalidRecord(
            "clients may not write control batches".into(),
        ));
    }
    if h.has_producer_id() && h.base_sequence < 0 {
        return Err(RecordError::InvalidRecord(format!(
            "invalid base sequence {} for producer {}",
            h.base_sequence, h.producer_id
        )));
    }
    let compression = h.compression().ok_or_else(|| {
        RecordError::InvalidRecord(format!(
            "unknown compression codec in attributes {:#06x}",
            h.attributes
        ))
    })?;
    if compression == Compression::None {
        if !limits.walk_uncompressed_records {
            return Ok(None);
        }
        return walk_records(view, view.records_bytes(), limits.create_time_bounds).map(Some);
    }
    if !limits.walk_compressed_records {
        return Ok(None);
    }
    let plain = crate::compression::decompress(
        compression,
        view.records_bytes(),
        limits.max_uncompressed_bytes,
    )?;
    walk_records(view, &plain, limits.create_time_bounds).map(Some)
}

/// Framing walk over a batch's plain records section `records` (the batch's own bytes, or its
/// decompressed records).
fn walk_records(
    view: &BatchView<'_>,
    records: &[u8],
    create_time_bounds: Option<TimestampBounds>,
) -> Result<Walk, RecordError> {
    let h = view.header();
    let bounds = create_time_bounds.filter(|_| h.timestamp_type() == TimestampType::CreateTime);
    let mut rest = records;
    let count = usize::try_from(h.records_count).unwrap_or(0);
    // Cheap early bound so a huge claimed count fails before any loop work.
    if count.saturating_mul(RECORD_LEN_MIN) > rest.len() {
        return Err(RecordError::InvalidRecord(format!(
            "{count} records cannot fit in {} bytes",
            rest.len()
        )));
    }
    let mut max_delta = None;
    let mut keyless = 0u32;
    let mut first_keyless = None;
    let mut max_timestamp = NO_TIMESTAMP;
    for expected in 0..h.records_count {
        let fields = parse_record(rest, |_, _| {})?;
        if fields.offset_delta != expected {
            return Err(RecordError::InvalidRecord(format!(
                "record {expected} has offset delta {}",
                fields.offset_delta
            )));
        }
        if fields.key.is_none() {
            keyless += 1;
            first_keyless.get_or_insert(expected);
        }
        let timestamp = h.base_timestamp.wrapping_add(fields.timestamp_delta);
        if let Some(b) = &bounds {
            // Produce v3+ carries one batch per partition, so the index in the batch is the
            // index among the partition's records.
            b.check(
                timestamp,
                i64::from(expected),
                usize::try_from(expected).unwrap_or(0),
            )?;
        }
        max_timestamp = max_timestamp.max(timestamp);
        if max_delta.is_none() && timestamp == h.max_timestamp {
            max_delta = Some(expected);
        }
        rest = rest.get(fields.size_bytes..).unwrap_or_default();
    }
    if !rest.is_empty() {
        return Err(RecordError::InvalidRecord(format!(
            "Incorrect declared batch size: {} bytes after the last of {} records (batch of {} bytes, {} bytes of records from byte {RECORDS_OFFSET})",
            rest.len(),
            h.records_count,
            view.total_len(),
            records.len()
        )));
    }
    // Kafka's DefaultRecord reads every record of a LogAppendTime batch as the batch's
    // maxTimestamp.
    if h.timestamp_type() == TimestampType::LogAppendTime {
        max_timestamp = h.max_timestamp;
    }
    Ok(Walk {
        max_timestamp_delta: max_delta.unwrap_or(h.last_offset_delta),
        keyless,
        first_keyless,
        max_timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::*;
    use crate::{batches, update_crc, BatchBuilder};

    fn sample() -> Vec<u8> {
        BatchBuilder::new(0)
            .producer(77, 2, 10)
            .record(
                Some(b"key-1"),
                Some(b"value-1"),
                &[(b"h", Some(b"v"))],
                1_000,
            )
            .record(None, Some(b"value-2"), &[], 1_050)
            .record(
                Some(b"key-3"),
                None,
                &[(b"a", None), (b"b", Some(b""))],
                1_020,
            )
            .build()
    }

    fn limits() -> ValidationLimits {
        ValidationLimits::default()
    }

    fn put_i32(buf: &mut [u8], at: usize, v: i32) {
        buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Deterministic xorshift so the garbage tests need no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn valid_batch_summary() {
        let batch = sample();
        let s = validate_produce(&batch, &limits()).unwrap();
        assert_eq!(s.batch_count, 1);
        assert_eq!(s.record_count, 3);
        assert_eq!(s.size_bytes, batch.len());
        assert_eq!((s.first_producer_id, s.first_producer_epoch), (77, 2));
        assert_eq!((s.first_sequence, s.last_sequence), (10, 12));
        assert_eq!(s.max_timestamp, 1_050);
        assert_eq!(s.max_timestamp_offset_delta, 1);
        assert!(s.records_walked && !s.any_compressed && !s.is_transactional);
        assert_eq!(s.compression, Compression::None);
        assert_eq!(s.timestamp_type, TimestampType::CreateTime);
    }

    #[test]
    fn multiple_batches_when_allowed() {
        let mut buf = sample();
        buf.extend_from_slice(
            &BatchBuilder::new(0)
                .producer(77, 2, 13)
                .transactional(true)
                .record(None, Some(b"x"), &[], 5_000)
                .build(),
        );
        assert!(matches!(
            validate_produce(&buf, &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
        let lax = ValidationLimits {
            require_single_batch: false,
            ..limits()
        };
        let s = validate_produce(&buf, &lax).unwrap();
        assert_eq!(s.batch_count, 2);
        assert_eq!(s.record_count, 4);
        assert_eq!(s.last_sequence, 13);
        assert_eq!(s.max_timestamp, 5_000);
        assert_eq!(s.max_timestamp_offset_delta, 3);
        assert!(s.is_transactional);
    }

    #[test]
    fn empty_payload_is_invalid() {
        assert!(matches!(
            validate_produce(&[], &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
    }

    #[test]
    fn too_large_batch() {
        let batch = sample();
        let tight = ValidationLimits {
            max_batch_bytes: batch.len() - 1,
            ..limits()
        };
        assert_eq!(
            validate_produce(&batch, &tight),
            Err(RecordError::BatchTooLarge {
                size_bytes: batch.len(),
                max_bytes: batch.len() - 1
            })
        );
        let exact = ValidationLimits {
            max_batch_bytes: batch.len(),
            ..limits()
        };
        assert!(validate_produce(&batch, &exact).is_ok());
    }

    #[test]
    fn control_batch_and_empty_batch_are_invalid() {
        let control = BatchBuilder::new(0)
            .control(true)
            .record(None, Some(b"x"), &[], 1)
            .build();
        assert!(matches!(
            validate_produce(&control, &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
        let empty = BatchBuilder::new(0).build();
        assert!(matches!(
            validate_produce(&empty, &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
    }

    #[test]
    fn count_and_offset_delta_must_agree() {
        for (delta, count) in [(1, 3), (3, 3), (-1, 3), (2, 0), (2, -1), (i32::MAX, 3)] {
            let mut batch = sample();
            put_i32(&mut batch, LAST_OFFSET_DELTA_OFFSET, delta);
            put_i32(&mut batch, RECORDS_COUNT_OFFSET, count);
            update_crc(&mut batch).unwrap();
            assert!(
                matches!(
                    validate_produce(&batch, &limits()),
                    Err(RecordError::InvalidRecord(_))
                ),
                "delta {delta} count {count}"
            );
        }
    }

    #[test]
    fn record_count_must_match_records_even_when_header_agrees() {
        // Claim 2 records (delta 1) while 3 are present: bytes left over.
        let mut batch = sample();
        put_i32(&mut batch, LAST_OFFSET_DELTA_OFFSET, 1);
        put_i32(&mut batch, RECORDS_COUNT_OFFSET, 2);
        update_crc(&mut batch).unwrap();
        assert!(matches!(
            validate_produce(&batch, &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
        // Claim 4: runs out of bytes.
        put_i32(&mut batch, LAST_OFFSET_DELTA_OFFSET, 3);
        put_i32(&mut batch, RECORDS_COUNT_OFFSET, 4);
        update_crc(&mut batch).unwrap();
        assert!(matches!(
            validate_produce(&batch, &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
    }

    #[test]
    fn bad_inner_offset_delta_is_invalid() {
        let mut batch = sample();
        // First record: length varint (1 byte), attributes, timestamp delta 0 (1 byte), then the
        // offset delta varint 0 -> make it 1 (zigzag 2).
        let at = RECORDS_OFFSET + 3;
        assert_eq!(batch[at], 0);
        batch[at] = 2;
        update_crc(&mut batch).unwrap();
        assert!(matches!(
            validate_produce(&batch, &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
        // With the codec bits set the same bytes are not an lz4 frame: corrupt. Unless compressed
        // batches are not walked at all, when the header checks alone pass them.
        let mut compressed = batch.clone();
        compressed[ATTRIBUTES_OFFSET + 1] |= Compression::Lz4.id() as u8;
        update_crc(&mut compressed).unwrap();
        assert!(matches!(
            validate_produce(&compressed, &limits()),
            Err(RecordError::CorruptMessage(_))
        ));
        let shallow = ValidationLimits {
            walk_compressed_records: false,
            ..limits()
        };
        let s = validate_produce(&compressed, &shallow).unwrap();
        assert!(!s.records_walked && s.any_compressed);
        assert_eq!(s.compression, Compression::Lz4);
        assert_eq!(s.max_timestamp_offset_delta, 2);
    }

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn compressed(codec: Compression, deltas: &[i32]) -> Vec<u8> {
        let mut b = BatchBuilder::new(0)
            .producer(9, 1, 100)
            .compression(codec, None);
        for (i, d) in deltas.iter().enumerate() {
            let key = (i != 1).then_some(&b"key"[..]);
            b = b.record_with_offset_delta(*d, key, Some(&[b'v'; 300]), &[], 500 + i as i64);
        }
        b.try_build().unwrap()
    }

    #[test]
    fn compressed_batches_are_decompressed_and_walked() {
        for codec in CODECS {
            let batch = compressed(codec, &[0, 1, 2, 3]);
            let s = validate_produce(&batch, &limits()).unwrap();
            assert!(s.records_walked && s.any_compressed, "{codec:?}");
            assert_eq!(s.compression, codec);
            assert_eq!(s.record_count, 4);
            assert_eq!((s.first_sequence, s.last_sequence), (100, 103));
            assert_eq!(s.max_timestamp, 503);
            assert_eq!(s.max_timestamp_offset_delta, 3);
            assert_eq!((s.keyless_records, s.first_keyless_record), (1, Some(1)));
        }
    }

    #[test]
    fn compressed_batch_with_wrong_count_or_deltas_is_invalid() {
        for codec in CODECS {
            // Deltas out of sequence inside the compressed records.
            let batch = compressed(codec, &[0, 1, 3, 3]);
            let err = validate_produce(&batch, &limits()).unwrap_err();
            assert!(
                matches!(err, RecordError::InvalidRecord(_)),
                "{codec:?} {err:?}"
            );
            // Header claims fewer records than the compressed section holds, and more.
            for claim in [3, 5] {
                let mut batch = compressed(codec, &[0, 1, 2, 3]);
                put_i32(&mut batch, LAST_OFFSET_DELTA_OFFSET, claim - 1);
                put_i32(&mut batch, RECORDS_COUNT_OFFSET, claim);
                update_crc(&mut batch).unwrap();
                let err = validate_produce(&batch, &limits()).unwrap_err();
                assert!(
                    matches!(err, RecordError::InvalidRecord(_)),
                    "{codec:?} claim {claim}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn corrupt_compressed_records_are_corrupt_message() {
        for codec in CODECS {
            let good = compressed(codec, &[0, 1, 2, 3]);
            // Garbage in the middle of the compressed stream, with a CRC that matches it.
            let mut batch = good.clone();
            let mid = RECORDS_OFFSET + (batch.len() - RECORDS_OFFSET) / 2;
            for b in &mut batch[mid..mid + 8] {
                *b ^= 0x5a;
            }
            update_crc(&mut batch).unwrap();
            assert!(validate_produce(&batch, &limits()).is_err(), "{codec:?}");
            // A compressed section cut short (batch length and CRC fixed up).
            let mut cut = good[..RECORDS_OFFSET + (good.len() - RECORDS_OFFSET) / 2].to_vec();
            let len = (cut.len() - LOG_OVERHEAD_LEN) as i32;
            put_i32(&mut cut, BATCH_LENGTH_OFFSET, len);
            update_crc(&mut cut).unwrap();
            let err = validate_produce(&cut, &limits()).unwrap_err();
            assert!(
                matches!(
                    err,
                    RecordError::CorruptMessage(_) | RecordError::InvalidRecord(_)
                ),
                "{codec:?}: {err:?}"
            );
            // Without CRC repair, the CRC catches it first.
            let mut flipped = good.clone();
            flipped[mid] ^= 1;
            assert!(matches!(
                validate_produce(&flipped, &limits()),
                Err(RecordError::CorruptMessage(_))
            ));
        }
    }

    #[test]
    fn decompression_bomb_is_refused_at_the_cap() {
        // 4 MiB of zeros as one record compresses to almost nothing; with a 1 MiB cap it must be
        // refused before it is inflated further, with a message that says why.
        let big = vec![0u8; 4 << 20];
        for codec in CODECS {
            let batch = BatchBuilder::new(0)
                .compression(codec, None)
                .record(Some(b"k"), Some(&big), &[], 1)
                .try_build()
                .unwrap();
            assert!(batch.len() < 1 << 20, "{codec:?}: {}", batch.len());
            let tight = ValidationLimits {
                max_uncompressed_bytes: 1 << 20,
                ..limits()
            };
            match validate_produce(&batch, &tight) {
                Err(RecordError::InvalidRecord(m)) => assert!(m.contains("exceed"), "{m}"),
                other => panic!("{codec:?}: {other:?}"),
            }
            assert!(validate_produce(&batch, &limits()).is_ok());
        }
        assert_eq!(
            max_uncompressed_bytes_for(DEFAULT_MAX_BATCH_BYTES),
            DEFAULT_MAX_BATCH_BYTES * 32
        );
        assert_eq!(max_uncompressed_bytes_for(1000), 32 << 20);
        assert_eq!(max_uncompressed_bytes_for(10 << 20), 320 << 20);
        assert_eq!(max_uncompressed_bytes_for(usize::MAX), 1 << 30);
    }

    #[test]
    fn keyless_records_are_counted_for_uncompressed_batches() {
        let s = validate_produce(&sample(), &limits()).unwrap();
        assert_eq!((s.keyless_records, s.first_keyless_record), (1, Some(1)));
        let keyed = BatchBuilder::new(0)
            .record(Some(b"k"), None, &[], 1)
            .build();
        let s = validate_produce(&keyed, &limits()).unwrap();
        assert_eq!((s.keyless_records, s.first_keyless_record), (0, None));
    }

    #[test]
    fn records_max_timestamp_is_what_the_records_say() {
        // A producer header that understates maxTimestamp: the records know better.
        let mut batch = sample();
        batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&1_020i64.to_be_bytes());
        update_crc(&mut batch).unwrap();
        let s = validate_produce(&batch, &limits()).unwrap();
        assert_eq!((s.max_timestamp, s.records_max_timestamp), (1_020, 1_050));
        for codec in CODECS {
            let s = validate_produce(&compressed(codec, &[0, 1, 2]), &limits()).unwrap();
            assert_eq!(s.records_max_timestamp, 502, "{codec:?}");
        }
        // Records of a LogAppendTime batch read as its maxTimestamp.
        let lat = BatchBuilder::new(0)
            .timestamp_type(TimestampType::LogAppendTime)
            .max_timestamp(9_000)
            .record(Some(b"k"), None, &[], 1)
            .build();
        let s = validate_produce(&lat, &limits()).unwrap();
        assert_eq!(s.records_max_timestamp, 9_000);
    }

    #[test]
    fn producer_id_requires_sequence() {
        let batch = BatchBuilder::new(0)
            .producer(5, 0, -1)
            .record(None, Some(b"x"), &[], 1)
            .build();
        assert!(matches!(
            validate_produce(&batch, &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
    }

    #[test]
    fn unknown_codec_is_invalid() {
        let mut batch = sample();
        batch[ATTRIBUTES_OFFSET + 1] |= 6;
        update_crc(&mut batch).unwrap();
        assert!(matches!(
            validate_produce(&batch, &limits()),
            Err(RecordError::InvalidRecord(_))
        ));
    }

    #[test]
    fn zero_base_offset_rule_is_optional() {
        let batch = BatchBuilder::new(5)
            .record(None, Some(b"x"), &[], 1)
            .build();
        assert!(validate_produce(&batch, &limits()).is_ok());
        let strict = ValidationLimits {
            require_zero_base_offset: true,
            ..limits()
        };
        assert!(matches!(
            validate_produce(&batch, &strict),
            Err(RecordError::InvalidRecord(_))
        ));
    }

    #[test]
    fn every_flipped_byte_is_caught_or_outside_crc() {
        let original = sample();
        let strict = ValidationLimits {
            require_zero_base_offset: true,
            ..limits()
        };
        for pos in 0..original.len() {
            for bit in [0x01u8, 0x80] {
                let mut batch = original.clone();
                batch[pos] ^= bit;
                let result = validate_produce(&batch, &limits());
                match pos {
                    // Outside the CRC and overwritten by the leader before append.
                    p if p < BATCH_LENGTH_OFFSET => {
                        assert!(result.is_ok(), "pos {pos}");
                        assert!(validate_produce(&batch, &strict).is_err(), "pos {pos}");
                    }
                    p if (PARTITION_LEADER_EPOCH_OFFSET..MAGIC_OFFSET).contains(&p) => {
                        assert!(result.is_ok(), "pos {pos}")
                    }
                    p if p < PARTITION_LEADER_EPOCH_OFFSET => {
                        assert!(
                            matches!(
                                result,
                                Err(RecordError::Truncated { .. })
                                    | Err(RecordError::CorruptMessage(_))
                            ),
                            "pos {pos}: {result:?}"
                        )
                    }
                    MAGIC_OFFSET => {
                        assert!(matches!(result, Err(RecordError::UnsupportedMagic(_))))
                    }
                    _ => assert!(
                        matches!(result, Err(RecordError::CorruptMessage(_))),
                        "pos {pos}: {result:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn every_truncation_fails_without_panicking() {
        let batch = sample();
        for len in 0..batch.len() {
            let cut = &batch[..len];
            assert!(validate_produce(cut, &limits()).is_err(), "len {len}");
            if len > MAGIC_OFFSET {
                assert!(matches!(
                    validate_produce(cut, &limits()),
                    Err(RecordError::Truncated { .. })
                ));
            }
            let mut it = batches(cut);
            if len > 0 {
                assert!(matches!(
                    it.next(),
                    Some(Err(RecordError::Truncated { .. }))
                ));
                assert_eq!(it.position(), 0);
            }
            assert!(it.next().is_none());
        }
    }

    #[test]
    fn torn_tail_after_good_batches() {
        let one = sample();
        let mut log = one.clone();
        log.extend_from_slice(&one);
        log.extend_from_slice(&one[..one.len() / 2]);
        let mut it = batches(&log);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(
            it.next(),
            Some(Err(RecordError::Truncated { .. }))
        ));
        assert_eq!(it.position(), 2 * one.len());
        assert!(it.next().is_none());

        // Trailing bytes that do not start a v2 batch read as corruption, not a torn tail.
        let mut log = one.clone();
        log.extend_from_slice(&[0u8; 40]);
        let mut it = batches(&log);
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(
            it.next(),
            Some(Err(RecordError::UnsupportedMagic(0)))
        ));
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let original = sample();
        for round in 0..20_000 {
            let mut buf = if round & 1 == 0 {
                // Mutate a valid batch in a few places (keeps the header plausible).
                let mut b = original.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % b.len();
                    b[i] = rng.next() as u8;
                }
                b
            } else {
                let len = (rng.next() % 200) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if b.len() > MAGIC_OFFSET {
                    b[MAGIC_OFFSET] = 2;
                }
                b
            };
            // Fix the CRC half the time so the structure checks behind it are reached.
            if rng.next() & 1 == 0 {
                let _ = update_crc(&mut buf);
            }
            let _ = validate_produce(&buf, &limits());
            for b in batches(&buf) {
                let Ok(view) = b else { break };
                let _ = view.verify_crc();
                for r in view.records() {
                    if r.is_err() {
                        break;
                    }
                }
            }
            let _ = crate::stamp_batch(&mut buf.clone(), 1, 1);
            let _ = crate::stamp_batches(&mut buf.clone(), 1, 1);
            let _ = crate::set_log_append_time(&mut buf, 1);
        }
    }
}
