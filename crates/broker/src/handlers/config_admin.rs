//! What AlterConfigs and IncrementalAlterConfigs share: which resource a request names (and the
//! errors Kafka gives for the others), the overrides it has now, and validating and committing
//! the overrides it should have, as one metadata command per resource. Resources: topics,
//! brokers and groups (KIP-848's `consumer.*` configs, Kafka's GROUP resource type 32).
//!
//! A topic's overrides are checked with the one topic validator (INVALID_CONFIG); a broker
//! resource's with the dynamic-broker rules (INVALID_REQUEST), and the whole effective config
//! must still build. The new overrides are computed from this node's image and written as their
//! difference; two admins racing on the same resource can interleave, as with Kafka's legacy
//! AlterConfigs, which its docs warn about.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rafka_metadata::{ControllerCommand, MetadataImage};
use rafka_protocol::kafka_protocol::ResponseError;

use super::topic_admin;
use crate::config::validate::{self, ConfigRejected};
use crate::errors::{self, ApiError};
use crate::state::Shared;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
pub const RESOURCE_GROUP: i8 = 32;

/// A config resource rafka can alter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Topic(String),
    /// `None`: the cluster-wide default (resource name `""`); `Some`: this node.
    Broker(Option<i32>),
    /// A group's `consumer.*` configs (KIP-848); the group need not exist.
    Group(String),
}

fn invalid_request(message: String) -> ApiError {
    ApiError::new(ResponseError::InvalidRequest, message)
}

/// Kafka answers every copy of a resource named twice in one request with INVALID_REQUEST.
pub fn duplicate_resources<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> Vec<bool> {
    let keys: Vec<(i8, &str)> = resources.collect();
    let mut counts: HashMap<(i8, &str), usize> = HashMap::new();
    for k in &keys {
        *counts.entry(*k).or_default() += 1;
    }
    keys.iter()
        .map(|k| counts.get(k).copied() > Some(1))
        .collect()
}

pub fn duplicate_resource_error() -> ApiError {
    invalid_request("Each resource must appear at most once.".to_string())
}

/// The resource a request names, or Kafka's answer for one it cannot alter.
pub fn target(
    node_id: i32,
    resource_type: i8,
    name: &str,
    incremental: bool,
) -> Result<Target, ApiError> {
    match resource_type {
        RESOURCE_TOPIC if name.is_empty() => Err(invalid_request(
            "Default topic resources are not allowed.".to_string(),
        )),
        RESOURCE_TOPIC => Ok(Target::Topic(name.to_string())),
        RESOURCE_BROKER if name.is_empty() => Ok(Target::Broker(None)),
        RESOURCE_BROKER => match name.parse::<i32>() {
            Err(_) => Err(invalid_request(format!(
                "Node id must be an integer, but it is: {name}"
            ))),
            // Each broker applies changes to itself only; Kafka answers the same.
            Ok(id) if id != node_id => Err(invalid_request(format!(
                "Unexpected broker id, expected {node_id}, but received {name}"
            ))),
            Ok(id) => Ok(Target::Broker(Some(id))),
        },
        RESOURCE_BROKER_LOGGER if incremental => Err(invalid_request(
            "broker loggers are configured with RUST_LOG, not through IncrementalAlterConfigs"
                .to_string(),
        )),
        RESOURCE_GROUP if name.is_empty() => Err(invalid_request(
            "Default group resources are not allowed.".to_string(),
        )),
        RESOURCE_GROUP => Ok(Target::Group(name.to_string())),
        other => Err(invalid_request(format!("Unknown resource type {other}"))),
    }
}

/// The overrides the target has now (empty for a topic that does not exist: the existence
/// check comes after validation, as in Kafka's controller).
pub fn current(image: &MetadataImage, target: &Target) -> BTreeMap<String, String> {
    match target {
        Target::Topic(name) => image
            .topic_by_name(name)
            .map(|t| t.configs.clone())
            .unwrap_or_default(),
        Target::Broker(None) => image.broker_configs.cluster_default.clone(),
        Target::Broker(Some(id)) => image.broker_configs.node(*id).clone(),
        Target::Group(id) => image.group_configs.get(id).cloned().unwrap_or_default(),
    }
}

