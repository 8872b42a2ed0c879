//! The one validator of config values, shared by CreateTopics, AlterConfigs and
//! IncrementalAlterConfigs: types, ranges and enumerations as Kafka's `LogConfig` (topic) and
//! `KafkaConfig` (broker) definitions declare them, with Kafka's messages
//! (`Invalid value X for configuration K: ...`).
//!
//! Topic problems are INVALID_CONFIG; problems with a dynamic broker change are INVALID_REQUEST,
//! because that is what Kafka answers (its `ConfigAdminManager` wraps broker validation errors in
//! `InvalidRequestException`, KAFKA-13609). Sans-IO: plain maps in, a typed error out.

use std::collections::BTreeMap;

use super::defs::{self, ConfigType, TopicConfigDef};

/// Why a config change was refused; `errors::config_rejected` maps it to a Kafka code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRejected {
    /// INVALID_CONFIG (40): an unknown topic key, a value of the wrong type, out of range or not
    /// one of the allowed values, or an incremental operation the key's type does not allow.
    #[error("{0}")]
    InvalidConfig(String),
    /// INVALID_REQUEST (42): duplicate keys or resources, null values, a broker key that cannot
    /// change at runtime, an invalid dynamic broker value, a resource name that is not ours.
    #[error("{0}")]
    InvalidRequest(String),
}

/// A value constraint, as Kafka's `ConfigDef` validators.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Constraint {
    None,
    AtLeast(i64),
    Between(f64, f64),
    /// `ValidString.in(...)`.
    OneOf(&'static [&'static str]),
    /// `ValidList.in(...)`: every comma-separated element one of these.
    ListOf(&'static [&'static str]),
    /// An inclusive integer range, or one extra value (gzip's -1 = zlib's default level).
    RangeOr(i64, i64, i64),
}

const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];

/// Kafka's `LogConfig` validators for topic keys.
fn topic_constraint(name: &str) -> Constraint {
    use Constraint::*;
    match name {
        "segment.bytes" => AtLeast(14),
        "segment.ms" => AtLeast(1),
        "segment.jitter.ms" => AtLeast(0),
        "segment.index.bytes" => AtLeast(4),
        "flush.messages" => AtLeast(1),
        "flush.ms" => AtLeast(0),
        "retention.ms" => AtLeast(-1),
        "max.message.bytes" => AtLeast(0),
        "index.interval.bytes" => AtLeast(0),
        "delete.retention.ms" => AtLeast(0),
        "min.compaction.lag.ms" => AtLeast(0),
        "max.compaction.lag.ms" => AtLeast(1),
        "file.delete.delay.ms" => AtLeast(0),
        "min.cleanable.dirty.ratio" => Between(0.0, 1.0),
        "cleanup.policy" => ListOf(CLEANUP_POLICIES),
        "min.insync.replicas" => AtLeast(1),
        "compression.type" => OneOf(COMPRESSION_TYPES),
        "message.timestamp.type" => OneOf(TIMESTAMP_TYPES),
        "message.timestamp.before.max.ms" => AtLeast(0),
        "message.timestamp.after.max.ms" => AtLeast(0),
        // KIP-390 levels, Kafka's `GzipCompression` / `Lz4Compression` / `ZstdCompression`.
        "compression.gzip.level" => RangeOr(1, 9, -1),
        "compression.lz4.level" => RangeOr(1, 17, 1),
        "compression.zstd.level" => RangeOr(-131_072, 22, 3),
        _ => None,
    }
}

/// Kafka's `KafkaConfig` validators for the broker keys that can change at runtime. The broker
/// synonym of a topic key shares the topic key's validator, except `log.retention.ms`, which
/// Kafka leaves unchecked (any negative value means forever).
fn broker_constraint(name: &str) -> Constraint {
    use Constraint::*;
    match name {
        "log.retention.ms" => None,
        "max.connections" | "max.connections.per.ip" => AtLeast(0),
        "num.io.threads"
        | "num.network.threads"
        | "num.recovery.threads.per.data.dir"
        | "num.replica.fetchers"
        | "background.threads"
        | "producer.id.expiration.ms" => AtLeast(1),
        _ => defs::TOPIC_CONFIGS
            .iter()
            .find(|d| d.broker_synonym == Some(name))
            .map_or(None, |d| topic_constraint(d.name)),
    }
}

