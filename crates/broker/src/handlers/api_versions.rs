//! ApiVersions (key 18): our ranges, from the one version table in the protocol crate, and the
//! feature levels (v3+ tagged fields, as every Kafka 3.x/4.x broker sends them).
//!
//! Only features rafka implements are listed: `transaction.version` (supported 0-2),
//! `eligible.leader.replicas.version` (0-1) and `group.version` (0-1, the KIP-848 consumer
//! protocol), each finalized at the level the metadata image holds. `metadata.version` and
//! `kraft.version` describe Kafka's own KRaft record formats, which rafka's metadata log does
//! not use; they are not listed.
//!
//! Debian bookworm's kcat (librdkafka 2.0.2) reads these tagged fields without trouble
//! (tests/integration/test_kcat.py runs against them).

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::api_versions_response::{
    FinalizedFeatureKey, SupportedFeatureKey,
};
use rafka_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use rafka_protocol::kafka_protocol::protocol::StrBytes;

/// Kafka's feature name for the transaction protocol level.
pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";

/// (name, min, max) of every feature this broker supports.
pub fn supported_features() -> [(&'static str, i16, i16); 3] {
    [
        (
            TRANSACTION_VERSION_FEATURE,
            0,
            rafka_txn::TransactionVersion::LATEST.feature_level(),
        ),
        (rafka_metadata::partition_change::ELR_FEATURE, 0, 1),
        (super::consumer_group_heartbeat::GROUP_VERSION_FEATURE, 0, 1),
    ]
}

pub fn handle(_request: &ApiVersionsRequest, image: &MetadataImage) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = 0;
    response.api_keys = rafka_protocol::versions::api_versions_keys();
    for (name, min, max) in supported_features() {
        let mut f = SupportedFeatureKey::default();
        f.name = StrBytes::from_static_str(name);
        f.min_version = min;
        f.max_version = max;
        response.supported_features.push(f);
    }
    // Kafka lists only features finalized above level 0, each as min = max = level.
    for (name, level) in &image.finalized_features {
        if *level <= 0 {
            continue;
        }
        let mut f = FinalizedFeatureKey::default();
        f.name = StrBytes::from_string(name.clone());
        f.min_version_level = *level;
        f.max_version_level = *level;
        response.finalized_features.push(f);
    }
    // Kafka's epoch is the metadata offset of the image the levels come from.
    response.finalized_features_epoch = i64::try_from(image.last_applied_index).unwrap_or(i64::MAX);
    response
}
