//! A schema walk over request bodies, run before `kafka-protocol` decodes them.
//!
//! Why: `kafka-protocol` 0.18 calls `Vec::with_capacity(n)` with array counts read straight off
//! the wire (up to 2^31 for classic arrays, 2^32 for compact ones). A 20-byte request claiming
//! two billion topics makes it ask for hundreds of gigabytes; the allocation fails and Rust
//! aborts the process, which `catch_unwind` cannot stop. Kafka's own generated code refuses an
//! array whose count exceeds the bytes remaining; this walk applies that rule and, because it
//! visits every element, also guarantees that each count is backed by real bytes, so decode
//! memory stays proportional to the frame size.
//!
//! The walk knows only sizes and positions: fixed-width fields, (compact) strings and bytes,
//! arrays of primitives or structs, and the tagged-field sections of flexible versions. It
//! accepts null wherever a length could be null and leaves stricter checks to `kafka-protocol`.
//! Tagged fields are skipped by their declared size, except those a shape declares (see
//! [`tagged`]): `kafka-protocol` decodes a known tagged field with its own type straight off the
//! buffer, ignoring the declared size, so an array inside one needs the same bound as any other.
//! Shapes are transcribed from Kafka's JSON schemas (as generated into `kafka-protocol`); a unit
//! test walks `kafka-protocol`'s own encoding of populated requests at every version in
//! `SUPPORTED_APIS`, `PENDING_APIS` and `CONTROLLER_APIS` and demands the walk ends exactly where
//! the encoding does.

use kafka_protocol::messages::ApiKey;

/// One field: its wire type and the versions it is present in (inclusive).
#[derive(Debug, Clone, Copy)]
struct Field {
    ty: Ty,
    min: i16,
    max: i16,
    /// `Some` for a tagged field: it lives in the tagged-field section under this tag.
    tag: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Ty {
    /// Fixed width in bytes (ints, booleans, UUIDs).
    Fixed(usize),
    /// (Nullable) string: i16 length, or compact.
    Str,
    /// (Nullable) bytes / records: i32 length, or compact.
    Bytes,
    /// Array of a primitive: fixed width in bytes.
    FixedArray(usize),
    /// Array of strings.
    StrArray,
    /// Array of structs; in flexible versions each element ends with tagged fields.
    Structs(&'static [Field]),
    /// A nullable struct (flexible versions only): an i8 marker, -1 for null, then the struct
    /// with its tagged fields.
    OptStruct(&'static [Field]),
}

const ALL: i16 = i16::MAX;

const fn f(ty: Ty, min: i16, max: i16) -> Field {
    Field {
        ty,
        min,
        max,
        tag: None,
    }
}

/// A tagged field `kafka-protocol` decodes by type. Declared only where that type holds an array
/// (an unbounded preallocation otherwise); other known tags are safe to skip by size, and the
/// codec's walked-versus-consumed check still catches a size that disagrees with the type.
const fn tagged(tag: u32, ty: Ty, min: i16, max: i16) -> Field {
    Field {
        ty,
        min,
        max,
        tag: Some(tag),
    }
}

const I8: Ty = Ty::Fixed(1);
const BOOL: Ty = Ty::Fixed(1);
const I16: Ty = Ty::Fixed(2);
const U16: Ty = Ty::Fixed(2);
const I32: Ty = Ty::Fixed(4);
const I64: Ty = Ty::Fixed(8);
const UUID: Ty = Ty::Fixed(16);

/// The body shape of one request type.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// First version using compact encodings and tagged fields.
    flexible_min: i16,
    fields: &'static [Field],
}

const API_VERSIONS: Shape = Shape {
    flexible_min: 3,
    fields: &[f(Ty::Str, 3, ALL), f(Ty::Str, 3, ALL)],
};

const METADATA: Shape = Shape {
    flexible_min: 9,
    fields: &[
        f(Ty::Structs(&[f(UUID, 10, ALL), f(Ty::Str, 0, ALL)]), 0, ALL),
        f(BOOL, 4, ALL),
        f(BOOL, 8, 10),
        f(BOOL, 8, ALL),
    ],
};

const PRODUCE: Shape = Shape {
    flexible_min: 9,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(I16, 0, ALL),
        f(I32, 0, ALL),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, 12),
                f(UUID, 13, ALL),
                f(Ty::Structs(&[f(I32, 0, ALL), f(Ty::Bytes, 0, ALL)]), 0, ALL),
            ]),
            0,
            ALL,
        ),
    ],
};

