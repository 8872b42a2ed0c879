//! IncrementalAlterConfigs (key 44, v0-1): SET, DELETE, APPEND and SUBTRACT (the last two on LIST
//! keys such as `cleanup.policy`) applied to a resource's current dynamic overrides, then
//! validated as a whole. Topics, brokers (`""` for the cluster-wide default, or this node's
//! id) and groups; `validate_only` checks without writing. BROKER_LOGGER answers INVALID_REQUEST: rafka's
//! log levels come from `RUST_LOG`.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use rafka_protocol::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use rafka_protocol::kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use super::config_admin::{self, Target};
use crate::config::validate::{self, AlterOp, OpType, ResourceKind};
use crate::errors::{self, ApiError};
use crate::state::Shared;

pub async fn handle(
    shared: &Arc<Shared>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
    let mut response = IncrementalAlterConfigsResponse::default();
    response.responses = responses;
    response
}

async fn alter(
    shared: &Arc<Shared>,
    res: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), ApiError> {
    validate::check_request_keys(res.configs.iter().map(|c| {
        (
            c.name.as_str(),
            c.value.is_none(),
            c.config_operation == OpType::Delete as i8,
        )
    }))
    .map_err(errors::config_rejected)?;
    let target = config_admin::target(
        shared.node_id,
        res.resource_type,
        res.resource_name.as_str(),
        true,
    )?;
    let ops = res
        .configs
        .iter()
        .map(|c| {
            let op = OpType::from_code(c.config_operation).ok_or_else(|| {
                ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("Unknown operations type {}", c.config_operation),
                )
            })?;
            Ok(AlterOp {
                key: c.name.to_string(),
                op,
                value: c.value.as_ref().map(|v| v.to_string()),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let kind = match target {
        Target::Topic(_) => ResourceKind::Topic,
        Target::Broker(_) => ResourceKind::Broker,
        Target::Group(_) => ResourceKind::Group,
    };
    let image = shared.image();
    let current = config_admin::current(&image, &target);
    let next =
        validate::apply_incremental(kind, &current, &ops).map_err(errors::config_rejected)?;
    config_admin::commit(shared, &image, &target, &current, next, validate_only).await
}
