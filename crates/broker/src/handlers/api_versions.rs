//! ApiVersions (key 18): our ranges, from the one version table in the protocol crate.
//!
//! No feature tagged fields are sent: old librdkafka (2.0.2, Debian bookworm's kcat) skips
//! unknown tagged fields by the wrong length, so a non-empty one breaks every connection.

use rafka_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

pub fn handle(_request: &ApiVersionsRequest) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = 0;
    response.api_keys = rafka_protocol::versions::api_versions_keys();
    response.finalized_features_epoch = -1;
    response
}