/// Validates `next` as the target's complete overrides and, unless `validate_only`, writes the
/// difference to `current` and applies it to the hosted partitions before returning, so the
/// change is in effect when the client hears back.
pub async fn commit(
    shared: &Arc<Shared>,
    image: &MetadataImage,
    target: &Target,
    current: &BTreeMap<String, String>,
    next: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ApiError> {
    let changes = validate::changes(current, &next);
    // One id for every copy of this change the quorum may send (retries after a timeout):
    // apply ignores a copy that arrives after the first, which would undo later changes.
    let request_id = Some(uuid::Uuid::new_v4());
    let command = match target {
        Target::Topic(name) => {
            validate::validate_topic_configs(&next).map_err(errors::config_rejected)?;
            let topic = image.topic_by_name(name).ok_or_else(|| {
                ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                )
            })?;
            ControllerCommand::AlterTopicConfigs {
                topic_id: topic.topic_id,
                changes,
                request_id,
            }
        }
        Target::Broker(node_id) => {
            validate::validate_broker_dynamic(&next).map_err(errors::config_rejected)?;
            // The whole config must still build with the change (cross-key rules included).
            let configs = &image.broker_configs;
            let (cluster, node) = match node_id {
                None => (&next, configs.node(shared.node_id)),
                Some(_) => (&configs.cluster_default, &next),
            };
            shared.config.with_dynamic(cluster, node).map_err(|e| {
                errors::config_rejected(ConfigRejected::InvalidRequest(e.to_string()))
            })?;
            ControllerCommand::AlterBrokerConfigs {
                node_id: *node_id,
                changes,
                request_id,
            }
        }
        Target::Group(group_id) => {
            shared
                .config
                .consumer_group
                .validate_group_configs(&next)
                .map_err(|m| errors::config_rejected(ConfigRejected::InvalidConfig(m)))?;
            ControllerCommand::AlterGroupConfigs {
                group_id: group_id.clone(),
                changes,
                request_id,
            }
        }
    };
    let empty = match &command {
        ControllerCommand::AlterTopicConfigs { changes, .. }
        | ControllerCommand::AlterBrokerConfigs { changes, .. }
        | ControllerCommand::AlterGroupConfigs { changes, .. } => changes.is_empty(),
        _ => false,
    };
    if validate_only || empty {
        return Ok(());
    }
    shared
        .quorum
        .write(command)
        .await
        .map_err(|e| errors::metadata(&e))?;
    tracing::info!(resource = ?target, changes = ?validate::changes(current, &next), "Altered configs");
    topic_admin::open_partitions(shared).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_map_to_targets_or_kafkas_errors() {
        assert_eq!(
            target(1, RESOURCE_TOPIC, "t", false).expect("topic"),
            Target::Topic("t".into())
        );
        assert_eq!(
            target(1, RESOURCE_BROKER, "", true).expect("default"),
            Target::Broker(None)
        );
        assert_eq!(
            target(1, RESOURCE_BROKER, "1", true).expect("self"),
            Target::Broker(Some(1))
        );
        let err = target(1, RESOURCE_BROKER, "2", true).expect_err("other broker");
        assert_eq!(err.code, ResponseError::InvalidRequest);
        assert_eq!(
            err.message,
            "Unexpected broker id, expected 1, but received 2"
        );
        assert_eq!(
            target(1, RESOURCE_BROKER, "x", true)
                .expect_err("not a number")
                .code,
            ResponseError::InvalidRequest
        );
        assert_eq!(
            target(1, RESOURCE_TOPIC, "", true)
                .expect_err("default topic")
                .code,
            ResponseError::InvalidRequest
        );
        assert_eq!(
            target(1, RESOURCE_BROKER_LOGGER, "1", false)
                .expect_err("legacy logger")
                .message,
            "Unknown resource type 8"
        );
        assert!(target(1, RESOURCE_BROKER_LOGGER, "1", true).is_err());
        assert_eq!(
            target(1, RESOURCE_GROUP, "g", true).expect("group"),
            Target::Group("g".into())
        );
        assert_eq!(
            target(1, RESOURCE_GROUP, "", false)
                .expect_err("default group")
                .message,
            "Default group resources are not allowed."
        );
        assert_eq!(
            target(1, 16, "metrics", true)
                .expect_err("client metrics")
                .message,
            "Unknown resource type 16"
        );
    }

    #[test]
    fn duplicate_resources_flag_every_copy() {
        let flags = duplicate_resources([(2, "a"), (2, "b"), (2, "a"), (4, "a")].into_iter());
        assert_eq!(flags, vec![true, false, true, false]);
    }
}
