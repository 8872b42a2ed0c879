//! Byte layout of the v2 batch header and its decoded form.
//!
//! All integers are big-endian. The CRC covers bytes `CRC_START..` (attributes to the end), so the
//! fields before it (base offset, length, leader epoch, magic) can be rewritten without re-hashing.

use crate::RecordError;

/// Length of the fixed v2 batch header; records start here.
pub const BATCH_HEADER_LEN: usize = 61;
/// `baseOffset: i64`.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// `batchLength: i32`, counting the bytes after this field.
pub const BATCH_LENGTH_OFFSET: usize = 8;
/// `partitionLeaderEpoch: i32`.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// `magic: i8`.
pub const MAGIC_OFFSET: usize = 16;
/// `crc: u32` (CRC-32C).
pub const CRC_OFFSET: usize = 17;
/// First byte covered by the CRC.
pub const CRC_START: usize = 21;
/// `attributes: i16`.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// `lastOffsetDelta: i32`.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// `baseTimestamp: i64`.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// `maxTimestamp: i64`.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// `producerId: i64`.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// `producerEpoch: i16`.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// `baseSequence: i32`.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// `recordsCount: i32`.
pub const RECORDS_COUNT_OFFSET: usize = 57;
/// First record byte.
pub const RECORDS_OFFSET: usize = 61;
/// `baseOffset` + `batchLength`: the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD_LEN: usize = 12;
/// Smallest legal `batchLength` (a header with zero records).
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD_LEN) as i32;
/// The only magic this crate understands.
pub const V2_MAGIC: i8 = 2;
/// `producerId` of a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// `baseSequence` of a non-idempotent producer.
pub const NO_SEQUENCE: i32 = -1;
/// Timestamp meaning "none".
pub const NO_TIMESTAMP: i64 = -1;

pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

/// Compression codec from attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// 0
    None,
    /// 1
    Gzip,
    /// 2
    Snappy,
    /// 3
    Lz4,
    /// 4
    Zstd,
}

impl Compression {
    /// Decodes attribute bits 0-2; values 5-7 are not codecs.
    pub fn from_attributes(attributes: i16) -> Option<Compression> {
        match attributes & COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The attribute bits for this codec.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Timestamp type from attribute bit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// The producer's timestamps.
    CreateTime,
    /// The broker's append time (stored as the batch `maxTimestamp`).
    LogAppendTime,
}

/// A decoded v2 batch header. Holds values only; see [`crate::BatchView`] for the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch stamped by the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 once parsed.
    pub magic: i8,
    /// Stored CRC-32C.
    pub crc: u32,
    /// Raw attribute bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp (or the log append time).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records (as claimed).
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header fields from the first [`BATCH_HEADER_LEN`] bytes; checks only the length.
    pub fn read(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        // The length check above makes every fixed-offset read below succeed; the helpers still
        // return Option so no path can index out of bounds.
        let short = || RecordError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: buf.len(),
        };
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET_OFFSET).ok_or_else(short)?,
            batch_length: read_i32(buf, BATCH_LENGTH_OFFSET).ok_or_else(short)?,
            partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH_OFFSET)
                .ok_or_else(short)?,
            magic: read_i8(buf, MAGIC_OFFSET).ok_or_else(short)?,
            crc: read_u32(buf, CRC_OFFSET).ok_or_else(short)?,
            attributes: read_i16(buf, ATTRIBUTES_OFFSET).ok_or_else(short)?,
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_OFFSET).ok_or_else(short)?,
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_OFFSET).ok_or_else(short)?,
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_OFFSET).ok_or_else(short)?,
            producer_id: read_i64(buf, PRODUCER_ID_OFFSET).ok_or_else(short)?,
            producer_epoch: read_i16(buf, PRODUCER_EPOCH_OFFSET).ok_or_else(short)?,
            base_sequence: read_i32(buf, BASE_SEQUENCE_OFFSET).ok_or_else(short)?,
            records_count: read_i32(buf, RECORDS_COUNT_OFFSET).ok_or_else(short)?,
        })
    }

    /// Codec from the attributes; `None` for the reserved values 5-7.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes)
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Holds control records (transaction markers), written only by the broker.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// `baseTimestamp` is the compaction delete horizon (KIP-534).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// Written by an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }

    /// Offset of the last record; saturates rather than overflowing on hostile values.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset the next batch should start at.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Whole batch size including the 12-byte log overhead; `None` if `batch_length` is negative.
    pub fn total_len(&self) -> Option<usize> {
        usize::try_from(self.batch_length)
            .ok()
            .and_then(|n| n.checked_add(LOG_OVERHEAD_LEN))
    }

    /// Sequence number of the last record, wrapping at `i32::MAX` the way Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    match i32::MAX.checked_sub(increment) {
        // Here 0 <= MAX - sequence < increment, so neither step overflows.
        Some(limit) if sequence > limit => increment - (i32::MAX - sequence) - 1,
        // Hostile negative deltas must not overflow either; the result is garbage-in, garbage-out.
        _ => sequence.wrapping_add(increment),
    }
}