fn invalid(name: &str, value: &str, why: &str) -> String {
    format!("Invalid value {value} for configuration {name}: {why}")
}

/// Parses `value` as `ty` and checks `constraint`; the error is Kafka's message.
fn check(name: &str, ty: ConfigType, constraint: Constraint, value: &str) -> Result<(), String> {
    let v = value.trim();
    let number: Option<f64> = match ty {
        ConfigType::Boolean => {
            if !(v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")) {
                return Err(invalid(
                    name,
                    value,
                    "Expected value to be either true or false",
                ));
            }
            None
        }
        ConfigType::Int => Some(
            v.parse::<i32>()
                .map_err(|_| invalid(name, value, "Not a number of type INT"))?
                .into(),
        ),
        ConfigType::Long => Some(
            v.parse::<i64>()
                .map_err(|_| invalid(name, value, "Not a number of type LONG"))? as f64,
        ),
        ConfigType::Double => Some(
            v.parse::<f64>()
                .ok()
                .filter(|d| d.is_finite())
                .ok_or_else(|| invalid(name, value, "Not a number of type DOUBLE"))?,
        ),
        ConfigType::String | ConfigType::List | ConfigType::Password => None,
    };
    match constraint {
        Constraint::None => Ok(()),
        Constraint::AtLeast(min) => {
            // Compared as integers: an i64 bound must not lose precision through f64.
            let below = match ty {
                ConfigType::Int | ConfigType::Long => v.parse::<i64>().is_ok_and(|n| n < min),
                _ => number.is_some_and(|n| n < min as f64),
            };
            if below {
                Err(invalid(
                    name,
                    value,
                    &format!("Value must be at least {min}"),
                ))
            } else {
                Ok(())
            }
        }
        Constraint::Between(lo, hi) => match number {
            Some(n) if n < lo => Err(invalid(
                name,
                value,
                &format!("Value must be at least {lo}"),
            )),
            Some(n) if n > hi => Err(invalid(
                name,
                value,
                &format!("Value must be no more than {hi}"),
            )),
            _ => Ok(()),
        },
        Constraint::RangeOr(lo, hi, extra) => match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) || n == extra => Ok(()),
            _ if extra < lo || extra > hi => Err(invalid(
                name,
                value,
                &format!("Value must be between {lo} and {hi} or equal to {extra}"),
            )),
            _ => Err(invalid(
                name,
                value,
                &format!("Value must be between {lo} and {hi}"),
            )),
        },
        Constraint::OneOf(allowed) => {
            if allowed.contains(&v) {
                Ok(())
            } else {
                Err(invalid(
                    name,
                    value,
                    &format!("String must be one of: {}", allowed.join(", ")),
                ))
            }
        }
        Constraint::ListOf(allowed) => {
            let bad = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .find(|p| !allowed.contains(p));
            match bad {
                None => Ok(()),
                Some(p) => Err(invalid(
                    name,
                    p,
                    &format!("String must be one of: {}", allowed.join(", ")),
                )),
            }
        }
    }
}

/// Checks one topic config value: its type, then its range or allowed values.
pub fn validate_topic_value(def: &TopicConfigDef, value: &str) -> Result<(), String> {
    check(def.name, def.ty, topic_constraint(def.name), value)
}

