//! In-place edits the partition leader makes to a validated batch before appending it.

use crate::header::{
    write_bytes, ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, CRC_OFFSET, MAX_TIMESTAMP_OFFSET,
    PARTITION_LEADER_EPOCH_OFFSET, TIMESTAMP_TYPE_BIT,
};
use crate::{BatchView, RecordError, TimestampType};

fn write(batch: &mut [u8], at: usize, value: &[u8]) -> Result<(), RecordError> {
    if write_bytes(batch, at, value) {
        Ok(())
    } else {
        Err(RecordError::Truncated {
            needed: at.saturating_add(value.len()),
            available: batch.len(),
        })
    }
}

/// CRC-32C of the single batch in `batch` (bytes 21..end), as it should be stored.
pub fn compute_crc(batch: &[u8]) -> Result<u32, RecordError> {
    Ok(BatchView::parse_exact(batch)?.compute_crc())
}

/// Recomputes and stores the CRC of the single batch in `batch`.
pub fn update_crc(batch: &mut [u8]) -> Result<(), RecordError> {
    let crc = compute_crc(batch)?;
    write(batch, CRC_OFFSET, &crc.to_be_bytes())
}

/// Writes `baseOffset` and `partitionLeaderEpoch` into the single batch in `batch`.
///
/// Both fields sit before the CRC'd range, so no re-hash is needed. The batch framing is checked
/// (exactly one v2 batch), the CRC is not: validate first.
pub fn stamp_batch(
    batch: &mut [u8],
    base_offset: i64,
    partition_leader_epoch: i32,
) -> Result<(), RecordError> {
    BatchView::parse_exact(batch)?;
    write(batch, BASE_OFFSET_OFFSET, &base_offset.to_be_bytes())?;
    write(
        batch,
        PARTITION_LEADER_EPOCH_OFFSET,
        &partition_leader_epoch.to_be_bytes(),
    )
}

/// Stamps every batch in a buffer of back-to-back batches, giving them consecutive offsets from
/// `first_offset`. Returns the offset after the last record (the new log end offset).
///
/// Offsets advance by `lastOffsetDelta + 1` per batch, which [`crate::validate_produce`] has
/// checked equals the record count.
pub fn stamp_batches(
    buf: &mut [u8],
    first_offset: i64,
    partition_leader_epoch: i32,
) -> Result<i64, RecordError> {
    let mut next = first_offset;
    let mut pos = 0;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let view = BatchView::parse(rest)?;
        let len = view.total_len();
        let delta = view.header().last_offset_delta;
        if delta < 0 {
            return Err(RecordError::InvalidRecord(format!(
                "negative last offset delta {delta}"
            )));
        }
        let end = pos.saturating_add(len);
        let batch = buf.get_mut(pos..end).unwrap_or_default();
        write(batch, BASE_OFFSET_OFFSET, &next.to_be_bytes())?;
        write(
            batch,
            PARTITION_LEADER_EPOCH_OFFSET,
            &partition_leader_epoch.to_be_bytes(),
        )?;
        next = next
            .checked_add(i64::from(delta) + 1)
            .ok_or_else(|| RecordError::InvalidRecord("offset overflow".into()))?;
        pos = end;
    }
    Ok(next)
}

/// Turns the single batch in `batch` into a LogAppendTime batch stamped `now_ms`.
///
/// Mirrors Kafka's in-place path (`DefaultRecordBatch.setMaxTimestamp`): set the timestamp-type
/// attribute bit and `maxTimestamp`, leave `baseTimestamp` and the record deltas alone (readers
/// report `maxTimestamp` for every record of a LogAppendTime batch), and recompute the CRC. Like
/// Kafka, nothing is rewritten when the batch already carries exactly this.
///
/// The old CRC is verified first so this rewrite can never turn a corrupt batch into one with a
/// valid checksum.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) -> Result<(), RecordError> {
    let view = BatchView::parse_exact(batch)?;
    view.verify_crc()?;
    let header = *view.header();
    if header.timestamp_type() == TimestampType::LogAppendTime && header.max_timestamp == now_ms {
        return Ok(());
    }
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    write(batch, ATTRIBUTES_OFFSET, &attributes.to_be_bytes())?;
    write(batch, MAX_TIMESTAMP_OFFSET, &now_ms.to_be_bytes())?;
    update_crc(batch)
}

