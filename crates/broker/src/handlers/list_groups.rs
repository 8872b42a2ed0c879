//! ListGroups (key 16): the groups this node coordinates, filtered by state (v4+, KIP-518) and
//! type (v5+, KIP-848: `classic` or `consumer`).

use rafka_group::GroupState;
use rafka_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use rafka_protocol::kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::sb;
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

pub async fn handle(
    groups: &GroupCoordinator,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let mut response = ListGroupsResponse::default();
    // State names match case-insensitively, as Kafka parses them; an unknown name matches none.
    let states: Vec<GroupState> = GroupState::all()
        .into_iter()
        .filter(|s| {
            request
                .states_filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(s.name()))
        })
        .collect();
    let wanted_state = |s: GroupState| request.states_filter.is_empty() || states.contains(&s);
    let type_wanted = |name: &str| {
        request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case(name))
    };
    let classic_wanted = type_wanted("classic");
    let consumer_wanted = type_wanted("consumer");
    let result = groups
        .query(|c, _| (c.is_loading(), c.list_groups(&[]), c.list_consumer_groups()))
        .await;
    match result {
        Ok((loading, groups, consumer_groups)) => {
            if loading {
                response.error_code = ResponseError::CoordinatorLoadInProgress.code();
            }
            if classic_wanted {
                response.groups = groups
                    .into_iter()
                    .filter(|g| wanted_state(g.state))
                    .map(|g| {
                        let mut l = ListedGroup::default();
                        l.group_id = GroupId(sb(g.group_id));
                        l.protocol_type = sb(g.protocol_type);
                        if version >= 4 {
                            l.group_state = sb(g.state.name());
                        }
                        if version >= 5 {
                            l.group_type = sb("classic");
                        }
                        l
                    })
                    .collect();
            }
            if consumer_wanted {
                let state_wanted = |name: &str| {
                    request.states_filter.is_empty()
                        || request
                            .states_filter
                            .iter()
                            .any(|f| f.as_str().eq_ignore_ascii_case(name))
                };
                for (id, state) in consumer_groups {
                    if !state_wanted(state) {
                        continue;
                    }
                    let mut l = ListedGroup::default();
                    l.group_id = GroupId(sb(id));
                    l.protocol_type = sb("consumer");
                    if version >= 4 {
                        l.group_state = sb(state);
                    }
                    if version >= 5 {
                        l.group_type = sb("consumer");
                    }
                    response.groups.push(l);
                }
                response
                    .groups
                    .sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
            }
        }
        Err(e) => response.error_code = errors::group(e).code(),
    }
    response
}
