//! ListGroups (key 16): the groups this node coordinates, filtered by state (v4+, KIP-518) and
//! type (v5+, KIP-848: `classic` or `consumer`).

use rafka_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use rafka_protocol::kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::sb;
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

/// Whether `name` passes `filter`: an empty filter passes everything, names match
/// case-insensitively (as Kafka parses states and types), and an unknown name matches none.
fn passes(filter: &[StrBytes], name: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| f.as_str().eq_ignore_ascii_case(name))
}

pub async fn handle(
    groups: &GroupCoordinator,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let mut response = ListGroupsResponse::default();
    let result = groups
        .query(|c, _| (c.is_loading(), c.list_groups(&[]), c.list_consumer_groups()))
        .await;
    let (loading, classic, consumer) = match result {
        Ok(r) => r,
        Err(e) => {
            response.error_code = errors::group(e).code();
            return response;
        }
    };
    if loading {
        response.error_code = ResponseError::CoordinatorLoadInProgress.code();
    }
    // (group id, protocol type, state, type) of every group, classic then consumer.
    let all = classic
        .into_iter()
        .map(|g| (g.group_id, g.protocol_type, g.state.name(), "classic"))
        .chain(
            consumer
                .into_iter()
                .map(|(id, state)| (id, "consumer".to_string(), state, "consumer")),
        );
    for (id, protocol_type, state, group_type) in all {
        if !passes(&request.states_filter, state) || !passes(&request.types_filter, group_type) {
            continue;
        }
        let mut l = ListedGroup::default();
        l.group_id = GroupId(sb(id));
        l.protocol_type = sb(protocol_type);
        if version >= 4 {
            l.group_state = sb(state);
        }
        if version >= 5 {
            l.group_type = sb(group_type);
        }
        response.groups.push(l);
    }
    response
        .groups
        .sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    response
}
