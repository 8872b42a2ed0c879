//! JoinGroup (key 11): the first half of a classic rebalance. The answer may wait for the rest
//! of the group (up to the rebalance timeout); the connection waits with it, as in Kafka.

use rafka_group::{JoinRequest, Reply};
use rafka_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use rafka_protocol::kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use std::sync::Arc;

use rafka_metadata::MetadataImage;

use super::consumer_group_heartbeat::ImageTopics;
use super::groups::{client_host, opt_text, owned, sb, text};
use crate::connection::ConnectionContext;
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

pub async fn handle(
    groups: &GroupCoordinator,
    image: Arc<MetadataImage>,
    ctx: &ConnectionContext,
    client_id: String,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let req = JoinRequest {
        group_id: text(&request.group_id.0),
        member_id: text(&request.member_id),
        group_instance_id: opt_text(&request.group_instance_id),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout for it.
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: text(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            .map(|p| (text(&p.name), owned(&p.metadata)))
            .collect(),
        client_id,
        client_host: client_host(&ctx.peer),
        version,
    };
    let member_id = req.member_id.clone();
    // A classic member of a consumer group is answered by topic names.
    let topics = ImageTopics(image);
    let result = groups
        .change(move |c, now, id| c.join_group(now, id, req, &topics))
        .await;
    let mut response = JoinGroupResponse::default();
    // Before v7 the protocol name is not nullable.
    response.protocol_name = Some(sb(""));
    match result {
        Ok(Reply::Join(j)) => {
            response.error_code = errors::group_code(j.error);
            response.generation_id = j.generation_id;
            if version >= 7 {
                response.protocol_type = j.protocol_type.map(sb);
                response.protocol_name = j.protocol_name.map(sb);
            } else if let Some(n) = j.protocol_name {
                response.protocol_name = Some(sb(n));
            }
            response.leader = sb(j.leader);
            if version >= 9 {
                response.skip_assignment = j.skip_assignment;
            }
            response.member_id = sb(j.member_id);
            response.members = j
                .members
                .into_iter()
                .map(|m| {
                    let mut r = JoinGroupResponseMember::default();
                    r.member_id = sb(m.member_id);
                    if version >= 5 {
                        r.group_instance_id = m.group_instance_id.map(sb);
                    }
                    r.metadata = m.metadata;
                    r
                })
                .collect();
        }
        Ok(_) => {}
        Err(e) => {
            response.error_code = errors::group(e).code();
            response.generation_id = -1;
            response.member_id = sb(member_id);
        }
    }
    response
}
