//! DeleteTopics (key 20): by name (all versions) and by topic id (v6+).

use std::sync::Arc;

use rafka_metadata::ControllerCommand;
use rafka_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use rafka_protocol::kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use uuid::Uuid;

use super::topic_admin;
use crate::errors;
use crate::state::Shared;

pub async fn handle(
    shared: &Arc<Shared>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v0-5 carry names in `topic_names`; v6+ carry (name or id) pairs in `topics`.
    let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    let mut deleted_any = false;
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.name = name.clone().map(|n| TopicName(StrBytes::from_string(n)));
        r.topic_id = id;
        let image = shared.image();
        let topic = match (&name, id.is_nil()) {
            (Some(n), _) => image.topic_by_name(n).cloned(),
            (None, false) => image.topic_by_id(&id).cloned(),
            (None, true) => None,
        };
        let Some(topic) = topic else {
            r.error_code = if name.is_none() {
                ResponseError::UnknownTopicId.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            };
            responses.push(r);
            continue;
        };
        r.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
        r.topic_id = topic.topic_id;
        match shared
            .quorum
            .write(ControllerCommand::DeleteTopic {
                topic_id: topic.topic_id,
            })
            .await
        {
            Ok(_) => {
                tracing::info!(topic = %topic.name, topic_id = %topic.topic_id, "Deleted topic");
                deleted_any = true;
            }
            Err(e) => {
                let e = errors::metadata(&e);
                r.error_code = e.code();
                r.error_message = Some(StrBytes::from_string(e.message));
            }
        }
        responses.push(r);
    }
    if deleted_any {
        if let Err(e) = topic_admin::open_partitions(shared).await {
            tracing::warn!(error = %e.message, "Removing deleted partitions failed");
        }
    }
    let mut response = DeleteTopicsResponse::default();
    response.responses = responses;
    response
}
