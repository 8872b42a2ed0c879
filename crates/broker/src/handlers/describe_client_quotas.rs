//! DescribeClientQuotas (key 48, KIP-546). rafka stores no client quotas, so a valid filter
//! matches nothing: no entries, error NONE. The filter is checked as Kafka's
//! `ClientQuotasImage.describe` checks it, so a tool sending a bad one gets Kafka's error and
//! message (INVALID_REQUEST, or UNSUPPORTED_VERSION for an entity type Kafka does not know) with
//! null entries, as Kafka's error response has.

use std::collections::HashSet;

use rafka_protocol::kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use rafka_protocol::kafka_protocol::messages::{
    DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::sb;
use crate::errors::ApiError;

const MATCH_TYPE_EXACT: i8 = 0;
const MATCH_TYPE_DEFAULT: i8 = 1;
const MATCH_TYPE_SPECIFIED: i8 = 2;

const ENTITY_USER: &str = "user";
const ENTITY_CLIENT_ID: &str = "client-id";
const ENTITY_IP: &str = "ip";

pub fn handle(request: &DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let mut response = DescribeClientQuotasResponse::default();
    if let Err(e) = check_filter(&request.components) {
        response.error_code = e.code();
        response.error_message = Some(sb(e.message));
        response.entries = None;
    }
    response
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ResponseError::InvalidRequest, message)
}

/// Kafka's checks, in its order; the first failure answers the whole request.
fn check_filter(components: &[ComponentData]) -> Result<(), ApiError> {
    let mut seen: HashSet<&str> = HashSet::new();
    for c in components {
        let entity_type = c.entity_type.as_str();
        if entity_type.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if seen.contains(entity_type) {
            return Err(invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            )));
        }
        if ![ENTITY_IP, ENTITY_USER, ENTITY_CLIENT_ID].contains(&entity_type) {
            return Err(ApiError::new(
                ResponseError::UnsupportedVersion,
                format!("Unsupported entity type {entity_type}"),
            ));
        }
        match (c.match_type, c._match.is_some()) {
            (MATCH_TYPE_EXACT, false) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ))
            }
            (MATCH_TYPE_DEFAULT, true) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ))
            }
            (MATCH_TYPE_SPECIFIED, true) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ))
            }
            (MATCH_TYPE_EXACT | MATCH_TYPE_DEFAULT | MATCH_TYPE_SPECIFIED, _) => {}
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        }
        seen.insert(entity_type);
    }
    if seen.contains(ENTITY_IP) && (seen.contains(ENTITY_USER) || seen.contains(ENTITY_CLIENT_ID)) {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(entity_type: &str, match_type: i8, m: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(sb(entity_type))
            .with_match_type(match_type)
            .with_match(m.map(sb))
    }

    fn describe(components: Vec<ComponentData>) -> DescribeClientQuotasResponse {
        handle(
            &DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(false),
        )
    }

    #[track_caller]
    fn assert_refused(components: Vec<ComponentData>, code: ResponseError, message: &str) {
        let r = describe(components);
        assert_eq!(r.error_code, code.code());
        assert_eq!(r.error_message.as_deref(), Some(message));
        assert!(r.entries.is_none());
    }

    #[test]
    fn valid_filters_match_nothing() {
        for components in [
            vec![],
            vec![component("user", 0, Some("alice"))],
            vec![component("user", 1, None), component("client-id", 2, None)],
            vec![component("ip", 0, Some("10.0.0.1"))],
        ] {
            let r = describe(components);
            assert_eq!(r.error_code, 0);
            assert_eq!(r.entries.as_deref().map(<[_]>::len), Some(0));
        }
    }

    #[test]
    fn bad_filters_get_kafkas_errors() {
        let invalid = ResponseError::InvalidRequest;
        assert_refused(
            vec![component("", 2, None)],
            invalid,
            "Invalid empty entity type.",
        );
        assert_refused(
            vec![
                component("user", 2, None),
                component("user", 0, Some("bob")),
            ],
            invalid,
            "Entity type user cannot appear more than once in the filter.",
        );
        assert_refused(
            vec![component("group", 2, None)],
            ResponseError::UnsupportedVersion,
            "Unsupported entity type group",
        );
        assert_refused(
            vec![component("user", 0, None)],
            invalid,
            "Request specified MATCH_TYPE_EXACT, but set match string to null.",
        );
        assert_refused(
            vec![component("user", 1, Some("alice"))],
            invalid,
            "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
        );
        assert_refused(
            vec![component("client-id", 2, Some("x"))],
            invalid,
            "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
        );
        assert_refused(
            vec![component("user", 3, None)],
            invalid,
            "Unknown match type 3",
        );
        assert_refused(
            vec![component("ip", 2, None), component("client-id", 1, None)],
            invalid,
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component.",
        );
    }
}
