//! [`BatchBuilder`]: writes v2 batches, in any codec, with a correct CRC.
//!
//! Used by tests across the workspace, for records the broker writes itself, for broker-side
//! recompression and by the log cleaner (which needs explicit offset deltas, an overridden last
//! offset delta and KIP-534's delete horizon). It buffers the records it is given and encodes
//! everything in [`BatchBuilder::try_build`], so the order of the setter calls does not matter.

use crate::header::{
    Compression, TimestampType, ATTRIBUTES_OFFSET, BATCH_HEADER_LEN, COMPRESSION_MASK, CONTROL_BIT,
    CRC_OFFSET, CRC_START, DELETE_HORIZON_BIT, LOG_OVERHEAD_LEN, NO_PRODUCER_ID, NO_SEQUENCE,
    NO_TIMESTAMP, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT, V2_MAGIC,
};
use crate::varint::{encode_varint, encode_varlong};
use crate::RecordError;

/// Leader epoch written by producers before the broker stamps its own.
const NO_PARTITION_LEADER_EPOCH: i32 = -1;

#[derive(Debug, Clone)]
struct PendingRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    timestamp_ms: i64,
    /// `None`: the record's position in the batch.
    offset_delta: Option<i32>,
}

/// Builds one v2 batch.
///
/// ```
/// use rafka_records::{BatchBuilder, BatchView};
/// let bytes = BatchBuilder::new(0)
///     .producer(7, 0, 0)
///     .record(Some(b"k"), Some(b"v"), &[(b"h", None)], 1_000)
///     .build();
/// let view = BatchView::parse_exact(&bytes).unwrap();
/// assert!(view.verify_crc().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: i16,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    base_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    last_offset_delta: Option<i32>,
    /// Set by [`BatchBuilder::compression`]: the records section is really compressed.
    codec: Option<(Compression, Option<i32>)>,
    records: Vec<PendingRecord>,
}

impl BatchBuilder {
    /// A batch whose first record gets `base_offset`; non-idempotent, CreateTime, uncompressed.
    pub fn new(base_offset: i64) -> BatchBuilder {
        BatchBuilder {
            base_offset,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            attributes: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
            base_timestamp: None,
            max_timestamp: None,
            last_offset_delta: None,
            codec: None,
            records: Vec::new(),
        }
    }

    /// Idempotent-producer fields.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Base timestamp; without it the first record's timestamp is used, as Kafka's builder does.
    pub fn timestamp(mut self, base_timestamp_ms: i64) -> Self {
        self.base_timestamp = Some(base_timestamp_ms);
        self
    }

