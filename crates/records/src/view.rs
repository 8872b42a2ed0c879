//! Zero-copy views over batches and the records inside uncompressed batches; decoded records of
//! compressed batches through [`BatchView::decode_records`].

use std::borrow::Cow;

use crate::header::{
    read_i32, read_i8, BatchHeader, Compression, BATCH_LENGTH_OFFSET, CRC_START, LOG_OVERHEAD_LEN,
    MAGIC_OFFSET, MIN_BATCH_LENGTH, RECORDS_OFFSET, V2_MAGIC,
};
use crate::varint::{decode_varint, decode_varlong};
use crate::RecordError;

/// One v2 batch: its bytes (exactly `batchLength + 12` of them) and its decoded header.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> BatchView<'a> {
    /// Parses the batch at the start of `buf`; bytes after it are ignored (see
    /// [`BatchView::parse_exact`]). Checks framing and magic only, not the CRC.
    ///
    /// The magic is checked before the length so that a garbage header reads as corruption
    /// rather than as a batch that is merely not complete yet.
    pub fn parse(buf: &'a [u8]) -> Result<BatchView<'a>, RecordError> {
        let available = buf.len();
        let truncated = |needed| RecordError::Truncated { needed, available };
        let magic = read_i8(buf, MAGIC_OFFSET).ok_or_else(|| truncated(RECORDS_OFFSET))?;
        if magic != V2_MAGIC {
            return Err(RecordError::UnsupportedMagic(magic));
        }
        let batch_length =
            read_i32(buf, BATCH_LENGTH_OFFSET).ok_or_else(|| truncated(RECORDS_OFFSET))?;
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordError::CorruptMessage(format!(
                "batch length {batch_length} is below the minimum {MIN_BATCH_LENGTH}"
            )));
        }
        // batch_length >= 49 here, so the conversion and the addition cannot fail.
        let total = usize::try_from(batch_length)
            .ok()
            .and_then(|n| n.checked_add(LOG_OVERHEAD_LEN))
            .ok_or_else(|| RecordError::CorruptMessage("batch length overflows".into()))?;
        let bytes = buf.get(..total).ok_or_else(|| truncated(total))?;
        let header = BatchHeader::read(bytes)?;
        Ok(BatchView { bytes, header })
    }

    /// Like [`BatchView::parse`] but `buf` must hold exactly one batch and nothing else.
    pub fn parse_exact(buf: &'a [u8]) -> Result<BatchView<'a>, RecordError> {
        let view = BatchView::parse(buf)?;
        if view.bytes.len() != buf.len() {
            return Err(RecordError::CorruptMessage(format!(
                "{} bytes follow a batch of {} bytes",
                buf.len() - view.bytes.len(),
                view.bytes.len()
            )));
        }
        Ok(view)
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Exactly this batch's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Size of the batch in bytes, including the log overhead.
    pub fn total_len(&self) -> usize {
        self.bytes.len()
    }

    /// The (possibly compressed) record bytes after the header.
    pub fn records_bytes(&self) -> &'a [u8] {
        self.bytes.get(RECORDS_OFFSET..).unwrap_or_default()
    }

    /// CRC-32C over bytes 21..end, as it should be stored.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(self.bytes.get(CRC_START..).unwrap_or_default())
    }

    /// Checks the stored CRC against the bytes.
    pub fn verify_crc(&self) -> Result<(), RecordError> {
        let computed = self.compute_crc();
        if computed == self.header.crc {
            Ok(())
        } else {
            Err(RecordError::CorruptMessage(format!(
                "CRC mismatch: stored {:#010x}, computed {computed:#010x}",
                self.header.crc
            )))
        }
    }

    /// Records of an uncompressed batch. For a compressed batch the iterator yields one
    /// [`RecordError::Compressed`] and ends; [`BatchView::decode_records`] reads any codec.
    pub fn records(&self) -> RecordIter<'a> {
        let pending = match self.header.compression() {
            Some(Compression::None) => None,
            Some(other) => Some(RecordError::Compressed(other)),
            None => Some(RecordError::InvalidRecord(format!(
                "unknown compression codec in attributes {:#06x}",
                self.header.attributes
            ))),
        };
        RecordIter {
            rest: self.records_bytes(),
            remaining: self.header.records_count,
            pending,
            done: false,
        }
    }
}

