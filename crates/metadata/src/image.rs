//! The metadata image: cluster state as of one log index, shared read-only between handlers.
//!
//! Readers hold an `Arc<MetadataImage>` and never wait for the quorum. A new image is built per
//! batch of applied log entries; topics sit behind their own `Arc`, so cloning an image copies
//! pointers, and changing one topic copies only that topic.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::records::{
    BrokerRegistration, Endpoint, LeaderRecoveryState, MetadataRecord, PartitionChangeRecord,
    PartitionRecord,
};

/// Cluster state after applying the log up to `last_applied_index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ImageRepr", try_from = "ImageRepr")]
pub struct MetadataImage {
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerImage>,
    topics_by_id: BTreeMap<Uuid, Arc<TopicImage>>,
    /// Derived from `topics_by_id`; never serialized, so the two cannot disagree on disk.
    topics_by_name: BTreeMap<String, Uuid>,
    /// Index of the last Raft log entry reflected here (0 before anything was applied).
    pub last_applied_index: u64,
    /// The first producer id no broker has been given yet.
    pub next_producer_id: i64,
    /// Dynamic broker configs: the cluster-wide defaults and per-broker overrides.
    pub broker_configs: BrokerConfigsImage,
    /// Finalized feature levels (`transaction.version`, ...); a feature not listed is at level 0.
    pub finalized_features: BTreeMap<String, i16>,
    /// Dynamic group configs (`consumer.session.timeout.ms`, ...) by group id, as set through
    /// AlterConfigs / IncrementalAlterConfigs on GROUP resources; a group with none is absent.
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The ids of the last [`REMOVED_TOPIC_IDS_MAX`] deleted topics, oldest first: a
    /// CreateTopic naming one is a late copy of a create already applied (ids are never
    /// reused), which must not bring the topic back. Shared: it changes only on deletes.
    removed_topic_ids: Arc<VecDeque<Uuid>>,
    /// The ids of the last [`APPLIED_REQUEST_IDS_MAX`] client requests that changed the image
    /// (`RequestApplied`), oldest first: a command carrying one is a late copy. Shared: it
    /// changes only on such requests.
    applied_request_ids: Arc<VecDeque<Uuid>>,
}

/// How many deleted topic ids an image remembers. A late copy of a forwarded CreateTopic lives
/// at most as long as a TCP retransmission or a paused controller; far fewer topics than this
/// are deleted meanwhile.
pub const REMOVED_TOPIC_IDS_MAX: usize = 1000;

/// How many applied request ids an image remembers; as for deleted topic ids, a late copy lives
/// far shorter than a thousand admin requests take.
pub const APPLIED_REQUEST_IDS_MAX: usize = 1000;

/// Dynamic broker configs as set through AlterConfigs / IncrementalAlterConfigs; the static
/// ones (`server.properties`) are each node's own business and never enter the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerConfigsImage {
    /// Resource name `""`: applies to every broker.
    pub cluster_default: BTreeMap<String, String>,
    /// Resource name `"<id>"`: applies to that broker, over the cluster default.
    pub per_node: BTreeMap<i32, BTreeMap<String, String>>,
}

impl BrokerConfigsImage {
    /// The dynamic overrides of one broker (empty if none).
    pub fn node(&self, node_id: i32) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.per_node.get(&node_id).unwrap_or(&EMPTY)
    }
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub node_id: i32,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Kafka's broker epoch: the log index of the registration. Heartbeats and fencing name it,
    /// so nothing meant for an earlier incarnation touches this one. 0 in snapshots written
    /// before the broker lifecycle existed.
    #[serde(default)]
    pub epoch: u64,
    /// A fenced broker leads nothing and is not listed to clients (KIP-631).
    #[serde(default)]
    pub fenced: bool,
    /// The broker asked to shut down; leadership is moving off it.
    #[serde(default)]
    pub in_controlled_shutdown: bool,
}

