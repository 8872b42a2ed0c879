//! The key and value formats of `__consumer_offsets`, byte-compatible with Apache Kafka 4.1.
//!
//! Kafka's group coordinator persists its state as compacted records in `__consumer_offsets`.
//! Every key and every value starts with a big-endian `i16`; the rest is one of Kafka's generated
//! message schemas (`group-coordinator/src/main/resources/common/message/*.json`):
//!
//! | key `i16` | key / value schemas                            | value versions read | written |
//! |-----------|------------------------------------------------|---------------------|---------|
//! | 0         | `OffsetCommitKey` / `OffsetCommitValue` (legacy) | 0-4               | never   |
//! | 1         | `OffsetCommitKey` / `OffsetCommitValue`        | 0-4                 | 4 or 1  |
//! | 2         | `GroupMetadataKey` / `GroupMetadataValue`      | 0-4                 | 3       |
//! | other     | KIP-848 consumer, share and streams groups...  | skipped             | never   |
//!
//! The key's `i16` is the *record type* (Kafka calls it the coordinator record `apiKey`); the
//! key body itself has a single, non-flexible layout. The value's `i16` is a real schema version.
//!
//! What we write, and why — the same choices Kafka 4.1's `GroupCoordinatorRecordHelpers` makes,
//! so Kafka tools (`kafka-console-consumer` with the offsets formatter, `kafka-dump-log
//! --offsets-decoder`, third-party lag monitors) read rafka's records unchanged:
//!
//! - `OffsetCommitKey` with record type 1 (type 0 is the pre-0.9 "legacy" key; Kafka still loads
//!   it but never writes it).
//! - `OffsetCommitValue` **version 4** (the first flexible version: compact strings plus a
//!   tagged-field section) for an ordinary commit. Kafka 4.1 started writing v4 when KAFKA-19141
//!   added the tagged `topicId` field (tag 0); before 4.1 it wrote v3. A commit that carries an
//!   explicit expiry (OffsetCommit v2-v4 `retention_time_ms`, KIP-211) is written as **version 1**,
//!   the only schema with an `expireTimestamp` field — which also means such a record loses its
//!   leader epoch, exactly as in Kafka.
//! - `GroupMetadataKey` with record type 2 and `GroupMetadataValue` **version 3**, the highest
//!   non-flexible version; Kafka 4.1 still pins `GROUP_METADATA_VALUE_VERSION = 3` even though
//!   v4 (flexible) exists in the schema.
//!
//! What we read: every value version `0..=4` of both value schemas, filling the defaults Kafka's
//! loader fills (`leader_epoch` -1 before v3, an expiry only in v1, `current_state_timestamp`
//! only from v2, `group_instance_id` only from v3, a rebalance timeout of `-1` — always the case
//! for v0 — replaced by the session timeout), skipping unknown tagged fields in flexible versions
//! (including `OffsetCommitValue`'s `topicId`, which this model does not carry yet; Kafka treats
//! its absence as the zero UUID). KIP-848 consumer group records (types 3-8 and 16) decode
//! through [`crate::consumer_records`] to [`CoordinatorRecord::Consumer`]. A key whose record
//! type we do not model decodes to [`CoordinatorRecord::Other`] without touching the value,
//! mirroring how Kafka's loader skips an `UnknownRecordTypeException`: a partition written by a
//! Kafka that also ran share or streams groups still loads. A value version above the highest known one is an error,
//! as it is in Kafka (KIP-915: those bumps are not backward compatible).
//!
//! Decoding is total: no input makes it panic, every length is checked against the bytes left
//! before anything is allocated, and bytes after a complete message are ignored (as Kafka's
//! `ByteBufferAccessor` reads do). Strings are decoded the way Java's `new String(bytes, UTF_8)`
//! does, replacing invalid UTF-8 rather than failing.

use crate::consumer_records::ConsumerGroupRecord;
use bytes::Bytes;
use rafka_coordinator_common::wire::{Reader, Writer};

/// Why a `__consumer_offsets` key or value could not be decoded (or, for the `try_encode_*`
/// functions, encoded).
pub use rafka_coordinator_common::wire::WireError as RecordFormatError;
/// Longest string Kafka's generated serializers accept, flexible or not (`0x7fff` bytes).
pub use rafka_coordinator_common::wire::MAX_STRING_LEN;

/// Record type (key version) of the pre-0.9 offset commit key; read, never written.
pub const LEGACY_OFFSET_COMMIT_KEY_VERSION: i16 = 0;
/// Record type (key version) of an offset commit.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Record type (key version) of a classic group's metadata.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;

/// Highest `OffsetCommitValue` version this module reads (Kafka 4.1's `validVersions: 0-4`).
pub const OFFSET_COMMIT_VALUE_MAX_VERSION: i16 = 4;
/// Highest `GroupMetadataValue` version this module reads (Kafka 4.1's `validVersions: 0-4`).
pub const GROUP_METADATA_VALUE_MAX_VERSION: i16 = 4;
/// The `GroupMetadataValue` version Kafka 4.1 writes, and so do we.
pub const GROUP_METADATA_VALUE_WRITE_VERSION: i16 = 3;

/// Sentinel Kafka stores for "no leader epoch", "no expiry" and "no state timestamp".
const NONE_SENTINEL: i64 = -1;

/// Key of an offset commit record: which group committed which partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// Value of an offset commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// Leader epoch of the last consumed record; -1 = none (and always -1 when read from v0-v2
    /// or v1-written records).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// KIP-211 per-commit expiry. `Some` makes the record version 1, which has no leader epoch.
    pub expire_timestamp_ms: Option<i64>,
}

/// Key of a classic group's metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataKey {
    pub group: String,
}

/// One member of a classic group, as persisted in [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    /// KIP-345 static membership id; persisted from value version 3.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    /// The assignment the leader gave this member.
    pub assignment: Bytes,
}

/// Value of a classic group's metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// `""` for a group without a protocol type (e.g. one only used to commit offsets).
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group last changed state; persisted from value version 2.
    pub current_state_timestamp_ms: Option<i64>,
    pub members: Vec<MemberMetadata>,
}