impl<'a> BatchView<'a> {
    /// The batch's records for any codec: borrowed for an uncompressed batch, decompressed
    /// (at most `max_uncompressed_bytes` of output) otherwise.
    pub fn decode_records(
        &self,
        max_uncompressed_bytes: usize,
    ) -> Result<DecodedRecords<'a>, RecordError> {
        let codec = self.header.compression().ok_or_else(|| {
            RecordError::InvalidRecord(format!(
                "unknown compression codec in attributes {:#06x}",
                self.header.attributes
            ))
        })?;
        let data = match codec {
            Compression::None => Cow::Borrowed(self.records_bytes()),
            other => Cow::Owned(crate::compression::decompress(
                other,
                self.records_bytes(),
                max_uncompressed_bytes,
            )?),
        };
        Ok(DecodedRecords {
            data,
            count: self.header.records_count,
        })
    }
}

/// The records section of a batch in plain form; see [`BatchView::decode_records`].
#[derive(Debug, Clone)]
pub struct DecodedRecords<'a> {
    data: Cow<'a, [u8]>,
    count: i32,
}

impl DecodedRecords<'_> {
    /// The records, with the same framing checks as [`BatchView::records`].
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            rest: &self.data,
            remaining: self.count,
            pending: None,
            done: false,
        }
    }

    /// Size of the plain records section in bytes.
    pub fn len_bytes(&self) -> usize {
        self.data.len()
    }
}

/// Iterator over back-to-back batches (a log segment, a fetch response, a produce payload).
///
/// It stops after the first error. [`BatchIter::position`] then tells where the bad batch starts,
/// which is where storage recovery truncates. [`RecordError::Truncated`] means the buffer ends
/// inside an otherwise plausible batch (a torn write); any other error means corruption.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

/// Iterates the batches in `buf`.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        pos: 0,
        done: false,
    }
}

impl<'a> BatchIter<'a> {
    /// Byte position of the next batch (after an error: of the batch that failed).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchView<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        match BatchView::parse(rest) {
            Ok(view) => {
                self.pos += view.total_len();
                Some(Ok(view))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// One record of an uncompressed batch, borrowing from the batch bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record attributes (unused by Kafka today).
    pub attributes: i8,
    /// Timestamp relative to the batch `baseTimestamp`.
    pub timestamp_delta: i64,
    /// Offset relative to the batch `baseOffset`.
    pub offset_delta: i32,
    /// Key, `None` when null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` when null (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in order; header values may be null, keys may not.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
    /// Encoded size including the leading length varint.
    pub size_bytes: usize,
}

impl Record<'_> {
    /// Absolute timestamp given the batch's base timestamp.
    pub fn timestamp(&self, base_timestamp: i64) -> i64 {
        base_timestamp.wrapping_add(self.timestamp_delta)
    }

    /// Absolute offset given the batch's base offset.
    pub fn offset(&self, base_offset: i64) -> i64 {
        base_offset.wrapping_add(i64::from(self.offset_delta))
    }
}

