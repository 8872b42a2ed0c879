//! A topic's effective settings: its own overrides (from the metadata image) over the broker's
//! values, resolved through Kafka's topic-to-broker synonyms.

use std::collections::BTreeMap;

use rafka_records::Compression;
use rafka_storage::LogConfig;

use crate::config::defs::{self, TopicConfigDef};
use crate::config::BrokerConfig;

/// Where a reported config value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

/// One resolved topic config.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    pub def: &'static TopicConfigDef,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// Resolves every topic config for a topic with `overrides`.
pub fn resolve_all(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ResolvedConfig> {
    defs::TOPIC_CONFIGS
        .iter()
        .map(|def| resolve(broker, overrides, def))
        .collect()
}

pub fn resolve(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    def: &'static TopicConfigDef,
) -> ResolvedConfig {
    if let Some(v) = overrides.get(def.name) {
        return ResolvedConfig {
            def,
            value: Some(v.clone()),
            source: ConfigSource::DynamicTopic,
        };
    }
    if let Some(syn) = def.broker_synonym {
        if let Some(v) = broker.explicit.get(syn) {
            return ResolvedConfig {
                def,
                value: Some(v.clone()),
                source: ConfigSource::StaticBroker,
            };
        }
        // retention.ms also follows log.retention.minutes and log.retention.hours.
        if def.name == "retention.ms"
            && ["log.retention.minutes", "log.retention.hours"]
                .iter()
                .any(|k| broker.explicit.contains_key(*k))
        {
            return ResolvedConfig {
                def,
                value: Some(broker.log_retention_ms.to_string()),
                source: ConfigSource::StaticBroker,
            };
        }
        // Synonyms with derived defaults (segment.ms from log.roll.hours, ...).
        let derived = match def.name {
            "segment.ms" => Some(broker.log_roll_ms.to_string()),
            "retention.ms" => Some(broker.log_retention_ms.to_string()),
            _ => defs::broker_def(syn).and_then(|d| d.default.map(str::to_string)),
        };
        if let Some(v) = derived {
            return ResolvedConfig {
                def,
                value: Some(v),
                source: ConfigSource::Default,
            };
        }
    }
    ResolvedConfig {
        def,
        value: def.default.map(str::to_string),
        source: ConfigSource::Default,
    }
}

/// The settings produce and the log need, parsed once per topic config change.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub max_message_bytes: i32,
    /// `cleanup.policy` includes `delete` (DeleteRecords is refused otherwise).
    pub cleanup_delete: bool,
    /// `cleanup.policy` includes `compact`: produce refuses records without a key.
    pub cleanup_compact: bool,
    pub log_append_time: bool,
    /// `compression.type` with its KIP-390 level: the codec batches are stored in.
    pub compression: TopicCompression,
    pub log: LogConfig,
}

/// A topic's `compression.type` (Kafka's `BrokerCompressionType` plus the level from
/// `compression.<codec>.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    /// `producer`: batches are stored in the codec they came in.
    Producer,
    /// `uncompressed` (codec `None`) or a codec; `level` is `None` for the codec's default and for
    /// codecs without levels (snappy, uncompressed).
    Codec {
        codec: Compression,
        level: Option<i32>,
    },
}

impl TopicCompression {
    /// Parses `compression.type`; `level_of` reads a `compression.<codec>.level` key. Values were
    /// validated when they were set, so an unknown name falls back to `producer`.
    fn parse(name: &str, level_of: impl Fn(&str) -> Option<i32>) -> TopicCompression {
        let (codec, level) = match name.trim() {
            "uncompressed" => (Compression::None, None),
            "snappy" => (Compression::Snappy, None),
            // -1 is zlib's own default (6): the codec default.
            "gzip" => (
                Compression::Gzip,
                level_of("compression.gzip.level").filter(|l| *l != -1),
            ),
            "lz4" => (Compression::Lz4, level_of("compression.lz4.level")),
            "zstd" => (Compression::Zstd, level_of("compression.zstd.level")),
            _ => return TopicCompression::Producer,
        };
        TopicCompression::Codec { codec, level }
    }

    /// The codec and level a batch that came compressed with `source` must be rewritten in, or
    /// `None` when it is stored as it came. Like Kafka's LogValidator, only the codec decides:
    /// a gzip batch on a gzip topic is kept whatever level the producer used.
    pub fn rewrite_target(self, source: Compression) -> Option<(Compression, Option<i32>)> {
        match self {
            TopicCompression::Codec { codec, level } if codec != source => Some((codec, level)),
            _ => None,
        }
    }
}

fn parse_or<T: std::str::FromStr>(v: Option<String>, fallback: T) -> T {
    v.and_then(|s| s.trim().parse().ok()).unwrap_or(fallback)
}