    /// Partition leader epoch (the broker normally stamps this).
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Timestamp type bit.
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        match timestamp_type {
            TimestampType::CreateTime => self.attributes &= !TIMESTAMP_TYPE_BIT,
            TimestampType::LogAppendTime => self.attributes |= TIMESTAMP_TYPE_BIT,
        }
        self
    }

    /// Transactional bit.
    pub fn transactional(mut self, on: bool) -> Self {
        self.set_bit(TRANSACTIONAL_BIT, on);
        self
    }

    /// Control bit (transaction markers).
    pub fn control(mut self, on: bool) -> Self {
        self.set_bit(CONTROL_BIT, on);
        self
    }

    /// Sets the compression bits only; the records are still written uncompressed. Useful to
    /// exercise code that must treat a compressed batch as opaque.
    pub fn compression_bits(mut self, compression: Compression) -> Self {
        self.attributes = (self.attributes & !COMPRESSION_MASK) | compression.id();
        self.codec = None;
        self
    }

    /// Compresses the records section with `codec` at `level` (`None`: Kafka's default for
    /// the codec); see [`crate::compression::compress`].
    pub fn compression(mut self, codec: Compression, level: Option<i32>) -> Self {
        self.attributes = (self.attributes & !COMPRESSION_MASK) | codec.id();
        self.codec = Some((codec, level));
        self
    }

    /// Overrides `lastOffsetDelta` (otherwise the largest record offset delta, or -1 when
    /// empty). The cleaner keeps a batch's original last offset when it drops records, so the
    /// producer's sequence range stays what it was.
    pub fn last_offset_delta(mut self, delta: i32) -> Self {
        self.last_offset_delta = Some(delta);
        self
    }

    /// Marks the batch with KIP-534's delete horizon: attribute bit 6 set and `baseTimestamp`
    /// holding `horizon_ms` (record timestamps are then deltas from it).
    pub fn delete_horizon(mut self, horizon_ms: i64) -> Self {
        self.set_bit(DELETE_HORIZON_BIT, true);
        self.base_timestamp = Some(horizon_ms);
        self
    }

    /// Overrides `maxTimestamp` (otherwise the largest record timestamp).
    pub fn max_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.max_timestamp = Some(timestamp_ms);
        self
    }

    /// Appends a record; its offset delta is its position in the batch.
    pub fn record(
        self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
        timestamp_ms: i64,
    ) -> Self {
        self.push(None, key, value, headers, timestamp_ms)
    }

    /// Appends a record with an explicit offset delta (compacted batches have gaps). Deltas
    /// must increase through the batch; that is the caller's to keep.
    pub fn record_with_offset_delta(
        self,
        offset_delta: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
        timestamp_ms: i64,
    ) -> Self {
        self.push(Some(offset_delta), key, value, headers, timestamp_ms)
    }

    fn push(
        mut self,
        offset_delta: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
        timestamp_ms: i64,
    ) -> Self {
        self.records.push(PendingRecord {
            offset_delta,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
            timestamp_ms,
        });
        self
    }

    fn set_bit(&mut self, bit: i16, on: bool) {
        if on {
            self.attributes |= bit;
        } else {
            self.attributes &= !bit;
        }
    }

    /// Encodes the batch; see [`BatchBuilder::try_build`]. If compression failed (the codecs
    /// write to memory, so that does not happen in practice) the batch is written uncompressed,
    /// which is still a correct batch with the same records.
    pub fn build(&self) -> Vec<u8> {
        match self.try_build() {
            Ok(bytes) => bytes,
            Err(_) => {
                let mut plain = self.clone();
                plain.codec = None;
                plain.attributes &= !COMPRESSION_MASK;
                plain.try_build().unwrap_or_default()
            }
        }
    }

    /// Encodes the batch, compressing its records if [`BatchBuilder::compression`] was set.
    /// Lengths beyond `i32::MAX` saturate (and then fail validation): callers bound their input.
    pub fn try_build(&self) -> Result<Vec<u8>, RecordError> {
        let base_timestamp = self
            .base_timestamp
            .or_else(|| self.records.first().map(|r| r.timestamp_ms))
            .unwrap_or(NO_TIMESTAMP);
        let max_timestamp = self.max_timestamp.unwrap_or_else(|| {
            self.records
                .iter()
                .map(|r| r.timestamp_ms)
                .max()
                .unwrap_or(NO_TIMESTAMP)
        });
        let count = to_i32(self.records.len());
        let last_offset_delta = self.last_offset_delta.unwrap_or_else(|| {
            self.records
                .iter()
                .enumerate()
                .map(|(i, r)| r.offset_delta.unwrap_or(to_i32(i)))
                .max()
                .unwrap_or(-1)
        });

        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + 32 * self.records.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // batch length, patched below
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(V2_MAGIC as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // CRC, patched below
        debug_assert_eq!(out.len(), ATTRIBUTES_OFFSET);
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        debug_assert_eq!(out.len(), BATCH_HEADER_LEN);

        let mut records = Vec::new();
        let mut body = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            body.clear();
            body.push(0); // record attributes
            encode_varlong(r.timestamp_ms.wrapping_sub(base_timestamp), &mut body);
            encode_varint(r.offset_delta.unwrap_or(to_i32(i)), &mut body);
            put_nullable(&mut body, r.key.as_deref());
            put_nullable(&mut body, r.value.as_deref());
            encode_varint(to_i32(r.headers.len()), &mut body);
            for (k, v) in &r.headers {
                put_nullable(&mut body, Some(k));
                put_nullable(&mut body, v.as_deref());
            }
            encode_varint(to_i32(body.len()), &mut records);
            records.extend_from_slice(&body);
        }
        match self.codec {
            Some((codec, level)) if codec != Compression::None => {
                out.extend_from_slice(&crate::compression::compress(codec, level, &records)?);
            }
            _ => out.extend_from_slice(&records),
        }

        let batch_length = to_i32(out.len().saturating_sub(LOG_OVERHEAD_LEN));
        patch(&mut out, 8, &batch_length.to_be_bytes());
        let crc = crc32c::crc32c(out.get(CRC_START..).unwrap_or_default());
        patch(&mut out, CRC_OFFSET, &crc.to_be_bytes());
        Ok(out)
    }
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => encode_varint(-1, out),
        Some(b) => {
            encode_varint(to_i32(b.len()), out);
            out.extend_from_slice(b);
        }
    }
}

