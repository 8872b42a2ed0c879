//! The key and value formats of `__transaction_state`, byte-compatible with Apache Kafka 4.1.
//!
//! Kafka's transaction coordinator persists the state of every transactional id as one compacted
//! record in `__transaction_state`. Key and value each start with a big-endian `i16`; the rest is
//! one of Kafka's generated message schemas
//! (`transaction-coordinator/src/main/resources/common/message/TransactionLog{Key,Value}.json`):
//!
//! | key `i16` | key / value schemas                          | value versions read | written |
//! |-----------|----------------------------------------------|---------------------|---------|
//! | 0         | `TransactionLogKey` / `TransactionLogValue`  | 0-1                 | 0 or 1  |
//! | other     | nothing Kafka defines                        | skipped             | never   |
//!
//! The key's `i16` is the record type (Kafka 4.1 calls it the coordinator record `apiKey`; the
//! only type is 0), followed by a non-flexible `TransactionalId` string.
//!
//! The value's `i16` is its schema version:
//!
//! - **v0** (non-flexible): `ProducerId i64, ProducerEpoch i16, TransactionTimeoutMs i32,
//!   TransactionStatus i8, TransactionPartitions [Topic string, PartitionIds [i32]] (nullable),
//!   TransactionLastUpdateTimestampMs i64, TransactionStartTimestampMs i64`.
//! - **v1** (flexible, KIP-890 / KIP-1022): the same fields with compact lengths and a
//!   tagged-field section after each partition entry and after the value, where tag 0 is
//!   `PreviousProducerId` (i64, default -1), tag 1 `NextProducerId` (i64, default -1) and tag 2
//!   `ClientTransactionVersion` (i16, default 0). Tagged fields are written only when they differ
//!   from their default.
//!
//! Which version is written follows the cluster's finalized `transaction.version`, as in
//! Kafka 4.1: level 0 writes v0, level 1 and above write v1
//! ([`crate::TransactionVersion::log_value_version`]). For a Transactions V1 client on a v1
//! cluster that means a v1 value with an empty tagged-field section: Kafka 4.1 does not set
//! `PreviousProducerId` / `NextProducerId` when it writes, and such a client's
//! `ClientTransactionVersion` is 0, the default.
//!
//! Decoding is total: no input makes it panic, every length is checked against the bytes left
//! before anything is allocated, and bytes after a complete message are ignored (as Kafka's
//! `ByteBufferAccessor` reads do). Strings are decoded the way Java's `new String(bytes, UTF_8)`
//! does, replacing invalid UTF-8 rather than failing. Unknown tags are skipped. A known tag whose
//! size is not its type's size is refused: Kafka's generated reader would read the type's size
//! regardless and lose its place in the message.

use crate::metadata::TransactionState;
use rafka_coordinator_common::wire::{Reader, WireError, Writer};

/// Longest string Kafka's generated serializers accept, flexible or not (`0x7fff` bytes).
pub use rafka_coordinator_common::wire::MAX_STRING_LEN;

/// Record type (key version) of a transactional id's state.
pub const TRANSACTION_LOG_KEY_VERSION: i16 = 0;

