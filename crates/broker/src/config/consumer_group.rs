//! The broker settings of KIP-848 consumer groups (`group.consumer.*`,
//! `group.coordinator.rebalance.protocols`), parsed and checked as Kafka's
//! `GroupCoordinatorConfig` does at startup: each min/max pair ordered, each default within its
//! pair, the heartbeat interval below the session timeout, the assignors known. A broker with
//! an inconsistent set refuses to start, as Kafka's does, rather than fencing members later.

use rafka_group::assignor::Assignor;
use std::collections::BTreeMap;

use rafka_group::consumer_group::{
    ConsumerGroupConfig, GroupTimeouts, REGEX_REFRESH_MIN_INTERVAL_MS,
};

use super::ConfigError;

pub use rafka_group::consumer_group::MigrationPolicy;

/// Everything the consumer-group coordinator reads from the broker config.
#[derive(Debug, Clone)]
pub struct ConsumerGroupSettings {
    /// The defaults a group uses (session timeout, heartbeat interval, size, assignors, regex
    /// refresh).
    pub group: ConsumerGroupConfig,
    /// `group.consumer.min.session.timeout.ms` / `max`: the range a per-group
    /// `consumer.session.timeout.ms` must fall in.
    pub session_timeout_ms_range: (i32, i32),
    /// `group.consumer.min.heartbeat.interval.ms` / `max`.
    pub heartbeat_interval_ms_range: (i32, i32),
    /// Whether `consumer` is among `group.coordinator.rebalance.protocols`: without it
    /// ConsumerGroupHeartbeat is not served.
    pub consumer_protocol_enabled: bool,
}

/// The dynamic configs of a GROUP resource rafka knows (Kafka's `GroupConfig` without its
/// `share.*` keys: share groups are not offered), in the order DescribeConfigs lists them.
pub const GROUP_CONFIG_NAMES: [&str; 2] = [
    "consumer.heartbeat.interval.ms",
    "consumer.session.timeout.ms",
];
const GROUP_SESSION: &str = "consumer.session.timeout.ms";
const GROUP_HEARTBEAT: &str = "consumer.heartbeat.interval.ms";

impl ConsumerGroupSettings {
    /// Checks a group's complete overrides as Kafka's `GroupConfig.validate`: known names, each
    /// an INT of at least 1, within the broker's min/max, and the session above the heartbeat
    /// interval (each unset key at the broker's value). The message is Kafka's
    /// (INVALID_CONFIG).
    pub fn validate_group_configs(&self, configs: &BTreeMap<String, String>) -> Result<(), String> {
        for name in configs.keys() {
            if !GROUP_CONFIG_NAMES.contains(&name.as_str()) {
                return Err(format!("Unknown group config name: {name}"));
            }
        }
        let value = |key: &str, default: i32| -> Result<i32, String> {
            let Some(v) = configs.get(key) else {
                return Ok(default);
            };
            let n = v.trim().parse::<i32>().map_err(|_| {
                format!("Invalid value {v} for configuration {key}: Not a number of type INT")
            })?;
            if n < 1 {
                return Err(format!(
                    "Invalid value {v} for configuration {key}: Value must be at least 1"
                ));
            }
            Ok(n)
        };
        let heartbeat = value(GROUP_HEARTBEAT, self.group.heartbeat_interval_ms)?;
        let session = value(GROUP_SESSION, self.group.session_timeout_ms)?;
        let bounds = [
            (
                GROUP_HEARTBEAT,
                heartbeat,
                self.heartbeat_interval_ms_range,
                "heartbeat.interval.ms",
            ),
            (
                GROUP_SESSION,
                session,
                self.session_timeout_ms_range,
                "session.timeout.ms",
            ),
        ];
        for (key, v, (min, max), suffix) in bounds {
            if v < min {
                return Err(format!(
                    "{key} must be greater than or equal to group.consumer.min.{suffix}"
                ));
            }
            if v > max {
                return Err(format!(
                    "{key} must be less than or equal to group.consumer.max.{suffix}"
                ));
            }
        }
        if session <= heartbeat {
            return Err(format!(
                "{GROUP_SESSION} must be greater than {GROUP_HEARTBEAT}"
            ));
        }
        Ok(())
    }