impl BrokerImage {
    /// The endpoint of the named listener, if the broker advertises one.
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.listener == listener)
    }

    /// Whether the broker may lead partitions and be shown to clients: unfenced and not
    /// shutting down.
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// One topic, its partitions and its non-default configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// Only keys set explicitly on this topic; defaults live in the broker config.
    pub configs: BTreeMap<String, String>,
}

/// One partition's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Eligible leader replicas (KIP-966): replicas out of the ISR that still hold everything
    /// below the high watermark, because it has not moved since the ISR fell below
    /// `min.insync.replicas`. Absent in snapshots written before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<i32>,
    /// When the ISR and ELR are empty: the replicas that were last eligible before unclean
    /// shutdowns took them out (KIP-966). A single one may lead again once it is back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_known_elr: Vec<i32>,
    /// A reassignment in progress (Kafka's `addingReplicas` / `removingReplicas`): `replicas` is
    /// the target followed by the replicas being removed; those being added are in the ISR once
    /// they caught up, and then the controller drops the removed ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
    /// RECOVERING after an unclean election until the leader's first AlterPartition (KIP-704).
    #[serde(default, skip_serializing_if = "LeaderRecoveryState::is_recovered")]
    pub leader_recovery_state: LeaderRecoveryState,
}

impl PartitionImage {
    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }
}

/// Snapshot form: a flat list of topics, from which the name index is rebuilt.
#[derive(Serialize, Deserialize)]
struct ImageRepr {
    cluster_id: String,
    brokers: BTreeMap<i32, BrokerImage>,
    topics: Vec<TopicImage>,
    last_applied_index: u64,
    /// Absent in snapshots written before producer ids existed.
    #[serde(default)]
    next_producer_id: i64,
    /// Absent in snapshots written before dynamic broker configs existed.
    #[serde(default)]
    broker_configs: BrokerConfigsImage,
    /// Absent in snapshots written before feature levels existed: every feature at level 0,
    /// which is what such a cluster had finalized.
    #[serde(default)]
    finalized_features: BTreeMap<String, i16>,
    /// Absent in snapshots written before deleted ids were remembered.
    #[serde(default)]
    removed_topic_ids: Vec<Uuid>,
    /// Absent in snapshots written before request ids were remembered (and left out while
    /// empty, so such images serialize as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    applied_request_ids: Vec<Uuid>,
    /// Absent in snapshots written before group configs existed (and left out while empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl From<MetadataImage> for ImageRepr {
    fn from(image: MetadataImage) -> Self {
        ImageRepr {
            cluster_id: image.cluster_id,
            brokers: image.brokers,
            topics: image
                .topics_by_id
                .into_values()
                .map(Arc::unwrap_or_clone)
                .collect(),
            last_applied_index: image.last_applied_index,
            next_producer_id: image.next_producer_id,
            broker_configs: image.broker_configs,
            finalized_features: image.finalized_features,
            removed_topic_ids: image.removed_topic_ids.iter().copied().collect(),
            applied_request_ids: image.applied_request_ids.iter().copied().collect(),
            group_configs: image.group_configs,
        }
    }
}

impl TryFrom<ImageRepr> for MetadataImage {
    type Error = String;

    fn try_from(repr: ImageRepr) -> Result<Self, Self::Error> {
        let mut image = MetadataImage::empty(repr.cluster_id);
        image.brokers = repr.brokers;
        image.last_applied_index = repr.last_applied_index;
        image.next_producer_id = repr.next_producer_id;
        image.broker_configs = repr.broker_configs;
        image.finalized_features = repr.finalized_features;
        image.group_configs = repr.group_configs;
        image.removed_topic_ids = Arc::new(repr.removed_topic_ids.into());
        image.applied_request_ids = Arc::new(repr.applied_request_ids.into());
        for topic in repr.topics {
            if image.topics_by_name.contains_key(&topic.name) {
                return Err(format!("topic name {} appears twice", topic.name));
            }
            if image.topics_by_id.contains_key(&topic.topic_id) {
                return Err(format!("topic id {} appears twice", topic.topic_id));
            }
            image
                .topics_by_name
                .insert(topic.name.clone(), topic.topic_id);
            image.topics_by_id.insert(topic.topic_id, Arc::new(topic));
        }
        Ok(image)
    }
}

