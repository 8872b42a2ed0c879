//! A topic's effective settings: its own overrides (from the metadata image) over the broker's
//! values, resolved through Kafka's topic-to-broker synonyms. The broker's value is itself
//! layered (dynamic per-broker > dynamic cluster default > static > default; see
//! [`crate::dynamic_config`]), so a topic without an override follows dynamic broker changes.

use std::collections::BTreeMap;

use rafka_records::Compression;
use rafka_storage::LogConfig;

use crate::config::defs::{self, TopicConfigDef};
use crate::config::BrokerConfig;
use crate::dynamic_config;

/// Where a reported config value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    /// A group's own config (Kafka's `GROUP_CONFIG`).
    Group = 8,
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

/// Kafka's order: the topic override, else the first broker synonym set in a dynamic or static
/// layer, else the default.
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
        // Synonyms with derived values (retention.ms from log.retention.minutes/hours, segment.ms
        // from log.roll.hours) take the typed value, which follows Kafka's precedence.
        let derived = match def.name {
            "segment.ms" => Some(broker.log_roll_ms.to_string()),
            "retention.ms" => Some(broker.log_retention_ms.to_string()),
            _ => None,
        };
        let names = dynamic_config::synonym_names(syn);
        if let Some(first) = dynamic_config::explicit_synonyms(broker, &names).first() {
            return ResolvedConfig {
                def,
                value: derived.or_else(|| first.value.clone()),
                source: first.source,
            };
        }
        let default = derived.or_else(|| {
            defs::broker_def(syn)
                .and_then(|d| d.default.map(str::to_string))
                .or_else(|| def.default.map(str::to_string))
        });
        if default.is_some() {
            return ResolvedConfig {
                def,
                value: default,
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

/// The settings produce and the log need, parsed once per topic (or broker) config change.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub max_message_bytes: i32,
    /// `cleanup.policy` includes `delete` (DeleteRecords is refused otherwise).
    pub cleanup_delete: bool,
    /// `cleanup.policy` includes `compact`: produce refuses records without a key.
    pub cleanup_compact: bool,
    pub log_append_time: bool,
    /// KIP-937 bounds on CreateTime timestamps: how far in the past / future a produced record's
    /// timestamp may be (INVALID_TIMESTAMP beyond).
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// acks=all produce needs at least this many in-sync replicas (NOT_ENOUGH_REPLICAS).
    pub min_insync_replicas: i32,
    /// `compression.type` with its KIP-390 level: the codec batches are stored in.
    pub compression: TopicCompression,
    pub log: LogConfig,
}

impl TopicSettings {
    /// Whether an acks=all produce may go ahead with `isr` replicas in sync out of `replicas`.
    /// Since Kafka 3.7 (KAFKA-15583) the bar is min(min.insync.replicas, replication factor):
    /// a min.insync.replicas above the replica count cannot block produce forever.
    pub fn enough_in_sync(&self, isr: usize, replicas: usize) -> bool {
        let min_isr = usize::try_from(self.min_insync_replicas)
            .unwrap_or(1)
            .min(replicas);
        isr >= min_isr
    }
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
            // a compact-only topic keeps its data, which the cleaner compacts.
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
            compact: compacts,
            delete_retention_ms: parse_or(get("delete.retention.ms"), 86_400_000i64).max(0),
            min_compaction_lag_ms: parse_or(get("min.compaction.lag.ms"), 0i64).max(0),
            max_compaction_lag_ms: parse_or(get("max.compaction.lag.ms"), i64::MAX).max(1),
            min_cleanable_dirty_ratio: parse_or(get("min.cleanable.dirty.ratio"), 0.5f64)
                .clamp(0.0, 1.0),
        };
        TopicSettings {
            cleanup_delete: deletes,
            cleanup_compact: compacts,
            compression,
            max_message_bytes: parse_or(get("max.message.bytes"), broker.message_max_bytes),
            log_append_time: get("message.timestamp.type").as_deref() == Some("LogAppendTime"),
            timestamp_before_max_ms: parse_or(get("message.timestamp.before.max.ms"), i64::MAX),
            timestamp_after_max_ms: parse_or(get("message.timestamp.after.max.ms"), 3_600_000),
            min_insync_replicas: parse_or(get("min.insync.replicas"), 1),
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
        assert_eq!(ret.source, ConfigSource::Default);
        assert_eq!(s.compression, TopicCompression::Producer);
        assert!(!s.cleanup_compact);
    }

    #[test]
    fn dynamic_broker_layers_rank_above_static_and_defaults() {
        let mut props = BTreeMap::new();
        props.insert("message.max.bytes".to_string(), "2000000".to_string());
        props.insert("log.retention.hours".to_string(), "1".to_string());
        let (static_config, _) = BrokerConfig::from_props(&props).expect("valid");
        let cluster: BTreeMap<String, String> = [
            ("message.max.bytes".to_string(), "3000000".to_string()),
            ("log.retention.ms".to_string(), "5000".to_string()),
            ("min.insync.replicas".to_string(), "2".to_string()),
        ]
        .into_iter()
        .collect();
        let node: BTreeMap<String, String> =
            [("message.max.bytes".to_string(), "4000000".to_string())]
                .into_iter()
                .collect();
        let broker = static_config.with_dynamic(&cluster, &node).expect("valid");
        let overrides = BTreeMap::new();
        let find = |name: &str| {
            resolve_all(&broker, &overrides)
                .into_iter()
                .find(|r| r.def.name == name)
                .expect("listed")
        };
        let mm = find("max.message.bytes");
        assert_eq!(
            (mm.value.as_deref(), mm.source),
            (Some("4000000"), ConfigSource::DynamicBroker)
        );
        let ret = find("retention.ms");
        assert_eq!(
            (ret.value.as_deref(), ret.source),
            (Some("5000"), ConfigSource::DynamicDefaultBroker)
        );
        let s = TopicSettings::resolve(&broker, &overrides);
        assert_eq!(s.max_message_bytes, 4_000_000);
        assert_eq!(s.log.retention_ms, 5000);
        assert_eq!(s.min_insync_replicas, 2);
        // Without the dynamic layers, the static hours apply.
        let s = TopicSettings::resolve(&static_config, &overrides);
        assert_eq!(s.log.retention_ms, 3_600_000);
        assert_eq!(s.max_message_bytes, 2_000_000);
        let ret = resolve(
            &static_config,
            &overrides,
            defs::topic_def("retention.ms").expect("known"),
        );
        assert_eq!(
            (ret.value.as_deref(), ret.source),
            (Some("3600000"), ConfigSource::StaticBroker)
        );
        // KIP-937 defaults.
        assert_eq!(s.timestamp_before_max_ms, i64::MAX);
        assert_eq!(s.timestamp_after_max_ms, 3_600_000);
    }

    #[test]
    fn min_insync_replicas_is_capped_by_the_replica_count() {
        let broker = BrokerConfig::single_node_defaults().expect("valid");
        let overrides: BTreeMap<String, String> =
            [("min.insync.replicas".to_string(), "2".to_string())]
                .into_iter()
                .collect();
        let s = TopicSettings::resolve(&broker, &overrides);
        assert_eq!(s.min_insync_replicas, 2);
        // Three replicas, one in sync: refused; two in sync: allowed.
        assert!(!s.enough_in_sync(1, 3));
        assert!(s.enough_in_sync(2, 3));
        // One replica: the effective minimum is 1, as in Kafka 3.7+.
        assert!(s.enough_in_sync(1, 1));
        // No replica in sync at all never passes.
        assert!(!s.enough_in_sync(0, 1));
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

    #[test]
    fn compaction_settings_follow_topic_and_broker_keys() {
        let mut props = BTreeMap::new();
        props.insert(
            "log.cleaner.delete.retention.ms".to_string(),
            "5000".to_string(),
        );
        props.insert(
            "log.cleaner.min.cleanable.ratio".to_string(),
            "0.2".to_string(),
        );
        let (broker, _) = BrokerConfig::from_props(&props).expect("valid");
        let s = TopicSettings::resolve(&broker, &BTreeMap::new());
        assert!(!s.log.compact && s.cleanup_delete);
        assert_eq!(s.log.delete_retention_ms, 5000);
        assert_eq!(s.log.min_cleanable_dirty_ratio, 0.2);
        assert_eq!(s.log.max_compaction_lag_ms, i64::MAX);
        let mut overrides = BTreeMap::new();
        overrides.insert("cleanup.policy".to_string(), "compact".to_string());
        overrides.insert("min.compaction.lag.ms".to_string(), "100".to_string());
        overrides.insert("min.cleanable.dirty.ratio".to_string(), "0.01".to_string());
        let s = TopicSettings::resolve(&broker, &overrides);
        assert!(s.log.compact && !s.cleanup_delete);
        assert_eq!(s.log.retention_ms, -1);
        assert_eq!(s.log.min_compaction_lag_ms, 100);
        assert_eq!(s.log.min_cleanable_dirty_ratio, 0.01);
        overrides.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        let s = TopicSettings::resolve(&broker, &overrides);
        assert!(s.log.compact && s.cleanup_delete);
    }
}
