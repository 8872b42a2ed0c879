//! Broker configuration: the key table ([`defs`]), the sources it is read from (Java properties
//! files, environment variables, `--override`), and the typed [`BrokerConfig`] the broker runs on.
//!
//! Precedence, later wins: built-in defaults < properties file < environment < overrides.
//! Keys we implement are validated strictly; valid Kafka keys we do not implement yet are accepted
//! with one warning each; unknown keys are accepted quietly, as Kafka does.

pub mod consumer_group;
pub mod defs;
pub mod kraft;
pub mod listeners;
pub mod sources;
pub mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use defs::{ConfigDef, ConfigType, Support, BROKER_CONFIGS, TOPIC_CONFIGS};
pub use kraft::{HostPort, ProcessRoles, QuorumMode, QuorumVoter};
pub use listeners::{Listener, SecurityProtocol};

/// A config that could not be accepted; the message names the key (or the keys of a rule).
/// Every message is one line: it is what `rafka` prints before it exits.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for configuration {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A rule across keys, or one Kafka words itself (KRaft start-up rules, list parse errors):
    /// the message is Kafka's, verbatim, without Scala's "requirement failed: " prefix.
    #[error("{0}")]
    Rule(String),
}

impl ConfigError {
    fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// How followers fetch from leaders and when a leader drops one from the ISR (`replica.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// `replica.lag.time.max.ms`.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`.
    pub fetch_wait_max_ms: u64,
    /// `replica.fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes` (per partition).
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`.
    pub fetch_backoff_ms: u64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub high_watermark_checkpoint_interval_ms: u64,
    /// `num.replica.fetchers`: fetchers per source broker.
    pub num_fetchers: usize,
}

/// The typed configuration of one node.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// `process.roles`; unset means broker and controller (rafka's zero-config).
    pub process_roles: ProcessRoles,
    /// `controller.quorum.voters`, in config order; empty unless static voters are configured.
    pub quorum_voters: Vec<QuorumVoter>,
    /// `controller.quorum.bootstrap.servers`, in config order.
    pub quorum_bootstrap_servers: Vec<HostPort>,
    /// The broker (client-facing) listeners: the entries of `listeners` not named in
    /// `controller.listener.names`. Empty on a controller-only node.
    pub listeners: Vec<Listener>,
    /// What Metadata hands to clients for each of `listeners`. Empty on a controller-only node.
    pub advertised_listeners: Vec<Listener>,
    /// `inter.broker.listener.name` as set (None when unset); see `inter_broker_listener`.
    pub inter_broker_listener_name: Option<String>,
    /// The inter-broker listener name in effect: `inter.broker.listener.name`, else
    /// `security.inter.broker.protocol`, else `PLAINTEXT`; on a standalone node that names none
    /// and has no listener of that name, its first broker listener.
    pub inter_broker_listener: String,
    pub controller_listener_names: Vec<String>,
    /// The entries of `listeners` named in `controller.listener.names`, in the order of
    /// `controller.listener.names` (the first is the one Kafka uses to reach a controller).
    pub controller_listeners: Vec<Listener>,
    pub controller_quorum_election_timeout_ms: u64,
    pub controller_quorum_fetch_timeout_ms: u64,
    pub controller_quorum_request_timeout_ms: u64,
    /// `request.timeout.ms`: requests to other brokers.
    pub request_timeout_ms: u64,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions (KIP-227) kept at once.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// `leader.imbalance.check.interval.seconds` in ms when `auto.leader.rebalance.enable`.
    pub leader_imbalance_check_interval_ms: Option<u64>,
    pub controller_quorum_retry_backoff_ms: u64,
    /// The follower-side and ISR settings (`replica.*`).
    pub replica: ReplicaConfig,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    pub initial_broker_registration_timeout_ms: u64,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_log_dir: PathBuf,
    pub rack: Option<String>,
    /// `http.listener`: (host, port) of the metrics, health and status listener, if on.
    pub http_listener: Option<(String, u16)>,
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub queued_max_requests: usize,
    pub connections_max_idle_ms: u64,
    pub log_segment_bytes: u64,
    pub log_roll_ms: i64,
    pub log_index_interval_bytes: u32,
    pub log_index_size_max_bytes: u32,
    pub log_flush_interval_messages: u64,
    pub log_flush_interval_ms: u64,
    pub log_message_timestamp_type_append_time: bool,
    /// Effective `log.retention.ms` (from ms, else minutes, else hours); -1 = forever.
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: u64,
    pub log_segment_delete_delay_ms: u64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_threads: usize,
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_dedupe_buffer_size: u64,
    /// `log.cleaner.io.max.bytes.per.second`; `f64::MAX` (Kafka's default): unthrottled.
    pub log_cleaner_io_max_bytes_per_second: f64,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: i32,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_max_size: usize,
    /// The KIP-848 consumer-group settings (`group.consumer.*`).
    pub consumer_group: consumer_group::ConsumerGroupSettings,
    pub producer_id_expiration_ms: i64,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_min_isr: i32,
    pub transaction_state_log_num_partitions: i32,
    pub transaction_state_log_segment_bytes: i32,
    pub transaction_max_timeout_ms: i32,
    pub transactional_id_expiration_ms: i64,
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i64,
    pub transaction_remove_expired_transaction_cleanup_interval_ms: i64,
    pub producer_id_expiration_check_interval_ms: u64,
    /// Every key that was set (after precedence, dynamic layers included): the value a key has
    /// unless it is at its default.
    pub explicit: BTreeMap<String, String>,
    /// Where each explicit value comes from, for DescribeConfigs sources and synonyms.
    pub layers: ConfigLayers,
    /// Cluster id from the environment (`CLUSTER_ID`), if any; otherwise meta.properties or a new one.
    pub cluster_id: Option<String>,
}

/// The layers a broker config value can come from, highest precedence first when read:
/// dynamic per-broker, dynamic cluster default (both from the metadata log), static.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigLayers {
    /// `server.properties`, environment and `--override`, merged (Kafka's STATIC_BROKER_CONFIG).
    pub static_props: BTreeMap<String, String>,
    /// AlterConfigs on resource BROKER `""` (DYNAMIC_DEFAULT_BROKER_CONFIG).
    pub cluster_default: BTreeMap<String, String>,
    /// AlterConfigs on resource BROKER `"<node.id>"` (DYNAMIC_BROKER_CONFIG).
    pub node: BTreeMap<String, String>,
}

/// Non-fatal findings while building a config (Kafka keys we accept but do not act on yet).
#[derive(Debug, Default)]
pub struct ConfigWarnings(pub Vec<String>);

impl BrokerConfig {
    /// Fills in advertised listeners written with an empty host (`PLAINTEXT://:9092`, as
    /// bitnami's compose files do). Kafka advertises the machine's canonical host name there;
    /// rafka advertises the address `local_address` gives (the I/O is the caller's), because in a
    /// container the host name is a random id that only the container itself resolves, while its
    /// address is reachable from the compose network and, on Linux, from the host. Returns the
    /// names of the listeners it changed and the address used.
    pub fn resolve_empty_advertised_hosts(
        &mut self,
        local_address: impl FnOnce() -> Option<String>,
    ) -> Option<(Vec<String>, String)> {
        if !self.advertised_listeners.iter().any(|l| l.host.is_empty()) {
            return None;
        }
        let address = local_address().unwrap_or_else(|| "localhost".to_string());
        let mut changed = Vec::new();
        for l in &mut self.advertised_listeners {
            if l.host.is_empty() {
                l.host = address.clone();
                changed.push(l.name.clone());
            }
        }
        Some((changed, address))
    }