/// Checks a topic's whole set of overrides (what CreateTopics asks for, or what an alter would
/// leave): every key a Kafka topic config, every value valid, and the cross-key rule of Kafka's
/// `LogConfig.validateValues` (min.compaction.lag.ms <= max.compaction.lag.ms).
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ConfigRejected> {
    for (k, v) in configs {
        let def = defs::topic_def(k).ok_or_else(|| {
            ConfigRejected::InvalidConfig(format!("Unknown topic config name: {k}"))
        })?;
        validate_topic_value(def, v).map_err(ConfigRejected::InvalidConfig)?;
    }
    let lag = |key: &str, default: i64| {
        configs
            .get(key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    let (min_lag, max_lag) = (
        lag("min.compaction.lag.ms", 0),
        lag("max.compaction.lag.ms", i64::MAX),
    );
    if min_lag > max_lag {
        return Err(ConfigRejected::InvalidConfig(format!(
            "conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"
        )));
    }
    Ok(())
}

/// Checks the whole set of dynamic configs one broker resource would have after a change: every
/// key must be one Kafka lets change at runtime (and one rafka knows), every value valid.
/// `Cannot update these configs dynamically: Set(a, b)` is Kafka's message.
pub fn validate_broker_dynamic(configs: &BTreeMap<String, String>) -> Result<(), ConfigRejected> {
    let fixed: Vec<&str> = configs
        .keys()
        .map(String::as_str)
        .filter(|k| !defs::broker_def(k).is_some_and(|d| d.dynamic))
        .collect();
    if !fixed.is_empty() {
        return Err(ConfigRejected::InvalidRequest(format!(
            "Cannot update these configs dynamically: Set({})",
            fixed.join(", ")
        )));
    }
    for (k, v) in configs {
        if let Some(d) = defs::broker_def(k) {
            check(k, d.ty, broker_constraint(k), v).map_err(ConfigRejected::InvalidRequest)?;
        }
    }
    Ok(())
}

/// The kind of resource an incremental change applies to; the two differ in their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Topic,
    Broker,
    /// A group's `consumer.*` configs: all INT, none a LIST.
    Group,
}

/// IncrementalAlterConfigs operations (`AlterConfigOp.OpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    Set,
    Delete,
    Append,
    Subtract,
}

impl OpType {
    pub fn from_code(code: i8) -> Option<OpType> {
        match code {
            0 => Some(OpType::Set),
            1 => Some(OpType::Delete),
            2 => Some(OpType::Append),
            3 => Some(OpType::Subtract),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            OpType::Set => "SET",
            OpType::Delete => "DELETE",
            OpType::Append => "APPEND",
            OpType::Subtract => "SUBTRACT",
        }
    }
}

/// One operation of an IncrementalAlterConfigs resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterOp {
    pub key: String,
    pub op: OpType,
    /// `None` only for DELETE (others are refused before this point).
    pub value: Option<String>,
}

/// The type and Kafka default of a key of `kind`, for APPEND/SUBTRACT.
fn key_type_and_default(
    kind: ResourceKind,
    key: &str,
) -> Option<(ConfigType, Option<&'static str>)> {
    match kind {
        ResourceKind::Topic => defs::topic_def(key).map(|d| {
            let default = d.default.or_else(|| {
                d.broker_synonym
                    .and_then(defs::broker_def)
                    .and_then(|b| b.default)
            });
            (d.ty, default)
        }),
        ResourceKind::Broker => defs::broker_def(key).map(|d| (d.ty, d.default)),
        ResourceKind::Group => crate::config::consumer_group::GROUP_CONFIG_NAMES
            .contains(&key)
            .then_some((ConfigType::Int, None)),
    }
}

