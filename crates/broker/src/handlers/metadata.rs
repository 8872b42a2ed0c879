//! Metadata (key 3): the unfenced brokers on the caller's listener, topics with ids, partitions
//! with leader, epoch, replicas, ISR and offline replicas; auto-creation under
//! `auto.create.topics.enable` and the request's `allow_auto_topic_creation`. As in KRaft, the
//! `controller_id` is some live broker (clients send admin requests there and brokers forward
//! them), not the quorum's leader.

use std::collections::BTreeMap;
use std::sync::Arc;

use rafka_metadata::{MetadataImage, TopicImage};
use rafka_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use uuid::Uuid;

use super::topic_admin::{self, NewTopic};
use crate::connection::ConnectionContext;
use crate::state::Shared;

/// Every topic operation, as the bit set Kafka reports when authorized operations are asked for
/// (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS): without ACLs,
/// everything is allowed.
pub const TOPIC_OPERATIONS_ALL: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// Cluster operations (CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE).
pub const CLUSTER_OPERATIONS_ALL: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// Kafka's "not requested" marker for authorized operations.
pub const OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(
    shared: &Arc<Shared>,
    ctx: &ConnectionContext,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    // Before v4 there is no flag and auto-creation follows the broker config alone.
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;

    let mut topics = Vec::new();
    match requested {
        None => {
            let image = shared.image();
            for t in image.topics() {
                topics.push(describe_topic(
                    &image,
                    t,
                    request.include_topic_authorized_operations,
                    &ctx.listener_name,
                    version,
                ));
            }
        }
        Some(list) => {
            for (name, id) in list {
                topics.push(
                    lookup_or_create(
                        shared,
                        name,
                        id,
                        allow_auto_create,
                        request.include_topic_authorized_operations,
                        (&ctx.listener_name, version),
                    )
                    .await,
                );
            }
        }
    }
    let image = shared.image();
    let mut response = MetadataResponse::default();
    response.brokers = brokers_on_listener(&image, &ctx.listener_name);
    response.cluster_id = Some(StrBytes::from_string(shared.cluster_id.clone()));
    response.controller_id = BrokerId(random_live_broker(&image).unwrap_or(-1));
    response.topics = topics;
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS_ALL
    } else {
        OPERATIONS_OMITTED
    };
    response
}

/// KRaft brokers report a random unfenced broker as "controller", so old clients have a node
/// to send admin requests to (Kafka's `getRandomAliveBrokerId`).
pub fn random_live_broker(image: &MetadataImage) -> Option<i32> {
    let live: Vec<i32> = image.unfenced_brokers().map(|b| b.node_id).collect();
    let pick = Uuid::new_v4().as_u64_pair().0 as usize % live.len().max(1);
    live.get(pick).copied()
}

async fn lookup_or_create(
    shared: &Arc<Shared>,
    name: Option<String>,
    id: Uuid,
    allow_auto_create: bool,
    include_ops: bool,
    (listener, version): (&str, i16),
) -> MetadataResponseTopic {
    let image = shared.image();
    if let Some(name) = name {
        if let Some(t) = image.topic_by_name(&name) {
            return describe_topic(&image, t, include_ops, listener, version);
        }
        if allow_auto_create && shared.config.auto_create_topics_enable {
            let new = NewTopic {
                name: name.clone(),
                partitions: shared.config.num_partitions,
                replication_factor: shared.config.default_replication_factor,
                assignments: None,
                configs: BTreeMap::new(),
            };
            match topic_admin::create_topic(shared, new, false).await {
                Ok(_) => {}
                // Another request created it between our look and our write: describe that one.
                Err(e) if e.code == ResponseError::TopicAlreadyExists => {}
                Err(e) => {
                    tracing::info!(topic = %name, error = %e.message, "Auto-creation refused");
                    return error_topic(Some(name), Uuid::nil(), e.code.code());
                }
            }
            let image = shared.image();
            if let Some(t) = image.topic_by_name(&name) {
                return describe_topic(&image, t, include_ops, listener, version);
            }
            return error_topic(
                Some(name),
                Uuid::nil(),
                ResponseError::LeaderNotAvailable.code(),
            );
        }
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition.code(),
        );
    }
    match image.topic_by_id(&id) {
        Some(t) => describe_topic(&image, t, include_ops, listener, version),
        None => error_topic(None, id, ResponseError::UnknownTopicId.code()),
    }
}

fn error_topic(name: Option<String>, id: Uuid, code: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = code;
    t.name = name.map(|n| TopicName(StrBytes::from_string(n)));
    t.topic_id = id;
    t.topic_authorized_operations = OPERATIONS_OMITTED;
    t
}

pub fn describe_topic(
    image: &MetadataImage,
    topic: &TopicImage,
    include_ops: bool,
    listener: &str,
    version: i16,
) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    t.topic_id = topic.topic_id;
    t.is_internal = crate::group_coordinator::is_internal_topic(&topic.name);
    t.topic_authorized_operations = if include_ops {
        TOPIC_OPERATIONS_ALL
    } else {
        OPERATIONS_OMITTED
    };
    // Reachable on this listener: registered, unfenced, with an endpoint for it.
    let online = |b: i32| {
        image
            .broker(b)
            .is_some_and(|b| !b.fenced && b.endpoint(listener).is_some())
    };
    t.partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            let mut r = MetadataResponsePartition::default();
            r.error_code = match image.broker(p.leader) {
                None => ResponseError::LeaderNotAvailable.code(),
                Some(b) if b.endpoint(listener).is_none() && version >= 6 => {
                    ResponseError::ListenerNotFound.code()
                }
                Some(b) if b.endpoint(listener).is_none() => {
                    ResponseError::LeaderNotAvailable.code()
                }
                Some(_) => 0,
            };
            r.partition_index = index;
            r.leader_id = BrokerId(if r.error_code == 0 { p.leader } else { -1 });
            r.leader_epoch = p.leader_epoch;
            r.replica_nodes = p.replicas.iter().map(|b| BrokerId(*b)).collect();
            r.isr_nodes = p.isr.iter().map(|b| BrokerId(*b)).collect();
            r.offline_replicas = p
                .replicas
                .iter()
                .filter(|b| !online(**b))
                .map(|b| BrokerId(*b))
                .collect();
            r
        })
        .collect();
    t
}

/// KIP-951: a partition's leader as clients on `listener` reach it: its id, the leader epoch
/// and its endpoint, when it is live and has that listener.
pub fn current_leader<'a>(
    image: &'a MetadataImage,
    topic: &TopicImage,
    partition: i32,
    listener: &str,
) -> Option<(
    i32,
    i32,
    &'a rafka_metadata::BrokerImage,
    &'a rafka_metadata::Endpoint,
)> {
    let p = topic.partition(partition)?;
    let broker = image.broker(p.leader).filter(|b| !b.fenced)?;
    let endpoint = broker.endpoint(listener)?;
    Some((p.leader, p.leader_epoch, broker, endpoint))
}

fn brokers_on_listener(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .unfenced_brokers()
        .filter_map(|b| {
            let e = b.endpoint(listener)?;
            let mut r = MetadataResponseBroker::default();
            r.node_id = BrokerId(b.node_id);
            r.host = StrBytes::from_string(e.host.clone());
            r.port = i32::from(e.port);
            r.rack = b.rack.clone().map(StrBytes::from_string);
            Some(r)
        })
        .collect()
}