/// Iterator over the records of an uncompressed batch; see [`BatchView::records`].
///
/// Checks Kafka's framing rules: each record's length prefix matches its fields, the batch holds
/// exactly `recordsCount` records and no bytes after them.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    remaining: i32,
    pending: Option<RecordError>,
    done: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.remaining <= 0 {
            self.done = true;
            if self.remaining < 0 {
                return Some(Err(RecordError::InvalidRecord(format!(
                    "negative record count {}",
                    self.remaining
                ))));
            }
            if !self.rest.is_empty() {
                return Some(Err(RecordError::InvalidRecord(format!(
                    "{} bytes after the last record of the batch",
                    self.rest.len()
                ))));
            }
            return None;
        }
        let mut headers = Vec::new();
        match parse_record(self.rest, |k, v| headers.push((k, v))) {
            Ok(fields) => {
                self.rest = self.rest.get(fields.size_bytes..).unwrap_or_default();
                self.remaining -= 1;
                Some(Ok(Record {
                    attributes: fields.attributes,
                    timestamp_delta: fields.timestamp_delta,
                    offset_delta: fields.offset_delta,
                    key: fields.key,
                    value: fields.value,
                    headers,
                    size_bytes: fields.size_bytes,
                }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The fixed part of a record; headers go to a callback so validation need not allocate.
pub(crate) struct RecordFields<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub size_bytes: usize,
}

/// Parses the record at the start of `buf` (a record region may hold more after it).
#[inline]
pub(crate) fn parse_record<'a>(
    buf: &'a [u8],
    mut on_header: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Result<RecordFields<'a>, RecordError> {
    let (body_len, prefix_len) = decode_varint(buf)?;
    let body_len = usize::try_from(body_len)
        .map_err(|_| RecordError::InvalidRecord(format!("negative record length {body_len}")))?;
    let size_bytes = prefix_len
        .checked_add(body_len)
        .ok_or_else(|| RecordError::InvalidRecord("record length overflows".into()))?;
    let body = buf.get(prefix_len..size_bytes).ok_or_else(|| {
        RecordError::InvalidRecord(format!(
            "record of {body_len} bytes runs past the end of the batch"
        ))
    })?;
    let mut c = Cursor { buf: body, pos: 0 };
    let attributes = c.i8()?;
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.nullable_bytes()?;
    let value = c.nullable_bytes()?;
    let header_count = c.varint()?;
    if header_count < 0 {
        return Err(RecordError::InvalidRecord(format!(
            "negative header count {header_count}"
        )));
    }
    // Every header takes at least two bytes, so this loop ends within the record's own bytes.
    for _ in 0..header_count {
        let key_len = c.varint()?;
        if key_len < 0 {
            return Err(RecordError::InvalidRecord("null header key".into()));
        }
        let key = c.take(key_len)?;
        let value = c.nullable_bytes()?;
        on_header(key, value);
    }
    if c.pos != body.len() {
        return Err(RecordError::InvalidRecord(format!(
            "record length {body_len} but its fields use {} bytes",
            c.pos
        )));
    }
    Ok(RecordFields {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        size_bytes,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    #[inline]
    fn i8(&mut self) -> Result<i8, RecordError> {
        let v = read_i8(self.buf, self.pos)
            .ok_or_else(|| RecordError::InvalidRecord("record too short".into()))?;
        self.pos += 1;
        Ok(v)
    }

    #[inline]
    fn varint(&mut self) -> Result<i32, RecordError> {
        let (v, n) = decode_varint(self.rest())?;
        self.pos += n;
        Ok(v)
    }

    #[inline]
    fn varlong(&mut self) -> Result<i64, RecordError> {
        let (v, n) = decode_varlong(self.rest())?;
        self.pos += n;
        Ok(v)
    }

    #[inline]
    fn take(&mut self, len: i32) -> Result<&'a [u8], RecordError> {
        let len = usize::try_from(len)
            .map_err(|_| RecordError::InvalidRecord(format!("negative field length {len}")))?;
        let end = self
            .pos
            .checked_add(len)
            .ok_or_else(|| RecordError::InvalidRecord("field length overflows".into()))?;
        let out = self.buf.get(self.pos..end).ok_or_else(|| {
            RecordError::InvalidRecord(format!("field of {len} bytes runs past its record"))
        })?;
        self.pos = end;
        Ok(out)
    }

    #[inline]
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < -1 => Err(RecordError::InvalidRecord(format!(
                "invalid field length {n}"
            ))),
            n => self.take(n).map(Some),
        }
    }
}
