//! What CreateTopics, Metadata auto-creation and CreatePartitions share: replica placement over
//! the registered brokers, topic config validation, and committing the change through the
//! metadata quorum before the partitions are opened here.

use std::collections::BTreeMap;
use std::sync::Arc;

use rafka_metadata::{ControllerCommand, MetadataImage, PartitionAssignment};
use rafka_protocol::kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::errors::{self, ApiError};
use crate::node::{now_ms, Shared};

/// A topic to create, after defaults are applied.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Explicit placement (partition -> replicas), when the request gave one.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub configs: BTreeMap<String, String>,
}

/// Topic configs in a CreateTopics request must be known topic keys with valid values; the same
/// validator checks AlterConfigs and IncrementalAlterConfigs.
pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    crate::config::validate::validate_topic_configs(configs).map_err(errors::config_rejected)
}

/// Places replicas round-robin over the registered brokers, starting at a position derived from
/// the topic name so that leaders of different topics spread out (Kafka picks at random; a hash
/// keeps placement reproducible).
pub fn place_replicas(
    image: &MetadataImage,
    name: &str,
    first_partition: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<PartitionAssignment>, ApiError> {
    let brokers: Vec<i32> = image.brokers().map(|b| b.node_id).collect();
    if replication_factor < 1 {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0.".to_string(),
        ));
    }
    if replication_factor as usize > brokers.len() {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "Replication factor: {replication_factor} larger than available brokers: {}.",
                brokers.len()
            ),
        ));
    }
    let start = name
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    let n = brokers.len();
    Ok((0..count)
        .map(|i| {
            let p = first_partition + i;
            let replicas = (0..replication_factor as usize)
                .map(|r| brokers[(start + p as usize + r) % n])
                .collect();
            PartitionAssignment::new(p, replicas)
        })
        .collect())
}

/// Turns explicit assignments into partition assignments, checking the brokers exist.
pub fn explicit_assignments(
    image: &MetadataImage,
    first_partition: i32,
    assignments: &[Vec<i32>],
) -> Result<Vec<PartitionAssignment>, ApiError> {
    let mut out = Vec::with_capacity(assignments.len());
    let rf = assignments.first().map(Vec::len).unwrap_or(0);
    for (i, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() || replicas.len() != rf {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                "All partitions should have the same number of replicas".to_string(),
            ));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("Duplicate brokers in replica assignment {replicas:?}"),
            ));
        }
        if let Some(b) = replicas.iter().find(|b| image.broker(**b).is_none()) {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("Unknown broker {b} in replica assignment"),
            ));
        }
        out.push(PartitionAssignment::new(
            first_partition + i as i32,
            replicas.clone(),
        ));
    }
    Ok(out)
}

/// Creates a topic: validates, commits it through the quorum (unless `validate_only`), and opens
/// its partitions here before returning, so a produce right after the answer finds them.
pub async fn create_topic(
    shared: &Arc<Shared>,
    topic: NewTopic,
    validate_only: bool,
) -> Result<Uuid, ApiError> {
    let image = shared.image();
    if image.topic_by_name(&topic.name).is_some() {
        return Err(ApiError::new(
            ResponseError::TopicAlreadyExists,
            format!("Topic '{}' already exists.", topic.name),
        ));
    }
    validate_configs(&topic.configs)?;
    let partitions = match &topic.assignments {
        Some(a) => explicit_assignments(&image, 0, a)?,
        None => {
            if topic.partitions < 1 {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    "Number of partitions must be larger than 0.".to_string(),
                ));
            }
            place_replicas(
                &image,
                &topic.name,
                0,
                topic.partitions,
                topic.replication_factor,
            )?
        }
    };
    let topic_id = Uuid::new_v4();
    let command = ControllerCommand::CreateTopic {
        name: topic.name.clone(),
        topic_id,
        partitions,
        configs: topic.configs.clone(),
    };
    if validate_only {
        // The same checks apply would run, against the current image, without committing.
        command.validate(&image).map_err(errors::rejected)?;
        return Ok(topic_id);
    }
    shared
        .quorum
        .write(command)
        .await
        .map_err(|e| errors::metadata(&e))?;
    tracing::info!(topic = %topic.name, %topic_id, "Created topic");
    open_partitions(shared).await?;
    Ok(topic_id)
}

/// Brings the hosted partitions up to date with the latest image, now.
pub async fn open_partitions(shared: &Arc<Shared>) -> Result<(), ApiError> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.partitions.reconcile(&s.image(), now_ms()))
        .await
        .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?
        .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))
}
