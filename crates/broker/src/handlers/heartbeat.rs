//! Heartbeat (key 12): keeps a member's session alive and tells it when to rejoin
//! (REBALANCE_IN_PROGRESS).

use rafka_protocol::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::groups::{opt_text, text};
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

pub async fn handle(groups: &GroupCoordinator, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = text(&request.group_id.0);
    let member_id = text(&request.member_id);
    let instance = opt_text(&request.group_instance_id);
    let generation = request.generation_id;
    let result = groups
        .query(move |c, now| {
            c.heartbeat(now, &group_id, &member_id, instance.as_deref(), generation)
        })
        .await
        .and_then(|r| r);
    let mut response = HeartbeatResponse::default();
    response.error_code = errors::group_code(result.err());
    response
}
