//! DeleteGroups (key 42): removes empty groups with their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members gets NON_EMPTY_GROUP.

use rafka_group::{GroupError, Reply};
use rafka_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use rafka_protocol::kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::groups::text;
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

pub async fn handle(
    groups: &GroupCoordinator,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for id in request.groups_names {
        let group_id = text(&id.0);
        let result = match groups
            .change(move |c, now, rid| c.delete_group(now, rid, &group_id))
            .await
        {
            Ok(Reply::DeleteGroup(r)) => r,
            Ok(_) => Err(GroupError::CoordinatorNotAvailable),
            Err(e) => Err(e),
        };
        let mut r = DeletableGroupResult::default();
        r.group_id = id;
        r.error_code = errors::group_code(result.err());
        response.results.push(r);
    }
    response
}