impl MetadataImage {
    /// The image of a cluster before any record.
    pub fn empty(cluster_id: impl Into<String>) -> Self {
        MetadataImage {
            cluster_id: cluster_id.into(),
            brokers: BTreeMap::new(),
            topics_by_id: BTreeMap::new(),
            topics_by_name: BTreeMap::new(),
            last_applied_index: 0,
            next_producer_id: 0,
            broker_configs: BrokerConfigsImage::default(),
            finalized_features: BTreeMap::new(),
            group_configs: BTreeMap::new(),
            removed_topic_ids: Arc::default(),
            applied_request_ids: Arc::default(),
        }
    }

    /// The finalized level of a feature (0 when not finalized).
    pub fn feature_level(&self, name: &str) -> i16 {
        self.finalized_features.get(name).copied().unwrap_or(0)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics_by_name
            .get(name)
            .and_then(|id| self.topics_by_id.get(id))
    }

    pub fn topic_by_id(&self, topic_id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics_by_id.get(topic_id)
    }

    /// Whether a topic with this id existed and was deleted (among the last
    /// [`REMOVED_TOPIC_IDS_MAX`] deletions).
    pub fn topic_id_was_removed(&self, topic_id: &Uuid) -> bool {
        self.removed_topic_ids.contains(topic_id)
    }

    /// Whether a client request with this id already changed the image (among the last
    /// [`APPLIED_REQUEST_IDS_MAX`]).
    pub fn request_was_applied(&self, request_id: &Uuid) -> bool {
        self.applied_request_ids.contains(request_id)
    }

