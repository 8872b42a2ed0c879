//! CreatePartitions (key 37): grow a topic, with or without explicit placement; validate_only.

use std::sync::Arc;

use rafka_metadata::ControllerCommand;
use rafka_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use rafka_protocol::kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use super::topic_admin;
use crate::errors::{self, ApiError};
use crate::state::Shared;

pub async fn handle(
    shared: &Arc<Shared>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    let mut changed = false;
    for t in request.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        match grow(shared, &t, request.validate_only).await {
            Ok(did) => changed |= did,
            Err(e) => {
                r.error_code = e.code();
                r.error_message = Some(StrBytes::from_string(e.message));
            }
        }
        results.push(r);
    }
    if changed {
        if let Err(e) = topic_admin::open_partitions(shared).await {
            tracing::warn!(error = %e.message, "Opening new partitions failed");
        }
    }
    let mut response = CreatePartitionsResponse::default();
    response.results = results;
    response
}

async fn grow(
    shared: &Arc<Shared>,
    t: &rafka_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
    validate_only: bool,
) -> Result<bool, ApiError> {
    let image = shared.image();
    let name = t.name.0.to_string();
    let topic = image.topic_by_name(&name).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        )
    })?;
    let current = topic.partitions.len() as i32;
    if t.count <= current {
        let message = if t.count == current {
            format!("Topic already has {current} partitions.")
        } else {
            format!(
                "Topic currently has {current} partitions, which is higher than the requested {}.",
                t.count
            )
        };
        return Err(ApiError::new(ResponseError::InvalidPartitions, message));
    }
    let added = t.count - current;
    let rf = topic
        .partitions
        .values()
        .next()
        .map(|p| p.replicas.len() as i16)
        .unwrap_or(1);
    let placement = match &t.assignments {
        Some(a) => {
            if a.len() as i32 != added {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!("Increasing the number of partitions by {added} but {} assignments provided.", a.len()),
                ));
            }
            let lists: Vec<Vec<i32>> = a
                .iter()
                .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                .collect();
            topic_admin::manual(&image, &lists)?
        }
        None => topic_admin::striped(added, rf)?,
    };
    let command = ControllerCommand::CreatePartitions {
        topic_id: topic.topic_id,
        new_partitions: Vec::new(),
        placement: Some(placement),
    };
    if validate_only {
        command.validate(&image).map_err(errors::rejected)?;
        return Ok(false);
    }
    shared
        .quorum
        .write(command)
        .await
        .map_err(|e| errors::metadata(&e))?;
    tracing::info!(topic = %name, partitions = t.count, "Added partitions");
    Ok(true)
}
