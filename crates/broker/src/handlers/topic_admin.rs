//! What CreateTopics, Metadata auto-creation and CreatePartitions share: how new partitions are
//! placed (the placement itself runs when the command is applied), topic config validation, and
//! committing the change through the metadata quorum before the partitions are opened here.

use std::collections::BTreeMap;
use std::sync::Arc;

use rafka_metadata::{ControllerCommand, MetadataImage, Placement};
use rafka_protocol::kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::errors::{self, ApiError};
use crate::now_ms;
use crate::state::Shared;

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

/// Where new partitions go when the request names no brokers: Kafka's striped placement over
/// the usable brokers, computed when the command is applied (so it sees the brokers as the log
/// has them at that point), from a seed drawn here.
pub fn striped(count: i32, replication_factor: i16) -> Result<Placement, ApiError> {
    if replication_factor < 1 {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0.".to_string(),
        ));
    }
    Ok(Placement::Striped {
        partition_count: count,
        replication_factor,
        seed: Uuid::new_v4().as_u64_pair().0,
    })
}

/// Checks replicas the request names (same count for every partition, no broker twice, every
/// broker registered) and turns them into a placement.
pub fn manual(image: &MetadataImage, assignments: &[Vec<i32>]) -> Result<Placement, ApiError> {
    let rf = assignments.first().map(Vec::len).unwrap_or(0);
    for replicas in assignments {
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
    }
    Ok(Placement::Manual {
        replicas: assignments.to_vec(),
    })
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
    let placement = match &topic.assignments {
        Some(a) => manual(&image, a)?,
        None => {
            if topic.partitions < 1 {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    "Number of partitions must be larger than 0.".to_string(),
                ));
            }
            striped(topic.partitions, topic.replication_factor)?
        }
    };
    let topic_id = Uuid::new_v4();
    let command = ControllerCommand::CreateTopic {
        name: topic.name.clone(),
        topic_id,
        partitions: Vec::new(),
        configs: topic.configs.clone(),
        placement: Some(placement),
    };
    if validate_only {
        // The same checks apply would run, against the current image, without committing.
        command.validate(&image).map_err(errors::rejected)?;
        return Ok(topic_id);
    }
    // A retry inside `write` of a forward whose first copy committed after all succeeds too:
    // apply recognises the topic id this request chose.
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