/// A decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorRecord {
    OffsetCommit {
        key: OffsetCommitKey,
        /// `None` = tombstone (the offset was deleted or expired).
        value: Option<OffsetCommitValue>,
    },
    GroupMetadata {
        key: GroupMetadataKey,
        /// `None` = tombstone (the group was deleted).
        value: Option<GroupMetadataValue>,
    },
    /// A KIP-848 consumer group record (types 3-8 and 16, [`crate::consumer_records`]).
    Consumer(ConsumerGroupRecord),
    /// A key version this coordinator does not handle (share groups, streams groups...):
    /// skipped on load.
    Other { key_version: i16 },
}

// ------------------------------------------------------------------------------------ encode --

/// The `OffsetCommitValue` version Kafka 4.1 writes for `v`: 1 when it carries an expiry (the
/// only version with that field), 4 otherwise.
#[must_use]
pub fn offset_commit_value_version(v: &OffsetCommitValue) -> i16 {
    if v.expire_timestamp_ms.is_some() {
        1
    } else {
        4
    }
}

/// Encodes an offset commit key (record type 1).
///
/// A group or topic longer than [`MAX_STRING_LEN`] bytes cannot be represented (Kafka's own
/// serializer throws); it is cut at a character boundary. Use [`try_encode_offset_commit_key`]
/// to get an error instead.
#[must_use]
pub fn encode_offset_commit_key(k: &OffsetCommitKey) -> Vec<u8> {
    write_offset_commit_key(k).finish_lossy()
}

/// Encodes an offset commit key, or fails if a field is too long for the schema.
pub fn try_encode_offset_commit_key(k: &OffsetCommitKey) -> Result<Vec<u8>, RecordFormatError> {
    write_offset_commit_key(k).finish()
}

/// Encodes an offset commit value at [`offset_commit_value_version`].
///
/// Metadata longer than [`MAX_STRING_LEN`] bytes is cut at a character boundary (Kafka limits it
/// to `offset.metadata.max.bytes`, 4096 by default, long before); use
/// [`try_encode_offset_commit_value`] to get an error instead.
#[must_use]
pub fn encode_offset_commit_value(v: &OffsetCommitValue) -> Vec<u8> {
    write_offset_commit_value(v).finish_lossy()
}

/// Encodes an offset commit value, or fails if the metadata is too long for the schema.
pub fn try_encode_offset_commit_value(v: &OffsetCommitValue) -> Result<Vec<u8>, RecordFormatError> {
    write_offset_commit_value(v).finish()
}

/// Encodes a group metadata key (record type 2). An over-long group id is cut as in
/// [`encode_offset_commit_key`]; see [`try_encode_group_metadata_key`].
#[must_use]
pub fn encode_group_metadata_key(k: &GroupMetadataKey) -> Vec<u8> {
    write_group_metadata_key(k).finish_lossy()
}

/// Encodes a group metadata key, or fails if the group id is too long for the schema.
pub fn try_encode_group_metadata_key(k: &GroupMetadataKey) -> Result<Vec<u8>, RecordFormatError> {
    write_group_metadata_key(k).finish()
}

/// Encodes a group metadata value at version 3, the version Kafka 4.1 writes. Over-long strings
/// are cut as in [`encode_offset_commit_key`]; see [`try_encode_group_metadata_value`].
#[must_use]
pub fn encode_group_metadata_value(v: &GroupMetadataValue) -> Vec<u8> {
    write_group_metadata_value(v).finish_lossy()
}

/// Encodes a group metadata value, or fails if a field is too long for the schema.
pub fn try_encode_group_metadata_value(
    v: &GroupMetadataValue,
) -> Result<Vec<u8>, RecordFormatError> {
    write_group_metadata_value(v).finish()
}

fn write_offset_commit_key(k: &OffsetCommitKey) -> Writer {
    let mut w = Writer::new();
    w.i16(OFFSET_COMMIT_KEY_VERSION);
    w.string("group", &k.group, false);
    w.string("topic", &k.topic, false);
    w.i32(k.partition);
    w
}

fn write_offset_commit_value(v: &OffsetCommitValue) -> Writer {
    let mut w = Writer::new();
    match v.expire_timestamp_ms {
        Some(expire) => {
            // v1: offset, metadata, commitTimestamp, expireTimestamp. No leader epoch.
            w.i16(1);
            w.i64(v.offset);
            w.string("metadata", &v.metadata, false);
            w.i64(v.commit_timestamp_ms);
            w.i64(expire);
        }
        None => {
            // v4 (flexible): offset, leaderEpoch, metadata, commitTimestamp, tagged fields.
            w.i16(4);
            w.i64(v.offset);
            w.i32(v.leader_epoch);
            w.string("metadata", &v.metadata, true);
            w.i64(v.commit_timestamp_ms);
            // No tagged fields: Kafka omits `topicId` (tag 0) when it is the zero UUID.
            w.uvarint(0);
        }
    }
    w
}

fn write_group_metadata_key(k: &GroupMetadataKey) -> Writer {
    let mut w = Writer::new();
    w.i16(GROUP_METADATA_KEY_VERSION);
    w.string("group", &k.group, false);
    w
}

fn write_group_metadata_value(v: &GroupMetadataValue) -> Writer {
    let mut w = Writer::new();
    w.i16(GROUP_METADATA_VALUE_WRITE_VERSION);
    w.string("protocolType", &v.protocol_type, false);
    w.i32(v.generation);
    w.nullable_string("protocol", v.protocol.as_deref(), false);
    w.nullable_string("leader", v.leader.as_deref(), false);
    w.i64(v.current_state_timestamp_ms.unwrap_or(NONE_SENTINEL));
    let count = w.array_len("members", v.members.len(), false);
    for m in v.members.iter().take(count) {
        w.string("memberId", &m.member_id, false);
        w.nullable_string("groupInstanceId", m.group_instance_id.as_deref(), false);
        w.string("clientId", &m.client_id, false);
        w.string("clientHost", &m.client_host, false);
        w.i32(m.rebalance_timeout_ms);
        w.i32(m.session_timeout_ms);
        w.bytes("subscription", &m.subscription, false);
        w.bytes("assignment", &m.assignment, false);
    }
    w
}

