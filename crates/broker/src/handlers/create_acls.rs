//! CreateAcls (key 30): with no authorizer, every creation is answered SECURITY_DISABLED with
//! Kafka's message and nothing is stored (see `acls.rs`).

use rafka_protocol::kafka_protocol::messages::create_acls_response::AclCreationResult;
use rafka_protocol::kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::acls::{self, AclCodes};
use super::groups::sb;

/// `Err`: a creation Kafka refuses to parse; the connection is closed with this reason.
pub fn handle(request: &CreateAclsRequest) -> Result<CreateAclsResponse, String> {
    acls::refuse_unknown(
        "CreateAclsRequest",
        request.creations.iter().map(|c| AclCodes {
            resource_type: c.resource_type,
            pattern_type: c.resource_pattern_type,
            operation: c.operation,
            permission_type: c.permission_type,
        }),
    )?;
    let result = AclCreationResult::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(Some(sb(acls::NO_AUTHORIZER)));
    let mut response = CreateAclsResponse::default();
    response.results = vec![result; request.creations.len()];
    Ok(response)
}