    /// A group's own timeouts from its overrides (validated when they were written).
    pub fn group_timeouts(configs: &BTreeMap<String, String>) -> GroupTimeouts {
        let int = |key: &str| configs.get(key).and_then(|v| v.trim().parse::<i32>().ok());
        GroupTimeouts {
            session_timeout_ms: int(GROUP_SESSION),
            heartbeat_interval_ms: int(GROUP_HEARTBEAT),
        }
    }

    /// The value a group config has for a group without an override of it: the broker's.
    pub fn group_config_default(&self, name: &str) -> Option<i32> {
        match name {
            GROUP_SESSION => Some(self.group.session_timeout_ms),
            GROUP_HEARTBEAT => Some(self.group.heartbeat_interval_ms),
            _ => None,
        }
    }
}

/// Kafka's class names of its built-in assignors, which its configs may name instead of the
/// short names.
fn assignor(name: &str) -> Option<Assignor> {
    match name {
        "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => Some(Assignor::Uniform),
        "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => Some(Assignor::Range),
        short => Assignor::from_name(short),
    }
}

/// Parses the consumer-group settings; `get` returns a key's configured value or its default.
pub fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<ConsumerGroupSettings, ConfigError> {
    let int = |key: &str, min: i64| -> Result<i32, ConfigError> {
        let v = get(key).unwrap_or_default();
        v.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= min)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                ConfigError::invalid(key, &v, format!("must be between {min} and 2147483647"))
            })
    };
    // Kafka's order of checks and messages (GroupCoordinatorConfig's constructor).
    let pair = |name: &str| -> Result<(i32, i32, i32), ConfigError> {
        let value = int(&format!("group.consumer.{name}"), 1)?;
        let min_key = format!("group.consumer.min.{name}");
        let max_key = format!("group.consumer.max.{name}");
        let (min, max) = (int(&min_key, 1)?, int(&max_key, 1)?);
        if max < min {
            return Err(ConfigError::invalid(
                &max_key,
                &max.to_string(),
                format!("must be greater than or equal to {min_key}"),
            ));
        }
        if value < min || value > max {
            return Err(ConfigError::invalid(
                &format!("group.consumer.{name}"),
                &value.to_string(),
                format!("must be between {min_key} ({min}) and {max_key} ({max})"),
            ));
        }
        Ok((value, min, max))
    };
    let (session_timeout_ms, session_min, session_max) = pair("session.timeout.ms")?;
    let (heartbeat_interval_ms, heartbeat_min, heartbeat_max) = pair("heartbeat.interval.ms")?;
    if heartbeat_interval_ms >= session_timeout_ms {
        return Err(ConfigError::invalid(
            "group.consumer.heartbeat.interval.ms",
            &heartbeat_interval_ms.to_string(),
            "must be less than group.consumer.session.timeout.ms",
        ));
    }
    let max_size = int("group.consumer.max.size", 1)? as usize;
    let names = get("group.consumer.assignors").unwrap_or_default();
    let mut assignors = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let a = assignor(name).ok_or_else(|| {
            ConfigError::invalid(
                "group.consumer.assignors",
                &names,
                format!("unknown assignor {name}: rafka has uniform and range (custom assignor classes cannot be loaded)"),
            )
        })?;
        if !assignors.contains(&a) {
            assignors.push(a);
        }
    }
    if assignors.is_empty() {
        return Err(ConfigError::invalid(
            "group.consumer.assignors",
            &names,
            "at least one assignor is required",
        ));
    }
    let regex_refresh_interval_ms = i64::from(int(
        "group.consumer.regex.refresh.interval.ms",
        REGEX_REFRESH_MIN_INTERVAL_MS,
    )?);
    let policy = get("group.consumer.migration.policy").unwrap_or_default();
    let migration_policy = MigrationPolicy::parse(&policy).ok_or_else(|| {
        ConfigError::invalid(
            "group.consumer.migration.policy",
            &policy,
            "must be one of bidirectional, upgrade, downgrade, disabled",
        )
    })?;
    let protocols = get("group.coordinator.rebalance.protocols").unwrap_or_default();
    let mut consumer_protocol_enabled = false;
    let mut classic = false;
    for p in protocols.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        match p.as_str() {
            "classic" => classic = true,
            "consumer" => consumer_protocol_enabled = true,
            // Share groups (KIP-932) and streams groups (KIP-1071) are not served; naming
            // them is accepted as Kafka accepts them, and they stay unavailable.
            "share" | "streams" | "" => {}
            other => {
                return Err(ConfigError::invalid(
                    "group.coordinator.rebalance.protocols",
                    &protocols,
                    format!(
                        "unknown protocol {other}: must be among classic, consumer, share, streams"
                    ),
                ))
            }
        }
    }
    if !classic {
        return Err(ConfigError::invalid(
            "group.coordinator.rebalance.protocols",
            &protocols,
            "must contain classic",
        ));
    }
    Ok(ConsumerGroupSettings {
        group: ConsumerGroupConfig {
            session_timeout_ms,
            heartbeat_interval_ms,
            max_size,
            assignors,
            regex_refresh_interval_ms,
            migration_policy,
        },
        session_timeout_ms_range: (session_min, session_max),
        heartbeat_interval_ms_range: (heartbeat_min, heartbeat_max),
        consumer_protocol_enabled,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<ConsumerGroupSettings, ConfigError> {
        let props: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&|key: &str| {
            props.get(key).cloned().or_else(|| {
                super::super::defs::broker_def(key).and_then(|d| d.default.map(str::to_string))
            })
        })
    }

    fn reason(pairs: &[(&str, &str)]) -> String {
        match settings(pairs) {
            Err(ConfigError::Invalid { key, reason, .. }) => format!("{key}: {reason}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn kafka_defaults() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.group.session_timeout_ms, 45_000);
        assert_eq!(s.group.heartbeat_interval_ms, 5_000);
        assert_eq!(s.group.max_size, i32::MAX as usize);
        assert_eq!(s.group.assignors, vec![Assignor::Uniform, Assignor::Range]);
        assert_eq!(s.group.regex_refresh_interval_ms, 600_000);
        assert_eq!(s.session_timeout_ms_range, (45_000, 60_000));
        assert_eq!(s.heartbeat_interval_ms_range, (5_000, 15_000));
        assert_eq!(s.group.migration_policy, MigrationPolicy::Bidirectional);
        assert!(s.consumer_protocol_enabled);
    }

    /// Kafka's `GroupConfig.validate`, with its messages.
    #[test]
    fn group_configs_are_checked_against_the_broker_bounds() {
        let s = settings(&[]).expect("defaults are valid");
        let check = |pairs: &[(&str, &str)]| {
            let configs: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            s.validate_group_configs(&configs)
        };
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&[("consumer.session.timeout.ms", "50000")]), Ok(()));
        assert_eq!(
            check(&[("share.session.timeout.ms", "50000")]),
            Err("Unknown group config name: share.session.timeout.ms".into())
        );
        assert_eq!(
            check(&[("consumer.session.timeout.ms", "soon")]),
            Err("Invalid value soon for configuration consumer.session.timeout.ms: Not a number of type INT".into())
        );
        assert_eq!(
            check(&[("consumer.heartbeat.interval.ms", "0")]),
            Err("Invalid value 0 for configuration consumer.heartbeat.interval.ms: Value must be at least 1".into())
        );
        assert_eq!(
            check(&[("consumer.session.timeout.ms", "30000")]),
            Err("consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms".into())
        );
        assert_eq!(
            check(&[("consumer.heartbeat.interval.ms", "20000")]),
            Err("consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms".into())
        );
        let loose = settings(&[
            ("group.consumer.min.session.timeout.ms", "1000"),
            ("group.consumer.max.heartbeat.interval.ms", "50000"),
        ])
        .expect("valid");
        let configs = BTreeMap::from([
            (
                "consumer.session.timeout.ms".to_string(),
                "8000".to_string(),
            ),
            (
                "consumer.heartbeat.interval.ms".to_string(),
                "8000".to_string(),
            ),
        ]);
        assert_eq!(
            loose.validate_group_configs(&configs),
            Err(
                "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
                    .into()
            )
        );
        assert_eq!(
            ConsumerGroupSettings::group_timeouts(&configs),
            GroupTimeouts {
                session_timeout_ms: Some(8000),
                heartbeat_interval_ms: Some(8000)
            }
        );
    }

    #[test]
    fn each_value_within_its_pair_and_the_interval_below_the_session() {
        assert!(reason(&[("group.consumer.session.timeout.ms", "30000")])
            .starts_with("group.consumer.session.timeout.ms: must be between"));
        assert!(
            reason(&[("group.consumer.max.heartbeat.interval.ms", "4000")])
                .starts_with("group.consumer.max.heartbeat.interval.ms: must be greater")
        );
        assert!(reason(&[
            ("group.consumer.session.timeout.ms", "6000"),
            ("group.consumer.min.session.timeout.ms", "1000"),
            ("group.consumer.heartbeat.interval.ms", "6000"),
            ("group.consumer.max.heartbeat.interval.ms", "6000"),
        ])
        .contains("must be less than group.consumer.session.timeout.ms"));
        // The short settings the fault suite and tests use are accepted.
        let s = settings(&[
            ("group.consumer.session.timeout.ms", "6000"),
            ("group.consumer.min.session.timeout.ms", "1000"),
            ("group.consumer.heartbeat.interval.ms", "500"),
            ("group.consumer.min.heartbeat.interval.ms", "100"),
        ])
        .expect("valid");
        assert_eq!(
            (s.group.session_timeout_ms, s.group.heartbeat_interval_ms),
            (6000, 500)
        );
        assert!(reason(&[("group.consumer.max.size", "0")]).starts_with("group.consumer.max.size"));
        assert!(
            reason(&[("group.consumer.regex.refresh.interval.ms", "5000")])
                .starts_with("group.consumer.regex.refresh.interval.ms")
        );
    }

    #[test]
    fn assignors_by_name_or_kafka_class_and_unknown_ones_refused() {
        let s = settings(&[(
            "group.consumer.assignors",
            "range, org.apache.kafka.coordinator.group.assignor.UniformAssignor",
        )])
        .expect("valid");
        assert_eq!(s.group.assignors, vec![Assignor::Range, Assignor::Uniform]);
        assert!(reason(&[("group.consumer.assignors", "uniform,sticky")])
            .contains("unknown assignor sticky"));
        assert!(reason(&[("group.consumer.assignors", " ")]).contains("at least one"));
    }

    #[test]
    fn migration_policy_and_protocols() {
        let s = settings(&[
            ("group.consumer.migration.policy", "UPGRADE"),
            ("group.coordinator.rebalance.protocols", "classic"),
        ])
        .expect("valid");
        assert_eq!(s.group.migration_policy, MigrationPolicy::Upgrade);
        assert!(!s.consumer_protocol_enabled);
        assert!(reason(&[("group.consumer.migration.policy", "sideways")])
            .starts_with("group.consumer.migration.policy"));
        assert!(
            reason(&[("group.coordinator.rebalance.protocols", "consumer")])
                .contains("must contain classic")
        );
        assert!(
            reason(&[("group.coordinator.rebalance.protocols", "classic,gossip")])
                .contains("unknown protocol gossip")
        );
    }
}
