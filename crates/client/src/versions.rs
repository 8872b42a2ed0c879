//! Version negotiation: which version of a request to speak to a peer, from the peer's
//! ApiVersions answer and the versions this build can encode (Kafka's `NodeApiVersions`).

use std::collections::HashMap;

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::VersionRange;

/// The api keys and version ranges one peer supports, from its ApiVersions response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerVersions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl PeerVersions {
    /// The ranges of an ApiVersions response (its error code is the caller's business).
    pub fn from_response(response: &ApiVersionsResponse) -> PeerVersions {
        PeerVersions {
            ranges: response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        }
    }

    /// A table from `(api key, (min, max))` pairs (a tool printing or testing versions).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (i16, (i16, i16))>) -> PeerVersions {
        PeerVersions {
            ranges: ranges.into_iter().collect(),
        }
    }

    /// Every api key the peer supports with its `(min, max)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (i16, (i16, i16))> + '_ {
        self.ranges.iter().map(|(k, r)| (*k, *r))
    }

    /// The peer's `(min, max)` for `api_key`, if it supports the key at all.
    pub fn range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&api_key).copied()
    }

    /// The highest version both sides speak: `ours` is what this build can encode. `None` if the
    /// peer lacks the key or the ranges do not overlap.
    pub fn pick(&self, api_key: i16, ours: VersionRange) -> Option<i16> {
        let (their_min, their_max) = self.range(api_key)?;
        let version = ours.max.min(their_max);
        (version >= ours.min.max(their_min)).then_some(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn peer(keys: &[(i16, i16, i16)]) -> PeerVersions {
        let mut r = ApiVersionsResponse::default();
        r.api_keys = keys
            .iter()
            .map(|&(k, min, max)| {
                let mut v = ApiVersion::default();
                v.api_key = k;
                v.min_version = min;
                v.max_version = max;
                v
            })
            .collect();
        PeerVersions::from_response(&r)
    }

    #[test]
    fn picks_the_highest_common_version() {
        let p = peer(&[(0, 3, 11), (1, 4, 17)]);
        assert_eq!(p.pick(0, VersionRange { min: 0, max: 13 }), Some(11));
        assert_eq!(p.pick(1, VersionRange { min: 4, max: 12 }), Some(12));
    }

    #[test]
    fn no_version_without_the_key_or_an_overlap() {
        let p = peer(&[(0, 3, 11)]);
        assert_eq!(p.pick(27, VersionRange { min: 0, max: 1 }), None);
        assert_eq!(p.pick(0, VersionRange { min: 0, max: 2 }), None);
        assert_eq!(p.pick(0, VersionRange { min: 12, max: 13 }), None);
    }
}