// ------------------------------------------------------------------------------------ decode --

/// Decodes one `__consumer_offsets` record. `value` is `None` for a tombstone.
///
/// Record types 0 and 1 are offset commits, 2 is group metadata, 3-8 and 16 are consumer group
/// records; any other key version decodes to [`CoordinatorRecord::Other`] without reading the
/// rest of the key or the value, so the loader can skip it the way Kafka does.
pub fn decode_record(
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<CoordinatorRecord, RecordFormatError> {
    let mut k = Reader::new(key);
    let key_version = k.i16("key version")?;
    match key_version {
        LEGACY_OFFSET_COMMIT_KEY_VERSION | OFFSET_COMMIT_KEY_VERSION => {
            let key = OffsetCommitKey {
                group: k.string("OffsetCommitKey.group", false)?,
                topic: k.string("OffsetCommitKey.topic", false)?,
                partition: k.i32("OffsetCommitKey.partition")?,
            };
            // Kafka 4.x pairs a type-0 key with `LegacyOffsetCommitValue`, whose only version is
            // the same layout as `OffsetCommitValue` v0. Reading the value by its own version
            // accepts everything Kafka does and more.
            let value = value
                .map(|v| decode_offset_commit_value(&mut Reader::new(v)))
                .transpose()?;
            Ok(CoordinatorRecord::OffsetCommit { key, value })
        }
        GROUP_METADATA_KEY_VERSION => {
            let key = GroupMetadataKey {
                group: k.string("GroupMetadataKey.group", false)?,
            };
            let value = value
                .map(|v| decode_group_metadata_value(&mut Reader::new(v)))
                .transpose()?;
            Ok(CoordinatorRecord::GroupMetadata { key, value })
        }
        other => Ok(match ConsumerGroupRecord::decode(key, value)? {
            Some(record) => CoordinatorRecord::Consumer(record),
            None => CoordinatorRecord::Other { key_version: other },
        }),
    }
}

fn decode_offset_commit_value(r: &mut Reader<'_>) -> Result<OffsetCommitValue, RecordFormatError> {
    let version = r.i16("OffsetCommitValue version")?;
    if !(0..=OFFSET_COMMIT_VALUE_MAX_VERSION).contains(&version) {
        return Err(RecordFormatError::UnsupportedValueVersion {
            record: "OffsetCommitValue",
            version,
            max: OFFSET_COMMIT_VALUE_MAX_VERSION,
        });
    }
    let flexible = version >= 4;
    let offset = r.i64("OffsetCommitValue.offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("OffsetCommitValue.leaderEpoch")?
    } else {
        -1
    };
    let metadata = r.string("OffsetCommitValue.metadata", flexible)?;
    let commit_timestamp_ms = r.i64("OffsetCommitValue.commitTimestamp")?;
    let expire = if version == 1 {
        r.i64("OffsetCommitValue.expireTimestamp")?
    } else {
        NONE_SENTINEL
    };
    if flexible {
        // Tag 0 is `topicId` (a UUID) since Kafka 4.1; not modelled here, so skipped like any
        // unknown tag.
        r.skip_tagged_fields("OffsetCommitValue")?;
    }
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        // Kafka's `OffsetAndMetadata.fromRecord`: -1 means "no expiry", whatever the version.
        expire_timestamp_ms: (expire != NONE_SENTINEL).then_some(expire),
    })
}

/// Fewest bytes one non-flexible `MemberMetadata` can take (v0: three empty strings, the session
/// timeout, two empty byte arrays); bounds the members vector's initial capacity.
const MIN_MEMBER_LEN_NON_FLEXIBLE: usize = 2 + 2 + 2 + 4 + 4 + 4;
/// Same for the flexible version: four one-byte compact string lengths, two `i32`s, two one-byte
/// compact byte lengths, one tag count.
const MIN_MEMBER_LEN_FLEXIBLE: usize = 1 + 1 + 1 + 1 + 4 + 4 + 1 + 1 + 1;

