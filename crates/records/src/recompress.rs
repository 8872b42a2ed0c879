//! Broker-side recompression: a validated produce batch rewritten in the topic's codec.
//!
//! Kafka does this in `LogValidator.buildRecordsAndAssignOffsets` whenever the batch's codec is
//! not the topic's `compression.type` (and the topic's type is not `producer`). The new batch
//! keeps what the producer's batch carried: producer id, epoch and base sequence (so the
//! idempotent-producer state sees the same batch), the transactional flag, and every record's
//! key, value, headers and timestamp. Offsets are assigned afresh (0, 1, ... here; the log
//! stamps the base offset). Like Kafka's `MemoryRecordsBuilder`:
//! - `baseTimestamp` is the first record's timestamp and `maxTimestamp` the largest one;
//! - for a LogAppendTime topic the timestamp-type bit is set and `maxTimestamp` is the append
//!   time, while the records keep their own timestamps (readers report `maxTimestamp` for every
//!   record of such a batch);
//! - records of a producer batch that claims LogAppendTime read as that batch's `maxTimestamp`
//!   (Kafka's `DefaultRecord` reading rule), so that is the timestamp they are written with.

use crate::header::{Compression, TimestampType};
use crate::{BatchBuilder, BatchView, RecordError};

/// Rewrites the single batch in `batch` with `codec` at `level` (`None`: Kafka's default for
/// the codec). `log_append_time_ms` is `Some(now)` on a LogAppendTime topic. The batch must
/// have passed [`crate::validate_produce`]; its records are decompressed into at most
/// `max_uncompressed_bytes`.
pub fn recompress_batch(
    batch: &[u8],
    codec: Compression,
    level: Option<i32>,
    log_append_time_ms: Option<i64>,
    max_uncompressed_bytes: usize,
) -> Result<Vec<u8>, RecordError> {
    let view = BatchView::parse_exact(batch)?;
    let h = *view.header();
    if h.is_control() {
        return Err(RecordError::InvalidRecord(
            "control batches are not recompressed".into(),
        ));
    }
    let decoded = view.decode_records(max_uncompressed_bytes)?;
    let producer_log_append_time = h.timestamp_type() == TimestampType::LogAppendTime;
    let mut builder = BatchBuilder::new(h.base_offset)
        .producer(h.producer_id, h.producer_epoch, h.base_sequence)
        .transactional(h.is_transactional())
        .partition_leader_epoch(h.partition_leader_epoch);
    if codec != Compression::None {
        builder = builder.compression(codec, level);
    }
    if let Some(now) = log_append_time_ms {
        builder = builder
            .timestamp_type(TimestampType::LogAppendTime)
            .max_timestamp(now);
    }
    let mut count = 0i32;
    for record in decoded.iter() {
        let record = record?;
        let timestamp = if producer_log_append_time {
            h.max_timestamp
        } else {
            record.timestamp(h.base_timestamp)
        };
        builder = builder.record(record.key, record.value, &record.headers, timestamp);
        count = count.saturating_add(1);
    }
    if count != h.records_count {
        return Err(RecordError::InvalidRecord(format!(
            "batch declares {} records but holds {count}",
            h.records_count
        )));
    }
    builder.try_build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate_produce, ValidationLimits};

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const CAP: usize = 64 << 20;

    type Owned = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(Vec<u8>, Option<Vec<u8>>)>,
        i64,
    );

    fn source(codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(0)
            .producer(77, 3, 1_000)
            .transactional(true)
            .compression(codec, None);
        for i in 0..40i64 {
            let key = (i % 5 != 2).then(|| format!("key-{i}").into_bytes());
            let value = (i % 7 != 3).then(|| vec![b'a' + (i % 26) as u8; 100 + i as usize]);
            b = b.record(
                key.as_deref(),
                value.as_deref(),
                &[(b"h", Some(b"v")), (b"null", None)],
                // Not monotonic, so base and max timestamps differ from first and last.
                5_000 + (i * 37) % 101,
            );
        }
        b.try_build().unwrap()
    }

    fn records(batch: &[u8]) -> Vec<Owned> {
        let view = BatchView::parse_exact(batch).unwrap();
        let h = *view.header();
        let decoded = view.decode_records(CAP).unwrap();
        decoded
            .iter()
            .map(|r| {
                let r = r.unwrap();
                (
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                    r.headers
                        .iter()
                        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                        .collect(),
                    r.timestamp(h.base_timestamp),
                )
            })
            .collect()
    }

    #[test]
    fn every_codec_to_every_codec_keeps_producer_fields_and_records() {
        for from in ALL {
            let original = source(from);
            let oh = *BatchView::parse_exact(&original).unwrap().header();
            for to in ALL {
                let out = recompress_batch(&original, to, None, None, CAP).unwrap();
                let view = BatchView::parse_exact(&out).unwrap();
                view.verify_crc().unwrap();
                let h = *view.header();
                assert_eq!(h.compression(), Some(to), "{from:?} -> {to:?}");
                assert_eq!(
                    (h.producer_id, h.producer_epoch, h.base_sequence),
                    (77, 3, 1_000)
                );
                assert!(h.is_transactional() && !h.is_control());
                assert_eq!(h.records_count, 40);
                assert_eq!(h.last_offset_delta, 39);
                assert_eq!(h.last_sequence(), oh.last_sequence());
                assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
                assert_eq!(h.max_timestamp, oh.max_timestamp);
                assert_eq!(records(&out), records(&original), "{from:?} -> {to:?}");
                // What the broker writes passes its own produce validation.
                let s = validate_produce(&out, &ValidationLimits::default()).unwrap();
                assert!(s.records_walked);
                assert_eq!(s.record_count, 40);
            }
        }
    }

    #[test]
    fn levels_are_passed_on() {
        let original = source(Compression::None);
        let fast = recompress_batch(&original, Compression::Zstd, Some(1), None, CAP).unwrap();
        let best = recompress_batch(&original, Compression::Zstd, Some(19), None, CAP).unwrap();
        assert_eq!(records(&fast), records(&best));
        let gz = recompress_batch(&original, Compression::Gzip, Some(9), None, CAP).unwrap();
        assert_eq!(records(&gz), records(&original));
        assert!(gz.len() < original.len());
    }

    #[test]
    fn log_append_time_sets_the_type_and_max_timestamp_only() {
        let original = source(Compression::Snappy);
        let out = recompress_batch(&original, Compression::Lz4, None, Some(999_999), CAP).unwrap();
        let view = BatchView::parse_exact(&out).unwrap();
        let h = view.header();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 999_999);
        assert_eq!(records(&out), records(&original));
    }

    #[test]
    fn producer_log_append_time_records_take_the_batch_max_timestamp() {
        let original = BatchBuilder::new(0)
            .timestamp_type(TimestampType::LogAppendTime)
            .max_timestamp(42_000)
            .record(Some(b"a"), None, &[], 1)
            .record(Some(b"b"), None, &[], 2)
            .build();
        let out = recompress_batch(&original, Compression::Gzip, None, None, CAP).unwrap();
        let view = BatchView::parse_exact(&out).unwrap();
        assert_eq!(view.header().timestamp_type(), TimestampType::CreateTime);
        let stamps: Vec<i64> = records(&out).into_iter().map(|r| r.3).collect();
        assert_eq!(stamps, vec![42_000, 42_000]);
    }

    #[test]
    fn cap_and_bad_input_are_errors_not_panics() {
        let original = source(Compression::Zstd);
        assert!(matches!(
            recompress_batch(&original, Compression::Gzip, None, None, 1_000),
            Err(RecordError::InvalidRecord(_))
        ));
        assert!(recompress_batch(
            &original[..original.len() - 1],
            Compression::Gzip,
            None,
            None,
            CAP
        )
        .is_err());
        let control = BatchBuilder::new(0)
            .control(true)
            .record(Some(b"k"), None, &[], 1)
            .build();
        assert!(recompress_batch(&control, Compression::Gzip, None, None, CAP).is_err());
    }
}
