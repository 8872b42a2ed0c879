//! LeaveGroup (key 13): members leave without waiting for their session to expire; batched by
//! member from v3 (KIP-345), with per-member results.

use rafka_group::{LeaveMember, Reply};
use rafka_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use rafka_protocol::kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::groups::{opt_text, sb, text};
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

pub async fn handle(
    groups: &GroupCoordinator,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = text(&request.group_id.0);
    let members: Vec<LeaveMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeaveMember {
                member_id: text(&m.member_id),
                group_instance_id: opt_text(&m.group_instance_id),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: text(&request.member_id),
            group_instance_id: None,
        }]
    };
    let result = groups
        .change(move |c, now, id| c.leave_group(now, id, &group_id, members))
        .await;
    let mut response = LeaveGroupResponse::default();
    match result {
        Ok(Reply::Leave(Ok(results))) => {
            if version >= 3 {
                response.members = results
                    .into_iter()
                    .map(|(m, e)| {
                        let mut r = MemberResponse::default();
                        r.member_id = sb(m.member_id);
                        r.group_instance_id = m.group_instance_id.map(sb);
                        r.error_code = errors::group_code(e);
                        r
                    })
                    .collect();
            } else if let Some((_, e)) = results.into_iter().next() {
                // One member before v3: its result is the request's.
                response.error_code = errors::group_code(e);
            }
        }
        Ok(Reply::Leave(Err(e))) | Err(e) => response.error_code = errors::group(e).code(),
        Ok(_) => {}
    }
    response
}