/// Checks what Kafka checks before looking at any value: no key twice, and a value for every
/// operation but DELETE (`incremental` false: legacy AlterConfigs, where every value is needed).
pub fn check_request_keys<'a>(
    entries: impl Iterator<Item = (&'a str, bool, bool)>,
) -> Result<(), ConfigRejected> {
    let mut seen = std::collections::BTreeSet::new();
    let mut nulls = Vec::new();
    let mut duplicate = false;
    for (key, value_is_null, null_allowed) in entries {
        duplicate |= !seen.insert(key);
        if value_is_null && !null_allowed {
            nulls.push(key);
        }
    }
    if duplicate {
        return Err(ConfigRejected::InvalidRequest(
            "Error due to duplicate config keys".to_string(),
        ));
    }
    if !nulls.is_empty() {
        return Err(ConfigRejected::InvalidRequest(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    Ok(())
}

/// Applies incremental operations to a resource's current overrides and returns the overrides
/// after them (not yet validated). APPEND and SUBTRACT work on LIST keys only, starting from the
/// current override or else the key's default, as Kafka's `ConfigurationControlManager` does.
pub fn apply_incremental(
    kind: ResourceKind,
    current: &BTreeMap<String, String>,
    ops: &[AlterOp],
) -> Result<BTreeMap<String, String>, ConfigRejected> {
    let mut next = current.clone();
    for op in ops {
        match op.op {
            OpType::Set => {
                next.insert(op.key.clone(), op.value.clone().unwrap_or_default());
            }
            OpType::Delete => {
                next.remove(&op.key);
            }
            OpType::Append | OpType::Subtract => {
                let info = key_type_and_default(kind, &op.key);
                if info.is_none_or(|(ty, _)| ty != ConfigType::List) {
                    return Err(ConfigRejected::InvalidConfig(match kind {
                        ResourceKind::Topic | ResourceKind::Group => format!(
                            "Can't {} to key {} because its type is not LIST.",
                            op.op.name(),
                            op.key
                        ),
                        ResourceKind::Broker if info.is_none() => {
                            format!("Unknown config name: {}", op.key)
                        }
                        ResourceKind::Broker => format!(
                            "Config value {} is not allowed for config key: {}",
                            op.op.name().to_ascii_lowercase(),
                            op.key
                        ),
                    }));
                }
                let base = next
                    .get(&op.key)
                    .cloned()
                    .or_else(|| info.and_then(|(_, d)| d).map(str::to_string))
                    .unwrap_or_default();
                let mut parts: Vec<String> = base
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                let operand = op.value.as_deref().unwrap_or_default();
                for v in operand.split(',') {
                    if op.op == OpType::Append {
                        if !parts.iter().any(|p| p == v) {
                            parts.push(v.to_string());
                        }
                    } else if let Some(i) = parts.iter().position(|p| p == v) {
                        parts.remove(i);
                    }
                }
                next.insert(op.key.clone(), parts.join(","));
            }
        }
    }
    Ok(next)
}

/// The record-level changes that turn `current` into `next`: `Some` to set, `None` to delete.
pub fn changes(
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (k, v) in next {
        if current.get(k) != Some(v) {
            out.insert(k.clone(), Some(v.clone()));
        }
    }
    for k in current.keys() {
        if !next.contains_key(k) {
            out.insert(k.clone(), None);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn op(key: &str, op: OpType, value: Option<&str>) -> AlterOp {
        AlterOp {
            key: key.into(),
            op,
            value: value.map(str::to_string),
        }
    }

    fn topic_err(pairs: &[(&str, &str)]) -> String {
        match validate_topic_configs(&map(pairs)) {
            Err(ConfigRejected::InvalidConfig(m)) => m,
            other => panic!("expected INVALID_CONFIG for {pairs:?}, got {other:?}"),
        }
    }

    #[test]
    fn topic_values_are_checked_as_kafka_does() {
        assert!(validate_topic_configs(&map(&[
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "-1"),
            ("compression.type", "zstd"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("unclean.leader.election.enable", "TRUE"),
            ("min.insync.replicas", "2"),
            ("segment.bytes", " 1024 "),
        ]))
        .is_ok());
        assert_eq!(
            topic_err(&[("cleanup.policy", "foo")]),
            "Invalid value foo for configuration cleanup.policy: String must be one of: compact, delete"
        );
        assert_eq!(
            topic_err(&[("compression.type", "foo")]),
            "Invalid value foo for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert_eq!(
            topic_err(&[("message.timestamp.type", "foo")]),
            "Invalid value foo for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"
        );
        assert_eq!(
            topic_err(&[("retention.ms", "abc")]),
            "Invalid value abc for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            topic_err(&[("segment.bytes", "3000000000")]),
            "Invalid value 3000000000 for configuration segment.bytes: Not a number of type INT"
        );
        assert_eq!(
            topic_err(&[("segment.bytes", "13")]),
            "Invalid value 13 for configuration segment.bytes: Value must be at least 14"
        );
        assert_eq!(
            topic_err(&[("retention.ms", "-2")]),
            "Invalid value -2 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(
            topic_err(&[("min.insync.replicas", "0")]),
            "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"
        );
        assert!(topic_err(&[("min.cleanable.dirty.ratio", "1.5")]).contains("no more than 1"));
        assert!(topic_err(&[("preallocate", "yes")]).contains("either true or false"));
        assert!(topic_err(&[("message.timestamp.before.max.ms", "-1")]).contains("at least 0"));
        assert_eq!(
            topic_err(&[("no.such.key", "1")]),
            "Unknown topic config name: no.such.key"
        );
        assert!(topic_err(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5")
        ])
        .contains("conflict topic config setting"));
    }

    #[test]
    fn every_topic_default_is_valid() {
        for d in defs::TOPIC_CONFIGS {
            let default = d.default.or_else(|| {
                d.broker_synonym
                    .and_then(defs::broker_def)
                    .and_then(|b| b.default)
            });
            if let Some(v) = default {
                assert!(validate_topic_value(d, v).is_ok(), "{} = {v}", d.name);
            }
        }
    }

    #[test]
    fn broker_changes_must_be_dynamic_and_valid() {
        assert!(validate_broker_dynamic(&map(&[
            ("log.retention.ms", "-5"),
            ("message.max.bytes", "2000000"),
            ("log.cleanup.policy", "compact"),
            ("max.connections", "100"),
        ]))
        .is_ok());
        let err = validate_broker_dynamic(&map(&[("log.dirs", "/x"), ("node.id", "3")]))
            .expect_err("read-only");
        assert_eq!(
            err,
            ConfigRejected::InvalidRequest(
                "Cannot update these configs dynamically: Set(log.dirs, node.id)".into()
            )
        );
        assert!(matches!(
            validate_broker_dynamic(&map(&[("no.such.key", "1")])),
            Err(ConfigRejected::InvalidRequest(_))
        ));
        let err = validate_broker_dynamic(&map(&[("log.segment.bytes", "10")])).expect_err("range");
        assert_eq!(
            err,
            ConfigRejected::InvalidRequest(
                "Invalid value 10 for configuration log.segment.bytes: Value must be at least 14"
                    .into()
            )
        );
        assert!(matches!(
            validate_broker_dynamic(&map(&[("log.message.timestamp.type", "foo")])),
            Err(ConfigRejected::InvalidRequest(m)) if m.contains("CreateTime, LogAppendTime")
        ));
    }

    #[test]
    fn incremental_ops_follow_kafka() {
        let current = map(&[("retention.ms", "1000"), ("segment.bytes", "2048")]);
        let next = apply_incremental(
            ResourceKind::Topic,
            &current,
            &[
                op("retention.ms", OpType::Set, Some("5000")),
                op("segment.bytes", OpType::Delete, None),
                op("cleanup.policy", OpType::Append, Some("compact")),
            ],
        )
        .expect("valid");
        // APPEND starts from the default (delete) when there is no override.
        assert_eq!(
            next,
            map(&[
                ("retention.ms", "5000"),
                ("cleanup.policy", "delete,compact")
            ])
        );
        let next2 = apply_incremental(
            ResourceKind::Topic,
            &next,
            &[
                op("cleanup.policy", OpType::Subtract, Some("delete")),
                op("cleanup.policy", OpType::Append, Some("compact")),
            ],
        )
        .expect("valid");
        assert_eq!(
            next2.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        assert_eq!(
            changes(&current, &next),
            [
                (
                    "cleanup.policy".to_string(),
                    Some("delete,compact".to_string())
                ),
                ("retention.ms".to_string(), Some("5000".to_string())),
                ("segment.bytes".to_string(), None),
            ]
            .into_iter()
            .collect()
        );
        let err = apply_incremental(
            ResourceKind::Topic,
            &current,
            &[op("retention.ms", OpType::Append, Some("1"))],
        )
        .expect_err("not a list");
        assert_eq!(
            err,
            ConfigRejected::InvalidConfig(
                "Can't APPEND to key retention.ms because its type is not LIST.".into()
            )
        );
        let err = apply_incremental(
            ResourceKind::Broker,
            &BTreeMap::new(),
            &[op("message.max.bytes", OpType::Subtract, Some("1"))],
        )
        .expect_err("not a list");
        assert!(matches!(err, ConfigRejected::InvalidConfig(m) if m.contains("subtract")));
        // A broker APPEND starts from the broker default.
        let next = apply_incremental(
            ResourceKind::Broker,
            &BTreeMap::new(),
            &[op("log.cleanup.policy", OpType::Append, Some("compact"))],
        )
        .expect("list");
        assert_eq!(
            next.get("log.cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
    }

    #[test]
    fn duplicate_keys_and_nulls_are_invalid_requests() {
        assert_eq!(
            check_request_keys([("a", false, false), ("a", false, false)].into_iter()),
            Err(ConfigRejected::InvalidRequest(
                "Error due to duplicate config keys".into()
            ))
        );
        assert_eq!(
            check_request_keys([("a", true, false), ("b", true, true)].into_iter()),
            Err(ConfigRejected::InvalidRequest(
                "Null value not supported for : a".into()
            ))
        );
        assert!(check_request_keys([("a", true, true), ("b", false, false)].into_iter()).is_ok());
    }
}