const FETCH: Shape = Shape {
    flexible_min: 12,
    fields: &[
        f(I32, 0, 14),
        f(I32, 0, ALL),
        f(I32, 0, ALL),
        f(I32, 3, ALL),
        f(I8, 4, ALL),
        f(I32, 7, ALL),
        f(I32, 7, ALL),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, 12),
                f(UUID, 13, ALL),
                f(
                    Ty::Structs(&[
                        f(I32, 0, ALL),
                        f(I32, 9, ALL),
                        f(I64, 0, ALL),
                        f(I32, 12, ALL),
                        f(I64, 5, ALL),
                        f(I32, 0, ALL),
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(
            Ty::Structs(&[
                f(Ty::Str, 7, 12),
                f(UUID, 13, ALL),
                f(Ty::FixedArray(4), 7, ALL),
            ]),
            7,
            ALL,
        ),
        f(Ty::Str, 11, ALL),
    ],
};

const LIST_OFFSETS: Shape = Shape {
    flexible_min: 6,
    fields: &[
        f(I32, 0, ALL),
        f(I8, 2, ALL),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(
                    Ty::Structs(&[f(I32, 0, ALL), f(I32, 4, ALL), f(I64, 0, ALL), f(I32, 0, 0)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(I32, 10, ALL),
    ],
};

const OFFSET_FOR_LEADER_EPOCH: Shape = Shape {
    flexible_min: 4,
    fields: &[
        f(I32, 3, ALL),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(
                    Ty::Structs(&[f(I32, 0, ALL), f(I32, 2, ALL), f(I32, 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

const DESCRIBE_TOPIC_PARTITIONS: Shape = Shape {
    flexible_min: 0,
    fields: &[
        f(Ty::Structs(&[f(Ty::Str, 0, ALL)]), 0, ALL),
        f(I32, 0, ALL),
        f(Ty::OptStruct(&[f(Ty::Str, 0, ALL), f(I32, 0, ALL)]), 0, ALL),
    ],
};

const ELECT_LEADERS: Shape = Shape {
    flexible_min: 2,
    fields: &[
        f(I8, 1, ALL),
        f(
            Ty::Structs(&[f(Ty::Str, 0, ALL), f(Ty::FixedArray(4), 0, ALL)]),
            0,
            ALL,
        ),
        f(I32, 0, ALL),
    ],
};

const ALTER_PARTITION_REASSIGNMENTS: Shape = Shape {
    flexible_min: 0,
    fields: &[
        f(I32, 0, ALL),
        f(BOOL, 1, ALL),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(
                    Ty::Structs(&[f(I32, 0, ALL), f(Ty::FixedArray(4), 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

const LIST_PARTITION_REASSIGNMENTS: Shape = Shape {
    flexible_min: 0,
    fields: &[
        f(I32, 0, ALL),
        f(
            Ty::Structs(&[f(Ty::Str, 0, ALL), f(Ty::FixedArray(4), 0, ALL)]),
            0,
            ALL,
        ),
    ],
};

const CREATE_TOPICS: Shape = Shape {
    flexible_min: 5,
    fields: &[
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(I32, 0, ALL),
                f(I16, 0, ALL),
                f(
                    Ty::Structs(&[f(I32, 0, ALL), f(Ty::FixedArray(4), 0, ALL)]),
                    0,
                    ALL,
                ),
                f(
                    Ty::Structs(&[f(Ty::Str, 0, ALL), f(Ty::Str, 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(I32, 0, ALL),
        f(BOOL, 1, ALL),
    ],
};

const DELETE_TOPICS: Shape = Shape {
    flexible_min: 4,
    fields: &[
        f(Ty::Structs(&[f(Ty::Str, 6, ALL), f(UUID, 6, ALL)]), 6, ALL),
        f(Ty::StrArray, 0, 5),
        f(I32, 0, ALL),
    ],
};

const CREATE_PARTITIONS: Shape = Shape {
    flexible_min: 2,
    fields: &[
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(I32, 0, ALL),
                f(Ty::Structs(&[f(Ty::FixedArray(4), 0, ALL)]), 0, ALL),
            ]),
            0,
            ALL,
        ),
        f(I32, 0, ALL),
        f(BOOL, 0, ALL),
    ],
};

const DESCRIBE_CONFIGS: Shape = Shape {
    flexible_min: 4,
    fields: &[
        f(
            Ty::Structs(&[f(I8, 0, ALL), f(Ty::Str, 0, ALL), f(Ty::StrArray, 0, ALL)]),
            0,
            ALL,
        ),
        f(BOOL, 1, ALL),
        f(BOOL, 3, ALL),
    ],
};

const ALTER_CONFIGS: Shape = Shape {
    flexible_min: 2,
    fields: &[
        f(
            Ty::Structs(&[
                f(I8, 0, ALL),
                f(Ty::Str, 0, ALL),
                f(
                    Ty::Structs(&[f(Ty::Str, 0, ALL), f(Ty::Str, 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(BOOL, 0, ALL),
    ],
};

const INCREMENTAL_ALTER_CONFIGS: Shape = Shape {
    flexible_min: 1,
    fields: &[
        f(
            Ty::Structs(&[
                f(I8, 0, ALL),
                f(Ty::Str, 0, ALL),
                f(
                    Ty::Structs(&[f(Ty::Str, 0, ALL), f(I8, 0, ALL), f(Ty::Str, 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(BOOL, 0, ALL),
    ],
};

const DESCRIBE_CLUSTER: Shape = Shape {
    flexible_min: 0,
    fields: &[f(BOOL, 0, ALL), f(I8, 1, ALL), f(BOOL, 2, ALL)],
};

/// `flexible_min` of a request type that has no flexible versions.
const NEVER: i16 = i16::MAX;

const FIND_COORDINATOR: Shape = Shape {
    flexible_min: 3,
    fields: &[f(Ty::Str, 0, 3), f(I8, 1, ALL), f(Ty::StrArray, 4, ALL)],
};

const JOIN_GROUP: Shape = Shape {
    flexible_min: 6,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(I32, 0, ALL),
        f(I32, 1, ALL),
        f(Ty::Str, 0, ALL),
        f(Ty::Str, 5, ALL),
        f(Ty::Str, 0, ALL),
        f(
            Ty::Structs(&[f(Ty::Str, 0, ALL), f(Ty::Bytes, 0, ALL)]),
            0,
            ALL,
        ),
        f(Ty::Str, 8, ALL),
    ],
};

const SYNC_GROUP: Shape = Shape {
    flexible_min: 4,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(I32, 0, ALL),
        f(Ty::Str, 0, ALL),
        f(Ty::Str, 3, ALL),
        f(Ty::Str, 5, ALL),
        f(Ty::Str, 5, ALL),
        f(
            Ty::Structs(&[f(Ty::Str, 0, ALL), f(Ty::Bytes, 0, ALL)]),
            0,
            ALL,
        ),
    ],
};

const CONSUMER_GROUP_HEARTBEAT: Shape = Shape {
    flexible_min: 0,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(Ty::Str, 0, ALL),
        f(I32, 0, ALL),
        f(Ty::Str, 0, ALL),
        f(Ty::Str, 0, ALL),
        f(I32, 0, ALL),
        f(Ty::StrArray, 0, ALL),
        f(Ty::Str, 1, ALL),
        f(Ty::Str, 0, ALL),
        f(
            Ty::Structs(&[f(UUID, 0, ALL), f(Ty::FixedArray(4), 0, ALL)]),
            0,
            ALL,
        ),
    ],
};

const CONSUMER_GROUP_DESCRIBE: Shape = Shape {
    flexible_min: 0,
    fields: &[f(Ty::StrArray, 0, ALL), f(BOOL, 0, ALL)],
};

const HEARTBEAT: Shape = Shape {
    flexible_min: 4,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(I32, 0, ALL),
        f(Ty::Str, 0, ALL),
        f(Ty::Str, 3, ALL),
    ],
};

const LEAVE_GROUP: Shape = Shape {
    flexible_min: 4,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(Ty::Str, 0, 2),
        f(
            Ty::Structs(&[f(Ty::Str, 3, ALL), f(Ty::Str, 3, ALL), f(Ty::Str, 5, ALL)]),
            3,
            ALL,
        ),
    ],
};

const OFFSET_COMMIT: Shape = Shape {
    flexible_min: 8,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(I32, 0, ALL),
        f(Ty::Str, 0, ALL),
        f(Ty::Str, 7, ALL),
        f(I64, 0, 4),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(
                    Ty::Structs(&[
                        f(I32, 0, ALL),
                        f(I64, 0, ALL),
                        f(I32, 6, ALL),
                        f(Ty::Str, 0, ALL),
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

const OFFSET_FETCH: Shape = Shape {
    flexible_min: 6,
    fields: &[
        f(Ty::Str, 0, 7),
        f(
            Ty::Structs(&[f(Ty::Str, 0, 7), f(Ty::FixedArray(4), 0, 7)]),
            0,
            7,
        ),
        f(
            Ty::Structs(&[
                f(Ty::Str, 8, ALL),
                f(Ty::Str, 9, ALL),
                f(I32, 9, ALL),
                f(
                    Ty::Structs(&[f(Ty::Str, 8, ALL), f(Ty::FixedArray(4), 8, ALL)]),
                    8,
                    ALL,
                ),
            ]),
            8,
            ALL,
        ),
        f(BOOL, 7, ALL),
    ],
};

const DESCRIBE_GROUPS: Shape = Shape {
    flexible_min: 5,
    fields: &[f(Ty::StrArray, 0, ALL), f(BOOL, 3, ALL)],
};

const LIST_GROUPS: Shape = Shape {
    flexible_min: 3,
    fields: &[f(Ty::StrArray, 4, ALL), f(Ty::StrArray, 5, ALL)],
};

const DELETE_GROUPS: Shape = Shape {
    flexible_min: 2,
    fields: &[f(Ty::StrArray, 0, ALL)],
};

const OFFSET_DELETE: Shape = Shape {
    flexible_min: NEVER,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(Ty::Structs(&[f(I32, 0, ALL)]), 0, ALL),
            ]),
            0,
            ALL,
        ),
    ],
};

const DELETE_RECORDS: Shape = Shape {
    flexible_min: 2,
    fields: &[
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(Ty::Structs(&[f(I32, 0, ALL), f(I64, 0, ALL)]), 0, ALL),
            ]),
            0,
            ALL,
        ),
        f(I32, 0, ALL),
    ],
};

const DESCRIBE_LOG_DIRS: Shape = Shape {
    flexible_min: 2,
    // Topics is a nullable array (null: every partition).
    fields: &[f(
        Ty::Structs(&[f(Ty::Str, 0, ALL), f(Ty::FixedArray(4), 0, ALL)]),
        0,
        ALL,
    )],
};

const INIT_PRODUCER_ID: Shape = Shape {
    flexible_min: 2,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(I32, 0, ALL),
        f(I64, 3, ALL),
        f(I16, 3, ALL),
    ],
};

/// A topic and its partition indexes, as AddPartitionsToTxn, DescribeProducers and
/// WriteTxnMarkers carry them.
const TOPIC_PARTITIONS: &[Field] = &[f(Ty::Str, 0, ALL), f(Ty::FixedArray(4), 0, ALL)];

const ADD_PARTITIONS_TO_TXN: Shape = Shape {
    flexible_min: 3,
    fields: &[
        // v4+: a batch of transactions.
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(I64, 0, ALL),
                f(I16, 0, ALL),
                f(BOOL, 0, ALL),
                f(Ty::Structs(TOPIC_PARTITIONS), 0, ALL),
            ]),
            4,
            ALL,
        ),
        // v0-3: one transaction.
        f(Ty::Str, 0, 3),
        f(I64, 0, 3),
        f(I16, 0, 3),
        f(Ty::Structs(TOPIC_PARTITIONS), 0, 3),
    ],
};

const ADD_OFFSETS_TO_TXN: Shape = Shape {
    flexible_min: 3,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(I64, 0, ALL),
        f(I16, 0, ALL),
        f(Ty::Str, 0, ALL),
    ],
};

const END_TXN: Shape = Shape {
    flexible_min: 3,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(I64, 0, ALL),
        f(I16, 0, ALL),
        f(BOOL, 0, ALL),
    ],
};

const TXN_OFFSET_COMMIT: Shape = Shape {
    flexible_min: 3,
    fields: &[
        f(Ty::Str, 0, ALL),
        f(Ty::Str, 0, ALL),
        f(I64, 0, ALL),
        f(I16, 0, ALL),
        f(I32, 3, ALL),
        f(Ty::Str, 3, ALL),
        f(Ty::Str, 3, ALL),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(
                    Ty::Structs(&[
                        f(I32, 0, ALL),
                        f(I64, 0, ALL),
                        f(I32, 2, ALL),
                        f(Ty::Str, 0, ALL),
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

const DESCRIBE_PRODUCERS: Shape = Shape {
    flexible_min: 0,
    fields: &[f(Ty::Structs(TOPIC_PARTITIONS), 0, ALL)],
};

const DESCRIBE_TRANSACTIONS: Shape = Shape {
    flexible_min: 0,
    fields: &[f(Ty::StrArray, 0, ALL)],
};

const LIST_TRANSACTIONS: Shape = Shape {
    flexible_min: 0,
    fields: &[
        f(Ty::StrArray, 0, ALL),
        f(Ty::FixedArray(8), 0, ALL),
        f(I64, 1, ALL),
        f(Ty::Str, 2, ALL),
    ],
};

const WRITE_TXN_MARKERS: Shape = Shape {
    // Kafka's schema: flexible from v1, the only version kafka-protocol 0.18 knows.
    flexible_min: 1,
    fields: &[f(
        Ty::Structs(&[
            f(I64, 0, ALL),
            f(I16, 0, ALL),
            f(BOOL, 0, ALL),
            f(Ty::Structs(TOPIC_PARTITIONS), 0, ALL),
            f(I32, 0, ALL),
        ]),
        0,
        ALL,
    )],
};

const DESCRIBE_QUORUM: Shape = Shape {
    flexible_min: 0,
    fields: &[f(
        Ty::Structs(&[
            f(Ty::Str, 0, ALL),
            f(Ty::Structs(&[f(I32, 0, ALL)]), 0, ALL),
        ]),
        0,
        ALL,
    )],
};

const BROKER_REGISTRATION: Shape = Shape {
    flexible_min: 0,
    fields: &[
        f(I32, 0, ALL),
        f(Ty::Str, 0, ALL),
        f(UUID, 0, ALL),
        // Listeners: name, host, port, security protocol.
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, ALL),
                f(Ty::Str, 0, ALL),
                f(U16, 0, ALL),
                f(I16, 0, ALL),
            ]),
            0,
            ALL,
        ),
        // Features: name, min and max supported version.
        f(
            Ty::Structs(&[f(Ty::Str, 0, ALL), f(I16, 0, ALL), f(I16, 0, ALL)]),
            0,
            ALL,
        ),
        f(Ty::Str, 0, ALL),
        f(BOOL, 1, ALL),
        f(Ty::FixedArray(16), 2, ALL),
        f(I64, 3, ALL),
    ],
};

const BROKER_HEARTBEAT: Shape = Shape {
    flexible_min: 0,
    fields: &[
        f(I32, 0, ALL),
        f(I64, 0, ALL),
        f(I64, 0, ALL),
        f(BOOL, 0, ALL),
        f(BOOL, 0, ALL),
        // Offline log directories: an array of UUIDs.
        tagged(0, Ty::FixedArray(16), 1, ALL),
    ],
};

const ALTER_PARTITION: Shape = Shape {
    flexible_min: 0,
    fields: &[
        f(I32, 0, ALL),
        f(I64, 0, ALL),
        f(
            Ty::Structs(&[
                f(Ty::Str, 0, 1),
                f(Ty::Fixed(16), 2, ALL),
                f(
                    Ty::Structs(&[
                        f(I32, 0, ALL),
                        f(I32, 0, ALL),
                        f(Ty::FixedArray(4), 0, 2),
                        f(Ty::Structs(&[f(I32, 3, ALL), f(I64, 3, ALL)]), 3, ALL),
                        f(I8, 1, ALL),
                        f(I32, 1, ALL),
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

/// An ACL filter (DescribeAcls' body, DeleteAcls' filters) or creation (CreateAcls): resource
/// type, name, pattern type (v1+), principal, host, operation, permission type.
const ACL_FIELDS: &[Field] = &[
    f(I8, 0, ALL),
    f(Ty::Str, 0, ALL),
    f(I8, 1, ALL),
    f(Ty::Str, 0, ALL),
    f(Ty::Str, 0, ALL),
    f(I8, 0, ALL),
    f(I8, 0, ALL),
];

const DESCRIBE_ACLS: Shape = Shape {
    flexible_min: 2,
    fields: ACL_FIELDS,
};

const CREATE_ACLS: Shape = Shape {
    flexible_min: 2,
    fields: &[f(Ty::Structs(ACL_FIELDS), 0, ALL)],
};

const DELETE_ACLS: Shape = Shape {
    flexible_min: 2,
    fields: &[f(Ty::Structs(ACL_FIELDS), 0, ALL)],
};

const DESCRIBE_CLIENT_QUOTAS: Shape = Shape {
    flexible_min: 1,
    fields: &[
        // Components: entity type, match type, match.
        f(
            Ty::Structs(&[f(Ty::Str, 0, ALL), f(I8, 0, ALL), f(Ty::Str, 0, ALL)]),
            0,
            ALL,
        ),
        f(BOOL, 0, ALL),
    ],
};

const DESCRIBE_USER_SCRAM_CREDENTIALS: Shape = Shape {
    flexible_min: 0,
    // Users is a nullable array of structs holding a name (null: every user).
    fields: &[f(Ty::Structs(&[f(Ty::Str, 0, ALL)]), 0, ALL)],
};

fn shape_of(api_key: ApiKey) -> Option<&'static Shape> {
    Some(match api_key {
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::Metadata => &METADATA,
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::OffsetForLeaderEpoch => &OFFSET_FOR_LEADER_EPOCH,
        ApiKey::DescribeTopicPartitions => &DESCRIBE_TOPIC_PARTITIONS,
        ApiKey::ElectLeaders => &ELECT_LEADERS,
        ApiKey::AlterPartitionReassignments => &ALTER_PARTITION_REASSIGNMENTS,
        ApiKey::ListPartitionReassignments => &LIST_PARTITION_REASSIGNMENTS,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::AlterConfigs => &ALTER_CONFIGS,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::DeleteRecords => &DELETE_RECORDS,
        ApiKey::DescribeLogDirs => &DESCRIBE_LOG_DIRS,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::Heartbeat => &HEARTBEAT,
        ApiKey::ConsumerGroupHeartbeat => &CONSUMER_GROUP_HEARTBEAT,
        ApiKey::ConsumerGroupDescribe => &CONSUMER_GROUP_DESCRIBE,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::OffsetDelete => &OFFSET_DELETE,
        ApiKey::AddPartitionsToTxn => &ADD_PARTITIONS_TO_TXN,
        ApiKey::AddOffsetsToTxn => &ADD_OFFSETS_TO_TXN,
        ApiKey::EndTxn => &END_TXN,
        ApiKey::TxnOffsetCommit => &TXN_OFFSET_COMMIT,
        ApiKey::DescribeProducers => &DESCRIBE_PRODUCERS,
        ApiKey::DescribeTransactions => &DESCRIBE_TRANSACTIONS,
        ApiKey::ListTransactions => &LIST_TRANSACTIONS,
        ApiKey::WriteTxnMarkers => &WRITE_TXN_MARKERS,
        ApiKey::DescribeQuorum => &DESCRIBE_QUORUM,
        ApiKey::BrokerRegistration => &BROKER_REGISTRATION,
        ApiKey::BrokerHeartbeat => &BROKER_HEARTBEAT,
        ApiKey::AlterPartition => &ALTER_PARTITION,
        ApiKey::DescribeAcls => &DESCRIBE_ACLS,
        ApiKey::CreateAcls => &CREATE_ACLS,
        ApiKey::DeleteAcls => &DELETE_ACLS,
        ApiKey::DescribeClientQuotas => &DESCRIBE_CLIENT_QUOTAS,
        ApiKey::DescribeUserScramCredentials => &DESCRIBE_USER_SCRAM_CREDENTIALS,
        _ => return None,
    })
}

/// Whether a body shape is known for `api_key`.
#[cfg(test)]
pub(crate) fn has_shape(api_key: ApiKey) -> bool {
    shape_of(api_key).is_some()
}

/// Walks a request body; returns how many bytes it spans.
pub(crate) fn walk_request_body(
    api_key: ApiKey,
    version: i16,
    body: &[u8],
) -> Result<usize, String> {
    let shape = shape_of(api_key)
        .ok_or_else(|| format!("no body shape known for {api_key:?}; refusing to decode"))?;
    let mut w = Walker {
        buf: body,
        pos: 0,
        version,
        flexible: version >= shape.flexible_min,
    };
    w.fields(shape.fields)?;
    Ok(w.pos)
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "field of {n} bytes at body offset {} runs past the end ({} bytes left)",
                self.pos,
                self.remaining()
            ));
        }
        self.pos += n;
        Ok(())
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes: [u8; N] = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..N))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("body ends inside a field at offset {}", self.pos))?;
        self.pos += N;
        Ok(bytes)
    }

    fn uvarint(&mut self) -> Result<u32, String> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.fixed::<1>()?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("unsigned varint longer than 5 bytes".into())
    }

    /// Reads a length that may be null; `None` for null.
    fn length(&mut self, wide: bool) -> Result<Option<usize>, String> {
        if self.flexible {
            let n = self.uvarint()?;
            Ok(n.checked_sub(1).map(|n| n as usize))
        } else {
            let n = if wide {
                i32::from_be_bytes(self.fixed::<4>()?)
            } else {
                i32::from(i16::from_be_bytes(self.fixed::<2>()?))
            };
            match n {
                -1 => Ok(None),
                n if n < -1 => Err(format!("negative length {n}")),
                n => Ok(Some(n as usize)),
            }
        }
    }

    fn array_len(&mut self) -> Result<usize, String> {
        let n = self.length(true)?.unwrap_or(0);
        // Kafka's rule: every element takes at least one byte.
        if n > self.remaining() {
            return Err(format!(
                "array of {n} elements but only {} bytes left",
                self.remaining()
            ));
        }
        Ok(n)
    }

    fn present(&self, field: &Field) -> bool {
        (field.min..=field.max).contains(&self.version)
    }

    /// The tagged-field section after `fields`' untagged fields.
    fn tagged_fields(&mut self, fields: &[Field]) -> Result<(), String> {
        let count = self.uvarint()?;
        // Each tagged field takes at least two bytes, so this loop ends when the bytes do.
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let known = fields
                .iter()
                .find(|field| field.tag == Some(tag) && self.present(field));
            match known {
                Some(field) => self.tagged_value(tag, field.ty, size)?,
                None => self.skip(size)?,
            }
        }
        Ok(())
    }

    /// Walks a known tagged field's value inside its declared `size`, so its arrays are bounded
    /// by the field, and demands it fill exactly that: `kafka-protocol` reads the value by type,
    /// not by size, and must end where we do.
    fn tagged_value(&mut self, tag: u32, ty: Ty, size: usize) -> Result<(), String> {
        let value = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..size))
            .ok_or_else(|| {
                format!(
                    "tagged field {tag} of {size} bytes at body offset {} runs past the end ({} \
                     bytes left)",
                    self.pos,
                    self.remaining()
                )
            })?;
        let mut inner = Walker {
            buf: value,
            pos: 0,
            version: self.version,
            flexible: self.flexible,
        };
        inner
            .ty(ty)
            .map_err(|e| format!("tagged field {tag} at body offset {}: {e}", self.pos))?;
        if inner.pos != size {
            return Err(format!(
                "tagged field {tag} declares {size} bytes but its value spans {}",
                inner.pos
            ));
        }
        self.pos += size;
        Ok(())
    }

    fn fields(&mut self, fields: &[Field]) -> Result<(), String> {
        for field in fields {
            if field.tag.is_none() && self.present(field) {
                self.ty(field.ty)?;
            }
        }
        if self.flexible {
            self.tagged_fields(fields)?;
        }
        Ok(())
    }

    fn ty(&mut self, ty: Ty) -> Result<(), String> {
        match ty {
            Ty::Fixed(n) => self.skip(n),
            Ty::Str => {
                let n = self.length(false)?.unwrap_or(0);
                self.skip(n)
            }
            Ty::Bytes => {
                let n = self.length(true)?.unwrap_or(0);
                self.skip(n)
            }
            Ty::FixedArray(width) => {
                let n = self.array_len()?;
                self.skip(n.saturating_mul(width))
            }
            Ty::StrArray => {
                for _ in 0..self.array_len()? {
                    self.ty(Ty::Str)?;
                }
                Ok(())
            }
            Ty::Structs(fields) => {
                for _ in 0..self.array_len()? {
                    self.fields(fields)?;
                }
                Ok(())
            }
            Ty::OptStruct(fields) => {
                let [marker] = self.fixed::<1>()?;
                if marker as i8 >= 0 {
                    self.fields(fields)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::implemented_apis;

    /// Supported and pending APIs alike: the codec tests walk every version of both.
    #[test]
    fn every_implemented_api_has_a_shape() {
        for a in implemented_apis() {
            assert!(has_shape(a.key), "{:?} has no shape", a.key);
        }
    }

    #[test]
    fn huge_counts_are_refused() {
        // Metadata v0: topics array claiming i32::MAX entries.
        assert!(walk_request_body(ApiKey::Metadata, 0, &i32::MAX.to_be_bytes()).is_err());
        // Metadata v9: compact array claiming u32::MAX - 1 entries.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(walk_request_body(ApiKey::Metadata, 9, &body).is_err());
        // A count that fits the bytes but whose elements are not there.
        let mut body = 3i32.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0]);
        assert!(walk_request_body(ApiKey::Metadata, 0, &body).is_err());
        // Null arrays are accepted (kafka-protocol decides whether null is allowed).
        assert_eq!(
            walk_request_body(ApiKey::Metadata, 1, &(-1i32).to_be_bytes()),
            Ok(4)
        );
    }

    /// A BrokerHeartbeat body: the fixed fields (broker id, epoch, metadata offset, want fence,
    /// want shutdown), then the given tagged-field section.
    fn heartbeat(tagged: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8; 4 + 8 + 8 + 1 + 1];
        body.extend_from_slice(tagged);
        body
    }

    #[test]
    fn known_tagged_fields_are_walked_within_their_size() {
        let fixed = heartbeat(&[]).len();
        // v1, tag 0 (offline log dirs): two UUIDs, 1 + 32 bytes.
        let mut two = vec![1, 0, 33, 3];
        two.extend_from_slice(&[7; 32]);
        assert_eq!(
            walk_request_body(ApiKey::BrokerHeartbeat, 1, &heartbeat(&two)),
            Ok(fixed + two.len())
        );
        // A count claiming u32::MAX - 1 UUIDs inside a 5-byte field: refused before
        // kafka-protocol would preallocate for it.
        let huge = [1, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(walk_request_body(ApiKey::BrokerHeartbeat, 1, &heartbeat(&huge)).is_err());
        // A count backed by bytes after the field, not inside it: refused too.
        let mut spill = vec![1, 0, 1, 3];
        spill.extend_from_slice(&[7; 32]);
        assert!(walk_request_body(ApiKey::BrokerHeartbeat, 1, &heartbeat(&spill)).is_err());
        // A declared size larger than the value: kafka-protocol would stop short of it.
        let mut slack = vec![1, 0, 18, 2];
        slack.extend_from_slice(&[7; 17]);
        assert!(walk_request_body(ApiKey::BrokerHeartbeat, 1, &heartbeat(&slack)).is_err());
        // Unknown tags are skipped by size, whatever they hold.
        let unknown = [1, 5, 5, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            walk_request_body(ApiKey::BrokerHeartbeat, 1, &heartbeat(&unknown)),
            Ok(fixed + unknown.len())
        );
        // Tag 0 is not known at v0: skipped here (kafka-protocol refuses it).
        assert_eq!(
            walk_request_body(ApiKey::BrokerHeartbeat, 0, &heartbeat(&huge)),
            Ok(fixed + huge.len())
        );
    }
}