    /// How this node finds its controller quorum: standalone (neither voters nor bootstrap
    /// servers), static voters, or bootstrap servers.
    pub fn quorum_mode(&self) -> QuorumMode {
        QuorumMode::of(&self.quorum_voters, &self.quorum_bootstrap_servers)
    }

    /// The zero-configuration node: everything at its default.
    pub fn single_node_defaults() -> Result<Self, ConfigError> {
        Self::from_props(&BTreeMap::new()).map(|(c, _)| c)
    }

    /// Builds the typed config from merged properties.
    pub fn from_props(
        props: &BTreeMap<String, String>,
    ) -> Result<(Self, ConfigWarnings), ConfigError> {
        let mut warnings = ConfigWarnings::default();
        for (k, v) in props {
            if let Some(d) = defs::broker_def(k) {
                defs::validate_value(d.ty, v).map_err(|r| ConfigError::invalid(k, v, r))?;
                // The broker's compression keys are the topic keys' same-name synonyms and
                // follow their rules (codec names, KIP-390 level ranges).
                if k.starts_with("compression.") {
                    if let Some(td) = defs::topic_def(k) {
                        defs::validate_topic_value(td, v)
                            .map_err(|r| ConfigError::invalid(k, v, r))?;
                    }
                }
                if d.support == Support::NotYet {
                    warnings.0.push(format!(
                        "config {k}={v} is a Kafka setting rafka does not act on yet; accepted and ignored"
                    ));
                }
            }
        }
        let get = |key: &str| -> Option<String> {
            props
                .get(key)
                .cloned()
                .or_else(|| defs::broker_def(key).and_then(|d| d.default.map(str::to_string)))
        };
        let int = |key: &str| -> Result<i64, ConfigError> {
            let v = get(key).unwrap_or_default();
            v.trim()
                .parse::<i64>()
                .map_err(|_| ConfigError::invalid(key, &v, "expected a number"))
        };
        let positive = |key: &str| -> Result<i64, ConfigError> {
            let n = int(key)?;
            if n <= 0 {
                return Err(ConfigError::invalid(
                    key,
                    &n.to_string(),
                    "must be positive",
                ));
            }
            Ok(n)
        };
        let boolean =
            |key: &str| -> bool { get(key).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) };