fn decode_group_metadata_value(
    r: &mut Reader<'_>,
) -> Result<GroupMetadataValue, RecordFormatError> {
    let version = r.i16("GroupMetadataValue version")?;
    if !(0..=GROUP_METADATA_VALUE_MAX_VERSION).contains(&version) {
        return Err(RecordFormatError::UnsupportedValueVersion {
            record: "GroupMetadataValue",
            version,
            max: GROUP_METADATA_VALUE_MAX_VERSION,
        });
    }
    let flexible = version >= 4;
    let protocol_type = r.string("GroupMetadataValue.protocolType", flexible)?;
    let generation = r.i32("GroupMetadataValue.generation")?;
    let protocol = r.nullable_string("GroupMetadataValue.protocol", flexible)?;
    let leader = r.nullable_string("GroupMetadataValue.leader", flexible)?;
    let current_state_timestamp = if version >= 2 {
        r.i64("GroupMetadataValue.currentStateTimestamp")?
    } else {
        NONE_SENTINEL
    };
    let count = r.array_len("GroupMetadataValue.members", flexible)?;
    let min_member_len = if flexible {
        MIN_MEMBER_LEN_FLEXIBLE
    } else {
        MIN_MEMBER_LEN_NON_FLEXIBLE
    };
    let mut members = Vec::with_capacity(count.min(r.remaining() / min_member_len));
    for _ in 0..count {
        let member_id = r.string("MemberMetadata.memberId", flexible)?;
        let group_instance_id = if version >= 3 {
            r.nullable_string("MemberMetadata.groupInstanceId", flexible)?
        } else {
            None
        };
        let client_id = r.string("MemberMetadata.clientId", flexible)?;
        let client_host = r.string("MemberMetadata.clientHost", flexible)?;
        let rebalance_timeout = if version >= 1 {
            r.i32("MemberMetadata.rebalanceTimeout")?
        } else {
            -1
        };
        let session_timeout_ms = r.i32("MemberMetadata.sessionTimeout")?;
        let subscription =
            Bytes::copy_from_slice(r.bytes("MemberMetadata.subscription", flexible)?);
        let assignment = Bytes::copy_from_slice(r.bytes("MemberMetadata.assignment", flexible)?);
        if flexible {
            r.skip_tagged_fields("MemberMetadata")?;
        }
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            // Kafka 4.x `GroupMetadataManager.replay`: a rebalance timeout of -1 (the schema
            // default, hence every v0 member) falls back to the session timeout.
            rebalance_timeout_ms: if rebalance_timeout == -1 {
                session_timeout_ms
            } else {
                rebalance_timeout
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    if flexible {
        r.skip_tagged_fields("GroupMetadataValue")?;
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms: (current_state_timestamp != NONE_SENTINEL)
            .then_some(current_state_timestamp),
        members,
    })
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

    /// Independent builder for hand-made test inputs.
    #[derive(Default)]
    struct B(Vec<u8>);

    impl B {
        fn i16(mut self, v: i16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn s(self, s: &str) -> Self {
            self.i16(s.len() as i16).raw(s.as_bytes())
        }
        fn null_s(self) -> Self {
            self.i16(-1)
        }
        fn b(self, b: &[u8]) -> Self {
            self.i32(b.len() as i32).raw(b)
        }
        /// Compact string / bytes / array length (all < 127 in these tests).
        fn cs(self, s: &str) -> Self {
            self.raw(&[s.len() as u8 + 1]).raw(s.as_bytes())
        }
        fn cb(self, b: &[u8]) -> Self {
            self.raw(&[b.len() as u8 + 1]).raw(b)
        }
        fn done(self) -> Vec<u8> {
            self.0
        }
    }

    fn offset_key() -> OffsetCommitKey {
        OffsetCommitKey {
            group: "grp".into(),
            topic: "foo".into(),
            partition: 1,
        }
    }

    fn group_key() -> GroupMetadataKey {
        GroupMetadataKey {
            group: "grp".into(),
        }
    }

    fn sample_group_value() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: Some(1_700_000_000_000),
            members: vec![
                MemberMetadata {
                    member_id: "m1".into(),
                    group_instance_id: None,
                    client_id: "c1".into(),
                    client_host: "/10.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(&[0, 1, 2]),
                    assignment: Bytes::from_static(&[3, 4]),
                },
                MemberMetadata {
                    member_id: "m2".into(),
                    group_instance_id: Some("static-2".into()),
                    client_id: "c2".into(),
                    client_host: "/10.0.0.2".into(),
                    rebalance_timeout_ms: 60_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    fn decode_offset(value: &[u8]) -> OffsetCommitValue {
        let key = encode_offset_commit_key(&offset_key());
        match decode_record(&key, Some(value)).unwrap() {
            CoordinatorRecord::OffsetCommit { key: k, value: v } => {
                assert_eq!(k, offset_key());
                v.unwrap()
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn decode_group(value: &[u8]) -> GroupMetadataValue {
        let key = encode_group_metadata_key(&group_key());
        match decode_record(&key, Some(value)).unwrap() {
            CoordinatorRecord::GroupMetadata { key: k, value: v } => {
                assert_eq!(k, group_key());
                v.unwrap()
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // ---- round trips at the written versions ----

    #[test]
    fn offset_commit_round_trips_at_v4() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta ünïcode".into(),
            commit_timestamp_ms: 1_700_000_000_123,
            expire_timestamp_ms: None,
        };
        let bytes = encode_offset_commit_value(&v);
        assert_eq!(&bytes[..2], &4i16.to_be_bytes());
        assert_eq!(offset_commit_value_version(&v), 4);
        assert_eq!(decode_offset(&bytes), v);

        let no_epoch = OffsetCommitValue {
            leader_epoch: -1,
            metadata: String::new(),
            ..v
        };
        assert_eq!(
            decode_offset(&encode_offset_commit_value(&no_epoch)),
            no_epoch
        );
    }

    #[test]
    fn offset_commit_with_expiry_round_trips_at_v1_and_drops_the_epoch() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: -1,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: Some(2000),
        };
        let bytes = encode_offset_commit_value(&v);
        assert_eq!(&bytes[..2], &1i16.to_be_bytes());
        assert_eq!(decode_offset(&bytes), v);

        // v1 has no leader epoch field: Kafka loses it too.
        let with_epoch = OffsetCommitValue {
            leader_epoch: 9,
            ..v.clone()
        };
        assert_eq!(decode_offset(&encode_offset_commit_value(&with_epoch)), v);
    }

    #[test]
    fn keys_round_trip() {
        let k = offset_key();
        assert_eq!(
            decode_record(&encode_offset_commit_key(&k), None).unwrap(),
            CoordinatorRecord::OffsetCommit {
                key: k,
                value: None
            }
        );
        let g = group_key();
        assert_eq!(
            decode_record(&encode_group_metadata_key(&g), None).unwrap(),
            CoordinatorRecord::GroupMetadata {
                key: g,
                value: None
            }
        );
        let empty = GroupMetadataKey {
            group: String::new(),
        };
        assert_eq!(
            decode_record(&encode_group_metadata_key(&empty), None).unwrap(),
            CoordinatorRecord::GroupMetadata {
                key: empty,
                value: None
            }
        );
    }

    #[test]
    fn group_metadata_round_trips_at_v3() {
        let v = sample_group_value();
        let bytes = encode_group_metadata_value(&v);
        assert_eq!(&bytes[..2], &3i16.to_be_bytes());
        assert_eq!(decode_group(&bytes), v);

        let empty = GroupMetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: None,
            members: vec![],
        };
        assert_eq!(decode_group(&encode_group_metadata_value(&empty)), empty);
    }

    // ---- golden bytes, derived by hand from the JSON schemas ----

    #[test]
    fn golden_offset_commit_key_and_v4_value() {
        let key = encode_offset_commit_key(&offset_key());
        // version 1 | "grp" | "foo" | partition 1
        assert_eq!(key, unhex("0001 | 0003 677270 | 0003 666f6f | 00000001"));

        let value = encode_offset_commit_value(&OffsetCommitValue {
            offset: 100,
            leader_epoch: 5,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: None,
        });
        // version 4 | offset | leaderEpoch | compact "m" (len+1 = 2) | commitTimestamp | no tags
        assert_eq!(
            value,
            unhex("0004 | 0000000000000064 | 00000005 | 02 6d | 00000000000003e8 | 00")
        );
    }

    #[test]
    fn golden_offset_commit_v1_value() {
        let value = encode_offset_commit_value(&OffsetCommitValue {
            offset: 100,
            leader_epoch: 5,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: Some(2000),
        });
        // version 1 | offset | "m" | commitTimestamp | expireTimestamp
        assert_eq!(
            value,
            unhex("0001 | 0000000000000064 | 0001 6d | 00000000000003e8 | 00000000000007d0")
        );
    }

    /// A value a real Kafka 4.1.0 broker wrote, quoted in twmb/franz-go issue #1105 (the report
    /// that 4.1 switched to v4 and broke non-Java decoders).
    #[test]
    fn decodes_a_value_kafka_4_1_wrote() {
        let v = decode_offset(&unhex("0004000000000021d4a8ffffffff010000019964f2d83600"));
        assert_eq!(
            v,
            OffsetCommitValue {
                offset: 2_217_128,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 1_758_335_260_726,
                expire_timestamp_ms: None,
            }
        );
        // And we write the identical bytes for it.
        assert_eq!(
            encode_offset_commit_value(&v),
            unhex("0004000000000021d4a8ffffffff010000019964f2d83600")
        );
    }

    #[test]
    fn golden_group_metadata_key_and_v3_value() {
        assert_eq!(
            encode_group_metadata_key(&group_key()),
            unhex("0002 | 0003 677270")
        );
        let value = encode_group_metadata_value(&GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: Some(1000),
            members: vec![MemberMetadata {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(&[0x01]),
                assignment: Bytes::from_static(&[0x02]),
            }],
        });
        let expected = unhex(
            "0003
             0008 636f6e73756d6572
             00000001
             0005 72616e6765
             0002 6d31
             00000000000003e8
             00000001
               0002 6d31
               ffff
               0001 63
               0002 2f68
               000493e0
               0000afc8
               00000001 01
               00000001 02",
        );
        assert_eq!(value, expected);
    }

    // ---- older (and newer flexible) value versions, hand-built ----

    #[test]
    fn offset_commit_value_v0() {
        let bytes = B::default().i16(0).i64(10).s("md").i64(111).done();
        assert_eq!(
            decode_offset(&bytes),
            OffsetCommitValue {
                offset: 10,
                leader_epoch: -1,
                metadata: "md".into(),
                commit_timestamp_ms: 111,
                expire_timestamp_ms: None,
            }
        );
    }

    #[test]
    fn offset_commit_value_v1() {
        let bytes = B::default().i16(1).i64(10).s("").i64(111).i64(222).done();
        let v = decode_offset(&bytes);
        assert_eq!(v.leader_epoch, -1);
        assert_eq!(v.expire_timestamp_ms, Some(222));

        // An expire timestamp of -1 (DEFAULT_TIMESTAMP) means none.
        let bytes = B::default().i16(1).i64(10).s("").i64(111).i64(-1).done();
        assert_eq!(decode_offset(&bytes).expire_timestamp_ms, None);
    }

    #[test]
    fn offset_commit_value_v2() {
        let bytes = B::default().i16(2).i64(10).s("x").i64(111).done();
        assert_eq!(
            decode_offset(&bytes),
            OffsetCommitValue {
                offset: 10,
                leader_epoch: -1,
                metadata: "x".into(),
                commit_timestamp_ms: 111,
                expire_timestamp_ms: None,
            }
        );
    }

    #[test]
    fn offset_commit_value_v3() {
        let bytes = B::default().i16(3).i64(10).i32(4).s("x").i64(111).done();
        assert_eq!(
            decode_offset(&bytes),
            OffsetCommitValue {
                offset: 10,
                leader_epoch: 4,
                metadata: "x".into(),
                commit_timestamp_ms: 111,
                expire_timestamp_ms: None,
            }
        );
    }

    #[test]
    fn offset_commit_value_v4_with_topic_id_and_unknown_tags() {
        let topic_id = [0xabu8; 16];
        let bytes = B::default()
            .i16(4)
            .i64(10)
            .i32(4)
            .cs("x")
            .i64(111)
            .raw(&[2]) // two tagged fields
            .raw(&[0, 16]) // tag 0 (topicId), 16 bytes
            .raw(&topic_id)
            .raw(&[0x81, 0x01, 3, 9, 9, 9]) // tag 129 (two-byte varint), 3 bytes
            .done();
        assert_eq!(
            decode_offset(&bytes),
            OffsetCommitValue {
                offset: 10,
                leader_epoch: 4,
                metadata: "x".into(),
                commit_timestamp_ms: 111,
                expire_timestamp_ms: None,
            }
        );
    }

    #[test]
    fn legacy_key_version_0_is_an_offset_commit() {
        let key = B::default().i16(0).s("g").s("t").i32(3).done();
        let value = B::default().i16(0).i64(5).s("").i64(6).done();
        assert_eq!(
            decode_record(&key, Some(&value)).unwrap(),
            CoordinatorRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 3
                },
                value: Some(OffsetCommitValue {
                    offset: 5,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: 6,
                    expire_timestamp_ms: None,
                }),
            }
        );
    }

    /// One member in the non-flexible layout of `version`.
    fn member_bytes(b: B, version: i16, instance: Option<&str>, rebalance: i32) -> B {
        let mut b = b.s("m1");
        if version >= 3 {
            b = match instance {
                Some(i) => b.s(i),
                None => b.null_s(),
            };
        }
        b = b.s("c1").s("/h");
        if version >= 1 {
            b = b.i32(rebalance);
        }
        b.i32(45_000).b(&[1, 2]).b(&[3])
    }

    fn group_header(version: i16) -> B {
        let mut b = B::default()
            .i16(version)
            .s("consumer")
            .i32(5)
            .s("range")
            .s("m1");
        if version >= 2 {
            b = b.i64(999);
        }
        b.i32(1)
    }

    fn expected_member(instance: Option<&str>, rebalance: i32) -> MemberMetadata {
        MemberMetadata {
            member_id: "m1".into(),
            group_instance_id: instance.map(Into::into),
            client_id: "c1".into(),
            client_host: "/h".into(),
            rebalance_timeout_ms: rebalance,
            session_timeout_ms: 45_000,
            subscription: Bytes::from_static(&[1, 2]),
            assignment: Bytes::from_static(&[3]),
        }
    }

    fn expected_group(timestamp: Option<i64>, member: MemberMetadata) -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: timestamp,
            members: vec![member],
        }
    }

    #[test]
    fn group_metadata_value_v0_rebalance_timeout_is_session_timeout() {
        let bytes = member_bytes(group_header(0), 0, None, 0).done();
        assert_eq!(
            decode_group(&bytes),
            expected_group(None, expected_member(None, 45_000))
        );
    }

    #[test]
    fn group_metadata_value_v1() {
        let bytes = member_bytes(group_header(1), 1, None, 300_000).done();
        assert_eq!(
            decode_group(&bytes),
            expected_group(None, expected_member(None, 300_000))
        );
        // A stored -1 also falls back to the session timeout (Kafka 4.x replay).
        let bytes = member_bytes(group_header(1), 1, None, -1).done();
        assert_eq!(
            decode_group(&bytes),
            expected_group(None, expected_member(None, 45_000))
        );
    }

    #[test]
    fn group_metadata_value_v2() {
        let bytes = member_bytes(group_header(2), 2, None, 300_000).done();
        assert_eq!(
            decode_group(&bytes),
            expected_group(Some(999), expected_member(None, 300_000))
        );
        // -1 is Kafka's "no timestamp".
        let bytes = member_bytes(
            B::default()
                .i16(2)
                .s("consumer")
                .i32(5)
                .s("range")
                .s("m1")
                .i64(-1)
                .i32(1),
            2,
            None,
            300_000,
        )
        .done();
        assert_eq!(
            decode_group(&bytes),
            expected_group(None, expected_member(None, 300_000))
        );
    }

    #[test]
    fn group_metadata_value_v3() {
        let bytes = member_bytes(group_header(3), 3, Some("inst"), 300_000).done();
        assert_eq!(
            decode_group(&bytes),
            expected_group(Some(999), expected_member(Some("inst"), 300_000))
        );
        let bytes = member_bytes(group_header(3), 3, None, 300_000).done();
        assert_eq!(
            decode_group(&bytes),
            expected_group(Some(999), expected_member(None, 300_000))
        );
    }

    #[test]
    fn group_metadata_value_v3_null_protocol_and_leader() {
        let bytes = B::default()
            .i16(3)
            .s("")
            .i32(0)
            .null_s()
            .null_s()
            .i64(-1)
            .i32(0)
            .done();
        assert_eq!(
            decode_group(&bytes),
            GroupMetadataValue {
                protocol_type: String::new(),
                generation: 0,
                protocol: None,
                leader: None,
                current_state_timestamp_ms: None,
                members: vec![],
            }
        );
    }

    #[test]
    fn group_metadata_value_v4_flexible_with_tags() {
        let bytes = B::default()
            .i16(4)
            .cs("consumer")
            .i32(5)
            .cs("range")
            .cs("m1")
            .i64(999)
            .raw(&[2]) // compact array: 1 member
            .cs("m1")
            .cs("inst")
            .cs("c1")
            .cs("/h")
            .i32(300_000)
            .i32(45_000)
            .cb(&[1, 2])
            .cb(&[3])
            .raw(&[1, 5, 2, 0xee, 0xee]) // member tags: tag 5, 2 bytes
            .raw(&[1, 0, 1, 0x00]) // top-level tags: tag 0, 1 byte
            .done();
        assert_eq!(
            decode_group(&bytes),
            expected_group(Some(999), expected_member(Some("inst"), 300_000))
        );

        // Compact nulls: protocol, leader and group instance id.
        let bytes = B::default()
            .i16(4)
            .cs("")
            .i32(0)
            .raw(&[0, 0]) // null protocol, null leader
            .i64(-1)
            .raw(&[2])
            .cs("m1")
            .raw(&[0]) // null groupInstanceId
            .cs("c1")
            .cs("/h")
            .i32(-1)
            .i32(45_000)
            .cb(&[1, 2])
            .cb(&[3])
            .raw(&[0])
            .raw(&[0])
            .done();
        let v = decode_group(&bytes);
        assert_eq!(v.protocol, None);
        assert_eq!(v.leader, None);
        assert_eq!(v.current_state_timestamp_ms, None);
        assert_eq!(v.members, vec![expected_member(None, 45_000)]);
    }

    // ---- tombstones and unknown record types ----

    #[test]
    fn tombstones() {
        let key = encode_offset_commit_key(&offset_key());
        assert_eq!(
            decode_record(&key, None).unwrap(),
            CoordinatorRecord::OffsetCommit {
                key: offset_key(),
                value: None
            }
        );
        let key = encode_group_metadata_key(&group_key());
        assert_eq!(
            decode_record(&key, None).unwrap(),
            CoordinatorRecord::GroupMetadata {
                key: group_key(),
                value: None
            }
        );
    }

    #[test]
    fn unknown_key_versions_are_other() {
        for version in [9i16, 15, 17, 21, 1000, i16::MAX, -1, i16::MIN] {
            // A KIP-848 ConsumerGroupMetadataKey-like body and a value we cannot parse.
            let key = B::default().i16(version).s("grp").done();
            for value in [None, Some(&[0xffu8, 0xff, 0x00][..]), Some(&[][..])] {
                assert_eq!(
                    decode_record(&key, value).unwrap(),
                    CoordinatorRecord::Other {
                        key_version: version
                    }
                );
            }
            // Even a key that is only the type.
            assert_eq!(
                decode_record(&version.to_be_bytes(), None).unwrap(),
                CoordinatorRecord::Other {
                    key_version: version
                }
            );
        }
    }

    #[test]
    fn unsupported_value_versions_fail() {
        let okey = encode_offset_commit_key(&offset_key());
        let gkey = encode_group_metadata_key(&group_key());
        for version in [-1i16, 5, i16::MAX] {
            let mut value = B::default().i16(version).done();
            value.extend_from_slice(&[0; 64]);
            assert!(matches!(
                decode_record(&okey, Some(&value)),
                Err(RecordFormatError::UnsupportedValueVersion {
                    record: "OffsetCommitValue",
                    ..
                })
            ));
            assert!(matches!(
                decode_record(&gkey, Some(&value)),
                Err(RecordFormatError::UnsupportedValueVersion {
                    record: "GroupMetadataValue",
                    ..
                })
            ));
        }
    }

    // ---- malformed input: errors, never panics ----

    fn all_valid_records() -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let okey = encode_offset_commit_key(&offset_key());
        let gkey = encode_group_metadata_key(&group_key());
        let v4 = encode_offset_commit_value(&OffsetCommitValue {
            offset: 1,
            leader_epoch: 2,
            metadata: "meta".into(),
            commit_timestamp_ms: 3,
            expire_timestamp_ms: None,
        });
        let v1 = encode_offset_commit_value(&OffsetCommitValue {
            offset: 1,
            leader_epoch: -1,
            metadata: "meta".into(),
            commit_timestamp_ms: 3,
            expire_timestamp_ms: Some(4),
        });
        let g3 = encode_group_metadata_value(&sample_group_value());
        let g0 = member_bytes(group_header(0), 0, None, 0).done();
        let g4 = B::default()
            .i16(4)
            .cs("consumer")
            .i32(5)
            .cs("range")
            .cs("m1")
            .i64(999)
            .raw(&[2])
            .cs("m1")
            .cs("inst")
            .cs("c1")
            .cs("/h")
            .i32(300_000)
            .i32(45_000)
            .cb(&[1, 2])
            .cb(&[3])
            .raw(&[1, 5, 2, 0xee, 0xee])
            .raw(&[1, 0, 1, 0x00])
            .done();
        let o4_tagged = B::default()
            .i16(4)
            .i64(10)
            .i32(4)
            .cs("x")
            .i64(111)
            .raw(&[1, 0, 16])
            .raw(&[7; 16])
            .done();
        vec![
            (okey.clone(), Some(v4)),
            (okey.clone(), Some(v1)),
            (okey.clone(), Some(o4_tagged)),
            (okey, None),
            (gkey.clone(), Some(g3)),
            (gkey.clone(), Some(g0)),
            (gkey.clone(), Some(g4)),
            (gkey, None),
        ]
    }

    #[test]
    fn every_truncation_is_an_error() {
        for (key, value) in all_valid_records() {
            assert!(decode_record(&key, value.as_deref()).is_ok());
            for cut in 0..key.len() {
                assert!(
                    decode_record(&key[..cut], value.as_deref()).is_err(),
                    "key cut at {cut} of {key:?} decoded"
                );
            }
            if let Some(value) = value {
                for cut in 0..value.len() {
                    assert!(
                        decode_record(&key, Some(&value[..cut])).is_err(),
                        "value cut at {cut} of {value:?} decoded"
                    );
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic xorshift; no dev-dependency needed.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = all_valid_records();
        for round in 0..20_000u32 {
            let (key, value) = &valid[round as usize % valid.len()];
            let mut key = key.clone();
            let mut value = value.clone();
            // Flip a few bytes of a valid record, or replace the body with noise.
            let target = if next() % 2 == 0 {
                &mut key
            } else {
                value.get_or_insert_with(Vec::new)
            };
            if next() % 4 == 0 {
                let len = (next() % 64) as usize;
                target.truncate(2.min(target.len()));
                target.extend((0..len).map(|_| next() as u8));
            } else {
                for _ in 0..(1 + next() % 3) {
                    if !target.is_empty() {
                        let i = (next() % target.len() as u64) as usize;
                        target[i] = next() as u8;
                    }
                }
            }
            let _ = decode_record(&key, value.as_deref());
        }
    }

    #[test]
    fn huge_claimed_lengths_fail_without_allocating() {
        let gkey = encode_group_metadata_key(&group_key());
        // members: i32::MAX elements, 0 bytes left.
        let value = B::default()
            .i16(3)
            .s("consumer")
            .i32(1)
            .null_s()
            .null_s()
            .i64(-1)
            .i32(i32::MAX)
            .done();
        assert_eq!(
            decode_record(&gkey, Some(&value)),
            Err(RecordFormatError::ArrayTooLong {
                field: "GroupMetadataValue.members",
                count: i32::MAX as usize,
                remaining: 0
            })
        );
        // Flexible: compact array of u32::MAX - 1 elements.
        let value = B::default()
            .i16(4)
            .cs("consumer")
            .i32(1)
            .raw(&[0, 0])
            .i64(-1)
            .raw(&[0xff, 0xff, 0xff, 0xff, 0x0f])
            .done();
        assert!(matches!(
            decode_record(&gkey, Some(&value)),
            Err(RecordFormatError::ArrayTooLong { .. })
        ));
        // A subscription claiming 2 GiB.
        let value = B::default()
            .i16(3)
            .s("")
            .i32(1)
            .null_s()
            .null_s()
            .i64(-1)
            .i32(1)
            .s("m")
            .null_s()
            .s("c")
            .s("h")
            .i32(1)
            .i32(1)
            .i32(i32::MAX)
            .done();
        assert!(matches!(
            decode_record(&gkey, Some(&value)),
            Err(RecordFormatError::Truncated {
                field: "MemberMetadata.subscription",
                ..
            })
        ));
        // A string claiming 0x7fff bytes with 3 left.
        let okey = encode_offset_commit_key(&offset_key());
        let value = B::default()
            .i16(3)
            .i64(1)
            .i32(1)
            .i16(0x7fff)
            .raw(b"abc")
            .done();
        assert!(matches!(
            decode_record(&okey, Some(&value)),
            Err(RecordFormatError::Truncated { .. })
        ));
        // A compact string longer than Kafka allows.
        let value = B::default()
            .i16(4)
            .i64(1)
            .i32(1)
            .raw(&[0x81, 0x80, 0x02])
            .done();
        assert!(matches!(
            decode_record(&okey, Some(&value)),
            Err(RecordFormatError::InvalidLength { .. })
        ));
        // A tagged field claiming more bytes than exist.
        let value = B::default()
            .i16(4)
            .i64(1)
            .i32(1)
            .cs("")
            .i64(1)
            .raw(&[1, 0, 0xff, 0xff, 0x03])
            .done();
        assert!(matches!(
            decode_record(&okey, Some(&value)),
            Err(RecordFormatError::Truncated { .. })
        ));
    }

    #[test]
    fn malformed_varints_and_nulls_fail() {
        let okey = encode_offset_commit_key(&offset_key());
        // Six continuation bytes.
        let value = B::default()
            .i16(4)
            .i64(1)
            .i32(1)
            .raw(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
            .done();
        assert_eq!(
            decode_record(&okey, Some(&value)),
            Err(RecordFormatError::InvalidVarint {
                field: "OffsetCommitValue.metadata"
            })
        );
        // Null metadata (non-flexible and compact).
        let value = B::default().i16(3).i64(1).i32(1).null_s().i64(1).done();
        assert_eq!(
            decode_record(&okey, Some(&value)),
            Err(RecordFormatError::NullField {
                field: "OffsetCommitValue.metadata"
            })
        );
        let value = B::default()
            .i16(4)
            .i64(1)
            .i32(1)
            .raw(&[0])
            .i64(1)
            .raw(&[0])
            .done();
        assert_eq!(
            decode_record(&okey, Some(&value)),
            Err(RecordFormatError::NullField {
                field: "OffsetCommitValue.metadata"
            })
        );
        // Null group in a key.
        let key = B::default().i16(2).null_s().done();
        assert_eq!(
            decode_record(&key, None),
            Err(RecordFormatError::NullField {
                field: "GroupMetadataKey.group"
            })
        );
        // Null members array and null assignment.
        let gkey = encode_group_metadata_key(&group_key());
        let value = B::default()
            .i16(3)
            .s("")
            .i32(0)
            .null_s()
            .null_s()
            .i64(-1)
            .i32(-1)
            .done();
        assert_eq!(
            decode_record(&gkey, Some(&value)),
            Err(RecordFormatError::NullField {
                field: "GroupMetadataValue.members"
            })
        );
        let mut value = member_bytes(group_header(3), 3, None, 1).done();
        // Replace the assignment (i32 length 1, one byte) with a null one.
        value.truncate(value.len() - 5);
        value.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            decode_record(&gkey, Some(&value)),
            Err(RecordFormatError::NullField {
                field: "MemberMetadata.assignment"
            })
        );
    }

    #[test]
    fn trailing_bytes_are_ignored_like_kafka() {
        let mut key = encode_offset_commit_key(&offset_key());
        key.extend_from_slice(&[1, 2, 3]);
        let mut value = encode_offset_commit_value(&OffsetCommitValue {
            offset: 1,
            leader_epoch: 2,
            metadata: String::new(),
            commit_timestamp_ms: 3,
            expire_timestamp_ms: None,
        });
        value.push(0xff);
        assert!(decode_record(&key, Some(&value)).is_ok());
    }

    #[test]
    fn invalid_utf8_is_replaced_like_java() {
        let key = B::default()
            .i16(1)
            .raw(&[0, 2, 0xff, b'g'])
            .s("t")
            .i32(0)
            .done();
        match decode_record(&key, None).unwrap() {
            CoordinatorRecord::OffsetCommit { key, .. } => assert_eq!(key.group, "\u{fffd}g"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn over_long_strings_are_refused_by_try_and_cut_by_encode() {
        let long = "é".repeat(20_000); // 40,000 bytes
        let k = OffsetCommitKey {
            group: long.clone(),
            topic: "t".into(),
            partition: 0,
        };
        assert_eq!(
            try_encode_offset_commit_key(&k),
            Err(RecordFormatError::FieldTooLong {
                field: "group",
                length: 40_000,
                max: MAX_STRING_LEN
            })
        );
        let bytes = encode_offset_commit_key(&k);
        match decode_record(&bytes, None).unwrap() {
            CoordinatorRecord::OffsetCommit { key, .. } => {
                // Cut at a character boundary: 16,383 two-byte characters.
                assert_eq!(key.group.len(), 32_766);
                assert!(long.starts_with(&key.group));
                assert_eq!(key.topic, "t");
            }
            other => panic!("unexpected {other:?}"),
        }

        let v = OffsetCommitValue {
            offset: 0,
            leader_epoch: -1,
            metadata: long.clone(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: None,
        };
        assert!(try_encode_offset_commit_value(&v).is_err());
        assert_eq!(
            decode_offset(&encode_offset_commit_value(&v))
                .metadata
                .len(),
            32_766
        );

        let g = GroupMetadataKey { group: long };
        assert!(try_encode_group_metadata_key(&g).is_err());
        assert!(try_encode_group_metadata_key(&group_key()).is_ok());
        assert!(try_encode_group_metadata_value(&sample_group_value()).is_ok());
        assert_eq!(
            try_encode_offset_commit_key(&offset_key()).unwrap(),
            encode_offset_commit_key(&offset_key())
        );
    }
}
