//! The one table of APIs the broker implements and the versions it accepts for each.
//!
//! Everything that needs to know what we support (the request gate in the codec, the
//! ApiVersions response, the KIP-511 fallback) reads this table and nothing else.
//!
//! A second table, [`PENDING_APIS`], lists APIs whose request shapes and codec are implemented
//! and tested here but that the broker does not handle yet. The request path never reads it: a
//! request for a pending API is refused exactly like one for an API we have never heard of.
//!
//! A third table, [`CONTROLLER_APIS`], is what a KRaft controller listener answers. Kafka keeps
//! the two listeners' APIs apart (each API's schema names the listeners it is served on), so a
//! broker API reaching a controller listener is refused as unsupported, and the reverse: the
//! broker path never reads this table, and the controller path reads nothing else.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;

/// One supported API and its inclusive version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    /// The API.
    pub key: ApiKey,
    /// Lowest accepted version.
    pub min: i16,
    /// Highest accepted version.
    pub max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> ApiSupport {
    ApiSupport { key, min, max }
}

/// What the broker implements, with Kafka 4.1's ranges (as `kafka-protocol` 0.18 knows them).
/// Adding an API here also requires a body shape in `shape.rs` (a unit test enforces it).
/// An API is in this table or in [`PENDING_APIS`], never both (a unit test enforces it).
pub static SUPPORTED_APIS: &[ApiSupport] = &[
    api(ApiKey::Produce, 3, 13),
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 10),
    // Kafka 4.0 removed v0-1 (KIP-896); v3+ carries the replica id of a follower.
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::Metadata, 0, 13),
    // KIP-966: partitions with their eligible leader replicas, paginated.
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    // PREFERRED (v0+) and UNCLEAN (v1+) leader elections; v2 is flexible.
    api(ApiKey::ElectLeaders, 0, 2),
    // Partition reassignment; v1 carries allow_replication_factor_change (KIP-860).
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    // KIP-848's consumer protocol. Answered UNSUPPORTED_VERSION while `group.version` is 0 or
    // `group.coordinator.rebalance.protocols` leaves out consumer, as Kafka does.
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    api(ApiKey::LeaveGroup, 0, 5),
    // kafka-protocol's ApiKey says 2-10, but its request struct only encodes/decodes 2-9.
    api(ApiKey::OffsetCommit, 2, 9),
    // kafka-protocol's ApiKey says 1-10, but its request struct only encodes/decodes 1-9.
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::DeleteRecords, 0, 2),
    // Kafka 4.0 removed v0 (KIP-896).
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::InitProducerId, 0, 5),
    // Transactions V1 and V2 (KIP-890 part 2). AddPartitionsToTxn v4+ is the batched form
    // brokers send (`transactions`, `verify_only`), v5 the implicit add of a V2 transaction;
    // v0-3 carries one transaction. EndTxn v5 and TxnOffsetCommit v5 are V2; clients use them
    // only when `transaction.version` 2 is finalized (ApiVersions' FinalizedFeatures).
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 5),
    api(ApiKey::TxnOffsetCommit, 0, 5),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    // v2's transactional id pattern (KIP-1152) needs a regex engine; not offered.
    api(ApiKey::ListTransactions, 0, 1),
    // kafka-protocol 0.18 knows only v1.
    api(ApiKey::WriteTxnMarkers, 1, 1),
    // Served on broker listeners too (kafka-metadata-quorum's --bootstrap-server).
    api(ApiKey::DescribeQuorum, 0, 2),
    // No authorizer: answered SECURITY_DISABLED as Kafka answers without one. Kafka 4.0 removed
    // v0 of all three (KIP-896).
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    // No quotas and no SCRAM credentials are stored: empty answers, filters checked as Kafka's.
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
];

/// Implemented in the protocol layer, not yet advertised: the broker moves an entry to
/// [`SUPPORTED_APIS`] when its handler lands.
///
/// Each entry has a body shape in `shape.rs`, and the codec tests round-trip, cut and fuzz every
/// version listed here just as they do for [`SUPPORTED_APIS`]. [`is_supported`],
/// [`api_versions_keys`] and the request gate in `decode_request` do not read this table, so
/// these APIs are neither advertised nor accepted yet.
pub static PENDING_APIS: &[ApiSupport] = &[];

