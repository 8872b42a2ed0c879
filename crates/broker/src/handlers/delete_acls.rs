//! DeleteAcls (key 31): with no authorizer, every filter is answered SECURITY_DISABLED with
//! Kafka's message and no matching ACLs (see `acls.rs`).

use rafka_protocol::kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use rafka_protocol::kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::acls::{self, AclCodes};
use super::groups::sb;

/// `Err`: a filter Kafka refuses to parse; the connection is closed with this reason.
pub fn handle(request: &DeleteAclsRequest) -> Result<DeleteAclsResponse, String> {
    acls::refuse_unknown(
        "DeleteAclsRequest",
        request.filters.iter().map(|f| AclCodes {
            resource_type: f.resource_type_filter,
            pattern_type: f.pattern_type_filter,
            operation: f.operation,
            permission_type: f.permission_type,
        }),
    )?;
    let result = DeleteAclsFilterResult::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(Some(sb(acls::NO_AUTHORIZER)));
    let mut response = DeleteAclsResponse::default();
    response.filter_results = vec![result; request.filters.len()];
    Ok(response)
}
