//! KIP-937 timestamp bounds on produce: with `message.timestamp.type=CreateTime`, a record whose
//! timestamp is more than `message.timestamp.before.max.ms` in the past or more than
//! `message.timestamp.after.max.ms` in the future is refused with INVALID_TIMESTAMP, as Kafka's
//! `LogValidator.validateTimestamp` does. Records without a timestamp (-1) pass.
//!
//! [`TimestampBounds`] is checked record by record inside [`crate::validate_produce`]'s walk
//! (set [`crate::ValidationLimits::create_time_bounds`]), so uncompressed and compressed batches
//! are checked alike and no extra pass over the records is made.

use crate::header::NO_TIMESTAMP;
use crate::RecordError;

/// The window `[now - before_max_ms, now + after_max_ms]` a CreateTime record must fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampBounds {
    pub now_ms: i64,
    pub before_max_ms: i64,
    pub after_max_ms: i64,
}

impl TimestampBounds {
    /// Checks one record: `offset_delta` is its offset in the batch (Kafka's message names it),
    /// `record_index` its index among the partition's records (for `record_errors`).
    pub fn check(
        &self,
        timestamp_ms: i64,
        offset_delta: i64,
        record_index: usize,
    ) -> Result<(), RecordError> {
        // Kafka's test: now - ts > before or ts - now > after. In i128 so extreme values (a bound
        // of Long.MAX_VALUE, a negative timestamp) cannot overflow.
        let diff = i128::from(self.now_ms) - i128::from(timestamp_ms);
        let out_of_range = timestamp_ms != NO_TIMESTAMP
            && (diff > i128::from(self.before_max_ms) || -diff > i128::from(self.after_max_ms));
        if !out_of_range {
            return Ok(());
        }
        Err(RecordError::InvalidTimestamp {
            record_index,
            message: format!(
                "Timestamp {timestamp_ms} of message with offset {offset_delta} is out of range. The timestamp should be within [{}, {}]",
                self.now_ms.saturating_sub(self.before_max_ms),
                self.now_ms.saturating_add(self.after_max_ms)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate_produce, BatchBuilder, Compression, TimestampType, ValidationLimits};

    const NOW: i64 = 1_000_000;

    fn limits(before_max_ms: i64, after_max_ms: i64) -> ValidationLimits {
        ValidationLimits {
            create_time_bounds: Some(TimestampBounds {
                now_ms: NOW,
                before_max_ms,
                after_max_ms,
            }),
            ..ValidationLimits::default()
        }
    }

    fn batch(timestamps: &[i64], codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(0).compression(codec, None);
        for ts in timestamps {
            b = b.record(Some(b"k"), Some(b"v"), &[], *ts);
        }
        b.build()
    }

    #[test]
    fn records_outside_the_window_are_refused_in_every_codec() {
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let ok = batch(&[NOW - 500, NOW, NOW + 500], codec);
            assert!(validate_produce(&ok, &limits(1_000, 1_000)).is_ok());
            // The second record is too old; its index and the window are reported.
            let old = batch(&[NOW, NOW - 5_000, NOW], codec);
            match validate_produce(&old, &limits(1_000, 1_000)) {
                Err(RecordError::InvalidTimestamp {
                    record_index,
                    message,
                }) => {
                    assert_eq!(record_index, 1, "{codec:?}");
                    assert!(message.contains("offset 1 "), "{message}");
                    assert!(message.contains("[999000, 1001000]"), "{message}");
                }
                other => panic!("{codec:?}: expected InvalidTimestamp, got {other:?}"),
            }
            let future = batch(&[NOW + 5_000], codec);
            assert!(validate_produce(&future, &limits(1_000, 1_000)).is_err());
            // Kafka's defaults: no lower bound, one hour ahead.
            assert!(validate_produce(&batch(&[0, 1], codec), &limits(i64::MAX, 3_600_000)).is_ok());
            // No timestamp: nothing to check. No bounds: nothing checked.
            assert!(validate_produce(&batch(&[NO_TIMESTAMP], codec), &limits(0, 0)).is_ok());
            assert!(validate_produce(&old, &ValidationLimits::default()).is_ok());
        }
    }

    #[test]
    fn log_append_time_batches_are_not_checked() {
        let b = BatchBuilder::new(0)
            .timestamp_type(TimestampType::LogAppendTime)
            .record(Some(b"k"), Some(b"v"), &[], NOW - 50_000)
            .build();
        assert!(validate_produce(&b, &limits(1_000, 1_000)).is_ok());
    }
}