    /// All topics, ordered by name.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> + '_ {
        self.topics_by_name
            .values()
            .filter_map(|id| self.topics_by_id.get(id))
    }

    pub fn topic_count(&self) -> usize {
        self.topics_by_id.len()
    }

    pub fn broker(&self, node_id: i32) -> Option<&BrokerImage> {
        self.brokers.get(&node_id)
    }

    /// All registered brokers, ordered by node id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerImage> + '_ {
        self.brokers.values()
    }

    /// Registered brokers that are not fenced, ordered by node id: what clients are told about
    /// (Kafka's alive brokers).
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerImage> + '_ {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether `node_id` is registered and may lead partitions.
    pub fn is_active_broker(&self, node_id: i32) -> bool {
        self.brokers
            .get(&node_id)
            .is_some_and(BrokerImage::is_active)
    }

    /// Every partition of every topic, in topic-name then partition order (deterministic, so
    /// apply may derive records from it).
    pub fn partitions(
        &self,
    ) -> impl Iterator<Item = (&Arc<TopicImage>, i32, &PartitionImage)> + '_ {
        self.topics()
            .flat_map(|t| t.partitions.iter().map(move |(i, p)| (t, *i, p)))
    }

    /// Applies one record in place.
    ///
    /// Records come from validated commands, so an inconsistent one (a partition of an unknown
    /// topic) means a bug upstream; it is skipped with a warning rather than half-applied, and
    /// skipping is deterministic, so every replica skips it alike.
    pub fn apply_record(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker(reg) => self.register_broker(reg),
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics_by_name.contains_key(name)
                    || self.topics_by_id.contains_key(topic_id)
                {
                    tracing::warn!(%name, %topic_id, "skipping Topic record for an existing topic");
                    return;
                }
                self.topics_by_name.insert(name.clone(), *topic_id);
                self.topics_by_id.insert(
                    *topic_id,
                    Arc::new(TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                        configs: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                // Never moves backwards: a replayed or reordered record cannot reissue ids.
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::FeatureLevel { name, level } => {
                if *level == 0 {
                    self.finalized_features.remove(name);
                } else {
                    self.finalized_features.insert(name.clone(), *level);
                }
            }
            MetadataRecord::BrokerConfig {
                node_id,
                key,
                value,
            } => {
                let configs = &mut self.broker_configs;
                let map = match node_id {
                    None => &mut configs.cluster_default,
                    Some(n) => configs.per_node.entry(*n).or_default(),
                };
                match value {
                    Some(v) => {
                        map.insert(key.clone(), v.clone());
                    }
                    None => {
                        map.remove(key);
                    }
                }
                if let Some(n) = node_id {
                    if configs.per_node.get(n).is_some_and(BTreeMap::is_empty) {
                        configs.per_node.remove(n);
                    }
                }
            }
            MetadataRecord::GroupConfig {
                group_id,
                key,
                value,
            } => {
                let map = self.group_configs.entry(group_id.clone()).or_default();
                match value {
                    Some(v) => {
                        map.insert(key.clone(), v.clone());
                    }
                    None => {
                        map.remove(key);
                    }
                }
                if map.is_empty() {
                    self.group_configs.remove(group_id);
                }
            }
            MetadataRecord::BrokerRegistrationChange {
                node_id,
                broker_epoch,
                fenced,
                in_controlled_shutdown,
            } => match self.brokers.get_mut(node_id) {
                Some(b) if b.epoch == *broker_epoch => {
                    if let Some(f) = fenced {
                        b.fenced = *f;
                    }
                    if let Some(c) = in_controlled_shutdown {
                        b.in_controlled_shutdown = *c;
                    }
                }
                _ => tracing::warn!(
                    node_id,
                    broker_epoch,
                    "skipping BrokerRegistrationChange for another registration"
                ),
            },
            MetadataRecord::Partition(p) => self.put_partition(p),
            MetadataRecord::PartitionChange(change) => self.change_partition(change),
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(topic) = self.topics_by_id.remove(topic_id) {
                    self.topics_by_name.remove(&topic.name);
                    let removed = Arc::make_mut(&mut self.removed_topic_ids);
                    if removed.len() >= REMOVED_TOPIC_IDS_MAX {
                        removed.pop_front();
                    }
                    removed.push_back(*topic_id);
                } else {
                    tracing::warn!(%topic_id, "skipping RemoveTopic record for an unknown topic");
                }
            }
            MetadataRecord::RequestApplied { request_id } => {
                let applied = Arc::make_mut(&mut self.applied_request_ids);
                if applied.len() >= APPLIED_REQUEST_IDS_MAX {
                    applied.pop_front();
                }
                applied.push_back(*request_id);
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value,
            } => {
                let Some(topic) = self.topics_by_id.get_mut(topic_id) else {
                    tracing::warn!(%topic_id, "skipping TopicConfig record for an unknown topic");
                    return;
                };
                let topic = Arc::make_mut(topic);
                match value {
                    Some(v) => {
                        topic.configs.insert(key.clone(), v.clone());
                    }
                    None => {
                        topic.configs.remove(key);
                    }
                }
            }
        }
    }

    /// The registration's epoch is the index of the log entry carrying it, which apply sets as
    /// `last_applied_index` before applying the entry's records.
    fn register_broker(&mut self, reg: &BrokerRegistration) {
        self.brokers.insert(
            reg.node_id,
            BrokerImage {
                node_id: reg.node_id,
                incarnation_id: reg.incarnation_id,
                endpoints: reg.endpoints.clone(),
                rack: reg.rack.clone(),
                epoch: self.last_applied_index,
                fenced: reg.fenced,
                in_controlled_shutdown: false,
            },
        );
    }

    fn put_partition(&mut self, p: &PartitionRecord) {
        let Some(topic) = self.topics_by_id.get_mut(&p.topic_id) else {
            tracing::warn!(topic_id = %p.topic_id, "skipping Partition record for an unknown topic");
            return;
        };
        Arc::make_mut(topic).partitions.insert(
            p.partition,
            PartitionImage {
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                elr: p.elr.clone(),
                last_known_elr: p.last_known_elr.clone(),
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                leader_recovery_state: LeaderRecoveryState::Recovered,
            },
        );
    }

    fn change_partition(&mut self, change: &PartitionChangeRecord) {
        let Some(topic) = self.topics_by_id.get_mut(&change.topic_id) else {
            tracing::warn!(topic_id = %change.topic_id, "skipping PartitionChange for an unknown topic");
            return;
        };
        let topic = Arc::make_mut(topic);
        let Some(partition) = topic.partitions.get_mut(&change.partition) else {
            tracing::warn!(topic_id = %change.topic_id, partition = change.partition,
                "skipping PartitionChange for an unknown partition");
            return;
        };
        // As in Kafka, a record that names the leader bumps the leader epoch even when the
        // leader stays: a reassignment that drops replicas does that, so they are fenced.
        if let Some(leader) = change.leader {
            partition.leader = leader;
            partition.leader_epoch = partition.leader_epoch.saturating_add(1);
        }
        if let Some(isr) = &change.isr {
            partition.isr = isr.clone();
        }
        if let Some(replicas) = &change.replicas {
            partition.replicas = replicas.clone();
        }
        if let Some(elr) = &change.elr {
            partition.elr = elr.clone();
        }
        if let Some(known) = &change.last_known_elr {
            partition.last_known_elr = known.clone();
        }
        if let Some(adding) = &change.adding_replicas {
            partition.adding_replicas = adding.clone();
        }
        if let Some(removing) = &change.removing_replicas {
            partition.removing_replicas = removing.clone();
        }
        if let Some(state) = change.leader_recovery_state {
            partition.leader_recovery_state = state;
        }
        partition.partition_epoch = partition.partition_epoch.saturating_add(1);
    }
}

