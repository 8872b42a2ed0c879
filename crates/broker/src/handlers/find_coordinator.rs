//! FindCoordinator (key 10): which broker coordinates a group (key type 0) or a transactional id
//! (key type 1). The first request of each kind creates `__consumer_offsets` or
//! `__transaction_state`, as Kafka does. Batched keys from v4 (KIP-699).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rafka_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::sb;
use super::topic_admin::{create_topic, NewTopic};
use crate::connection::ConnectionContext;
use crate::errors::ApiError;
use crate::group_coordinator::OFFSETS_TOPIC;
use crate::state::Shared;
use rafka_txn::TRANSACTION_STATE_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

struct Found {
    node_id: i32,
    host: String,
    port: i32,
}

pub async fn handle(
    shared: &Arc<Shared>,
    ctx: &ConnectionContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.as_str().to_string())
            .collect()
    } else {
        vec![request.key.as_str().to_string()]
    };
    let mut results = Vec::with_capacity(keys.len());
    for key in keys {
        let found = match request.key_type {
            KEY_TYPE_GROUP => find_group_coordinator(shared, ctx, &key).await,
            KEY_TYPE_TRANSACTION => find_txn_coordinator(shared, ctx, &key).await,
            other => Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Unknown coordinator type: {other}"),
            )),
        };
        results.push((key, found));
    }
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = results
            .into_iter()
            .map(|(key, found)| {
                let mut c = Coordinator::default();
                c.key = sb(key);
                match found {
                    Ok(f) => {
                        c.node_id = BrokerId(f.node_id);
                        c.host = sb(f.host);
                        c.port = f.port;
                    }
                    Err(e) => {
                        c.node_id = BrokerId(-1);
                        c.port = -1;
                        c.error_code = e.code();
                        c.error_message = Some(sb(e.message));
                    }
                }
                c
            })
            .collect();
        return response;
    }
    if let Some((_, found)) = results.into_iter().next() {
        match found {
            Ok(f) => {
                response.node_id = BrokerId(f.node_id);
                response.host = sb(f.host);
                response.port = f.port;
            }
            Err(e) => {
                response.node_id = BrokerId(-1);
                response.port = -1;
                response.error_code = e.code();
                if version >= 1 {
                    response.error_message = Some(sb(e.message));
                }
            }
        }
    }
    response
}

async fn find_group_coordinator(
    shared: &Arc<Shared>,
    ctx: &ConnectionContext,
    group_id: &str,
) -> Result<Found, ApiError> {
    if ensure_offsets_topic(shared).await? == Created::Now {
        return Err(just_created(shared, OFFSETS_TOPIC).await);
    }
    shared.groups.sync_partitions().await;
    leader_of(shared, ctx, OFFSETS_TOPIC, group_id)
}

async fn find_txn_coordinator(
    shared: &Arc<Shared>,
    ctx: &ConnectionContext,
    transactional_id: &str,
) -> Result<Found, ApiError> {
    if ensure_internal_topic(shared, TRANSACTION_STATE_TOPIC).await? == Created::Now {
        return Err(just_created(shared, TRANSACTION_STATE_TOPIC).await);
    }
    shared.txns.sync_partitions().await;
    leader_of(shared, ctx, TRANSACTION_STATE_TOPIC, transactional_id)
}

/// The leader of the internal topic's partition for `key` (Kafka's `abs(hashCode) % n`).
fn leader_of(
    shared: &Arc<Shared>,
    ctx: &ConnectionContext,
    internal_topic: &str,
    key: &str,
) -> Result<Found, ApiError> {
    let image = shared.image();
    let not_available = |why: &str| {
        ApiError::new(
            ResponseError::CoordinatorNotAvailable,
            format!("The coordinator is not available: {why}"),
        )
    };
    let topic = image
        .topic_by_name(internal_topic)
        .ok_or_else(|| not_available("the internal topic does not exist"))?;
    let p = rafka_group::partition_for(key, topic.partitions.len() as i32);
    let leader = topic
        .partition(p)
        .map(|p| p.leader)
        .filter(|l| *l >= 0)
        .ok_or_else(|| not_available("the group's partition has no leader"))?;
    let endpoint = image
        .broker(leader)
        .and_then(|b| b.endpoint(&ctx.listener_name))
        .ok_or_else(|| not_available("the coordinator has no endpoint on this listener"))?;
    Ok(Found {
        node_id: leader,
        host: endpoint.host.clone(),
        port: i32::from(endpoint.port),
    })
}