/// What a KRaft controller listener answers, with Kafka 4.1's ranges (as `kafka-protocol` 0.18
/// knows them). Like [`SUPPORTED_APIS`], every entry needs a body shape in `shape.rs` (a unit
/// test enforces it). An API may be in this table and [`SUPPORTED_APIS`] both: the listeners are
/// gated separately.
pub static CONTROLLER_APIS: &[ApiSupport] = &[
    api(ApiKey::ApiVersions, 0, 4),
    // v1+ carries endpoint_type: admin clients bootstrapping from controllers ask for
    // controller endpoints.
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::DescribeQuorum, 0, 2),
    api(ApiKey::BrokerRegistration, 0, 4),
    api(ApiKey::BrokerHeartbeat, 0, 1),
    // Leaders' ISR changes; Kafka 4.0 removed v0-1 (KIP-896), v3 carries broker epochs
    // (KIP-903).
    api(ApiKey::AlterPartition, 2, 3),
];

/// Every API with a protocol-layer implementation: [`SUPPORTED_APIS`], [`PENDING_APIS`], then
/// the [`CONTROLLER_APIS`] entries not already listed. For the shape and codec tests; the
/// listeners' gates are [`is_supported`] and [`is_controller_supported`].
#[cfg(test)]
pub(crate) fn implemented_apis() -> impl Iterator<Item = &'static ApiSupport> {
    let elsewhere = |c: &&ApiSupport| !SUPPORTED_APIS.contains(c) && !PENDING_APIS.contains(c);
    SUPPORTED_APIS
        .iter()
        .chain(PENDING_APIS)
        .chain(CONTROLLER_APIS.iter().filter(elsewhere))
}

/// Whether `version` of `api_key` is in any table. Tests only: decodes pending APIs and both
/// listeners' APIs.
#[cfg(test)]
pub(crate) fn is_implemented(api_key: ApiKey, version: i16) -> bool {
    implemented_apis().any(|a| a.key == api_key && (a.min..=a.max).contains(&version))
}

/// The table entry for `api_key`, if we implement it.
pub fn supported(api_key: ApiKey) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|a| a.key == api_key)
}

/// Whether we accept `version` of `api_key`.
pub fn is_supported(api_key: ApiKey, version: i16) -> bool {
    supported(api_key).is_some_and(|a| (a.min..=a.max).contains(&version))
}

/// The [`CONTROLLER_APIS`] entry for `api_key`, if a controller listener answers it.
pub fn controller_supported(api_key: ApiKey) -> Option<&'static ApiSupport> {
    CONTROLLER_APIS.iter().find(|a| a.key == api_key)
}

/// Whether a controller listener accepts `version` of `api_key`.
pub fn is_controller_supported(api_key: ApiKey, version: i16) -> bool {
    controller_supported(api_key).is_some_and(|a| (a.min..=a.max).contains(&version))
}

/// The `api_keys` list of an ApiVersions response, in api-key order as Kafka sends it.
pub fn api_versions_keys() -> Vec<ApiVersion> {
    keys_of(SUPPORTED_APIS)
}

/// [`api_versions_keys`] for a controller listener: [`CONTROLLER_APIS`], in api-key order.
pub fn controller_api_versions_keys() -> Vec<ApiVersion> {
    keys_of(CONTROLLER_APIS)
}