impl TopicImage {
    pub fn partition(&self, partition: i32) -> Option<&PartitionImage> {
        self.partitions.get(&partition)
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    pub fn config(&self, key: &str) -> Option<&str> {
        self.configs.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_without_producer_ids_still_load() {
        let json = br#"{"cluster_id":"c","brokers":{},"topics":[],"last_applied_index":3}"#;
        let image: MetadataImage = serde_json::from_slice(json).unwrap();
        assert_eq!(image.next_producer_id, 0);
        // Written before feature levels existed: nothing finalized, so every feature is at
        // level 0 (Kafka does not change finalized levels on restart either).
        assert!(image.finalized_features.is_empty());
        assert_eq!(image.feature_level("transaction.version"), 0);
    }

    #[test]
    fn broker_configs_apply_and_survive_a_snapshot() {
        let mut image = MetadataImage::empty("c1");
        let set = |node_id, key: &str, value: Option<&str>| MetadataRecord::BrokerConfig {
            node_id,
            key: key.into(),
            value: value.map(str::to_string),
        };
        image.apply_record(&set(None, "log.retention.ms", Some("1000")));
        image.apply_record(&set(Some(1), "message.max.bytes", Some("2000")));
        image.apply_record(&set(Some(2), "message.max.bytes", Some("3000")));
        image.apply_record(&set(Some(2), "message.max.bytes", None));
        assert_eq!(
            image.broker_configs.cluster_default.get("log.retention.ms"),
            Some(&"1000".to_string())
        );
        assert_eq!(
            image.broker_configs.node(1).get("message.max.bytes"),
            Some(&"2000".to_string())
        );
        assert!(image.broker_configs.node(2).is_empty());
        assert!(!image.broker_configs.per_node.contains_key(&2));
        let json = serde_json::to_vec(&image).unwrap();
        let back: MetadataImage = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, image);
    }

    #[test]
    fn group_configs_apply_and_survive_a_snapshot() {
        let mut image = MetadataImage::empty("c1");
        let before = serde_json::to_vec(&image).unwrap();
        let set = |group: &str, key: &str, value: Option<&str>| MetadataRecord::GroupConfig {
            group_id: group.into(),
            key: key.into(),
            value: value.map(str::to_string),
        };
        image.apply_record(&set("g", "consumer.session.timeout.ms", Some("50000")));
        image.apply_record(&set("h", "consumer.heartbeat.interval.ms", Some("6000")));
        image.apply_record(&set("h", "consumer.heartbeat.interval.ms", None));
        assert_eq!(
            image
                .group_configs
                .get("g")
                .and_then(|c| c.get("consumer.session.timeout.ms")),
            Some(&"50000".to_string())
        );
        assert!(!image.group_configs.contains_key("h"), "emptied groups go");
        let json = serde_json::to_vec(&image).unwrap();
        let back: MetadataImage = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, image);
        // An image without group configs serializes as before they existed.
        image.apply_record(&set("g", "consumer.session.timeout.ms", None));
        assert_eq!(serde_json::to_vec(&image).unwrap(), before);
    }