/// Highest `TransactionLogValue` version this module reads (Kafka 4.1's `validVersions: 0-1`).
pub const TRANSACTION_LOG_VALUE_MAX_VERSION: i16 = 1;

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// Why a `__transaction_state` key or value could not be decoded (or, for the `try_encode_*`
/// functions, encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFormatError {
    /// The input ended inside a field.
    #[error("truncated {field}: needs {needed} bytes, only {remaining} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// The value's version is outside the versions its schema defines.
    #[error(
        "TransactionLogValue version {version} is not supported (this broker reads 0..={max})"
    )]
    UnsupportedValueVersion { version: i16, max: i16 },
    /// A field the schema declares non-nullable was written as null.
    #[error("non-nullable field {field} was serialized as null")]
    NullField { field: &'static str },
    /// A length prefix no valid encoder writes (e.g. a compact string over 0x7fff bytes, or a
    /// known tagged field whose size is not its type's).
    #[error("field {field} has invalid length {length}")]
    InvalidLength { field: &'static str, length: i64 },
    /// An array claims more elements than there are bytes left to hold them.
    #[error("array {field} claims {count} elements but only {remaining} bytes are left")]
    ArrayTooLong {
        field: &'static str,
        count: usize,
        remaining: usize,
    },
    /// An unsigned varint longer than 5 bytes or wider than 32 bits.
    #[error("malformed unsigned varint in {field}")]
    InvalidVarint { field: &'static str },
    /// `TransactionStatus` is not one of Kafka's state ids.
    #[error("unknown transaction state id {id}")]
    UnknownTransactionStatus { id: i8 },
    /// Encoding only: a field is longer than its length prefix can say.
    #[error("field {field} is {length} bytes, more than the {max} its schema can hold")]
    FieldTooLong {
        field: &'static str,
        length: usize,
        max: usize,
    },
    /// Encoding only: the version has no room for a non-default value of this field (a tagged
    /// field at v0), or no such version exists.
    #[error("field {field} cannot be written at TransactionLogValue version {version}")]
    UnsupportedFieldAtVersion { field: &'static str, version: i16 },
}

impl From<WireError> for RecordFormatError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated {
                field,
                needed,
                remaining,
            } => RecordFormatError::Truncated {
                field,
                needed,
                remaining,
            },
            WireError::UnsupportedValueVersion { version, max, .. } => {
                RecordFormatError::UnsupportedValueVersion { version, max }
            }
            WireError::NullField { field } => RecordFormatError::NullField { field },
            WireError::InvalidLength { field, length } => {
                RecordFormatError::InvalidLength { field, length }
            }
            WireError::ArrayTooLong {
                field,
                count,
                remaining,
            } => RecordFormatError::ArrayTooLong {
                field,
                count,
                remaining,
            },
            WireError::InvalidVarint { field } => RecordFormatError::InvalidVarint { field },
            WireError::FieldTooLong { field, length, max } => {
                RecordFormatError::FieldTooLong { field, length, max }
            }
        }
    }
}

/// One topic of a transaction and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionsSchema {
    pub topic: String,
    pub partition_ids: Vec<i32>,
}

/// Value of a transactional id's record, every field of every version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLogValue {
    pub producer_id: i64,
    /// Tag 0 (v1+); -1 when absent.
    pub previous_producer_id: i64,
    /// Tag 1 (v1+); -1 when absent.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    /// `TransactionStatus`, decoded.
    pub state: TransactionState,
    /// `None` is the null array Kafka writes for `Empty`.
    pub partitions: Option<Vec<PartitionsSchema>>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    /// Tag 2 (v1+); 0 when absent.
    pub client_transaction_version: i16,
}

/// A decoded `__transaction_state` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnLogRecord {
    Transaction {
        transactional_id: String,
        /// `None` = tombstone (the transactional id expired).
        value: Option<TransactionLogValue>,
    },
    /// A key type this coordinator does not know: skipped on load, as Kafka's loader does
    /// ("It could be a left over from an aborted upgrade").
    Other { key_version: i16 },
}

// ------------------------------------------------------------------------------------ encode --

/// Encodes a record key. An id longer than [`MAX_STRING_LEN`] bytes cannot be represented
/// (Kafka's serializer throws); it is cut at a character boundary. Use [`try_encode_key`] to get
/// an error instead.
#[must_use]
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    write_key(transactional_id).finish_lossy()
}

/// Encodes a record key, or fails if the id is too long for the schema.
pub fn try_encode_key(transactional_id: &str) -> Result<Vec<u8>, RecordFormatError> {
    Ok(write_key(transactional_id).finish()?)
}

/// Encodes a value at `version` (0 or 1; anything else is written as 1). At version 0 the tagged
/// fields are dropped, and over-long strings are cut; [`try_encode_value`] reports both instead.
#[must_use]
pub fn encode_value(v: &TransactionLogValue, version: i16) -> Vec<u8> {
    write_value(v, version).finish_lossy()
}