fn patch(out: &mut [u8], at: usize, value: &[u8]) {
    crate::header::write_bytes(out, at, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchView, RecordError};

    #[test]
    fn round_trip_through_view() {
        let bytes = BatchBuilder::new(42)
            .producer(9, 3, 100)
            .partition_leader_epoch(5)
            .record(Some(b"k1"), Some(b"v1"), &[], 1_000)
            .record(None, None, &[(b"h1", Some(b"x")), (b"h2", None)], 1_005)
            .record(Some(b""), Some(&[7u8; 300]), &[], 999)
            .build();
        let view = BatchView::parse_exact(&bytes).unwrap();
        view.verify_crc().unwrap();
        let h = view.header();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.partition_leader_epoch, 5);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.last_offset(), 44);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_005);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (9, 3, 100)
        );
        assert_eq!(h.last_sequence(), 102);
        assert_eq!(h.total_len(), Some(bytes.len()));
        assert_eq!(h.compression(), Some(Compression::None));
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional() && !h.is_control());

        let records: Vec<_> = view.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key, Some(&b"k1"[..]));
        assert_eq!(records[0].value, Some(&b"v1"[..]));
        assert_eq!(records[0].timestamp(h.base_timestamp), 1_000);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, None);
        assert_eq!(
            records[1].headers,
            vec![(&b"h1"[..], Some(&b"x"[..])), (&b"h2"[..], None)]
        );
        assert_eq!(records[1].offset(h.base_offset), 43);
        assert_eq!(records[2].key, Some(&b""[..]));
        assert_eq!(records[2].value.map(<[u8]>::len), Some(300));
        assert_eq!(records[2].timestamp_delta, -1);
        let sum: usize = records.iter().map(|r| r.size_bytes).sum();
        assert_eq!(sum + BATCH_HEADER_LEN, bytes.len());
    }

    #[test]
    fn flags_are_written() {
        let bytes = BatchBuilder::new(0)
            .transactional(true)
            .control(true)
            .timestamp_type(TimestampType::LogAppendTime)
            .compression_bits(Compression::Zstd)
            .record(None, Some(b"v"), &[], 5)
            .build();
        let view = BatchView::parse_exact(&bytes).unwrap();
        let h = view.header();
        assert!(h.is_transactional() && h.is_control());
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.compression(), Some(Compression::Zstd));
        let first = view.records().next().unwrap();
        assert_eq!(first, Err(RecordError::Compressed(Compression::Zstd)));
        assert_eq!(view.records().count(), 1);
    }

    #[test]
    fn explicit_base_timestamp_and_empty_batch() {
        let bytes = BatchBuilder::new(0)
            .timestamp(500)
            .record(None, Some(b"v"), &[], 700)
            .build();
        let view = BatchView::parse_exact(&bytes).unwrap();
        let r = view.records().next().unwrap().unwrap();
        assert_eq!(r.timestamp_delta, 200);

        let empty = BatchBuilder::new(0).build();
        assert_eq!(empty.len(), BATCH_HEADER_LEN);
        let view = BatchView::parse_exact(&empty).unwrap();
        view.verify_crc().unwrap();
        assert_eq!(view.header().records_count, 0);
        assert_eq!(view.records().count(), 0);
    }

    #[test]
    fn compressed_batches_decode_to_the_same_records() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut b = BatchBuilder::new(100)
                .producer(4, 1, 7)
                .compression(codec, None);
            for i in 0..50u32 {
                let v = vec![b'x'; 200];
                b = b.record(
                    Some(&i.to_be_bytes()),
                    Some(&v),
                    &[(b"h", Some(b"1"))],
                    10 + i64::from(i),
                );
            }
            let bytes = b.try_build().unwrap();
            let view = BatchView::parse_exact(&bytes).unwrap();
            view.verify_crc().unwrap();
            assert_eq!(view.header().compression(), Some(codec));
            assert!(
                bytes.len() < 50 * 200 / 2,
                "{codec:?} compressed to {}",
                bytes.len()
            );
            assert_eq!(view.header().last_offset_delta, 49);
            let decoded = view.decode_records(1 << 20).unwrap();
            let records: Vec<_> = decoded.iter().collect::<Result<_, _>>().unwrap();
            assert_eq!(records.len(), 50);
            assert_eq!(records[7].key, Some(&7u32.to_be_bytes()[..]));
            assert_eq!(records[7].offset(100), 107);
            assert_eq!(records[49].timestamp(view.header().base_timestamp), 59);
            assert_eq!(records[3].headers, vec![(&b"h"[..], Some(&b"1"[..]))]);
            // The cap applies to the decompressed size.
            assert!(view.decode_records(100).is_err());
        }
    }

    #[test]
    fn cleaner_shapes_gaps_last_offset_and_delete_horizon() {
        let bytes = BatchBuilder::new(1000)
            .producer(3, 0, 40)
            .delete_horizon(5_000)
            .last_offset_delta(9)
            .record_with_offset_delta(2, Some(b"a"), None, &[], 4_000)
            .record_with_offset_delta(6, Some(b"b"), Some(b"v"), &[], 4_100)
            .compression(Compression::Zstd, Some(5))
            .try_build()
            .unwrap();
        let view = BatchView::parse_exact(&bytes).unwrap();
        view.verify_crc().unwrap();
        let h = view.header();
        assert!(h.has_delete_horizon());
        assert_eq!(h.base_timestamp, 5_000);
        assert_eq!(h.max_timestamp, 4_100);
        assert_eq!(h.records_count, 2);
        assert_eq!(h.last_offset(), 1009);
        assert_eq!(h.last_sequence(), 49);
        let decoded = view.decode_records(1 << 20).unwrap();
        let r: Vec<_> = decoded.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(r[0].offset(h.base_offset), 1002);
        assert_eq!(r[0].timestamp(h.base_timestamp), 4_000);
        assert_eq!(r[1].offset(h.base_offset), 1006);

        // Without an override the last delta follows the largest record delta; empty stays -1.
        let bytes = BatchBuilder::new(0)
            .record_with_offset_delta(4, Some(b"k"), Some(b"v"), &[], 1)
            .max_timestamp(77)
            .build();
        let h = *BatchView::parse_exact(&bytes).unwrap().header();
        assert_eq!((h.last_offset_delta, h.max_timestamp), (4, 77));
        let empty = BatchBuilder::new(0)
            .producer(1, 0, 5)
            .last_offset_delta(3)
            .build();
        let h = *BatchView::parse_exact(&empty).unwrap().header();
        assert_eq!(
            (h.records_count, h.last_offset_delta, h.last_sequence()),
            (0, 3, 8)
        );
    }
}