    #[test]
    fn serde_round_trip_rebuilds_name_index() {
        let mut image = MetadataImage::empty("c1");
        let id = Uuid::new_v4();
        image.apply_record(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        });
        image.last_applied_index = 7;
        let json = serde_json::to_vec(&image).unwrap();
        let back: MetadataImage = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, image);
        assert_eq!(back.topic_by_name("t").unwrap().topic_id, id);
    }

    #[test]
    fn duplicate_topic_name_in_snapshot_is_rejected() {
        let t = |id: Uuid| TopicImage {
            name: "dup".into(),
            topic_id: id,
            partitions: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        let repr = ImageRepr {
            cluster_id: "c".into(),
            brokers: BTreeMap::new(),
            topics: vec![t(Uuid::new_v4()), t(Uuid::new_v4())],
            last_applied_index: 0,
            next_producer_id: 0,
            broker_configs: BrokerConfigsImage::default(),
            finalized_features: BTreeMap::new(),
            removed_topic_ids: Vec::new(),
            applied_request_ids: Vec::new(),
            group_configs: BTreeMap::new(),
        };
        let json = serde_json::to_vec(&repr).unwrap();
        assert!(serde_json::from_slice::<MetadataImage>(&json).is_err());
    }

    #[test]
    fn partition_change_bumps_epochs() {
        let mut image = MetadataImage::empty("c1");
        let id = Uuid::new_v4();
        image.apply_record(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        });
        image.apply_record(&MetadataRecord::Partition(PartitionRecord {
            topic_id: id,
            partition: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }));
        image.apply_record(&MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: id,
            partition: 0,
            isr: Some(vec![1]),
            ..Default::default()
        }));
        let p = image
            .topic_by_id(&id)
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        assert_eq!(
            (p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()),
            (1, 0, 1, vec![1])
        );
        image.apply_record(&MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: id,
            partition: 0,
            leader: Some(2),
            isr: Some(vec![2]),
            ..Default::default()
        }));
        let p = image.topic_by_id(&id).unwrap().partition(0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
    }

    #[test]
    fn unchanged_topics_are_shared_after_clone_and_apply() {
        let mut image = MetadataImage::empty("c1");
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        image.apply_record(&MetadataRecord::Topic {
            name: "a".into(),
            topic_id: a,
        });
        image.apply_record(&MetadataRecord::Topic {
            name: "b".into(),
            topic_id: b,
        });
        let mut next = image.clone();
        next.apply_record(&MetadataRecord::TopicConfig {
            topic_id: a,
            key: "cleanup.policy".into(),
            value: Some("compact".into()),
        });
        assert!(Arc::ptr_eq(
            image.topic_by_id(&b).unwrap(),
            next.topic_by_id(&b).unwrap()
        ));
        assert!(!Arc::ptr_eq(
            image.topic_by_id(&a).unwrap(),
            next.topic_by_id(&a).unwrap()
        ));
        assert_eq!(
            image.topic_by_id(&a).unwrap().config("cleanup.policy"),
            None
        );
    }
}
