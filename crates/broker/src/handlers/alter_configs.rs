//! AlterConfigs (key 33, v0-2), the legacy form: the request carries a resource's complete set of
//! dynamic overrides, and every override it does not name is deleted, as in Kafka. Topics and
//! brokers (`""` for the cluster-wide default, or this node's id); `validate_only` checks
//! without writing. BROKER_LOGGER was never part of this API (INVALID_REQUEST, as in Kafka).

use std::collections::BTreeMap;
use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use rafka_protocol::kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use rafka_protocol::kafka_protocol::protocol::StrBytes;

use super::config_admin;
use crate::config::validate;
use crate::errors::{self, ApiError};
use crate::state::Shared;

pub async fn handle(shared: &Arc<Shared>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let duplicates = config_admin::duplicate_resources(
        request
            .resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(request.resources.len());
    for (res, duplicate) in request.resources.iter().zip(duplicates) {
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let result = if duplicate {
            Err(config_admin::duplicate_resource_error())
        } else {
            alter(shared, res, request.validate_only).await
        };
        if let Err(e) = result {
            r.error_code = e.code();
            r.error_message = Some(StrBytes::from_string(e.message));
        }
        responses.push(r);
    }
    let mut response = AlterConfigsResponse::default();
    response.responses = responses;
    response
}

async fn alter(
    shared: &Arc<Shared>,
    res: &rafka_protocol::kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), ApiError> {
    validate::check_request_keys(
        res.configs
            .iter()
            .map(|c| (c.name.as_str(), c.value.is_none(), false)),
    )
    .map_err(errors::config_rejected)?;
    let target = config_admin::target(
        shared.node_id,
        res.resource_type,
        res.resource_name.as_str(),
        false,
    )?;
    let next: BTreeMap<String, String> = res
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect();
    let image = shared.image();
    let current = config_admin::current(&image, &target);
    config_admin::commit(shared, &image, &target, &current, next, validate_only).await
}