fn keys_of(table: &[ApiSupport]) -> Vec<ApiVersion> {
    let mut keys: Vec<ApiVersion> = table
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect();
    keys.sort_by_key(|k| k.api_key);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_within_kafka_protocol_ranges() {
        for a in implemented_apis() {
            let valid = a.key.valid_versions();
            assert!(a.min <= a.max, "{:?}", a.key);
            assert!(
                a.min >= valid.min && a.max <= valid.max,
                "{:?}: ours {}..={}, kafka-protocol {}",
                a.key,
                a.min,
                a.max,
                valid
            );
        }
    }

    #[test]
    fn table_has_no_duplicates() {
        for table in [SUPPORTED_APIS, PENDING_APIS, CONTROLLER_APIS] {
            for (i, a) in table.iter().enumerate() {
                assert!(
                    table[i + 1..].iter().all(|b| b.key != a.key),
                    "{:?} twice",
                    a.key
                );
            }
        }
    }

    #[test]
    fn no_api_is_both_supported_and_pending() {
        for p in PENDING_APIS {
            assert!(
                SUPPORTED_APIS.iter().all(|a| a.key != p.key),
                "{:?} is in SUPPORTED_APIS and PENDING_APIS",
                p.key
            );
        }
    }

    #[test]
    fn pending_apis_are_neither_accepted_nor_advertised() {
        let keys = api_versions_keys();
        for p in PENDING_APIS {
            assert!(supported(p.key).is_none(), "{:?}", p.key);
            for version in p.min..=p.max {
                assert!(!is_supported(p.key, version), "{:?} v{version}", p.key);
                assert!(is_implemented(p.key, version), "{:?} v{version}", p.key);
            }
            assert!(
                keys.iter().all(|k| k.api_key != p.key as i16),
                "{:?} advertised",
                p.key
            );
        }
    }

    #[test]
    fn lookups() {
        assert!(is_supported(ApiKey::Produce, 3));
        assert!(is_supported(ApiKey::Produce, 13));
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(!is_supported(ApiKey::Produce, 14));
        assert!(is_supported(ApiKey::JoinGroup, 0));
        assert!(!is_supported(ApiKey::JoinGroup, 10));
        assert!(!is_supported(ApiKey::OffsetCommit, 1));
        assert!(!is_supported(ApiKey::InitProducerId, 6));
        assert!(is_supported(ApiKey::AddPartitionsToTxn, 5));
        assert!(!is_supported(ApiKey::AddPartitionsToTxn, 6));
        assert!(is_supported(ApiKey::EndTxn, 5));
        assert!(!is_supported(ApiKey::ListTransactions, 2));
        assert_eq!(
            supported(ApiKey::Fetch).map(|a| (a.min, a.max)),
            Some((4, 18))
        );
        let keys = api_versions_keys();
        assert_eq!(keys.len(), SUPPORTED_APIS.len());
        assert!(keys.windows(2).all(|w| w[0].api_key < w[1].api_key));
        assert!(is_supported(ApiKey::DescribeQuorum, 0));
        assert!(is_supported(ApiKey::DescribeQuorum, 2));
        assert!(!is_supported(ApiKey::DescribeQuorum, 3));
        // Controller-only APIs stay off the broker listener.
        assert!(supported(ApiKey::BrokerRegistration).is_none());
        assert!(!is_supported(ApiKey::BrokerHeartbeat, 0));
    }

    #[test]
    fn controller_lookups() {
        assert!(is_controller_supported(ApiKey::ApiVersions, 0));
        assert!(is_controller_supported(ApiKey::ApiVersions, 4));
        assert!(!is_controller_supported(ApiKey::ApiVersions, 5));
        assert!(is_controller_supported(ApiKey::DescribeCluster, 1));
        assert!(is_controller_supported(ApiKey::DescribeQuorum, 2));
        assert!(is_controller_supported(ApiKey::BrokerRegistration, 0));
        assert!(is_controller_supported(ApiKey::BrokerRegistration, 4));
        assert!(!is_controller_supported(ApiKey::BrokerRegistration, 5));
        assert!(is_controller_supported(ApiKey::BrokerHeartbeat, 1));
        assert!(!is_controller_supported(ApiKey::BrokerHeartbeat, 2));
        assert!(!is_controller_supported(ApiKey::BrokerHeartbeat, -1));
        // Broker APIs stay off the controller listener.
        assert!(controller_supported(ApiKey::Produce).is_none());
        assert!(!is_controller_supported(ApiKey::Metadata, 12));
        assert_eq!(
            controller_supported(ApiKey::BrokerRegistration).map(|a| (a.min, a.max)),
            Some((0, 4))
        );
        let keys = controller_api_versions_keys();
        assert_eq!(keys.len(), CONTROLLER_APIS.len());
        assert!(keys.windows(2).all(|w| w[0].api_key < w[1].api_key));
        for a in CONTROLLER_APIS {
            assert!(
                keys.iter().any(|k| k.api_key == a.key as i16
                    && (k.min_version, k.max_version) == (a.min, a.max)),
                "{:?}",
                a.key
            );
        }
    }

    /// `ApiKey::valid_versions` and the request structs can disagree (see OffsetCommit above);
    /// the controller-only APIs are checked against both.
    #[test]
    fn controller_table_is_within_request_struct_versions() {
        use kafka_protocol::messages::{
            BrokerHeartbeatRequest, BrokerRegistrationRequest, DescribeQuorumRequest,
        };
        use kafka_protocol::protocol::{Message, VersionRange};
        let structs: [(ApiKey, VersionRange); 3] = [
            (ApiKey::DescribeQuorum, DescribeQuorumRequest::VERSIONS),
            (
                ApiKey::BrokerRegistration,
                BrokerRegistrationRequest::VERSIONS,
            ),
            (ApiKey::BrokerHeartbeat, BrokerHeartbeatRequest::VERSIONS),
        ];
        for (key, range) in structs {
            let a = controller_supported(key).unwrap();
            assert!(a.min >= range.min && a.max <= range.max, "{key:?}: {range}");
        }
    }
}