/// Writes `maxTimestamp` and the timestamp type into the single batch in `batch`, as Kafka's
/// LogValidator does for a batch it keeps in place (`DefaultRecordBatch.setMaxTimestamp`), and
/// re-hashes. Nothing is rewritten when the batch already carries both. The old CRC is verified
/// first, as in [`set_log_append_time`].
pub fn set_max_timestamp(
    batch: &mut [u8],
    timestamp_type: TimestampType,
    max_timestamp_ms: i64,
) -> Result<(), RecordError> {
    let view = BatchView::parse_exact(batch)?;
    view.verify_crc()?;
    let header = *view.header();
    if header.timestamp_type() == timestamp_type && header.max_timestamp == max_timestamp_ms {
        return Ok(());
    }
    let attributes = match timestamp_type {
        TimestampType::LogAppendTime => header.attributes | TIMESTAMP_TYPE_BIT,
        TimestampType::CreateTime => header.attributes & !TIMESTAMP_TYPE_BIT,
    };
    write(batch, ATTRIBUTES_OFFSET, &attributes.to_be_bytes())?;
    write(batch, MAX_TIMESTAMP_OFFSET, &max_timestamp_ms.to_be_bytes())?;
    update_crc(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchBuilder;

    fn sample(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(0).producer(1, 0, 0);
        for i in 0..n {
            b = b.record(None, Some(b"value"), &[], 1_000 + i as i64);
        }
        b.build()
    }

    #[test]
    fn stamp_keeps_crc_valid() {
        let mut batch = sample(3);
        stamp_batch(&mut batch, 1_000_000, 7).unwrap();
        let view = BatchView::parse_exact(&batch).unwrap();
        view.verify_crc().unwrap();
        assert_eq!(view.header().base_offset, 1_000_000);
        assert_eq!(view.header().partition_leader_epoch, 7);
        assert_eq!(view.header().last_offset(), 1_000_002);
    }

    #[test]
    fn stamp_rejects_bad_framing() {
        let mut batch = sample(1);
        batch.push(0);
        assert!(stamp_batch(&mut batch, 1, 1).is_err());
        let mut short = sample(1);
        short.truncate(30);
        assert!(stamp_batch(&mut short, 1, 1).is_err());
    }

    #[test]
    fn stamp_batches_assigns_consecutive_offsets() {
        let mut buf = sample(2);
        buf.extend_from_slice(&sample(3));
        buf.extend_from_slice(&sample(1));
        let next = stamp_batches(&mut buf, 10, 4).unwrap();
        assert_eq!(next, 16);
        let bases: Vec<i64> = crate::batches(&buf)
            .map(|b| b.unwrap().header().base_offset)
            .collect();
        assert_eq!(bases, vec![10, 12, 15]);
        for b in crate::batches(&buf) {
            b.unwrap().verify_crc().unwrap();
        }
    }

    #[test]
    fn log_append_time_sets_bit_max_timestamp_and_crc() {
        let mut batch = sample(2);
        let before = *BatchView::parse_exact(&batch).unwrap().header();
        set_log_append_time(&mut batch, 9_999).unwrap();
        let view = BatchView::parse_exact(&batch).unwrap();
        view.verify_crc().unwrap();
        let h = view.header();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 9_999);
        assert_eq!(h.base_timestamp, before.base_timestamp);
        assert_eq!(h.attributes, before.attributes | TIMESTAMP_TYPE_BIT);
        // Idempotent.
        let copy = batch.clone();
        set_log_append_time(&mut batch, 9_999).unwrap();
        assert_eq!(batch, copy);
    }

    #[test]
    fn max_timestamp_and_type_are_rewritten_with_the_crc() {
        let mut batch = sample(2);
        let before = *BatchView::parse_exact(&batch).unwrap().header();
        let copy = batch.clone();
        set_max_timestamp(&mut batch, TimestampType::CreateTime, before.max_timestamp).unwrap();
        assert_eq!(batch, copy, "nothing to change");
        set_max_timestamp(&mut batch, TimestampType::CreateTime, 5_000).unwrap();
        let view = BatchView::parse_exact(&batch).unwrap();
        view.verify_crc().unwrap();
        assert_eq!(view.header().max_timestamp, 5_000);
        set_log_append_time(&mut batch, 7).unwrap();
        set_max_timestamp(&mut batch, TimestampType::CreateTime, 6_000).unwrap();
        let view = BatchView::parse_exact(&batch).unwrap();
        view.verify_crc().unwrap();
        assert_eq!(view.header().timestamp_type(), TimestampType::CreateTime);
        assert_eq!(view.header().attributes, before.attributes);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(set_max_timestamp(&mut batch, TimestampType::CreateTime, 1).is_err());
    }

    #[test]
    fn log_append_time_refuses_to_launder_a_bad_crc() {
        let mut batch = sample(1);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(
            set_log_append_time(&mut batch, 1),
            Err(RecordError::CorruptMessage(_))
        ));
    }

    #[test]
    fn update_crc_repairs_after_edit() {
        let mut batch = sample(1);
        batch[crate::PRODUCER_EPOCH_OFFSET + 1] = 5;
        assert!(BatchView::parse_exact(&batch)
            .unwrap()
            .verify_crc()
            .is_err());
        update_crc(&mut batch).unwrap();
        BatchView::parse_exact(&batch)
            .unwrap()
            .verify_crc()
            .unwrap();
        assert_eq!(
            compute_crc(&batch).unwrap(),
            BatchView::parse(&batch).unwrap().header().crc
        );
    }
}
