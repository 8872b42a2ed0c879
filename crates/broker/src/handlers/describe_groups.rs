//! DescribeGroups (key 15): state, protocol, members and (for a Stable group) their
//! subscriptions and assignments.

use rafka_group::GroupState;
use rafka_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use rafka_protocol::kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::{sb, text};
use super::metadata::OPERATIONS_OMITTED;
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

/// READ, DESCRIBE and DELETE on a group (bits 3, 8, 6 of Kafka's AclOperation codes); there is
/// no authorizer, so every caller may do all of them.
pub const GROUP_OPERATIONS_ALL: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(
    groups: &GroupCoordinator,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    for id in request.groups {
        let group_id = text(&id.0);
        let gid = group_id.clone();
        let result = groups
            .query(move |c, _| c.describe_group(&gid))
            .await
            .and_then(|r| r);
        let mut d = DescribedGroup::default();
        d.group_id = id;
        d.authorized_operations = if request.include_authorized_operations {
            GROUP_OPERATIONS_ALL
        } else {
            OPERATIONS_OMITTED
        };
        match result {
            Ok(Some(g)) => {
                d.group_state = sb(g.state.name());
                d.protocol_type = sb(g.protocol_type);
                d.protocol_data = sb(g.protocol_name);
                d.members = g
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut r = DescribedGroupMember::default();
                        r.member_id = sb(m.member_id);
                        if version >= 4 {
                            r.group_instance_id = m.group_instance_id.map(sb);
                        }
                        r.client_id = sb(m.client_id);
                        r.client_host = sb(m.client_host);
                        r.member_metadata = m.metadata;
                        r.member_assignment = m.assignment;
                        r
                    })
                    .collect();
            }
            Ok(None) => {
                // KIP-1043: v6 reports an unknown group as an error; older versions describe
                // it as a Dead group without members.
                d.group_state = sb(GroupState::Dead.name());
                if version >= 6 {
                    d.error_code = ResponseError::GroupIdNotFound.code();
                    d.error_message = Some(sb(format!("Group {group_id} not found.")));
                }
            }
            Err(e) => {
                d.error_code = errors::group(e).code();
                if version >= 6 {
                    d.error_message = Some(sb(e.to_string()));
                }
            }
        }
        response.groups.push(d);
    }
    response
}