/// Encodes a value at `version`, or fails if it cannot be represented there.
pub fn try_encode_value(
    v: &TransactionLogValue,
    version: i16,
) -> Result<Vec<u8>, RecordFormatError> {
    if !(0..=TRANSACTION_LOG_VALUE_MAX_VERSION).contains(&version) {
        return Err(RecordFormatError::UnsupportedFieldAtVersion {
            field: "TransactionLogValue",
            version,
        });
    }
    if version == 0 {
        let tagged = [
            ("PreviousProducerId", v.previous_producer_id != -1),
            ("NextProducerId", v.next_producer_id != -1),
            (
                "ClientTransactionVersion",
                v.client_transaction_version != 0,
            ),
        ];
        if let Some((field, _)) = tagged.iter().find(|(_, set)| *set) {
            return Err(RecordFormatError::UnsupportedFieldAtVersion { field, version });
        }
    }
    Ok(write_value(v, version).finish()?)
}

fn write_key(transactional_id: &str) -> Writer {
    let mut w = Writer::new();
    w.i16(TRANSACTION_LOG_KEY_VERSION);
    w.string("TransactionalId", transactional_id, false);
    w
}

fn write_value(v: &TransactionLogValue, version: i16) -> Writer {
    let flexible = version != 0;
    let mut w = Writer::new();
    w.i16(if flexible { 1 } else { 0 });
    w.i64(v.producer_id);
    w.i16(v.producer_epoch);
    w.i32(v.transaction_timeout_ms);
    w.i8(v.state.id());
    match &v.partitions {
        None => w.null_array(flexible),
        Some(topics) => {
            let n = w.array_len("TransactionPartitions", topics.len(), flexible);
            for t in topics.iter().take(n) {
                w.string("Topic", &t.topic, flexible);
                let m = w.array_len("PartitionIds", t.partition_ids.len(), flexible);
                for id in t.partition_ids.iter().take(m) {
                    w.i32(*id);
                }
                if flexible {
                    // No tagged fields in a partition entry.
                    w.uvarint(0);
                }
            }
        }
    }
    w.i64(v.last_update_timestamp_ms);
    w.i64(v.start_timestamp_ms);
    if flexible {
        // Tags in ascending order, each only when it differs from its default (what Kafka's
        // generated writer does).
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        if v.previous_producer_id != -1 {
            tags.push((
                TAG_PREVIOUS_PRODUCER_ID,
                v.previous_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if v.next_producer_id != -1 {
            tags.push((
                TAG_NEXT_PRODUCER_ID,
                v.next_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if v.client_transaction_version != 0 {
            tags.push((
                TAG_CLIENT_TRANSACTION_VERSION,
                v.client_transaction_version.to_be_bytes().to_vec(),
            ));
        }
        // At most three tags, each a handful of bytes: the casts cannot truncate.
        w.uvarint(tags.len() as u32);
        for (tag, body) in tags {
            w.uvarint(tag);
            w.uvarint(body.len() as u32);
            w.raw(&body);
        }
    }
    w
}

// ------------------------------------------------------------------------------------ decode --

/// Decodes one `__transaction_state` record. `value` is `None` for a tombstone.
///
/// A key type other than 0 decodes to [`TxnLogRecord::Other`] without reading the rest of the
/// key or the value, so the loader can skip it the way Kafka does.
pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<TxnLogRecord, RecordFormatError> {
    let mut k = Reader::new(key);
    let key_version = k.i16("key version")?;
    if key_version != TRANSACTION_LOG_KEY_VERSION {
        return Ok(TxnLogRecord::Other { key_version });
    }
    let transactional_id = k.string("TransactionLogKey.TransactionalId", false)?;
    let value = value.map(decode_value).transpose()?.map(|(_, v)| v);
    Ok(TxnLogRecord::Transaction {
        transactional_id,
        value,
    })
}

/// Decodes a value on its own, returning its version too.
pub fn decode_value(value: &[u8]) -> Result<(i16, TransactionLogValue), RecordFormatError> {
    let mut r = Reader::new(value);
    let version = r.i16("TransactionLogValue version")?;
    if !(0..=TRANSACTION_LOG_VALUE_MAX_VERSION).contains(&version) {
        return Err(RecordFormatError::UnsupportedValueVersion {
            version,
            max: TRANSACTION_LOG_VALUE_MAX_VERSION,
        });
    }
    let flexible = version >= 1;
    let producer_id = r.i64("TransactionLogValue.ProducerId")?;
    let producer_epoch = r.i16("TransactionLogValue.ProducerEpoch")?;
    let transaction_timeout_ms = r.i32("TransactionLogValue.TransactionTimeoutMs")?;
    let status = r.i8("TransactionLogValue.TransactionStatus")?;
    let state = TransactionState::from_id(status)
        .ok_or(RecordFormatError::UnknownTransactionStatus { id: status })?;
    let partitions =
        match r.nullable_array_len("TransactionLogValue.TransactionPartitions", flexible)? {
            None => None,
            Some(count) => {
                // A topic entry takes at least a length and a count: 1 + 1 (+ 1 tag count) bytes
                // flexible, 2 + 4 otherwise.
                let min_entry = if flexible { 3 } else { 6 };
                let mut topics = Vec::with_capacity(count.min(r.remaining() / min_entry));
                for _ in 0..count {
                    let topic = r.string("PartitionsSchema.Topic", flexible)?;
                    let n = r.array_len("PartitionsSchema.PartitionIds", flexible)?;
                    let mut partition_ids = Vec::with_capacity(n.min(r.remaining() / 4));
                    for _ in 0..n {
                        partition_ids.push(r.i32("PartitionsSchema.PartitionIds")?);
                    }
                    if flexible {
                        r.skip_tagged_fields("PartitionsSchema")?;
                    }
                    topics.push(PartitionsSchema {
                        topic,
                        partition_ids,
                    });
                }
                Some(topics)
            }
        };
    let last_update_timestamp_ms = r.i64("TransactionLogValue.TransactionLastUpdateTimestampMs")?;
    let start_timestamp_ms = r.i64("TransactionLogValue.TransactionStartTimestampMs")?;
    let mut value = TransactionLogValue {
        producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch,
        transaction_timeout_ms,
        state,
        partitions,
        last_update_timestamp_ms,
        start_timestamp_ms,
        client_transaction_version: 0,
    };
    if flexible {
        let count = r.uvarint("TransactionLogValue tagged fields")?;
        for _ in 0..count {
            let tag = r.uvarint("TransactionLogValue tag")?;
            let size = r.uvarint("TransactionLogValue tag size")? as usize;
            let body = r.take(size, "TransactionLogValue tagged field")?;
            let mut b = Reader::new(body);
            let expect = |n: usize, field: &'static str| {
                if size == n {
                    Ok(())
                } else {
                    Err(RecordFormatError::InvalidLength {
                        field,
                        length: size as i64,
                    })
                }
            };
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => {
                    expect(8, "TransactionLogValue.PreviousProducerId")?;
                    value.previous_producer_id = b.i64("TransactionLogValue.PreviousProducerId")?;
                }
                TAG_NEXT_PRODUCER_ID => {
                    expect(8, "TransactionLogValue.NextProducerId")?;
                    value.next_producer_id = b.i64("TransactionLogValue.NextProducerId")?;
                }
                TAG_CLIENT_TRANSACTION_VERSION => {
                    expect(2, "TransactionLogValue.ClientTransactionVersion")?;
                    value.client_transaction_version =
                        b.i16("TransactionLogValue.ClientTransactionVersion")?;
                }
                // Tags of later Kafka versions: skipped, as Kafka keeps them as unknown.
                _ => {}
            }
        }
    }
    Ok((version, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses hex, ignoring whitespace and `|` separators.
    fn unhex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(|c| !c.is_ascii_whitespace() && *c != b'|')
            .collect();
        assert_eq!(digits.len() % 2, 0, "odd hex length");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn empty_value() -> TransactionLogValue {
        TransactionLogValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 0,
            transaction_timeout_ms: 60_000,
            state: TransactionState::Empty,
            partitions: None,
            last_update_timestamp_ms: 1_700_000_000_000,
            start_timestamp_ms: -1,
            client_transaction_version: 0,
        }
    }

    fn ongoing_value() -> TransactionLogValue {
        TransactionLogValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            transaction_timeout_ms: 60_000,
            state: TransactionState::Ongoing,
            partitions: Some(vec![
                PartitionsSchema {
                    topic: "foo".into(),
                    partition_ids: vec![0, 1],
                },
                PartitionsSchema {
                    topic: "__consumer_offsets".into(),
                    partition_ids: vec![7],
                },
            ]),
            last_update_timestamp_ms: 1_700_000_000_500,
            start_timestamp_ms: 1_700_000_000_100,
            client_transaction_version: 0,
        }
    }

    // 1_700_000_000_000 = 0x0000018BCFE56800, +100 = ..6864, +500 = ..69F4.
    const EMPTY_V0: &str = "0000 | 00000000000003E8 | 0000 | 0000EA60 | 00 | FFFFFFFF \
                            | 0000018BCFE56800 | FFFFFFFFFFFFFFFF";
    const EMPTY_V1: &str = "0001 | 00000000000003E8 | 0000 | 0000EA60 | 00 | 00 \
                            | 0000018BCFE56800 | FFFFFFFFFFFFFFFF | 00";
    const ONGOING_V0: &str = "0000 | 00000000000003E8 | 0003 | 0000EA60 | 01 \
        | 00000002 \
        | 0003 666F6F | 00000002 00000000 00000001 \
        | 0012 5F5F636F6E73756D65725F6F666673657473 | 00000001 00000007 \
        | 0000018BCFE569F4 | 0000018BCFE56864";
    const ONGOING_V1: &str = "0001 | 00000000000003E8 | 0003 | 0000EA60 | 01 \
        | 03 \
        | 04 666F6F | 03 00000000 00000001 | 00 \
        | 13 5F5F636F6E73756D65725F6F666673657473 | 02 00000007 | 00 \
        | 0000018BCFE569F4 | 0000018BCFE56864 | 00";

    #[test]
    fn key_golden_bytes() {
        assert_eq!(encode_key("txn-1"), unhex("0000 | 0005 | 74786E2D31"));
        assert_eq!(
            decode_record(&unhex("0000 0005 74786E2D31"), None),
            Ok(TxnLogRecord::Transaction {
                transactional_id: "txn-1".into(),
                value: None
            }),
            "a tombstone"
        );
    }

    #[test]
    fn value_golden_bytes_v0_and_v1() {
        assert_eq!(encode_value(&empty_value(), 0), unhex(EMPTY_V0));
        assert_eq!(encode_value(&empty_value(), 1), unhex(EMPTY_V1));
        assert_eq!(encode_value(&ongoing_value(), 0), unhex(ONGOING_V0));
        assert_eq!(encode_value(&ongoing_value(), 1), unhex(ONGOING_V1));
        for (hex, version, v) in [
            (EMPTY_V0, 0, empty_value()),
            (EMPTY_V1, 1, empty_value()),
            (ONGOING_V0, 0, ongoing_value()),
            (ONGOING_V1, 1, ongoing_value()),
        ] {
            assert_eq!(decode_value(&unhex(hex)), Ok((version, v)));
        }
    }

    #[test]
    fn complete_state_has_an_empty_not_null_partition_list() {
        let v = TransactionLogValue {
            state: TransactionState::CompleteCommit,
            partitions: Some(Vec::new()),
            ..ongoing_value()
        };
        let v0 = encode_value(&v, 0);
        assert_eq!(&v0[17..21], &[0, 0, 0, 0]);
        let v1 = encode_value(&v, 1);
        assert_eq!(v1[17], 0x01, "compact length 0 + 1");
        assert_eq!(decode_value(&v1), Ok((1, v)));
    }

    #[test]
    fn tagged_fields_are_written_when_set_and_read_back() {
        let v = TransactionLogValue {
            previous_producer_id: 5,
            next_producer_id: 6,
            client_transaction_version: 2,
            ..empty_value()
        };
        let bytes = encode_value(&v, 1);
        let tail = unhex("03 | 00 08 0000000000000005 | 01 08 0000000000000006 | 02 02 0002");
        assert!(bytes.ends_with(&tail), "{bytes:02x?}");
        assert_eq!(decode_value(&bytes), Ok((1, v.clone())));
        assert!(matches!(
            try_encode_value(&v, 0),
            Err(RecordFormatError::UnsupportedFieldAtVersion { .. })
        ));
        // The lossy encoder drops them at v0.
        assert_eq!(encode_value(&v, 0), unhex(EMPTY_V0));
    }

    #[test]
    fn unknown_tags_are_skipped_and_bad_known_tag_sizes_refused() {
        let mut bytes = unhex(EMPTY_V1);
        bytes.pop();
        // Tag 9 (unknown, 3 bytes), then tag 2 with a 2-byte body.
        bytes.extend(unhex("02 | 09 03 AABBCC | 02 02 0001"));
        let (_, v) = decode_value(&bytes).unwrap();
        assert_eq!(v.client_transaction_version, 1);
        let mut bad = unhex(EMPTY_V1);
        bad.pop();
        bad.extend(unhex("01 | 00 04 00000005"));
        assert!(matches!(
            decode_value(&bad),
            Err(RecordFormatError::InvalidLength { .. })
        ));
    }

    #[test]
    fn other_key_types_unknown_versions_and_states() {
        assert_eq!(
            decode_record(&unhex("0001 0003 616263"), Some(b"junk")),
            Ok(TxnLogRecord::Other { key_version: 1 })
        );
        let mut v2 = unhex(EMPTY_V1);
        v2[1] = 2;
        assert_eq!(
            decode_value(&v2),
            Err(RecordFormatError::UnsupportedValueVersion { version: 2, max: 1 })
        );
        let mut bad_state = unhex(EMPTY_V0);
        bad_state[16] = 9;
        assert_eq!(
            decode_value(&bad_state),
            Err(RecordFormatError::UnknownTransactionStatus { id: 9 })
        );
        assert_eq!(
            decode_record(&unhex("0000 FFFF"), None),
            Err(RecordFormatError::NullField {
                field: "TransactionLogKey.TransactionalId"
            })
        );
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut bytes = unhex(ONGOING_V1);
        bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_value(&bytes), Ok((1, ongoing_value())));
    }

    #[test]
    fn truncated_input_is_an_error_never_a_panic() {
        for hex in [EMPTY_V0, EMPTY_V1, ONGOING_V0, ONGOING_V1] {
            let full = unhex(hex);
            for n in 0..full.len() {
                assert!(decode_value(&full[..n]).is_err(), "{hex} cut at {n}");
            }
        }
        let key = encode_key("some-transactional-id");
        for n in 0..key.len() {
            assert!(decode_record(&key[..n], None).is_err());
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic generator: the point is coverage of odd lengths and counts.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: Vec<Vec<u8>> = [EMPTY_V0, EMPTY_V1, ONGOING_V0, ONGOING_V1]
            .iter()
            .map(|h| unhex(h))
            .collect();
        for i in 0..20_000 {
            let mut bytes = seeds[i % seeds.len()].clone();
            let flips = 1 + (next() % 4) as usize;
            for _ in 0..flips {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            let cut = (next() as usize) % (bytes.len() + 1);
            let _ = decode_value(&bytes[..cut]);
            let _ = decode_record(&bytes[..cut], Some(&bytes));
        }
        // Huge counts on tiny inputs are refused before allocating.
        assert!(matches!(
            decode_value(&unhex("0000 0000000000000001 0000 00000001 01 7FFFFFFF")),
            Err(RecordFormatError::ArrayTooLong { .. })
        ));
        assert!(matches!(
            decode_value(&unhex("0001 0000000000000001 0000 00000001 01 FFFFFFFF0F")),
            Err(RecordFormatError::ArrayTooLong { .. })
        ));
        assert!(matches!(
            decode_value(&unhex("0001 0000000000000001 0000 00000001 01 FFFFFFFFFF")),
            Err(RecordFormatError::InvalidVarint { .. })
        ));
    }

    #[test]
    fn over_long_ids_are_cut_or_refused() {
        let long = "é".repeat(MAX_STRING_LEN);
        assert!(matches!(
            try_encode_key(&long),
            Err(RecordFormatError::FieldTooLong { .. })
        ));
        let cut = encode_key(&long);
        match decode_record(&cut, None) {
            Ok(TxnLogRecord::Transaction {
                transactional_id, ..
            }) => {
                assert!(transactional_id.len() <= MAX_STRING_LEN);
                assert!(long.starts_with(&transactional_id));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(try_encode_value(&empty_value(), 2).is_err());
    }
}
