//! A topic's effective settings: its own overrides (from the metadata image) over the broker's
//! values, resolved through Kafka's topic-to-broker synonyms.

use std::collections::BTreeMap;

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
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub max_message_bytes: i32,
    /// `cleanup.policy` includes `delete` (DeleteRecords is refused otherwise).
    pub cleanup_delete: bool,
    pub log_append_time: bool,
    pub log: LogConfig,
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
        let compact = policy.split(',').any(|p| p.trim() == "compact");
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
            compact,
            delete_retention_ms: parse_or(get("delete.retention.ms"), 86_400_000i64).max(0),
            min_compaction_lag_ms: parse_or(get("min.compaction.lag.ms"), 0i64).max(0),
            max_compaction_lag_ms: parse_or(get("max.compaction.lag.ms"), i64::MAX).max(1),
            min_cleanable_dirty_ratio: parse_or(get("min.cleanable.dirty.ratio"), 0.5f64)
                .clamp(0.0, 1.0),
        };
        TopicSettings {
            cleanup_delete: deletes,
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
