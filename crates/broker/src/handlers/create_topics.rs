//! CreateTopics (key 19): name rules, duplicates within the request, partitions and replication
//! factor (with broker defaults for -1), explicit assignments, per-topic configs, validate_only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use rafka_protocol::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use super::topic_admin::{self, NewTopic};
use crate::errors::ApiError;
use crate::state::Shared;
use crate::topic_config;

pub async fn handle(
    shared: &Arc<Shared>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *counts.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default();
        result.name = t.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        if counts.get(&name).copied().unwrap_or(0) > 1 {
            // Kafka answers every copy of a duplicated name with INVALID_REQUEST.
            set_error(&mut result, &ApiError::new(
                ResponseError::InvalidRequest,
                format!("Create topics request from client contains multiple entries for topic {name}"),
            ));
            results.push(result);
            continue;
        }
        let outcome = create_one(shared, &t, request.validate_only).await;
        match outcome {
            Ok((topic_id, partitions, rf, configs)) => {
                result.topic_id = topic_id;
                result.num_partitions = partitions;
                result.replication_factor = rf;
                if version >= 5 {
                    let resolved = topic_config::resolve_all(&shared.effective_config(), &configs);
                    result.configs = Some(
                        resolved
                            .into_iter()
                            .map(|r| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = StrBytes::from_static_str(r.def.name);
                                c.value = r.value.map(StrBytes::from_string);
                                c.read_only = false;
                                c.config_source = r.source as i8;
                                c.is_sensitive = false;
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => set_error(&mut result, &e),
        }
        results.push(result);
    }
    let mut response = CreateTopicsResponse::default();
    response.topics = results;
    response
}

fn set_error(result: &mut CreatableTopicResult, e: &ApiError) {
    result.error_code = e.code();
    result.error_message = Some(StrBytes::from_string(e.message.clone()));
}

async fn create_one(
    shared: &Arc<Shared>,
    t: &rafka_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<(uuid::Uuid, i32, i16, BTreeMap<String, String>), ApiError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        if let Some(v) = &c.value {
            configs.insert(c.name.to_string(), v.to_string());
        }
    }
    let assignments = if t.assignments.is_empty() {
        None
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".to_string(),
            ));
        }
        let mut sorted: Vec<_> = t.assignments.iter().collect();
        sorted.sort_by_key(|a| a.partition_index);
        for (i, a) in sorted.iter().enumerate() {
            if a.partition_index != i as i32 {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicaAssignment,
                    "Partitions should be a consecutive 0-based integer sequence".to_string(),
                ));
            }
        }
        Some(
            sorted
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect::<Vec<Vec<i32>>>(),
        )
    };
    let partitions = match (&assignments, t.num_partitions) {
        (Some(a), _) => a.len() as i32,
        (None, -1) => shared.config.num_partitions,
        (None, n) => n,
    };
    let rf = match (&assignments, t.replication_factor) {
        (Some(a), _) => a.first().map(|r| r.len() as i16).unwrap_or(0),
        (None, -1) => shared.config.default_replication_factor,
        (None, n) => n,
    };
    if assignments.is_none() && partitions < 1 {
        return Err(ApiError::new(
            ResponseError::InvalidPartitions,
            "Number of partitions was set to an invalid non-positive value.".to_string(),
        ));
    }
    if assignments.is_none() && rf < 1 {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.".to_string(),
        ));
    }
    let new = NewTopic {
        name: t.name.0.to_string(),
        partitions,
        replication_factor: rf,
        assignments,
        configs: configs.clone(),
    };
    let id = topic_admin::create_topic(shared, new, validate_only).await?;
    Ok((id, partitions, rf, configs))
}