pub(crate) fn read_i8(buf: &[u8], at: usize) -> Option<i8> {
    buf.get(at).map(|b| i8::from_be_bytes([*b]))
}

pub(crate) fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    let bytes: [u8; 2] = buf.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(i16::from_be_bytes(bytes))
}

pub(crate) fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

pub(crate) fn read_i64(buf: &[u8], at: usize) -> Option<i64> {
    let bytes: [u8; 8] = buf.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

/// Writes `value` at `at`; false if the slice is too short (callers check lengths first).
pub(crate) fn write_bytes(buf: &mut [u8], at: usize, value: &[u8]) -> bool {
    let Some(end) = at.checked_add(value.len()) else {
        return false;
    };
    match buf.get_mut(at..end) {
        Some(dst) => {
            dst.copy_from_slice(value);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(0, i32::MAX), i32::MAX);
    }

    #[test]
    fn compression_ids_round_trip() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert_eq!(Compression::from_attributes(c.id()), Some(c));
        }
        assert_eq!(Compression::from_attributes(5), None);
        assert_eq!(Compression::from_attributes(7 | 0x08), None);
    }

    #[test]
    fn header_offsets_are_contiguous() {
        assert_eq!(BATCH_LENGTH_OFFSET, BASE_OFFSET_OFFSET + 8);
        assert_eq!(PARTITION_LEADER_EPOCH_OFFSET, BATCH_LENGTH_OFFSET + 4);
        assert_eq!(MAGIC_OFFSET, PARTITION_LEADER_EPOCH_OFFSET + 4);
        assert_eq!(CRC_OFFSET, MAGIC_OFFSET + 1);
        assert_eq!(ATTRIBUTES_OFFSET, CRC_OFFSET + 4);
        assert_eq!(LAST_OFFSET_DELTA_OFFSET, ATTRIBUTES_OFFSET + 2);
        assert_eq!(BASE_TIMESTAMP_OFFSET, LAST_OFFSET_DELTA_OFFSET + 4);
        assert_eq!(MAX_TIMESTAMP_OFFSET, BASE_TIMESTAMP_OFFSET + 8);
        assert_eq!(PRODUCER_ID_OFFSET, MAX_TIMESTAMP_OFFSET + 8);
        assert_eq!(PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET + 8);
        assert_eq!(BASE_SEQUENCE_OFFSET, PRODUCER_EPOCH_OFFSET + 2);
        assert_eq!(RECORDS_COUNT_OFFSET, BASE_SEQUENCE_OFFSET + 4);
        assert_eq!(RECORDS_OFFSET, RECORDS_COUNT_OFFSET + 4);
        assert_eq!(BATCH_HEADER_LEN, RECORDS_OFFSET);
    }

    #[test]
    fn short_header_is_truncated() {
        for len in 0..BATCH_HEADER_LEN {
            let buf = vec![0u8; len];
            assert!(matches!(
                BatchHeader::read(&buf),
                Err(RecordError::Truncated { .. })
            ));
        }
    }
}
