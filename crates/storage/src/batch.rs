//! The few batch operations the log needs, on top of `rafka-records` (which owns the format).

use rafka_records::{
    BatchHeader, BatchView, Compression, RecordError, TimestampType, LOG_OVERHEAD_LEN,
    MIN_BATCH_LENGTH, V2_MAGIC,
};

use crate::error::StorageError;

pub(crate) use rafka_records::BATCH_HEADER_LEN;
pub(crate) type Header = BatchHeader;

impl From<RecordError> for StorageError {
    fn from(e: RecordError) -> Self {
        StorageError::InvalidBatch(e.to_string())
    }
}

/// Reads a header from the first 61 bytes of a batch (the rest need not be present, so the
/// active segment can be scanned header by header) and checks what the scan relies on: magic 2,
/// a plausible length, a non-negative offset delta.
pub(crate) fn parse_header(buf: &[u8]) -> Result<Header, StorageError> {
    let h = BatchHeader::read(buf)?;
    if h.magic != V2_MAGIC {
        return Err(RecordError::UnsupportedMagic(h.magic).into());
    }
    if h.batch_length < MIN_BATCH_LENGTH || h.last_offset_delta < 0 {
        return Err(StorageError::InvalidBatch(format!(
            "batch length {} / last offset delta {} impossible",
            h.batch_length, h.last_offset_delta
        )));
    }
    Ok(h)
}

/// Whole batch size (log overhead included) of a header that passed [`parse_header`].
pub(crate) fn total_len(h: &Header) -> usize {
    h.total_len().unwrap_or(LOG_OVERHEAD_LEN)
}

pub(crate) fn is_compressed(h: &Header) -> bool {
    h.compression() != Some(Compression::None)
}

/// Parses the batch at the start of `buf` and checks its CRC (recovery).
pub(crate) fn parse_verified(buf: &[u8]) -> Result<Header, RecordError> {
    let view = BatchView::parse(buf)?;
    view.verify_crc()?;
    Ok(*view.header())
}

/// (offset, timestamp) of each record of an uncompressed batch; `None` if the batch is
/// compressed or its records do not parse. LogAppendTime batches report the batch max timestamp
/// for every record, as Kafka's readers do.
pub(crate) fn record_timestamps(batch: &[u8]) -> Option<Vec<(i64, i64)>> {
    let view = BatchView::parse(batch).ok()?;
    let h = *view.header();
    let append_time = h.timestamp_type() == TimestampType::LogAppendTime;
    view.records()
        .map(|r| {
            r.ok().map(|r| {
                let ts = if append_time {
                    h.max_timestamp
                } else {
                    r.timestamp(h.base_timestamp)
                };
                (r.offset(h.base_offset), ts)
            })
        })
        .collect()
}
