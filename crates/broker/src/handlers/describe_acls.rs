//! DescribeAcls (key 29): with no authorizer, SECURITY_DISABLED and Kafka's message, no
//! resources (see `acls.rs`).

use rafka_protocol::kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use rafka_protocol::kafka_protocol::ResponseError;

use super::acls::{self, AclCodes};
use super::groups::sb;

/// `Err`: a filter Kafka refuses to parse; the connection is closed with this reason.
pub fn handle(request: &DescribeAclsRequest) -> Result<DescribeAclsResponse, String> {
    acls::refuse_unknown(
        "DescribeAclsRequest",
        [AclCodes {
            resource_type: request.resource_type_filter,
            pattern_type: request.pattern_type_filter,
            operation: request.operation,
            permission_type: request.permission_type,
        }],
    )?;
    let mut response = DescribeAclsResponse::default();
    response.error_code = ResponseError::SecurityDisabled.code();
    response.error_message = Some(sb(acls::NO_AUTHORIZER_DESCRIBE));
    Ok(response)
}