        let process_roles = ProcessRoles::parse(&get("process.roles").unwrap_or_default())?;
        // ZooKeeper-era files (Kafka 3.x images with `KAFKA_ZOOKEEPER_CONNECT`) name no roles:
        // there is no ZooKeeper here, so they run as the single combined KRaft-style node.
        if props.contains_key("zookeeper.connect") && !props.contains_key("process.roles") {
            warnings.0.push(
                "zookeeper.connect is set but ZooKeeper mode does not exist in rafka (nor in \
                 Kafka 4); ignoring it and running as a single combined node \
                 (process.roles=broker,controller, node.id from broker.id)"
                    .to_string(),
            );
        }
        let node_id = match (props.get("node.id"), props.get("broker.id")) {
            // `broker.id` is the ZooKeeper-era name of the same setting.
            (None, Some(b)) => b
                .trim()
                .parse::<i64>()
                .map_err(|_| ConfigError::invalid("broker.id", b, "expected a number"))?,
            (Some(_), Some(b)) => {
                let n = int("node.id")?;
                if b.trim().parse::<i64>().ok() != Some(n) {
                    return Err(ConfigError::invalid(
                        "broker.id",
                        b,
                        format!("must be equal to node.id ({n}) when both are set"),
                    ));
                }
                n
            }
            _ => int("node.id")?,
        };
        let node_id = i32::try_from(node_id)
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ConfigError::invalid("node.id", &node_id.to_string(), "must be >= 0"))?;

        let mut protocol_map = listeners::parse_protocol_map(
            &get("listener.security.protocol.map").unwrap_or_default(),
        )
        .map_err(|r| {
            ConfigError::invalid(
                "listener.security.protocol.map",
                &get("listener.security.protocol.map").unwrap_or_default(),
                r,
            )
        })?;
        let controller_listener_names: Vec<String> = get("controller.listener.names")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        // Kafka's effectiveListenerSecurityProtocolMap: when the map is not set, controller
        // listeners are PLAINTEXT implicitly (apache/kafka's isolated-controller compose relies on
        // it: `CONTROLLER://:9093` with no map).
        if !props.contains_key("listener.security.protocol.map") {
            for name in &controller_listener_names {
                protocol_map
                    .entry(name.clone())
                    .or_insert(SecurityProtocol::Plaintext);
            }
        }
        let quorum_voters =
            kraft::parse_quorum_voters(&get("controller.quorum.voters").unwrap_or_default())?;
        let quorum_bootstrap_servers = kraft::parse_bootstrap_servers(
            &get("controller.quorum.bootstrap.servers").unwrap_or_default(),
        )?;
        let quorum_mode = QuorumMode::of(&quorum_voters, &quorum_bootstrap_servers);
        let explicit_inter_broker_protocol = props.get("security.inter.broker.protocol");
        if let Some(p) = explicit_inter_broker_protocol {
            const PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
            if !PROTOCOLS.contains(&p.trim()) {
                return Err(ConfigError::Rule(format!(
                    "Invalid value {p} for configuration security.inter.broker.protocol: String \
                     must be one of: {}",
                    PROTOCOLS.join(", ")
                )));
            }
        }
        let inter_broker_listener_name = get("inter.broker.listener.name");

        let listeners_text = get("listeners").unwrap_or_default();
        let all_listeners = listeners::parse_listeners(&listeners_text, &protocol_map)
            .map_err(|r| ConfigError::invalid("listeners", &listeners_text, r))?;
        let advertised_text = props
            .get("advertised.listeners")
            .filter(|t| !t.trim().is_empty());
        // Every advertised entry, controller listeners included (KIP-853 lets a controller
        // advertise its listener).
        let advertised_all = match advertised_text {
            Some(text) => listeners::parse_listeners(text, &protocol_map)
                .map_err(|r| ConfigError::invalid("advertised.listeners", text, r))?,
            None => Vec::new(),
        };
        let topology = kraft::Topology {
            roles: process_roles,
            node_id,
            voters: &quorum_voters,
            bootstrap_servers: &quorum_bootstrap_servers,
            controller_listener_names: &controller_listener_names,
            listeners: &all_listeners,
            protocol_map: &protocol_map,
            explicit_inter_broker_listener: inter_broker_listener_name.as_deref(),
            explicit_inter_broker_protocol: explicit_inter_broker_protocol.map(|p| p.trim()),
        };
        kraft::check_roles(&topology)?;
        if process_roles.is_broker_only() && controller_listener_names.len() > 1 {
            // Kafka's warning: a broker reaches the controllers on one listener only.
            warnings.0.push(format!(
                "controller.listener.names has multiple entries; only the first will be used \
                 since process.roles=broker: [{}]",
                controller_listener_names.join(", ")
            ));
        }

        let controller_listeners: Vec<Listener> = controller_listener_names
            .iter()
            .filter_map(|n| all_listeners.iter().find(|l| &l.name == n).cloned())
            .collect();
        // Controller listeners are not client-facing: on a standalone node the controller runs
        // in-process and they are not opened; otherwise the node opens them for the quorum.
        let listeners: Vec<Listener> = all_listeners
            .iter()
            .filter(|l| !controller_listener_names.contains(&l.name))
            .cloned()
            .collect();
        let served = listeners.iter().chain(
            controller_listeners
                .iter()
                .filter(|_| process_roles.controller && quorum_mode != QuorumMode::Standalone),
        );
        for l in served {
            if l.protocol != SecurityProtocol::Plaintext {
                return Err(ConfigError::invalid(
                    "listeners",
                    &listeners_text,
                    format!(
                        "listener {} uses {:?}; only PLAINTEXT is supported so far",
                        l.name, l.protocol
                    ),
                ));
            }
        }
        let advertised_brokers: Vec<&Listener> = advertised_all
            .iter()
            .filter(|l| !controller_listener_names.contains(&l.name))
            .collect();
        // Kafka's effective advertised broker listeners: rafka also advertises, as bound, the
        // broker listeners that `advertised.listeners` leaves out.
        let mut advertised_broker_names: Vec<String> =
            advertised_brokers.iter().map(|l| l.name.clone()).collect();
        for l in &listeners {
            if !advertised_broker_names.contains(&l.name) {
                advertised_broker_names.push(l.name.clone());
            }
        }
        let inter_broker_listener =
            kraft::resolve_inter_broker_listener(&topology, &advertised_broker_names)?;
        // V15 (a broker-role rule: a controller-only node advertises no broker listener).
        if process_roles.broker
            && advertised_brokers
                .iter()
                .any(|a| !all_listeners.iter().any(|l| l.name == a.name))
        {
            let names = |ls: &[&Listener]| {
                ls.iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(ConfigError::Rule(format!(
                "advertised.listeners listener names must be equal to or a subset of the ones \
                 defined in listeners. Found {}. The valid options based on the current \
                 configuration are {}",
                names(&advertised_brokers),
                names(&all_listeners.iter().collect::<Vec<_>>())
            )));
        }
        // V16: a client cannot connect to the meta-address. (An empty host is allowed and means
        // this machine's address, see `resolve_empty_advertised_hosts`.)
        if advertised_all
            .iter()
            .any(|a| a.host == "0.0.0.0" || a.host == "::")
        {
            return Err(ConfigError::Rule(
                "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a \
                 routable IP address."
                    .to_string(),
            ));
        }
        // Listeners that are not advertised explicitly are advertised as they are bound.
        let advertised_listeners: Vec<Listener> = if process_roles.broker {
            listeners
                .iter()
                .map(
                    |l| match advertised_brokers.iter().find(|a| a.name == l.name) {
                        Some(a) => (*a).clone(),
                        None => l.advertised_default(),
                    },
                )
                .collect()
        } else {
            Vec::new()
        };
        // A controller-only node serves no clients (V8 leaves it no broker listener anyway).
        let listeners = if process_roles.broker {
            listeners
        } else {
            Vec::new()
        };

        let timeout_ms = |key: &str| -> Result<u64, ConfigError> { Ok(positive(key)? as u64) };
        let controller_quorum_election_timeout_ms =
            timeout_ms("controller.quorum.election.timeout.ms")?;
        let controller_quorum_fetch_timeout_ms = timeout_ms("controller.quorum.fetch.timeout.ms")?;
        let controller_quorum_request_timeout_ms =
            timeout_ms("controller.quorum.request.timeout.ms")?;
        let request_timeout_ms = timeout_ms("request.timeout.ms")?;
        let leader_imbalance_check_interval_ms = {
            let secs = positive("leader.imbalance.check.interval.seconds")? as u64;
            boolean("auto.leader.rebalance.enable").then_some(secs.saturating_mul(1000))
        };
        let max_incremental_fetch_session_cache_slots = {
            let key = "max.incremental.fetch.session.cache.slots";
            let n = int(key)?;
            usize::try_from(n)
                .map_err(|_| ConfigError::invalid(key, &n.to_string(), "must be at least 0"))?
        };
        let controller_quorum_retry_backoff_ms = timeout_ms("controller.quorum.retry.backoff.ms")?;
        let replica = ReplicaConfig {
            lag_time_max_ms: positive("replica.lag.time.max.ms")?,
            fetch_wait_max_ms: timeout_ms("replica.fetch.wait.max.ms")?,
            fetch_min_bytes: positive("replica.fetch.min.bytes")? as i32,
            fetch_max_bytes: positive("replica.fetch.max.bytes")? as i32,
            fetch_response_max_bytes: positive("replica.fetch.response.max.bytes")? as i32,
            fetch_backoff_ms: timeout_ms("replica.fetch.backoff.ms")?,
            high_watermark_checkpoint_interval_ms: timeout_ms(
                "replica.high.watermark.checkpoint.interval.ms",
            )?,
            num_fetchers: usize::try_from(positive("num.replica.fetchers")?).unwrap_or(1),
        };
        let broker_heartbeat_interval_ms = timeout_ms("broker.heartbeat.interval.ms")?;
        let broker_session_timeout_ms = timeout_ms("broker.session.timeout.ms")?;
        let initial_broker_registration_timeout_ms =
            timeout_ms("initial.broker.registration.timeout.ms")?;
        // Not a Kafka check: with a session no longer than the heartbeat interval, a healthy
        // broker would be fenced between two heartbeats.
        if broker_session_timeout_ms <= broker_heartbeat_interval_ms {
            return Err(ConfigError::Rule(format!(
                "broker.session.timeout.ms ({broker_session_timeout_ms}) must be greater than \
                 broker.heartbeat.interval.ms ({broker_heartbeat_interval_ms}): a broker is fenced \
                 when no heartbeat arrives within its session timeout"
            )));
        }

        let log_dirs: Vec<PathBuf> = match props.get("log.dirs") {
            Some(v) if !v.trim().is_empty() => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            _ => vec![PathBuf::from(get("log.dir").unwrap_or_default())],
        };
        let metadata_log_dir = get("metadata.log.dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| log_dirs[0].clone());

        let default_replication_factor = int("default.replication.factor")?;
        let default_replication_factor = i16::try_from(default_replication_factor)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "default.replication.factor",
                    &default_replication_factor.to_string(),
                    "must be between 1 and 32767",
                )
            })?;
        let log_roll_ms = match get("log.roll.ms") {
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map_err(|_| ConfigError::invalid("log.roll.ms", &v, "expected a number"))?,
            None => positive("log.roll.hours")? * 3_600_000,
        };
        let ts_type = get("log.message.timestamp.type").unwrap_or_default();
        let log_message_timestamp_type_append_time = match ts_type.trim() {
            "CreateTime" => false,
            "LogAppendTime" => true,
            _ => {
                return Err(ConfigError::invalid(
                    "log.message.timestamp.type",
                    &ts_type,
                    "must be CreateTime or LogAppendTime",
                ))
            }
        };
        let flush_ms = match get("log.flush.interval.ms") {
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                ConfigError::invalid("log.flush.interval.ms", &v, "expected a number")
            })?,
            None => u64::MAX,
        };
        let segment_bytes = positive("log.segment.bytes")?;
        if segment_bytes < 14 {
            return Err(ConfigError::invalid(
                "log.segment.bytes",
                &segment_bytes.to_string(),
                "must be at least 14",
            ));
        }
        let int32 = |key: &str, min: i64| -> Result<i32, ConfigError> {
            let n = int(key)?;
            i32::try_from(n)
                .ok()
                .filter(|v| i64::from(*v) >= min)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        key,
                        &n.to_string(),
                        format!("must be between {min} and 2147483647"),
                    )
                })
        };
        // Kafka's defaults for the coordinators' topics (three replicas, two in sync for
        // transactions) apply once a controller quorum is configured; the zero-config single node
        // keeps one, as Kafka's own single-node server.properties does.
        let clustered = quorum_mode != QuorumMode::Standalone;
        let internal = |key: &str, clustered_default: i32| -> Result<i32, ConfigError> {
            match props.get(key) {
                None if clustered => Ok(clustered_default),
                _ => int32(key, 1),
            }
        };
        let offsets_topic_replication_factor =
            i16::try_from(internal("offsets.topic.replication.factor", 3)?).map_err(|_| {
                ConfigError::invalid(
                    "offsets.topic.replication.factor",
                    &get("offsets.topic.replication.factor").unwrap_or_default(),
                    "must be between 1 and 32767",
                )
            })?;
        let group_min_session_timeout_ms = int32("group.min.session.timeout.ms", 0)?;
        let group_max_session_timeout_ms = int32("group.max.session.timeout.ms", 0)?;
        if group_max_session_timeout_ms < group_min_session_timeout_ms {
            return Err(ConfigError::invalid(
                "group.max.session.timeout.ms",
                &group_max_session_timeout_ms.to_string(),
                "must not be below group.min.session.timeout.ms",
            ));
        }
        // Kafka's precedence: log.retention.ms, then .minutes, then .hours; negative = forever.
        let opt_int = |key: &str| -> Result<Option<i64>, ConfigError> {
            props
                .get(key)
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| ConfigError::invalid(key, v, "expected a number"))
                })
                .transpose()
        };
        let log_retention_ms = match (
            opt_int("log.retention.ms")?,
            opt_int("log.retention.minutes")?,
        ) {
            (Some(ms), _) => ms,
            (None, Some(min)) => min.saturating_mul(60_000),
            (None, None) => int("log.retention.hours")?.saturating_mul(3_600_000),
        };
        let log_retention_ms = if log_retention_ms < 0 {
            -1
        } else {
            log_retention_ms
        };
        let log_cleaner_threads = int32("log.cleaner.threads", 1)? as usize;
        let log_cleaner_dedupe_buffer_size = int("log.cleaner.dedupe.buffer.size")?;
        // Kafka's check: each cleaner thread needs at least 1 MiB of offset map.
        if log_cleaner_dedupe_buffer_size / (log_cleaner_threads as i64) < 1 << 20 {
            return Err(ConfigError::invalid(
                "log.cleaner.dedupe.buffer.size",
                &log_cleaner_dedupe_buffer_size.to_string(),
                "must be at least 1 MiB per cleaner thread",
            ));
        }
        let io_max = get("log.cleaner.io.max.bytes.per.second").unwrap_or_default();
        let log_cleaner_io_max_bytes_per_second = io_max
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "log.cleaner.io.max.bytes.per.second",
                    &io_max,
                    "expected a positive number",
                )
            })?;
        let config = BrokerConfig {
            log_cleaner_enable: boolean("log.cleaner.enable"),
            log_cleaner_threads,
            log_cleaner_backoff_ms: positive("log.cleaner.backoff.ms")? as u64,
            log_cleaner_dedupe_buffer_size: log_cleaner_dedupe_buffer_size as u64,
            log_cleaner_io_max_bytes_per_second,
            log_retention_ms,
            log_retention_bytes: int("log.retention.bytes")?.max(-1),
            log_retention_check_interval_ms: positive("log.retention.check.interval.ms")? as u64,
            log_segment_delete_delay_ms: int("log.segment.delete.delay.ms")?.max(0) as u64,
            offsets_topic_replication_factor,
            offsets_topic_num_partitions: int32("offsets.topic.num.partitions", 1)?,
            offsets_topic_segment_bytes: int32("offsets.topic.segment.bytes", 14)?,
            offsets_retention_ms: i64::from(int32("offsets.retention.minutes", 1)?) * 60_000,
            offsets_retention_check_interval_ms: positive("offsets.retention.check.interval.ms")?,
            offset_metadata_max_bytes: int32("offset.metadata.max.bytes", 0)? as usize,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_initial_rebalance_delay_ms: int32("group.initial.rebalance.delay.ms", 0)?,
            group_max_size: int32("group.max.size", 1)? as usize,
            consumer_group: consumer_group::parse(&get)?,
            producer_id_expiration_ms: i64::from(int32("producer.id.expiration.ms", 1)?),
            transaction_state_log_replication_factor: i16::try_from(internal(
                "transaction.state.log.replication.factor",
                3,
            )?)
            .unwrap_or(i16::MAX),
            transaction_state_log_min_isr: internal("transaction.state.log.min.isr", 2)?,
            transaction_state_log_num_partitions: int32("transaction.state.log.num.partitions", 1)?,
            transaction_state_log_segment_bytes: int32("transaction.state.log.segment.bytes", 14)?,
            transaction_max_timeout_ms: int32("transaction.max.timeout.ms", 1)?,
            transactional_id_expiration_ms: i64::from(int32("transactional.id.expiration.ms", 1)?),
            transaction_abort_timed_out_transaction_cleanup_interval_ms: i64::from(int32(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                1,
            )?),
            transaction_remove_expired_transaction_cleanup_interval_ms: i64::from(int32(
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                1,
            )?),
            producer_id_expiration_check_interval_ms: int32(
                "producer.id.expiration.check.interval.ms",
                1,
            )? as u64,
            node_id,
            process_roles,
            quorum_voters,
            quorum_bootstrap_servers,
            listeners,
            advertised_listeners,
            inter_broker_listener_name,
            inter_broker_listener,
            controller_listener_names,
            controller_listeners,
            controller_quorum_election_timeout_ms,
            controller_quorum_fetch_timeout_ms,
            controller_quorum_request_timeout_ms,
            request_timeout_ms,
            max_incremental_fetch_session_cache_slots,
            leader_imbalance_check_interval_ms,
            controller_quorum_retry_backoff_ms,
            replica,
            broker_heartbeat_interval_ms,
            broker_session_timeout_ms,
            initial_broker_registration_timeout_ms,
            metadata_log_dir,
            log_dirs,
            rack: get("broker.rack").filter(|r| !r.is_empty()),
            http_listener: match get("http.listener").map(|v| v.trim().to_string()) {
                Some(v) if !v.is_empty() => Some(
                    parse_host_port(&v)
                        .ok_or_else(|| ConfigError::invalid("http.listener", &v, "expected host:port (an empty host binds every interface; IPv6 hosts in brackets)"))?,
                ),
                _ => None,
            },
            auto_create_topics_enable: boolean("auto.create.topics.enable"),
            num_partitions: i32::try_from(positive("num.partitions")?).unwrap_or(i32::MAX),
            default_replication_factor,
            message_max_bytes: i32::try_from(positive("message.max.bytes")?).unwrap_or(i32::MAX),
            socket_request_max_bytes: positive("socket.request.max.bytes")? as usize,
            max_connections: positive("max.connections")? as usize,
            max_connections_per_ip: positive("max.connections.per.ip")? as usize,
            queued_max_requests: positive("queued.max.requests")? as usize,
            connections_max_idle_ms: positive("connections.max.idle.ms")? as u64,
            log_segment_bytes: segment_bytes as u64,
            log_roll_ms,
            log_index_interval_bytes: positive("log.index.interval.bytes")? as u32,
            log_index_size_max_bytes: positive("log.index.size.max.bytes")? as u32,
            log_flush_interval_messages: positive("log.flush.interval.messages")? as u64,
            log_flush_interval_ms: flush_ms,
            log_message_timestamp_type_append_time,
            explicit: props.clone(),
            layers: ConfigLayers {
                static_props: props.clone(),
                ..ConfigLayers::default()
            },
            cluster_id: None,
        };
        Ok((config, warnings))
    }

    /// This (static) config with dynamic broker configs layered over it: the typed values are
    /// rebuilt from the merged properties, so derived values (`log.retention.ms` from minutes or
    /// hours, ...) follow Kafka's precedence across layers too.
    pub fn with_dynamic(
        &self,
        cluster_default: &BTreeMap<String, String>,
        node: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut merged = self.layers.static_props.clone();
        merged.extend(cluster_default.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged.extend(node.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (mut config, _) = BrokerConfig::from_props(&merged)?;
        config.cluster_id = self.cluster_id.clone();
        config.layers = ConfigLayers {
            static_props: self.layers.static_props.clone(),
            cluster_default: cluster_default.clone(),
            node: node.clone(),
        };
        Ok(config)
    }

    /// The value a broker key has in this config (explicit or default), as DescribeConfigs shows it.
    pub fn value_of(&self, key: &str) -> Option<String> {
        match key {
            // Keys whose effective value is derived rather than stored verbatim.
            "advertised.listeners" => Some(
                self.advertised_listeners
                    .iter()
                    .map(Listener::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            "log.dirs" => Some(
                self.log_dirs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            "log.roll.ms" => Some(self.log_roll_ms.to_string()),
            // One setting under two names, as Kafka reports both.
            "node.id" | "broker.id" => Some(self.node_id.to_string()),
            _ => self
                .explicit
                .get(key)
                .cloned()
                .or_else(|| defs::broker_def(key).and_then(|d| d.default.map(str::to_string))),
        }
    }

    /// The group coordinator's settings; `num_partitions` is the partition count of an existing
    /// `__consumer_offsets` (which wins over `offsets.topic.num.partitions`).
    pub fn group_config(&self, num_partitions: i32) -> rafka_group::GroupConfig {
        rafka_group::GroupConfig {
            min_session_timeout_ms: self.group_min_session_timeout_ms,
            max_session_timeout_ms: self.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            max_size: self.group_max_size,
            offsets_retention_ms: self.offsets_retention_ms,
            offsets_retention_check_interval_ms: self.offsets_retention_check_interval_ms,
            offset_metadata_max_bytes: self.offset_metadata_max_bytes,
            num_partitions,
            consumer: self.consumer_group.group.clone(),
        }
    }

    /// The transaction coordinator's settings; `num_partitions` is the partition count of an
    /// existing `__transaction_state`.
    pub fn txn_config(&self, num_partitions: i32) -> rafka_txn::TxnConfig {
        rafka_txn::TxnConfig {
            transactional_id_expiration_ms: self.transactional_id_expiration_ms,
            max_timeout_ms: self.transaction_max_timeout_ms,
            num_partitions,
            abort_timed_out_transaction_cleanup_interval_ms: self
                .transaction_abort_timed_out_transaction_cleanup_interval_ms,
            remove_expired_transaction_cleanup_interval_ms: self
                .transaction_remove_expired_transaction_cleanup_interval_ms,
            transaction_version: rafka_txn::TransactionVersion::V1,
        }
    }
}

/// `host:port` with an optional bracketed IPv6 host; an empty host is every interface.
fn parse_host_port(v: &str) -> Option<(String, u16)> {
    let (host, port) = v.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?.to_string(),
        None if host.contains(':') => return None,
        None if host.is_empty() => "0.0.0.0".to_string(),
        None => host.to_string(),
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_listener_is_host_and_port() {
        assert_eq!(
            parse_host_port("127.0.0.1:9404"),
            Some(("127.0.0.1".into(), 9404))
        );
        assert_eq!(parse_host_port(":9404"), Some(("0.0.0.0".into(), 9404)));
        assert_eq!(parse_host_port("[::1]:0"), Some(("::1".into(), 0)));
        assert_eq!(parse_host_port("::1:9404"), None);
        assert_eq!(parse_host_port("localhost"), None);
        assert_eq!(parse_host_port("h:99999"), None);
        let c = BrokerConfig::from_props(&props(&[("http.listener", "localhost:x")]));
        assert!(c.is_err_and(|e| e.to_string().contains("http.listener")));
        let (c, _) = BrokerConfig::from_props(&props(&[])).expect("defaults");
        assert_eq!(c.http_listener, None);
        let (c, _) =
            BrokerConfig::from_props(&props(&[("http.listener", ":9404")])).expect("valid");
        assert_eq!(c.http_listener, Some(("0.0.0.0".into(), 9404)));
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn zero_config_is_a_single_node_on_9092() {
        let c = BrokerConfig::single_node_defaults().expect("defaults are valid");
        assert_eq!(c.node_id, 1);
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].port, 9092);
        assert_eq!(c.advertised_listeners[0].host, "localhost");
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.log_roll_ms, 168 * 3_600_000);
    }

    #[test]
    fn retention_follows_kafkas_precedence() {
        let ms = |pairs: &[(&str, &str)]| {
            BrokerConfig::from_props(&props(pairs))
                .expect("valid")
                .0
                .log_retention_ms
        };
        assert_eq!(ms(&[]), 168 * 3_600_000);
        assert_eq!(ms(&[("log.retention.hours", "1")]), 3_600_000);
        assert_eq!(
            ms(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]),
            120_000
        );
        assert_eq!(
            ms(&[("log.retention.minutes", "2"), ("log.retention.ms", "5")]),
            5
        );
        assert_eq!(ms(&[("log.retention.ms", "-7")]), -1);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = BrokerConfig::from_props(&props(&[("num.partitions", "many")]))
            .expect_err("not a number");
        assert!(err.to_string().contains("num.partitions"), "{err}");
        let err =
            BrokerConfig::from_props(&props(&[("message.max.bytes", "-1")])).expect_err("negative");
        assert!(err.to_string().contains("message.max.bytes"));
        for (k, v) in [
            ("compression.type", "none"),
            ("compression.gzip.level", "10"),
            ("compression.lz4.level", "0"),
            ("compression.zstd.level", "23"),
        ] {
            let err = BrokerConfig::from_props(&props(&[(k, v)])).expect_err(k);
            assert!(err.to_string().contains(k), "{err}");
        }
        let (_, w) = BrokerConfig::from_props(&props(&[
            ("compression.type", "zstd"),
            ("compression.zstd.level", "-3"),
        ]))
        .expect("valid");
        assert!(w.0.is_empty(), "{w:?}");
    }

    #[test]
    fn not_yet_keys_warn_and_unknown_keys_are_quiet() {
        let (_, w) = BrokerConfig::from_props(&props(&[
            ("num.network.threads", "4"),
            ("some.plugin.setting", "x"),
        ]))
        .expect("valid");
        assert_eq!(w.0.len(), 1);
        assert!(w.0[0].contains("num.network.threads"));
    }

    #[test]
    fn empty_advertised_host_is_filled_with_the_local_address() {
        let (mut c, _) = BrokerConfig::from_props(&props(&[
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("advertised.listeners", "PLAINTEXT://:9092"),
            ("controller.listener.names", "CONTROLLER"),
        ]))
        .unwrap();
        assert_eq!(c.advertised_listeners[0].host, "");
        let done = c.resolve_empty_advertised_hosts(|| Some("172.18.0.2".to_string()));
        assert_eq!(
            done,
            Some((vec!["PLAINTEXT".to_string()], "172.18.0.2".to_string()))
        );
        assert_eq!(c.advertised_listeners[0].host, "172.18.0.2");
        // Nothing left to fill: the resolver is not even asked.
        assert_eq!(c.resolve_empty_advertised_hosts(|| panic!("asked")), None);
    }

    #[test]
    fn advertised_meta_address_is_refused() {
        let err = BrokerConfig::from_props(&props(&[(
            "advertised.listeners",
            "PLAINTEXT://0.0.0.0:9092",
        )]))
        .unwrap_err();
        assert!(
            err.to_string().contains("nonroutable meta-address"),
            "{err}"
        );
    }

    #[test]
    fn broker_id_is_node_id_and_zookeeper_files_run_with_a_warning() {
        let (c, w) = BrokerConfig::from_props(&props(&[
            ("broker.id", "7"),
            ("zookeeper.connect", "zookeeper:2181"),
        ]))
        .unwrap();
        assert_eq!(c.node_id, 7);
        assert_eq!(
            w.0.iter()
                .filter(|m| m.contains("zookeeper.connect"))
                .count(),
            1,
            "{:?}",
            w.0
        );
        // With roles given, the file is a KRaft file: no warning.
        let (_, w) = BrokerConfig::from_props(&props(&[
            ("process.roles", "broker,controller"),
            ("zookeeper.connect", "zookeeper:2181"),
        ]))
        .unwrap();
        assert!(w.0.iter().all(|m| !m.contains("zookeeper")), "{:?}", w.0);
        assert_eq!(
            BrokerConfig::from_props(&props(&[("broker.id", "2"), ("node.id", "2")]))
                .unwrap()
                .0
                .node_id,
            2
        );
        assert!(BrokerConfig::from_props(&props(&[("broker.id", "2"), ("node.id", "3")])).is_err());
    }

    #[test]
    fn controller_listener_is_not_served_and_advertised_follow_listeners() {
        let (c, _) = BrokerConfig::from_props(&props(&[
            (
                "listeners",
                "PLAINTEXT://:19092,CONTROLLER://:9093,PLAINTEXT_HOST://127.0.0.1:29092",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
            ),
            (
                "advertised.listeners",
                "PLAINTEXT_HOST://localhost:29092,PLAINTEXT://broker:19092",
            ),
        ]))
        .expect("valid");
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.advertised_listeners[0].name, "PLAINTEXT");
        assert_eq!(c.advertised_listeners[0].host, "broker");
        assert_eq!(c.advertised_listeners[1].host, "localhost");
    }
}
