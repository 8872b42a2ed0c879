//! KIP-937 timestamp bounds on produce: with `message.timestamp.type=CreateTime`, a record whose
//! timestamp is more than `message.timestamp.before.max.ms` in the past or more than
//! `message.timestamp.after.max.ms` in the future is refused with INVALID_TIMESTAMP, as Kafka's
//! `LogValidator.validateTimestamp` does. Records without a timestamp (-1) pass.
//!
//! Uncompressed batches are walked record by record (no allocation). This crate never
//! decompresses, so for a compressed batch only the timestamps its header carries are checked:
//! the first record's (`baseTimestamp`) and the largest (`maxTimestamp`).

use crate::header::NO_TIMESTAMP;
use crate::view::parse_record;
use crate::{BatchView, Compression, RecordError};

/// Checks every batch of a validated produce payload (see [`crate::validate_produce`]) against
/// `[now_ms - before_max_ms, now_ms + after_max_ms]`.
pub fn check_create_timestamps(
    buf: &[u8],
    now_ms: i64,
    before_max_ms: i64,
    after_max_ms: i64,
) -> Result<(), RecordError> {
    // Kafka's test: now - ts > before or ts - now > after. In i128 so extreme values (a bound of
    // Long.MAX_VALUE, a negative timestamp) cannot overflow.
    let out_of_range = |ts: i64| {
        let diff = i128::from(now_ms) - i128::from(ts);
        ts != NO_TIMESTAMP && (diff > i128::from(before_max_ms) || -diff > i128::from(after_max_ms))
    };
    let fail = |ts: i64, offset: i64, record_index: usize| {
        Err(RecordError::InvalidTimestamp {
            record_index,
            message: format!(
                "Timestamp {ts} of message with offset {offset} is out of range. The timestamp should be within [{}, {}]",
                now_ms.saturating_sub(before_max_ms),
                now_ms.saturating_add(after_max_ms)
            ),
        })
    };
    let mut pos = 0usize;
    let mut index = 0usize;
    while pos < buf.len() {
        let view = BatchView::parse(buf.get(pos..).unwrap_or_default())?;
        let h = *view.header();
        if h.compression() == Some(Compression::None) {
            let mut rest = view.records_bytes();
            for _ in 0..h.records_count.max(0) {
                let fields = parse_record(rest, |_, _| {})?;
                let ts = h.base_timestamp.wrapping_add(fields.timestamp_delta);
                if out_of_range(ts) {
                    return fail(ts, i64::from(fields.offset_delta), index);
                }
                index += 1;
                rest = rest.get(fields.size_bytes..).unwrap_or_default();
            }
        } else {
            for ts in [h.base_timestamp, h.max_timestamp] {
                if out_of_range(ts) {
                    return fail(ts, 0, index);
                }
            }
            index += usize::try_from(h.records_count).unwrap_or(0);
        }
        pos += view.total_len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchBuilder;

    fn batch(timestamps: &[i64]) -> Vec<u8> {
        let mut b = BatchBuilder::new(0);
        for ts in timestamps {
            b = b.record(None, Some(b"v"), &[], *ts);
        }
        b.build()
    }

    #[test]
    fn records_outside_the_window_are_refused() {
        let now = 1_000_000;
        let ok = batch(&[now - 500, now, now + 500]);
        assert!(check_create_timestamps(&ok, now, 1_000, 1_000).is_ok());
        let old = batch(&[now, now - 5_000]);
        match check_create_timestamps(&old, now, 1_000, 1_000) {
            Err(RecordError::InvalidTimestamp {
                record_index,
                message,
            }) => {
                assert_eq!(record_index, 1);
                assert!(message.contains("[999000, 1001000]"), "{message}");
            }
            other => panic!("expected InvalidTimestamp, got {other:?}"),
        }
        let future = batch(&[now + 5_000]);
        assert!(check_create_timestamps(&future, now, 1_000, 1_000).is_err());
        // Kafka's defaults: no lower bound, one hour ahead.
        assert!(check_create_timestamps(&batch(&[0, 1]), now, i64::MAX, 3_600_000).is_ok());
        // No timestamp: nothing to check.
        assert!(check_create_timestamps(&batch(&[NO_TIMESTAMP]), now, 0, 0).is_ok());
    }

    #[test]
    fn compressed_batches_are_checked_by_their_header() {
        let now = 1_000_000;
        let b = BatchBuilder::new(0)
            .compression_bits(Compression::Gzip)
            .record(None, Some(b"v"), &[], now - 10_000)
            .build();
        assert!(check_create_timestamps(&b, now, 1_000, 1_000).is_err());
        assert!(check_create_timestamps(&b, now, 20_000, 1_000).is_ok());
    }
}
