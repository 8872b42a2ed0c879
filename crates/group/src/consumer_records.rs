//! The `__consumer_offsets` records of KIP-848 consumer groups (record types 3-8 and 16), in
//! Kafka 4.1's formats, so a coordinator rebuilds a consumer group from its log and Kafka's
//! tools can read what rafka wrote.
//!
//! Every key is the record type as an `i16` followed by non-flexible strings; every value is
//! its version (`i16`, 0 for all of them) followed by a flexible struct: compact strings and
//! arrays, 16 raw bytes per UUID, and a tagged-field section at the end of each struct. Tags
//! this module does not know are skipped on read, as Kafka's generated readers do, so values a
//! newer Kafka wrote (Kafka 4.3's `AssignmentTimestamp`, KIP-1251's `AssignmentEpochs`) load.
//! Type 4 (`ConsumerGroupPartitionMetadata`) was written only by Kafka 4.0: it is read as a
//! marker and only ever written as a tombstone.

use std::collections::{BTreeMap, BTreeSet};

use rafka_coordinator_common::wire::{Reader, WireError, Writer};
use uuid::Uuid;

/// `ConsumerGroupMetadataKey` (group epoch).
pub const GROUP_METADATA: i16 = 3;
/// `ConsumerGroupPartitionMetadataKey` (Kafka 4.0's subscription metadata).
pub const PARTITION_METADATA: i16 = 4;
/// `ConsumerGroupMemberMetadataKey`.
pub const MEMBER_METADATA: i16 = 5;
/// `ConsumerGroupTargetAssignmentMetadataKey` (assignment epoch).
pub const TARGET_ASSIGNMENT_METADATA: i16 = 6;
/// `ConsumerGroupTargetAssignmentMemberKey`.
pub const TARGET_ASSIGNMENT_MEMBER: i16 = 7;
/// `ConsumerGroupCurrentMemberAssignmentKey`.
pub const CURRENT_MEMBER_ASSIGNMENT: i16 = 8;
/// `ConsumerGroupRegularExpressionKey`.
pub const REGULAR_EXPRESSION: i16 = 16;

/// The only value version of every consumer group record.
const VALUE_VERSION: i16 = 0;

/// Partitions by topic id, as the assignment records hold them.
pub type TopicPartitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// `ConsumerGroupMetadataValue`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub epoch: i32,
    /// KIP-1101's hash of the subscribed topics (tag 0; 0 when not computed).
    pub metadata_hash: i64,
}

/// One protocol a member using the classic protocol supports (online migration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassicProtocol {
    pub name: String,
    pub metadata: Vec<u8>,
}

/// What a consumer group keeps of a member that joined with the classic protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    pub supported_protocols: Vec<ClassicProtocol>,
}

/// `ConsumerGroupMemberMetadataValue`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Tag 0: set for a member using the classic protocol in a consumer group.
    pub classic_member_metadata: Option<ClassicMemberMetadata>,
}

/// `ConsumerGroupCurrentMemberAssignmentValue`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentMemberAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState` value (0 stable, 1 unrevoked partitions, 2 unreleased
    /// partitions, 3 unknown).
    pub state: i8,
    pub assigned_partitions: TopicPartitions,
    pub partitions_pending_revocation: TopicPartitions,
}

/// `ConsumerGroupRegularExpressionValue`: a regular expression resolved against the metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegularExpressionValue {
    /// The matching topic names, sorted.
    pub topics: Vec<String>,
    /// The metadata image offset the resolution used.
    pub version: i64,
    pub timestamp_ms: i64,
}

/// One consumer group record; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerGroupRecord {
    GroupMetadata {
        group: String,
        value: Option<GroupMetadataValue>,
    },
    /// Only a tombstone is ever written (`present` is ignored); a value is read as `present`.
    PartitionMetadata { group: String, present: bool },
    MemberMetadata {
        group: String,
        member: String,
        value: Option<MemberMetadataValue>,
    },
    TargetAssignmentMetadata {
        group: String,
        /// The assignment epoch.
        value: Option<i32>,
    },
    TargetAssignmentMember {
        group: String,
        member: String,
        value: Option<TopicPartitions>,
    },
    CurrentMemberAssignment {
        group: String,
        member: String,
        value: Option<CurrentMemberAssignmentValue>,
    },
    RegularExpression {
        group: String,
        regex: String,
        value: Option<RegularExpressionValue>,
    },
}