/// Creates `__consumer_offsets` if it does not exist yet: compacted, with
/// `offsets.topic.num.partitions` partitions and `offsets.topic.replication.factor` replicas.
pub async fn ensure_offsets_topic(shared: &Arc<Shared>) -> Result<Created, ApiError> {
    ensure_internal_topic(shared, OFFSETS_TOPIC).await
}

/// How long the FindCoordinator that created an internal topic waits for this broker's
/// replicas of it to open before it answers.
const JUST_CREATED_WAIT: Duration = Duration::from_secs(5);

/// Whether [`ensure_internal_topic`] found the topic or created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Before,
    Now,
}

/// Kafka's answer to the FindCoordinator that created the internal topic: the new partitions'
/// leaders may not have opened and loaded them yet, so the client asks again (it retries
/// COORDINATOR_NOT_AVAILABLE) instead of being sent to a broker that would answer
/// NOT_COORDINATOR or, for longer than a client retries it, COORDINATOR_LOAD_IN_PROGRESS.
/// The answer waits (up to [`JUST_CREATED_WAIT`]) until this broker has opened its replicas of
/// the new partitions: every broker opens the same partitions from the same metadata at about
/// the same pace (fifty logs and their fsyncs can take seconds in a container), so by then the
/// leader the client asks next has most likely opened its own.
async fn just_created(shared: &Arc<Shared>, topic: &str) -> ApiError {
    let deadline = tokio::time::Instant::now() + JUST_CREATED_WAIT;
    while tokio::time::Instant::now() < deadline {
        let image = shared.image();
        let opened = image.topic_by_name(topic).is_some_and(|t| {
            t.partitions
                .iter()
                .filter(|(_, p)| p.replicas.contains(&shared.node_id))
                .all(|(i, _)| shared.partitions.get(&t.topic_id, *i).is_some())
        });
        if opened {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ApiError::new(
        ResponseError::CoordinatorNotAvailable,
        format!("The coordinator is not available: {topic} was just created"),
    )
}

/// Creates an internal topic with Kafka's settings for it, if it does not exist yet.
async fn ensure_internal_topic(shared: &Arc<Shared>, name: &str) -> Result<Created, ApiError> {
    if shared.image().topic_by_name(name).is_some() {
        return Ok(Created::Before);
    }
    let config = &shared.config;
    let (partitions, replication_factor, mut configs) = if name == OFFSETS_TOPIC {
        (
            config.offsets_topic_num_partitions,
            config.offsets_topic_replication_factor,
            vec![
                ("compression.type", "producer".to_string()),
                (
                    "segment.bytes",
                    config.offsets_topic_segment_bytes.to_string(),
                ),
            ],
        )
    } else {
        (
            config.transaction_state_log_num_partitions,
            config.transaction_state_log_replication_factor,
            vec![
                (
                    "segment.bytes",
                    config.transaction_state_log_segment_bytes.to_string(),
                ),
                (
                    "min.insync.replicas",
                    config.transaction_state_log_min_isr.to_string(),
                ),
                ("unclean.leader.election.enable", "false".to_string()),
            ],
        )
    };
    configs.push(("cleanup.policy", "compact".to_string()));
    let topic = NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        assignments: None,
        configs: configs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>(),
    };
    match create_topic(shared, topic, false).await {
        Ok(_) => Ok(Created::Now),
        Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(Created::Before),
        Err(e) => Err(ApiError::new(
            ResponseError::CoordinatorNotAvailable,
            format!("cannot create {name}: {}", e.message),
        )),
    }
}
