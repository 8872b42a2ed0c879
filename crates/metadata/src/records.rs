//! Metadata records: the unit of cluster-state change.
//!
//! A record says what changed, never why; every change to the [`MetadataImage`] is one of these.
//! Commands ([`crate::ControllerCommand`]) are validated against the image and then expand into
//! records, so replaying the same commands always yields the same records.
//!
//! New kinds of state (broker fencing, producer-id blocks, feature levels, ACLs) are new variants:
//! the enum is externally tagged in JSON, so logs and snapshots written before a variant existed
//! still decode.
//!
//! [`MetadataImage`]: crate::MetadataImage

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Sentinel for "no leader", as in Kafka's `PartitionRecord.leader`.
pub const NO_LEADER: i32 = -1;

/// KIP-704: whether a partition's leader came from an unclean election and has not yet
/// confirmed its state (Kafka's `LeaderRecoveryState`). While RECOVERING, the ISR is the leader
/// alone; the leader's first AlterPartition says RECOVERED, as Kafka's brokers do at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderRecoveryState {
    #[default]
    Recovered,
    Recovering,
}

impl LeaderRecoveryState {
    pub fn is_recovered(&self) -> bool {
        *self == LeaderRecoveryState::Recovered
    }
}

/// One change to cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re-)registered; replaces any earlier registration of the same node id.
    RegisterBroker(BrokerRegistration),
    /// A topic came into existence.
    Topic { name: String, topic_id: Uuid },
    /// A partition was created, or its whole registration replaced.
    Partition(PartitionRecord),
    /// Part of a partition's registration changed (leader election, ISR shrink/expand).
    PartitionChange(PartitionChangeRecord),
    /// A topic and all its partitions and configs are gone.
    RemoveTopic { topic_id: Uuid },
    /// A topic config was set (`Some`) or deleted back to the default (`None`).
    TopicConfig {
        topic_id: Uuid,
        key: String,
        value: Option<String>,
    },
    /// A dynamic broker config was set (`Some`) or deleted (`None`): for one broker
    /// (`node_id: Some`) or as the cluster-wide default (`None`). Kafka's `ConfigRecord` with
    /// resource type BROKER and resource name `<id>` or `""`.
    BrokerConfig {
        node_id: Option<i32>,
        key: String,
        value: Option<String>,
    },
    /// A block of producer ids went to a broker; ids below `next_producer_id` are taken
    /// (Kafka's `ProducerIdsRecord`).
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
    /// A feature's finalized level (Kafka's `FeatureLevelRecord`); level 0 removes it, as in
    /// Kafka, where an absent feature is at level 0.
    FeatureLevel { name: String, level: i16 },
    /// A dynamic group config was set (`Some`) or deleted (`None`): Kafka's `ConfigRecord`
    /// with resource type GROUP and the group id as resource name.
    GroupConfig {
        group_id: String,
        key: String,
        value: Option<String>,
    },
    /// A registered broker was fenced or unfenced, or began a controlled shutdown (Kafka's
    /// `FenceBrokerRecord`, `UnfenceBrokerRecord` and `BrokerRegistrationChangeRecord`). It only
    /// applies to the registration whose epoch it names.
    BrokerRegistrationChange {
        node_id: i32,
        broker_epoch: u64,
        #[serde(default)]
        fenced: Option<bool>,
        #[serde(default)]
        in_controlled_shutdown: Option<bool>,
    },
    /// A client request with this id changed the image (rafka's own record; Kafka's controller
    /// has none). A copy of the same request applied later, a forward held up in the network or
    /// a proposal retried after a timeout, must change nothing: it would undo whatever was
    /// acknowledged in between.
    RequestApplied { request_id: Uuid },
}

/// What a broker announces about itself when it registers with the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    /// Changes on every broker process start, so a stale registration is recognisable.
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Whether the broker starts fenced (KIP-631: a registration is fenced until the broker has
    /// caught up with the metadata log). Registrations written before the broker lifecycle
    /// existed carry no field and were live at once, which is how they still replay.
    #[serde(default)]
    pub fenced: bool,
}

/// One advertised listener of a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name as configured (`PLAINTEXT`, `INTERNAL`, ...).
    pub listener: String,
    pub host: String,
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: String,
}

/// A partition's full registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// [`NO_LEADER`] when no replica leads.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Eligible leader replicas (KIP-966); absent in records written before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<i32>,
    /// The replicas last in the ELR before it emptied by unclean shutdowns (KIP-966).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_known_elr: Vec<i32>,
}

/// A partial update of a partition registration; `None` fields are unchanged.
///
/// As in Kafka, a leader change bumps `leader_epoch`, and every change bumps `partition_epoch`;
/// applying the record does the bumping, so the record never carries epochs that could disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    #[serde(default)]
    pub leader: Option<i32>,
    #[serde(default)]
    pub isr: Option<Vec<i32>>,
    #[serde(default)]
    pub replicas: Option<Vec<i32>>,
    /// The new eligible leader replicas (KIP-966).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elr: Option<Vec<i32>>,
    /// The new last known ELR (KIP-966).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_elr: Option<Vec<i32>>,
    /// The replicas a reassignment is adding (all of them are in `replicas` already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adding_replicas: Option<Vec<i32>>,
    /// The replicas a reassignment is removing (still in `replicas` until it completes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removing_replicas: Option<Vec<i32>>,
    /// The new leader recovery state (KIP-704).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_recovery_state: Option<LeaderRecoveryState>,
}