impl ConsumerGroupRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            ConsumerGroupRecord::GroupMetadata { group, .. }
            | ConsumerGroupRecord::PartitionMetadata { group, .. }
            | ConsumerGroupRecord::MemberMetadata { group, .. }
            | ConsumerGroupRecord::TargetAssignmentMetadata { group, .. }
            | ConsumerGroupRecord::TargetAssignmentMember { group, .. }
            | ConsumerGroupRecord::CurrentMemberAssignment { group, .. }
            | ConsumerGroupRecord::RegularExpression { group, .. } => group,
        }
    }

    /// The record as key and value (`None`: tombstone). Fails only on a field longer than its
    /// length prefix can say (a string over 32,767 bytes).
    pub fn encode(&self) -> Result<(Vec<u8>, Option<Vec<u8>>), WireError> {
        let (key, value) = match self {
            ConsumerGroupRecord::GroupMetadata { group, value } => (
                key(GROUP_METADATA, &[group]),
                value.as_ref().map(write_group_metadata),
            ),
            // Written only as a tombstone, whatever `present` says, as Kafka 4.1 does.
            ConsumerGroupRecord::PartitionMetadata { group, .. } => {
                (key(PARTITION_METADATA, &[group]), None)
            }
            ConsumerGroupRecord::MemberMetadata {
                group,
                member,
                value,
            } => (
                key(MEMBER_METADATA, &[group, member]),
                value.as_ref().map(write_member_metadata).transpose()?,
            ),
            ConsumerGroupRecord::TargetAssignmentMetadata { group, value } => (
                key(TARGET_ASSIGNMENT_METADATA, &[group]),
                value.map(|epoch| {
                    let mut w = value_writer();
                    w.i32(epoch);
                    w.uvarint(0);
                    w
                }),
            ),
            ConsumerGroupRecord::TargetAssignmentMember {
                group,
                member,
                value,
            } => (
                key(TARGET_ASSIGNMENT_MEMBER, &[group, member]),
                value.as_ref().map(|tp| {
                    let mut w = value_writer();
                    write_topic_partitions(&mut w, tp);
                    w.uvarint(0);
                    w
                }),
            ),
            ConsumerGroupRecord::CurrentMemberAssignment {
                group,
                member,
                value,
            } => (
                key(CURRENT_MEMBER_ASSIGNMENT, &[group, member]),
                value.as_ref().map(write_current_assignment),
            ),
            ConsumerGroupRecord::RegularExpression {
                group,
                regex,
                value,
            } => (
                key(REGULAR_EXPRESSION, &[group, regex]),
                value.as_ref().map(|v| {
                    let mut w = value_writer();
                    let n = w.array_len("Topics", v.topics.len(), true);
                    for t in v.topics.iter().take(n) {
                        w.string("Topics", t, true);
                    }
                    w.i64(v.version);
                    w.i64(v.timestamp_ms);
                    w.uvarint(0);
                    w
                }),
            ),
        };
        Ok((key.finish()?, value.map(Writer::finish).transpose()?))
    }

    /// Decodes a record whose key starts with one of this module's record types; `Ok(None)`
    /// for any other type (the caller's business).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, WireError> {
        let mut k = Reader::new(key);
        let record_type = k.i16("record type")?;
        if !matches!(
            record_type,
            GROUP_METADATA
                | PARTITION_METADATA
                | MEMBER_METADATA
                | TARGET_ASSIGNMENT_METADATA
                | TARGET_ASSIGNMENT_MEMBER
                | CURRENT_MEMBER_ASSIGNMENT
                | REGULAR_EXPRESSION
        ) {
            return Ok(None);
        }
        let group = |k: &mut Reader<'_>| k.string("GroupId", false);
        let mut v = value.map(Reader::new);
        if let Some(v) = v.as_mut() {
            let version = v.i16("value version")?;
            if version != VALUE_VERSION {
                return Err(WireError::UnsupportedValueVersion {
                    record: "consumer group record",
                    version,
                    max: VALUE_VERSION,
                });
            }
        }
        let record = match record_type {
            GROUP_METADATA => ConsumerGroupRecord::GroupMetadata {
                group: group(&mut k)?,
                value: v.as_mut().map(read_group_metadata).transpose()?,
            },
            PARTITION_METADATA => ConsumerGroupRecord::PartitionMetadata {
                group: group(&mut k)?,
                present: v.is_some(),
            },
            MEMBER_METADATA => ConsumerGroupRecord::MemberMetadata {
                group: group(&mut k)?,
                member: k.string("MemberId", false)?,
                value: v.as_mut().map(read_member_metadata).transpose()?,
            },
            TARGET_ASSIGNMENT_METADATA => ConsumerGroupRecord::TargetAssignmentMetadata {
                group: group(&mut k)?,
                value: v
                    .as_mut()
                    .map(|v| {
                        let epoch = v.i32("AssignmentEpoch")?;
                        v.skip_tagged_fields("ConsumerGroupTargetAssignmentMetadataValue")?;
                        Ok(epoch)
                    })
                    .transpose()?,
            },
            TARGET_ASSIGNMENT_MEMBER => ConsumerGroupRecord::TargetAssignmentMember {
                group: group(&mut k)?,
                member: k.string("MemberId", false)?,
                value: v
                    .as_mut()
                    .map(|v| {
                        let tp = read_topic_partitions(v, "TopicPartitions")?;
                        v.skip_tagged_fields("ConsumerGroupTargetAssignmentMemberValue")?;
                        Ok(tp)
                    })
                    .transpose()?,
            },
            CURRENT_MEMBER_ASSIGNMENT => ConsumerGroupRecord::CurrentMemberAssignment {
                group: group(&mut k)?,
                member: k.string("MemberId", false)?,
                value: v.as_mut().map(read_current_assignment).transpose()?,
            },
            REGULAR_EXPRESSION => ConsumerGroupRecord::RegularExpression {
                group: group(&mut k)?,
                regex: k.string("RegularExpression", false)?,
                value: v
                    .as_mut()
                    .map(|v| {
                        let n = v.array_len("Topics", true)?;
                        let topics = (0..n)
                            .map(|_| v.string("Topics", true))
                            .collect::<Result<_, _>>()?;
                        let value = RegularExpressionValue {
                            topics,
                            version: v.i64("Version")?,
                            timestamp_ms: v.i64("Timestamp")?,
                        };
                        v.skip_tagged_fields("ConsumerGroupRegularExpressionValue")?;
                        Ok(value)
                    })
                    .transpose()?,
            },
            _ => return Ok(None),
        };
        Ok(Some(record))
    }
}

