//! SyncGroup (key 14): the second half of a classic rebalance. The leader's request carries
//! everyone's assignment; followers wait for it.

use rafka_group::{Reply, SyncRequest};
use rafka_protocol::kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use std::sync::Arc;

use rafka_metadata::MetadataImage;

use super::consumer_group_heartbeat::ImageTopics;
use super::groups::{opt_text, owned, sb, text};
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

pub async fn handle(
    groups: &GroupCoordinator,
    image: Arc<MetadataImage>,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let req = SyncRequest {
        group_id: text(&request.group_id.0),
        generation_id: request.generation_id,
        member_id: text(&request.member_id),
        group_instance_id: opt_text(&request.group_instance_id),
        protocol_type: opt_text(&request.protocol_type),
        protocol_name: opt_text(&request.protocol_name),
        assignments: request
            .assignments
            .iter()
            .map(|a| (text(&a.member_id), owned(&a.assignment)))
            .collect(),
    };
    // A classic member of a consumer group is answered by topic names.
    let topics = ImageTopics(image);
    let result = groups
        .change(move |c, now, id| c.sync_group(now, id, req, &topics))
        .await;
    let mut response = SyncGroupResponse::default();
    match result {
        Ok(Reply::Sync(s)) => {
            response.error_code = errors::group_code(s.error);
            if version >= 5 {
                response.protocol_type = s.protocol_type.map(sb);
                response.protocol_name = s.protocol_name.map(sb);
            }
            response.assignment = s.assignment;
        }
        Ok(_) => {}
        Err(e) => response.error_code = errors::group(e).code(),
    }
    response
}