impl TopicSettings {
    pub fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| -> Option<String> {
            defs::topic_def(name).and_then(|d| resolve(broker, overrides, d).value)
        };
        let policy = get("cleanup.policy").unwrap_or_else(|| "delete".to_string());
        let deletes = policy.split(',').any(|p| p.trim() == "delete");
        let compacts = policy.split(',').any(|p| p.trim() == "compact");
        let compression =
            TopicCompression::parse(&get("compression.type").unwrap_or_default(), |key| {
                get(key).and_then(|v| v.trim().parse().ok())
            });
        let log = LogConfig {
            segment_bytes: parse_or(get("segment.bytes"), broker.log_segment_bytes),
            segment_ms: parse_or(get("segment.ms"), broker.log_roll_ms),
            index_interval_bytes: parse_or(
                get("index.interval.bytes"),
                broker.log_index_interval_bytes,
            ),
            segment_index_bytes: parse_or(
                get("segment.index.bytes"),
                broker.log_index_size_max_bytes,
            ),
            flush_messages: parse_or(get("flush.messages"), broker.log_flush_interval_messages),
            flush_ms: parse_or(get("flush.ms"), broker.log_flush_interval_ms),
            // Time and size retention apply to `cleanup.policy=delete` (alone or with compact);
            // a compact-only topic keeps its data until the cleaner (not yet here) compacts it.
            retention_ms: if deletes {
                parse_or(get("retention.ms"), broker.log_retention_ms)
            } else {
                -1
            },
            retention_bytes: if deletes {
                parse_or(get("retention.bytes"), broker.log_retention_bytes)
            } else {
                -1
            },
            file_delete_delay_ms: parse_or(
                get("file.delete.delay.ms"),
                broker.log_segment_delete_delay_ms,
            ),
        };
        TopicSettings {
            cleanup_delete: deletes,
            cleanup_compact: compacts,
            compression,
            max_message_bytes: parse_or(get("max.message.bytes"), broker.message_max_bytes),
            log_append_time: get("message.timestamp.type").as_deref() == Some("LogAppendTime"),
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_beat_broker_values_which_beat_defaults() {
        let mut props = BTreeMap::new();
        props.insert("message.max.bytes".to_string(), "2000000".to_string());
        let (broker, _) = BrokerConfig::from_props(&props).expect("valid");
        let mut overrides = BTreeMap::new();
        overrides.insert("segment.bytes".to_string(), "1000".to_string());
        let s = TopicSettings::resolve(&broker, &overrides);
        assert_eq!(s.max_message_bytes, 2_000_000);
        assert_eq!(s.log.segment_bytes, 1000);
        assert!(!s.log_append_time);
        let all = resolve_all(&broker, &overrides);
        let seg = all
            .iter()
            .find(|r| r.def.name == "segment.bytes")
            .expect("listed");
        assert_eq!(seg.source, ConfigSource::DynamicTopic);
        let mm = all
            .iter()
            .find(|r| r.def.name == "max.message.bytes")
            .expect("listed");
        assert_eq!(mm.source, ConfigSource::StaticBroker);
        let ret = all
            .iter()
            .find(|r| r.def.name == "retention.ms")
            .expect("listed");
        assert_eq!(ret.value.as_deref(), Some("604800000"));
        assert_eq!(s.compression, TopicCompression::Producer);
        assert!(!s.cleanup_compact);
    }

    #[test]
    fn compression_type_and_levels_resolve_through_synonyms() {
        let mut props = BTreeMap::new();
        props.insert("compression.type".to_string(), "zstd".to_string());
        props.insert("compression.zstd.level".to_string(), "7".to_string());
        let (broker, _) = BrokerConfig::from_props(&props).expect("valid");
        let s = TopicSettings::resolve(&broker, &BTreeMap::new());
        assert_eq!(
            s.compression,
            TopicCompression::Codec {
                codec: Compression::Zstd,
                level: Some(7)
            }
        );
        let rewrite = |overrides: &[(&str, &str)], source| {
            let o = overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            TopicSettings::resolve(&broker, &o)
                .compression
                .rewrite_target(source)
        };
        assert_eq!(rewrite(&[], Compression::Zstd), None);
        assert_eq!(
            rewrite(&[], Compression::None),
            Some((Compression::Zstd, Some(7)))
        );
        assert_eq!(
            rewrite(&[("compression.type", "producer")], Compression::Gzip),
            None
        );
        assert_eq!(
            rewrite(&[("compression.type", "uncompressed")], Compression::Lz4),
            Some((Compression::None, None))
        );
        assert_eq!(
            rewrite(&[("compression.type", "uncompressed")], Compression::None),
            None
        );
        // gzip's -1 (the default) is zlib's default level; lz4 falls back to Kafka's default 9.
        assert_eq!(
            rewrite(&[("compression.type", "gzip")], Compression::None),
            Some((Compression::Gzip, None))
        );
        assert_eq!(
            rewrite(
                &[
                    ("compression.type", "gzip"),
                    ("compression.gzip.level", "1")
                ],
                Compression::Snappy
            ),
            Some((Compression::Gzip, Some(1)))
        );
        assert_eq!(
            rewrite(&[("compression.type", "lz4")], Compression::None),
            Some((Compression::Lz4, Some(9)))
        );
        let compacted = |policy: &str| {
            let o = [("cleanup.policy".to_string(), policy.to_string())].into();
            TopicSettings::resolve(&broker, &o).cleanup_compact
        };
        assert!(compacted("compact"));
        assert!(compacted("delete, compact"));
        assert!(!compacted("delete"));
    }
}