fn key(record_type: i16, fields: &[&String]) -> Writer {
    let mut w = Writer::new();
    w.i16(record_type);
    for f in fields {
        w.string("key", f, false);
    }
    w
}

fn value_writer() -> Writer {
    let mut w = Writer::new();
    w.i16(VALUE_VERSION);
    w
}

fn write_group_metadata(v: &GroupMetadataValue) -> Writer {
    let mut w = value_writer();
    w.i32(v.epoch);
    // Kafka writes a tagged field only when it differs from its default (0).
    if v.metadata_hash != 0 {
        w.uvarint(1);
        w.uvarint(0);
        w.uvarint(8);
        w.i64(v.metadata_hash);
    } else {
        w.uvarint(0);
    }
    w
}

fn write_member_metadata(v: &MemberMetadataValue) -> Result<Writer, WireError> {
    let mut w = value_writer();
    w.nullable_string("InstanceId", v.instance_id.as_deref(), true);
    w.nullable_string("RackId", v.rack_id.as_deref(), true);
    w.string("ClientId", &v.client_id, true);
    w.string("ClientHost", &v.client_host, true);
    let n = w.array_len("SubscribedTopicNames", v.subscribed_topic_names.len(), true);
    for t in v.subscribed_topic_names.iter().take(n) {
        w.string("SubscribedTopicNames", t, true);
    }
    w.nullable_string(
        "SubscribedTopicRegex",
        v.subscribed_topic_regex.as_deref(),
        true,
    );
    w.i32(v.rebalance_timeout_ms);
    w.nullable_string("ServerAssignor", v.server_assignor.as_deref(), true);
    match &v.classic_member_metadata {
        None => w.uvarint(0),
        Some(classic) => {
            // A nullable struct in a tagged field: its size covers the presence byte (1).
            let mut s = Writer::new();
            s.i8(1);
            s.i32(classic.session_timeout_ms);
            let n = s.array_len(
                "SupportedProtocols",
                classic.supported_protocols.len(),
                true,
            );
            for p in classic.supported_protocols.iter().take(n) {
                s.string("Name", &p.name, true);
                s.bytes("Metadata", &p.metadata, true);
                s.uvarint(0);
            }
            s.uvarint(0);
            let bytes = s.finish()?;
            w.uvarint(1);
            w.uvarint(0);
            w.uvarint(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
            w.raw(&bytes);
        }
    }
    Ok(w)
}

fn write_topic_partitions(w: &mut Writer, tp: &TopicPartitions) {
    let n = w.array_len("TopicPartitions", tp.len(), true);
    for (topic, partitions) in tp.iter().take(n) {
        w.raw(topic.as_bytes());
        let m = w.array_len("Partitions", partitions.len(), true);
        for p in partitions.iter().take(m) {
            w.i32(*p);
        }
        w.uvarint(0);
    }
}

fn write_current_assignment(v: &CurrentMemberAssignmentValue) -> Writer {
    let mut w = value_writer();
    w.i32(v.member_epoch);
    w.i32(v.previous_member_epoch);
    w.i8(v.state);
    write_topic_partitions(&mut w, &v.assigned_partitions);
    write_topic_partitions(&mut w, &v.partitions_pending_revocation);
    w.uvarint(0);
    w
}

/// A tagged-field section whose known tags `known` reads (with the tag's bytes); the others
/// are skipped.
fn read_tagged(
    r: &mut Reader<'_>,
    field: &'static str,
    mut known: impl FnMut(u32, &[u8]) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let count = r.uvarint(field)?;
    for _ in 0..count {
        let tag = r.uvarint(field)?;
        let size = r.uvarint(field)? as usize;
        known(tag, r.take(size, field)?)?;
    }
    Ok(())
}

fn read_group_metadata(r: &mut Reader<'_>) -> Result<GroupMetadataValue, WireError> {
    let mut v = GroupMetadataValue {
        epoch: r.i32("Epoch")?,
        metadata_hash: 0,
    };
    read_tagged(r, "ConsumerGroupMetadataValue", |tag, bytes| {
        if tag == 0 {
            v.metadata_hash = Reader::new(bytes).i64("MetadataHash")?;
        }
        Ok(())
    })?;
    Ok(v)
}

fn read_member_metadata(r: &mut Reader<'_>) -> Result<MemberMetadataValue, WireError> {
    let mut v = MemberMetadataValue {
        instance_id: r.nullable_string("InstanceId", true)?,
        rack_id: r.nullable_string("RackId", true)?,
        client_id: r.string("ClientId", true)?,
        client_host: r.string("ClientHost", true)?,
        ..MemberMetadataValue::default()
    };
    let n = r.array_len("SubscribedTopicNames", true)?;
    v.subscribed_topic_names = (0..n)
        .map(|_| r.string("SubscribedTopicNames", true))
        .collect::<Result<_, _>>()?;
    v.subscribed_topic_regex = r.nullable_string("SubscribedTopicRegex", true)?;
    v.rebalance_timeout_ms = r.i32("RebalanceTimeoutMs")?;
    v.server_assignor = r.nullable_string("ServerAssignor", true)?;
    read_tagged(r, "ConsumerGroupMemberMetadataValue", |tag, bytes| {
        if tag == 0 {
            v.classic_member_metadata = read_classic(&mut Reader::new(bytes))?;
        }
        Ok(())
    })?;
    Ok(v)
}

fn read_classic(r: &mut Reader<'_>) -> Result<Option<ClassicMemberMetadata>, WireError> {
    if r.i8("ClassicMemberMetadata")? < 0 {
        return Ok(None);
    }
    let session_timeout_ms = r.i32("SessionTimeoutMs")?;
    let n = r.array_len("SupportedProtocols", true)?;
    let mut supported_protocols = Vec::with_capacity(n);
    for _ in 0..n {
        supported_protocols.push(ClassicProtocol {
            name: r.string("Name", true)?,
            metadata: r.bytes("Metadata", true)?.to_vec(),
        });
        r.skip_tagged_fields("ClassicProtocol")?;
    }
    r.skip_tagged_fields("ClassicMemberMetadata")?;
    Ok(Some(ClassicMemberMetadata {
        session_timeout_ms,
        supported_protocols,
    }))
}

fn read_topic_partitions(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<TopicPartitions, WireError> {
    let n = r.array_len(field, true)?;
    let mut out = TopicPartitions::new();
    for _ in 0..n {
        let topic = Uuid::from_bytes(r.array::<16>("TopicId")?);
        let m = r.array_len("Partitions", true)?;
        let partitions = out.entry(topic).or_default();
        for _ in 0..m {
            partitions.insert(r.i32("Partitions")?);
        }
        // Newer Kafka versions tag assignment epochs here (KIP-1251); not used.
        r.skip_tagged_fields("TopicPartitions")?;
    }
    Ok(out)
}

fn read_current_assignment(r: &mut Reader<'_>) -> Result<CurrentMemberAssignmentValue, WireError> {
    let v = CurrentMemberAssignmentValue {
        member_epoch: r.i32("MemberEpoch")?,
        previous_member_epoch: r.i32("PreviousMemberEpoch")?,
        state: r.i8("State")?,
        assigned_partitions: read_topic_partitions(r, "AssignedPartitions")?,
        partitions_pending_revocation: read_topic_partitions(r, "PartitionsPendingRevocation")?,
    };
    r.skip_tagged_fields("ConsumerGroupCurrentMemberAssignmentValue")?;
    Ok(v)
}

/// Test shorthand: topic ids from numbers; empty partition lists are left out, as an
/// assignment never holds them.
#[cfg(test)]
pub(crate) fn tp(pairs: &[(u128, &[i32])]) -> TopicPartitions {
    pairs
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (Uuid::from_u128(*t), ps.iter().copied().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<ConsumerGroupRecord> {
        let g = || "group-1".to_string();
        let m = || "member-a".to_string();
        vec![
            ConsumerGroupRecord::GroupMetadata {
                group: g(),
                value: Some(GroupMetadataValue {
                    epoch: 7,
                    metadata_hash: -1234567890123,
                }),
            },
            ConsumerGroupRecord::GroupMetadata {
                group: g(),
                value: Some(GroupMetadataValue {
                    epoch: 1,
                    metadata_hash: 0,
                }),
            },
            ConsumerGroupRecord::GroupMetadata {
                group: g(),
                value: None,
            },
            ConsumerGroupRecord::PartitionMetadata {
                group: g(),
                present: false,
            },
            ConsumerGroupRecord::MemberMetadata {
                group: g(),
                member: m(),
                value: Some(MemberMetadataValue {
                    instance_id: Some("static-1".into()),
                    rack_id: None,
                    client_id: "rdkafka".into(),
                    client_host: "/10.0.0.1".into(),
                    subscribed_topic_names: vec!["a".into(), "b".into()],
                    subscribed_topic_regex: Some("^t.*".into()),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("uniform".into()),
                    classic_member_metadata: None,
                }),
            },
            ConsumerGroupRecord::MemberMetadata {
                group: g(),
                member: m(),
                value: Some(MemberMetadataValue {
                    client_id: "java".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: -1,
                    classic_member_metadata: Some(ClassicMemberMetadata {
                        session_timeout_ms: 45_000,
                        supported_protocols: vec![ClassicProtocol {
                            name: "cooperative-sticky".into(),
                            metadata: vec![0, 3, 1, 2],
                        }],
                    }),
                    ..MemberMetadataValue::default()
                }),
            },
            ConsumerGroupRecord::TargetAssignmentMetadata {
                group: g(),
                value: Some(7),
            },
            ConsumerGroupRecord::TargetAssignmentMember {
                group: g(),
                member: m(),
                value: Some(tp(&[(1, &[0, 2]), (2, &[1])])),
            },
            ConsumerGroupRecord::CurrentMemberAssignment {
                group: g(),
                member: m(),
                value: Some(CurrentMemberAssignmentValue {
                    member_epoch: 7,
                    previous_member_epoch: 6,
                    state: 1,
                    assigned_partitions: tp(&[(1, &[0])]),
                    partitions_pending_revocation: tp(&[(1, &[3])]),
                }),
            },
            ConsumerGroupRecord::CurrentMemberAssignment {
                group: g(),
                member: m(),
                value: None,
            },
            ConsumerGroupRecord::RegularExpression {
                group: g(),
                regex: "^t.*".into(),
                value: Some(RegularExpressionValue {
                    topics: vec!["t1".into(), "t2".into()],
                    version: 42,
                    timestamp_ms: 1_700_000_000_000,
                }),
            },
        ]
    }

    #[test]
    fn every_record_round_trips() {
        for r in samples() {
            let (key, value) = r.encode().expect("encode");
            let back = ConsumerGroupRecord::decode(&key, value.as_deref()).expect("decode");
            assert_eq!(back.as_ref(), Some(&r));
        }
    }

    /// Byte layouts written out by hand from Kafka's schemas, so a change of field order or
    /// encoding shows here rather than in a Kafka tool.
    #[test]
    fn bytes_follow_kafka_s_schemas() {
        let r = ConsumerGroupRecord::GroupMetadata {
            group: "g".into(),
            value: Some(GroupMetadataValue {
                epoch: 5,
                metadata_hash: 1,
            }),
        };
        let (key, value) = r.encode().unwrap();
        assert_eq!(key, [0, 3, 0, 1, b'g']);
        assert_eq!(
            value.unwrap(),
            [0, 0, 0, 0, 0, 5, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]
        );

        let r = ConsumerGroupRecord::TargetAssignmentMember {
            group: "g".into(),
            member: "m".into(),
            value: Some(tp(&[(0x0102, &[3])])),
        };
        let (key, value) = r.encode().unwrap();
        assert_eq!(key, [0, 7, 0, 1, b'g', 0, 1, b'm']);
        let mut want = vec![0, 0, 2];
        want.extend_from_slice(Uuid::from_u128(0x0102).as_bytes());
        want.extend_from_slice(&[2, 0, 0, 0, 3, 0, 0]);
        assert_eq!(value.unwrap(), want);

        let r = ConsumerGroupRecord::MemberMetadata {
            group: "g".into(),
            member: "m".into(),
            value: Some(MemberMetadataValue {
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 9,
                classic_member_metadata: Some(ClassicMemberMetadata {
                    session_timeout_ms: 6,
                    supported_protocols: vec![],
                }),
                ..MemberMetadataValue::default()
            }),
        };
        let (_, value) = r.encode().unwrap();
        #[rustfmt::skip]
        let want = [
            0, 0,             // version
            0, 0,             // InstanceId, RackId: null
            2, b'c', 2, b'h', // ClientId, ClientHost
            1,                // SubscribedTopicNames: []
            0,                // SubscribedTopicRegex: null
            0, 0, 0, 9,       // RebalanceTimeoutMs
            0,                // ServerAssignor: null
            1, 0, 7,          // one tagged field: tag 0, 7 bytes
            1, 0, 0, 0, 6, 1, 0, // present, SessionTimeoutMs, SupportedProtocols [], no tags
        ];
        assert_eq!(value.unwrap(), want);
    }

    #[test]
    fn unknown_tags_are_skipped_and_other_types_are_not_ours() {
        // A target assignment metadata value as Kafka 4.3 writes it, with AssignmentTimestamp
        // (tag 0).
        let value = [0, 0, 0, 0, 0, 4, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9];
        let key = [0, 6, 0, 1, b'g'];
        assert_eq!(
            ConsumerGroupRecord::decode(&key, Some(&value)).unwrap(),
            Some(ConsumerGroupRecord::TargetAssignmentMetadata {
                group: "g".into(),
                value: Some(4),
            })
        );
        // Offset commits (1), classic groups (2) and share groups (9) are someone else's.
        for t in [1u8, 2, 9] {
            assert_eq!(
                ConsumerGroupRecord::decode(&[0, t, 0, 1, b'g'], None).unwrap(),
                None
            );
        }
    }

    #[test]
    fn truncated_and_garbage_input_fails_without_panicking() {
        for r in samples() {
            let (key, value) = r.encode().unwrap();
            for cut in 0..key.len() {
                let _ = ConsumerGroupRecord::decode(&key[..cut], value.as_deref());
            }
            if let Some(value) = value {
                for cut in 0..value.len() {
                    assert!(
                        ConsumerGroupRecord::decode(&key, Some(&value[..cut])).is_err(),
                        "{r:?} cut at {cut}"
                    );
                }
                let mut bad = value.clone();
                bad[1] = 1;
                assert!(ConsumerGroupRecord::decode(&key, Some(&bad)).is_err());
            }
        }
        let mut seed = 1u64;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..40)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect();
            let _ = ConsumerGroupRecord::decode(&[0, 5, 0, 1, b'g', 0, 1, b'm'], Some(&bytes));
            let _ = ConsumerGroupRecord::decode(&[0, 8, 0, 1, b'g', 0, 1, b'm'], Some(&bytes));
        }
    }
}
