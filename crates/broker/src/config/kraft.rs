//! KRaft cluster configuration: `process.roles`, `controller.quorum.voters`,
//! `controller.quorum.bootstrap.servers`, and the start-up rules Kafka 4.x applies to them in
//! `KafkaConfig.validateValues` (V3-V14 in the research notes), with Kafka's messages.
//!
//! One rafka extension: a node with neither voters nor bootstrap servers is a standalone quorum of
//! itself (`QuorumMode::Standalone`), so that zero-config and single-node files keep working. Kafka
//! refuses such a file (V3); rafka refuses it only for a broker-only node, which has no controller
//! to join.

use std::collections::BTreeMap;
use std::fmt;

use super::listeners::{Listener, SecurityProtocol};
use super::ConfigError;

/// The roles of this node (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

impl ProcessRoles {
    /// Both roles in one process.
    pub fn is_combined(&self) -> bool {
        self.broker && self.controller
    }

    pub fn is_broker_only(&self) -> bool {
        self.broker && !self.controller
    }

    pub fn is_controller_only(&self) -> bool {
        self.controller && !self.broker
    }

    /// Parses `process.roles` as Kafka's `ValidList.in("broker", "controller")` does: elements
    /// split on commas and trimmed; an empty list, duplicates and unknown roles are refused.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let roles = kafka_list(text);
        // Kafka 4.0/4.1 accept an empty list and then run neither role; the later
        // `ValidList.in(false, ...)` refuses it, with this message.
        if roles.is_empty() {
            return Err(ConfigError::Rule(
                "Configuration 'process.roles' must not be empty. Valid values include: \
                 [broker, controller]"
                    .to_string(),
            ));
        }
        let mut out = ProcessRoles {
            broker: false,
            controller: false,
        };
        for role in &roles {
            let seen = match *role {
                "broker" => std::mem::replace(&mut out.broker, true),
                "controller" => std::mem::replace(&mut out.controller, true),
                other => {
                    return Err(ConfigError::Rule(format!(
                        "Invalid value {other} for configuration process.roles: String must be \
                         one of: broker, controller"
                    )))
                }
            };
            if seen {
                // Kafka 4.0 prints a Scala buffer here (`ArrayBuffer(broker, broker)`); the list
                // is shown as Java prints one.
                return Err(ConfigError::Rule(format!(
                    "Duplicate role names found in `process.roles`: [{}]",
                    roles.join(", ")
                )));
            }
        }
        Ok(out)
    }
}

impl fmt::Display for ProcessRoles {
    /// Kafka's text: `broker`, `controller` or `broker,controller`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.broker, self.controller) {
            (true, true) => f.write_str("broker,controller"),
            (true, false) => f.write_str("broker"),
            (false, true) => f.write_str("controller"),
            (false, false) => Ok(()),
        }
    }
}

/// One entry of `controller.quorum.voters`: `{id}@{host}:{port}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for QuorumVoter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@", self.id)?;
        write_host_port(f, &self.host, self.port)
    }
}

/// One entry of `controller.quorum.bootstrap.servers`: `{host}:{port}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_host_port(f, &self.host, self.port)
    }
}

fn write_host_port(f: &mut fmt::Formatter<'_>, host: &str, port: u16) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]:{port}")
    } else {
        write!(f, "{host}:{port}")
    }
}

/// How this node finds its controller quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumMode {
    /// Neither `controller.quorum.voters` nor `controller.quorum.bootstrap.servers`: a quorum of
    /// this node alone (rafka extension; never a broker-only node).
    Standalone,
    /// `controller.quorum.voters` is set: a fixed set of voters.
    StaticVoters,
    /// Only `controller.quorum.bootstrap.servers` is set.
    Bootstrap,
}

impl QuorumMode {
    pub fn of(voters: &[QuorumVoter], bootstrap_servers: &[HostPort]) -> QuorumMode {
        if !voters.is_empty() {
            QuorumMode::StaticVoters
        } else if !bootstrap_servers.is_empty() {
            QuorumMode::Bootstrap
        } else {
            QuorumMode::Standalone
        }
    }
}

/// Kafka's LIST parsing (`ConfigDef.parseType`): a blank value is the empty list, otherwise the
/// trimmed value split on commas with the whitespace around them, empty elements kept (they then
/// fail the element's own parse, as in Kafka).
fn kafka_list(text: &str) -> Vec<&str> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(',').map(str::trim).collect()
}

/// Kafka's `Utils.getHost` / `Utils.getPort`: the whole string must match
/// `^(?:[0-9a-zA-Z\-%._]*://)?\[?([0-9a-zA-Z\-%._:]*)]?:([0-9]+)`. Returns host (brackets
/// stripped) and the port digits. The port is the part after the last colon, because only digits
/// may follow the separator.
fn kafka_host_port(address: &str) -> Option<(&str, &str)> {
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '%' | '.' | '_');
    let rest = match address.find("://") {
        Some(i) if address[..i].chars().all(host_char) => &address[i + 3..],
        Some(_) => return None,
        None => address,
    };
    let (host, port) = rest.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    if !host.chars().all(|c| host_char(c) || c == ':') {
        return None;
    }
    Some((host, port))
}

const VOTERS_FORM: &str = "Each entry should be in the form `{id}@{host}:{port}`.";

/// Parses `controller.quorum.voters` as Kafka's `QuorumConfig.parseVoterConnections`, with
/// Kafka's messages. Stricter than Kafka in three ways, each refused with a message: an empty host
/// or a port above 65535 (Kafka accepts the text and fails later, at connect time), a negative id,
/// and an id listed twice.
pub fn parse_quorum_voters(text: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for entry in kafka_list(text) {
        // Java's `String.split("@")`, which drops trailing empty strings.
        let mut parts: Vec<&str> = entry.split('@').collect();
        while parts.last() == Some(&"") {
            parts.pop();
        }
        let [id, address] = parts[..] else {
            return Err(ConfigError::Rule(format!(
                "Invalid configuration value for controller.quorum.voters. {VOTERS_FORM}"
            )));
        };
        let id: i32 = id.parse().map_err(|_| {
            ConfigError::Rule(format!("Failed to parse voter ID as an integer from {id}"))
        })?;
        let (host, port) = kafka_host_port(address)
            .filter(|(host, _)| !host.is_empty())
            .ok_or_else(|| {
                ConfigError::Rule(format!(
                    "Failed to parse host name from entry {entry} for the configuration \
                     controller.quorum.voters. {VOTERS_FORM}"
                ))
            })?;
        let port: u16 = port.parse().map_err(|_| {
            ConfigError::Rule(format!(
                "Failed to parse host port from entry {entry} for the configuration \
                 controller.quorum.voters. {VOTERS_FORM}"
            ))
        })?;
        if id < 0 {
            return Err(ConfigError::Rule(format!(
                "Invalid voter ID {id} in entry {entry} for the configuration \
                 controller.quorum.voters: node ids are at least 0"
            )));
        }
        let voter = QuorumVoter {
            id,
            host: host.to_string(),
            port,
        };
        // Kafka keeps voters in a map and silently lets the last entry of an id win; two
        // addresses for one controller is a typo that would split the quorum, so it is refused.
        if let Some(first) = voters.iter().find(|v| v.id == id) {
            return Err(ConfigError::Rule(format!(
                "Duplicate voter ID {id} in controller.quorum.voters ({first} and {voter}): \
                 each controller must appear once"
            )));
        }
        voters.push(voter);
    }
    Ok(voters)
}

/// Parses `controller.quorum.bootstrap.servers` as Kafka's `QuorumConfig.parseBootstrapServers`,
/// with Kafka's messages (an empty host and a port above 65535 are refused too).
pub fn parse_bootstrap_servers(text: &str) -> Result<Vec<HostPort>, ConfigError> {
    const FORM: &str = "Each entry should be in the form \"{host}:{port}\"";
    let mut out = Vec::new();
    for entry in kafka_list(text) {
        let (host, port) = kafka_host_port(entry)
            .filter(|(host, _)| !host.is_empty())
            .ok_or_else(|| {
                ConfigError::Rule(format!(
                    "Failed to parse host name from {entry} for the configuration \
                     controller.quorum.bootstrap.servers. {FORM}"
                ))
            })?;
        let port: u16 = port.parse().map_err(|_| {
            ConfigError::Rule(format!(
                "Failed to parse host port from {entry} for the configuration \
                 controller.quorum.bootstrap.servers. {FORM}"
            ))
        })?;
        out.push(HostPort {
            host: host.to_string(),
            port,
        });
    }
    Ok(out)
}

/// What the KRaft start-up rules look at.
pub(super) struct Topology<'a> {
    pub roles: ProcessRoles,
    pub node_id: i32,
    pub voters: &'a [QuorumVoter],
    pub bootstrap_servers: &'a [HostPort],
    pub controller_listener_names: &'a [String],
    /// Every entry of `listeners`, controller listeners included.
    pub listeners: &'a [Listener],
    /// The effective `listener.security.protocol.map`.
    pub protocol_map: &'a BTreeMap<String, SecurityProtocol>,
    /// `inter.broker.listener.name`, when set.
    pub explicit_inter_broker_listener: Option<&'a str>,
    /// `security.inter.broker.protocol`, when set.
    pub explicit_inter_broker_protocol: Option<&'a str>,
}

impl Topology<'_> {
    fn mode(&self) -> QuorumMode {
        QuorumMode::of(self.voters, self.bootstrap_servers)
    }

    fn is_listener(&self, name: &str) -> bool {
        self.listeners.iter().any(|l| l.name == name)
    }

    fn is_controller_name(&self, name: &str) -> bool {
        self.controller_listener_names.iter().any(|n| n == name)
    }

    /// Scala's rendering of the voter id set (`Set(1, 2, 3)`), ids ascending as Kafka's small
    /// sets iterate.
    fn voter_id_set(&self) -> String {
        let mut ids: Vec<i32> = self.voters.iter().map(|v| v.id).collect();
        ids.sort_unstable();
        let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
        format!("Set({})", ids.join(", "))
    }

    /// Whether the inter-broker listener must be a broker listener (Kafka's V14): always when the
    /// user named it, and whenever other brokers may connect. A standalone node that names no
    /// inter-broker listener has no other broker, so it keeps starting with listeners of any name
    /// (testcontainers' `TC-0`), as rafka always did.
    fn enforce_inter_broker_listener(&self) -> bool {
        self.explicit_inter_broker_listener.is_some()
            || self.explicit_inter_broker_protocol.is_some()
            || self.voters.len() > 1
            || !self.bootstrap_servers.is_empty()
            // A broker-only node always has a controller elsewhere: it is in a cluster.
            || self.roles.is_broker_only()
    }
}

/// Kafka's role rules (`validateValues`, V3-V13), in Kafka's order, on the parsed config.
pub(super) fn check_roles(t: &Topology<'_>) -> Result<(), ConfigError> {
    let rule = |m: String| Err(ConfigError::Rule(m));
    let standalone = t.mode() == QuorumMode::Standalone;
    let roles = t.roles;
    if roles.is_broker_only() {
        // V3. A standalone controller (or combined node) is its own quorum; a broker alone has
        // no controller to fetch the metadata log from.
        if standalone {
            return rule(
                "If using process.roles, either controller.quorum.bootstrap.servers must contain \
                 the set of bootstrap controllers or controller.quorum.voters must contain a \
                 parseable set of controllers."
                    .to_string(),
            );
        }
        // V4
        if t.voters.iter().any(|v| v.id == t.node_id) {
            return rule(format!(
                "If process.roles contains just the 'broker' role, the node id {} must not be \
                 included in the set of voters controller.quorum.voters={}",
                t.node_id,
                t.voter_id_set()
            ));
        }
        // V5
        if t.controller_listener_names.is_empty() {
            return rule(
                "controller.listener.names must contain at least one value when running KRaft \
                 with just the broker role"
                    .to_string(),
            );
        }
        // V6
        if t.listeners.iter().any(|l| t.is_controller_name(&l.name)) {
            return rule(
                "controller.listener.names must not contain a value appearing in the 'listeners' \
                 configuration when running KRaft with just the broker role"
                    .to_string(),
            );
        }
        // V7. A name that is itself a protocol needs no map entry, as for `listeners`.
        for name in t.controller_listener_names {
            if !t.protocol_map.contains_key(name) && SecurityProtocol::parse(name).is_none() {
                // The two spaces before the parenthesis are Kafka's.
                return rule(format!(
                    "Controller listener with name {name} defined in controller.listener.names \
                     not found in listener.security.protocol.map  (an explicit security mapping \
                     for each controller listener is required if listener.security.protocol.map \
                     is non-empty, or if there are security protocols other than PLAINTEXT in use)"
                ));
            }
        }
    }
    if roles.is_controller_only() {
        // V8
        if t.listeners.iter().any(|l| !t.is_controller_name(&l.name)) {
            return rule(
                "The listeners config must only contain KRaft controller listeners from \
                 controller.listener.names when process.roles=controller"
                    .to_string(),
            );
        }
        // V9 (the stray quote at the end is Kafka's).
        if let Some(ibl) = t.explicit_inter_broker_listener {
            if t.is_controller_name(ibl) {
                return rule(
                    "controller.listener.names must not contain an explicitly set \
                     inter.broker.listener.name configuration value when process.roles=controller'"
                        .to_string(),
                );
            }
        }
    }
    if roles.controller {
        // V10
        if !t.voters.is_empty() && !t.voters.iter().any(|v| v.id == t.node_id) {
            return rule(format!(
                "If process.roles contains the 'controller' role, the node id {} must be \
                 included in the set of voters controller.quorum.voters={}",
                t.node_id,
                t.voter_id_set()
            ));
        }
        // V11 and V12. A standalone combined node runs its controller in-process and opens no
        // controller listener, so it needs none; a controller-only node serves nothing else, so
        // it needs one even when standalone.
        if !standalone || roles.is_controller_only() {
            if !t.controller_listener_names.iter().any(|n| t.is_listener(n)) {
                return rule(
                    "controller.listener.names must contain at least one value appearing in the \
                     'listeners' configuration when running the KRaft controller role"
                        .to_string(),
                );
            }
            if !t.controller_listener_names.iter().all(|n| t.is_listener(n)) {
                return rule(
                    "controller.listener.names must only contain values appearing in the \
                     'listeners' configuration when running the KRaft controller role"
                        .to_string(),
                );
            }
        }
    }
    // V13: rafka advertises every broker listener (those `advertised.listeners` leaves out as
    // they are bound), so the advertised broker listeners are the broker listeners.
    if roles.broker && !t.listeners.iter().any(|l| !t.is_controller_name(&l.name)) {
        return rule(
            "There must be at least one broker advertised listener. Perhaps all listeners appear \
             in controller.listener.names?"
                .to_string(),
        );
    }
    Ok(())
}

const ONLY_ONE_INTER_BROKER_KEY: &str =
    "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.";

/// Kafka's inter-broker listener (`interBrokerListenerName`, R3) and its rule V14.
/// `advertised_broker_names` are the names of the advertised broker listeners, in order.
pub(super) fn resolve_inter_broker_listener(
    t: &Topology<'_>,
    advertised_broker_names: &[String],
) -> Result<String, ConfigError> {
    let rule = |m: String| Err(ConfigError::Rule(m));
    let (name, protocol) = (
        t.explicit_inter_broker_listener,
        t.explicit_inter_broker_protocol,
    );
    let configured = match (name, protocol) {
        (Some(_), Some(_)) => {
            return rule(ONLY_ONE_INTER_BROKER_KEY.to_string());
        }
        (Some(name), None) => {
            if !t.protocol_map.contains_key(name) && SecurityProtocol::parse(name).is_none() {
                return rule(format!(
                    "Listener with name {name} defined in inter.broker.listener.name not found in \
                     listener.security.protocol.map."
                ));
            }
            name.to_string()
        }
        (None, Some(protocol)) => protocol.to_string(),
        (None, None) => SecurityProtocol::Plaintext.name().to_string(),
    };
    if !t.roles.broker || advertised_broker_names.contains(&configured) {
        return Ok(configured);
    }
    if t.enforce_inter_broker_listener() {
        return rule(format!(
            "inter.broker.listener.name must be a listener name defined in advertised.listeners. \
             The valid options based on currently configured listeners are {}",
            advertised_broker_names.join(",")
        ));
    }
    // Standalone, nothing named: the first broker listener (V13 guarantees there is one).
    Ok(advertised_broker_names
        .first()
        .cloned()
        .unwrap_or(configured))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{sources, BrokerConfig};

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config(pairs: &[(&str, &str)]) -> BrokerConfig {
        match BrokerConfig::from_props(&props(pairs)) {
            Ok((c, _)) => c,
            Err(e) => panic!("{pairs:?} should be valid: {e}"),
        }
    }

    /// The one-line message a config is refused with.
    fn refused(pairs: &[(&str, &str)]) -> String {
        match BrokerConfig::from_props(&props(pairs)) {
            Ok(_) => panic!("{pairs:?} should be refused"),
            Err(e) => {
                let m = e.to_string();
                assert!(!m.contains('\n'), "one line: {m}");
                m
            }
        }
    }

    const VOTERS_1_2_3: &str = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093";

    /// A valid broker-only node of a three-controller cluster, for rules to break.
    fn broker_only(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut p = vec![
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("controller.quorum.voters", VOTERS_1_2_3),
            ("listeners", "PLAINTEXT://:19092,PLAINTEXT_HOST://:9092"),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
        ];
        override_pairs(&mut p, extra);
        p
    }

    /// A valid controller-only node of a three-controller cluster.
    fn controller_only(
        extra: &[(&'static str, &'static str)],
    ) -> Vec<(&'static str, &'static str)> {
        let mut p = vec![
            ("process.roles", "controller"),
            ("node.id", "1"),
            ("controller.quorum.voters", VOTERS_1_2_3),
            ("listeners", "CONTROLLER://:9093"),
            ("controller.listener.names", "CONTROLLER"),
        ];
        override_pairs(&mut p, extra);
        p
    }

    /// Kafka's coordinator-topic defaults (3 replicas, min ISR 2) hold once a quorum is
    /// configured; the zero-config node keeps 1; a value given is a value kept.
    #[test]
    fn internal_topics_default_to_three_replicas_in_a_cluster() {
        let internal = |c: BrokerConfig| {
            (
                c.offsets_topic_replication_factor,
                c.transaction_state_log_replication_factor,
                c.transaction_state_log_min_isr,
            )
        };
        assert_eq!(internal(config(&[])), (1, 1, 1));
        assert_eq!(internal(config(&combined(&[]))), (3, 3, 2));
        assert_eq!(internal(config(&broker_only(&[]))), (3, 3, 2));
        let set = combined(&[
            ("offsets.topic.replication.factor", "1"),
            ("transaction.state.log.replication.factor", "2"),
            ("transaction.state.log.min.isr", "1"),
        ]);
        assert_eq!(internal(config(&set)), (1, 2, 1));
    }

    /// A valid combined node of a three-node cluster.
    fn combined(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut p = vec![
            ("process.roles", "broker,controller"),
            ("node.id", "1"),
            ("controller.quorum.voters", VOTERS_1_2_3),
            (
                "listeners",
                "PLAINTEXT://:19092,CONTROLLER://:9093,PLAINTEXT_HOST://:9092",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
            ),
        ];
        override_pairs(&mut p, extra);
        p
    }

    /// Sets keys of a base config; the value "<unset>" removes the key instead.
    fn override_pairs(
        base: &mut Vec<(&'static str, &'static str)>,
        extra: &[(&'static str, &'static str)],
    ) {
        for &(k, v) in extra {
            base.retain(|(bk, _)| *bk != k);
            if v != "<unset>" {
                base.push((k, v));
            }
        }
    }

    #[test]
    fn zero_config_is_a_standalone_combined_node() {
        let c = BrokerConfig::single_node_defaults().expect("valid");
        assert_eq!(
            c.process_roles,
            ProcessRoles {
                broker: true,
                controller: true
            }
        );
        assert!(c.process_roles.is_combined());
        assert_eq!(c.process_roles.to_string(), "broker,controller");
        assert_eq!(c.quorum_mode(), QuorumMode::Standalone);
        assert!(c.quorum_voters.is_empty());
        assert!(c.quorum_bootstrap_servers.is_empty());
        assert!(c.controller_listeners.is_empty());
        assert!(c.controller_listener_names.is_empty());
        assert_eq!(c.inter_broker_listener, "PLAINTEXT");
        assert_eq!(c.inter_broker_listener_name, None);
        assert_eq!(c.node_id, 1);
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://:9092");
    }

    #[test]
    fn timeouts_have_kafkas_defaults() {
        let c = BrokerConfig::single_node_defaults().expect("valid");
        assert_eq!(c.controller_quorum_election_timeout_ms, 1000);
        assert_eq!(c.controller_quorum_fetch_timeout_ms, 2000);
        assert_eq!(c.controller_quorum_request_timeout_ms, 2000);
        assert_eq!(c.controller_quorum_retry_backoff_ms, 20);
        assert_eq!(c.broker_heartbeat_interval_ms, 2000);
        assert_eq!(c.broker_session_timeout_ms, 9000);
        assert_eq!(c.initial_broker_registration_timeout_ms, 60000);
        let c = config(&[
            ("controller.quorum.election.timeout.ms", "5000"),
            ("controller.quorum.fetch.timeout.ms", "3000"),
            ("controller.quorum.request.timeout.ms", "4000"),
            ("controller.quorum.retry.backoff.ms", "7"),
            ("broker.heartbeat.interval.ms", "100"),
            ("broker.session.timeout.ms", "101"),
            ("initial.broker.registration.timeout.ms", "1"),
        ]);
        // The election timeout may exceed the fetch timeout (Kafka does not order them).
        assert_eq!(c.controller_quorum_election_timeout_ms, 5000);
        assert_eq!(c.controller_quorum_fetch_timeout_ms, 3000);
        assert_eq!(c.controller_quorum_request_timeout_ms, 4000);
        assert_eq!(c.controller_quorum_retry_backoff_ms, 7);
        assert_eq!(c.broker_heartbeat_interval_ms, 100);
        assert_eq!(c.broker_session_timeout_ms, 101);
        assert_eq!(c.initial_broker_registration_timeout_ms, 1);
    }

    #[test]
    fn timeouts_must_be_positive_and_the_session_longer_than_the_heartbeat() {
        for key in [
            "controller.quorum.election.timeout.ms",
            "controller.quorum.fetch.timeout.ms",
            "controller.quorum.request.timeout.ms",
            "controller.quorum.retry.backoff.ms",
            "broker.heartbeat.interval.ms",
            "broker.session.timeout.ms",
            "initial.broker.registration.timeout.ms",
        ] {
            for bad in ["0", "-1"] {
                let m = refused(&[(key, bad)]);
                assert!(m.contains(key) && m.contains("must be positive"), "{m}");
            }
            let m = refused(&[(key, "soon")]);
            assert!(m.contains(key), "{m}");
        }
        assert_eq!(
            refused(&[
                ("broker.heartbeat.interval.ms", "3000"),
                ("broker.session.timeout.ms", "3000")
            ]),
            "broker.session.timeout.ms (3000) must be greater than broker.heartbeat.interval.ms \
             (3000): a broker is fenced when no heartbeat arrives within its session timeout"
        );
    }

    #[test]
    fn process_roles_parse_and_refusals() {
        let roles = |text: &str| ProcessRoles::parse(text).map_err(|e| e.to_string());
        assert_eq!(
            roles(" controller , broker "),
            Ok(ProcessRoles {
                broker: true,
                controller: true
            })
        );
        let b = roles("broker").unwrap();
        assert!(b.is_broker_only() && !b.is_combined());
        assert_eq!(b.to_string(), "broker");
        let c = roles("controller").unwrap();
        assert!(c.is_controller_only());
        assert_eq!(c.to_string(), "controller");
        let empty = "Configuration 'process.roles' must not be empty. Valid values include: \
                     [broker, controller]";
        assert_eq!(roles(""), Err(empty.to_string()));
        assert_eq!(refused(&[("process.roles", " ")]), empty);
        assert_eq!(
            refused(&[("process.roles", "broker,zookeeper")]),
            "Invalid value zookeeper for configuration process.roles: String must be one of: \
             broker, controller"
        );
        assert_eq!(
            roles("broker,,controller"),
            Err(
                "Invalid value  for configuration process.roles: String must be one of: \
                 broker, controller"
                    .to_string()
            )
        );
        assert_eq!(
            refused(&[("process.roles", "broker,broker")]),
            "Duplicate role names found in `process.roles`: [broker, broker]"
        );
    }

    #[test]
    fn voters_parse_with_ipv6_and_schemes() {
        let v = parse_quorum_voters(" 1@kafka-1:9093 , 2@[::1]:9094,3@10.0.0.3:1 ").unwrap();
        assert_eq!(
            v,
            vec![
                QuorumVoter {
                    id: 1,
                    host: "kafka-1".into(),
                    port: 9093
                },
                QuorumVoter {
                    id: 2,
                    host: "::1".into(),
                    port: 9094
                },
                QuorumVoter {
                    id: 3,
                    host: "10.0.0.3".into(),
                    port: 1
                },
            ]
        );
        assert_eq!(v[0].to_string(), "1@kafka-1:9093");
        assert_eq!(v[1].to_string(), "2@[::1]:9094");
        assert!(parse_quorum_voters("").unwrap().is_empty());
        assert!(parse_quorum_voters("  ").unwrap().is_empty());
        // Kafka's host pattern takes an optional scheme and an unbracketed IPv6 address.
        let v = parse_quorum_voters("0@PLAINTEXT://h:1,5@fe80::1:2").unwrap();
        assert_eq!((v[0].host.as_str(), v[0].port), ("h", 1));
        assert_eq!((v[1].host.as_str(), v[1].port), ("fe80::1", 2));
    }

    #[test]
    fn voter_parse_errors_are_kafkas() {
        let err = |text: &str| parse_quorum_voters(text).unwrap_err().to_string();
        let form = "Invalid configuration value for controller.quorum.voters. Each entry should \
                    be in the form `{id}@{host}:{port}`.";
        assert_eq!(err("kafka-1:9093"), form);
        assert_eq!(err("1@a@b:1"), form);
        assert_eq!(err("1@a:1,"), form);
        assert_eq!(
            err("x@kafka-1:9093"),
            "Failed to parse voter ID as an integer from x"
        );
        assert_eq!(
            err("1@kafka-1"),
            "Failed to parse host name from entry 1@kafka-1 for the configuration \
             controller.quorum.voters. Each entry should be in the form `{id}@{host}:{port}`."
        );
        assert_eq!(
            err("1@:9093"),
            "Failed to parse host name from entry 1@:9093 for the configuration \
             controller.quorum.voters. Each entry should be in the form `{id}@{host}:{port}`."
        );
        assert_eq!(
            err("1@h:99999"),
            "Failed to parse host port from entry 1@h:99999 for the configuration \
             controller.quorum.voters. Each entry should be in the form `{id}@{host}:{port}`."
        );
        assert_eq!(
            err("-1@h:9093"),
            "Invalid voter ID -1 in entry -1@h:9093 for the configuration \
             controller.quorum.voters: node ids are at least 0"
        );
        assert_eq!(
            err("1@a:9093,2@b:9093,1@c:9093"),
            "Duplicate voter ID 1 in controller.quorum.voters (1@a:9093 and 1@c:9093): each \
             controller must appear once"
        );
        // From the config, the same one-line messages.
        assert_eq!(
            refused(&[("controller.quorum.voters", "1@kafka-1")]),
            err("1@kafka-1")
        );
    }

    #[test]
    fn bootstrap_servers_parse_and_errors() {
        let b = parse_bootstrap_servers("c1:9093, [::1]:9094").unwrap();
        assert_eq!(
            b,
            vec![
                HostPort {
                    host: "c1".into(),
                    port: 9093
                },
                HostPort {
                    host: "::1".into(),
                    port: 9094
                }
            ]
        );
        assert_eq!(b[0].to_string(), "c1:9093");
        assert_eq!(b[1].to_string(), "[::1]:9094");
        assert!(parse_bootstrap_servers("").unwrap().is_empty());
        let err = |text: &str| parse_bootstrap_servers(text).unwrap_err().to_string();
        assert_eq!(
            err("c1"),
            "Failed to parse host name from c1 for the configuration \
             controller.quorum.bootstrap.servers. Each entry should be in the form \
             \"{host}:{port}\""
        );
        assert_eq!(
            err("c1:70000"),
            "Failed to parse host port from c1:70000 for the configuration \
             controller.quorum.bootstrap.servers. Each entry should be in the form \
             \"{host}:{port}\""
        );
        assert_eq!(
            refused(&[("controller.quorum.bootstrap.servers", "c1:x")]),
            err("c1:x")
        );
    }

    #[test]
    fn quorum_modes() {
        assert_eq!(
            config(&combined(&[])).quorum_mode(),
            QuorumMode::StaticVoters
        );
        let c = config(&combined(&[
            ("controller.quorum.voters", "<unset>"),
            (
                "controller.quorum.bootstrap.servers",
                "kafka-1:9093,kafka-2:9093",
            ),
        ]));
        assert_eq!(c.quorum_mode(), QuorumMode::Bootstrap);
        assert_eq!(c.quorum_bootstrap_servers.len(), 2);
        assert_eq!(c.quorum_bootstrap_servers[1].to_string(), "kafka-2:9093");
        // Voters win when both are given.
        let c = config(&broker_only(&[(
            "controller.quorum.bootstrap.servers",
            "kafka-1:9093",
        )]));
        assert_eq!(c.quorum_mode(), QuorumMode::StaticVoters);
    }

    #[test]
    fn example_a_three_combined_nodes() {
        for id in ["1", "2", "3"] {
            let c = config(&combined(&[("node.id", id)]));
            assert!(c.process_roles.is_combined());
            assert_eq!(c.quorum_voters.len(), 3);
            assert_eq!(c.quorum_voters[2].to_string(), "3@kafka-3:9093");
            assert_eq!(
                c.listeners
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>(),
                ["PLAINTEXT", "PLAINTEXT_HOST"]
            );
            assert_eq!(c.controller_listeners.len(), 1);
            assert_eq!(c.controller_listeners[0].to_string(), "CONTROLLER://:9093");
            assert_eq!(c.inter_broker_listener, "PLAINTEXT");
            assert_eq!(c.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"));
        }
    }

    #[test]
    fn example_b_controller_only_node() {
        let c = config(&controller_only(&[]));
        assert!(c.process_roles.is_controller_only());
        assert!(c.listeners.is_empty());
        assert!(c.advertised_listeners.is_empty());
        assert_eq!(c.controller_listeners.len(), 1);
        assert_eq!(c.controller_listeners[0].port, 9093);
        assert_eq!(c.quorum_mode(), QuorumMode::StaticVoters);
        assert_eq!(c.value_of("advertised.listeners").as_deref(), Some(""));
        // Its controller listener may be advertised (KIP-853), never on the meta-address.
        let c = config(&controller_only(&[(
            "advertised.listeners",
            "CONTROLLER://kafka-1:9093",
        )]));
        assert!(c.advertised_listeners.is_empty());
        let m = refused(&controller_only(&[(
            "advertised.listeners",
            "CONTROLLER://0.0.0.0:9093",
        )]));
        assert_eq!(
            m,
            "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a \
             routable IP address."
        );
    }

    #[test]
    fn example_c_broker_only_node() {
        let c = config(&broker_only(&[]));
        assert!(c.process_roles.is_broker_only());
        assert_eq!(c.node_id, 4);
        assert_eq!(c.quorum_voters.len(), 3);
        assert_eq!(c.listeners.len(), 2);
        assert!(c.controller_listeners.is_empty());
        assert_eq!(c.controller_listener_names, ["CONTROLLER"]);
        assert_eq!(c.inter_broker_listener, "PLAINTEXT");
        // Only the first controller listener name is used, as Kafka warns.
        let (_, warnings) = BrokerConfig::from_props(&props(&broker_only(&[
            ("controller.listener.names", "CONTROLLER,CONTROLLER2"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT,CONTROLLER:PLAINTEXT,\
                 CONTROLLER2:PLAINTEXT",
            ),
        ])))
        .expect("valid");
        assert_eq!(
            warnings.0,
            ["controller.listener.names has multiple entries; only the first will be used since \
              process.roles=broker: [CONTROLLER, CONTROLLER2]"]
        );
        // Bootstrap servers instead of voters.
        let c = config(&broker_only(&[
            ("controller.quorum.voters", "<unset>"),
            ("controller.quorum.bootstrap.servers", "kafka-1:9093"),
        ]));
        assert_eq!(c.quorum_mode(), QuorumMode::Bootstrap);
    }

    #[test]
    fn v3_broker_only_needs_voters_or_bootstrap_servers() {
        assert_eq!(
            refused(&broker_only(&[("controller.quorum.voters", "<unset>")])),
            "If using process.roles, either controller.quorum.bootstrap.servers must contain the \
             set of bootstrap controllers or controller.quorum.voters must contain a parseable \
             set of controllers."
        );
        // rafka extension: a controller or combined node without either is standalone.
        let c = config(&controller_only(&[("controller.quorum.voters", "<unset>")]));
        assert_eq!(c.quorum_mode(), QuorumMode::Standalone);
        let c = config(&combined(&[("controller.quorum.voters", "<unset>")]));
        assert_eq!(c.quorum_mode(), QuorumMode::Standalone);
    }

    #[test]
    fn v4_broker_only_node_is_not_a_voter() {
        assert_eq!(
            refused(&broker_only(&[("node.id", "2")])),
            "If process.roles contains just the 'broker' role, the node id 2 must not be included \
             in the set of voters controller.quorum.voters=Set(1, 2, 3)"
        );
    }

    #[test]
    fn v5_broker_only_needs_controller_listener_names() {
        assert_eq!(
            refused(&broker_only(&[("controller.listener.names", "<unset>")])),
            "controller.listener.names must contain at least one value when running KRaft with \
             just the broker role"
        );
    }

    #[test]
    fn v6_broker_only_has_no_controller_listener() {
        assert_eq!(
            refused(&broker_only(&[(
                "listeners",
                "PLAINTEXT://:19092,CONTROLLER://:9093"
            )])),
            "controller.listener.names must not contain a value appearing in the 'listeners' \
             configuration when running KRaft with just the broker role"
        );
    }

    #[test]
    fn v7_controller_listener_needs_a_protocol_when_the_map_is_explicit() {
        assert_eq!(
            refused(&broker_only(&[(
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT"
            )])),
            "Controller listener with name CONTROLLER defined in controller.listener.names not \
             found in listener.security.protocol.map  (an explicit security mapping for each \
             controller listener is required if listener.security.protocol.map is non-empty, or \
             if there are security protocols other than PLAINTEXT in use)"
        );
        // Without a map, controller listeners are PLAINTEXT implicitly.
        config(&broker_only(&[
            ("listener.security.protocol.map", "<unset>"),
            ("listeners", "PLAINTEXT://:19092"),
        ]));
    }

    #[test]
    fn v8_controller_only_has_only_controller_listeners() {
        let m = "The listeners config must only contain KRaft controller listeners from \
                 controller.listener.names when process.roles=controller";
        assert_eq!(
            refused(&controller_only(&[(
                "listeners",
                "CONTROLLER://:9093,PLAINTEXT://:9092"
            )])),
            m
        );
        // The default `listeners` is a broker listener.
        assert_eq!(refused(&controller_only(&[("listeners", "<unset>")])), m);
    }

    #[test]
    fn v9_controller_only_inter_broker_listener_is_not_a_controller_listener() {
        assert_eq!(
            refused(&controller_only(&[(
                "inter.broker.listener.name",
                "CONTROLLER"
            )])),
            "controller.listener.names must not contain an explicitly set \
             inter.broker.listener.name configuration value when process.roles=controller'"
        );
        // Set to a name that is not a controller listener, it is accepted and unused.
        let c = config(&controller_only(&[(
            "inter.broker.listener.name",
            "PLAINTEXT",
        )]));
        assert_eq!(c.inter_broker_listener, "PLAINTEXT");
    }

    #[test]
    fn v10_controller_is_a_voter() {
        let m = "If process.roles contains the 'controller' role, the node id 4 must be included \
                 in the set of voters controller.quorum.voters=Set(1, 2, 3)";
        assert_eq!(refused(&controller_only(&[("node.id", "4")])), m);
        assert_eq!(refused(&combined(&[("node.id", "4")])), m);
        // No voters (bootstrap servers): no such rule.
        config(&combined(&[
            ("node.id", "4"),
            ("controller.quorum.voters", "<unset>"),
            ("controller.quorum.bootstrap.servers", "kafka-1:9093"),
        ]));
    }

    #[test]
    fn v11_controller_needs_a_controller_listener() {
        let m = "controller.listener.names must contain at least one value appearing in the \
                 'listeners' configuration when running the KRaft controller role";
        assert_eq!(
            refused(&combined(&[(
                "listeners",
                "PLAINTEXT://:19092,PLAINTEXT_HOST://:9092"
            )])),
            m
        );
        assert_eq!(
            refused(&combined(&[("controller.listener.names", "<unset>")])),
            m
        );
        assert_eq!(
            refused(&controller_only(&[
                ("controller.quorum.voters", "<unset>"),
                ("controller.listener.names", "<unset>"),
                ("listeners", ""),
            ])),
            m
        );
        // A standalone combined node runs its controller in-process: no listener needed.
        let c = config(&combined(&[
            ("controller.quorum.voters", "<unset>"),
            ("listeners", "PLAINTEXT://:19092,PLAINTEXT_HOST://:9092"),
        ]));
        assert!(c.controller_listeners.is_empty());
    }

    #[test]
    fn v12_controller_listener_names_are_all_listeners() {
        assert_eq!(
            refused(&combined(&[(
                "controller.listener.names",
                "CONTROLLER,OTHER"
            )])),
            "controller.listener.names must only contain values appearing in the 'listeners' \
             configuration when running the KRaft controller role"
        );
    }

    #[test]
    fn v13_broker_needs_a_broker_listener() {
        let m = "There must be at least one broker advertised listener. Perhaps all listeners \
                 appear in controller.listener.names?";
        assert_eq!(
            refused(&combined(&[
                ("listeners", "CONTROLLER://:9093"),
                ("inter.broker.listener.name", "<unset>"),
            ])),
            m
        );
        // Also on a standalone node (the old "no broker listener" refusal).
        assert_eq!(
            refused(&[
                ("listeners", "CONTROLLER://:9093"),
                ("controller.listener.names", "CONTROLLER"),
            ]),
            m
        );
    }

    #[test]
    fn v14_inter_broker_listener_is_a_broker_listener() {
        let m = |valid: &str| {
            format!(
                "inter.broker.listener.name must be a listener name defined in \
                 advertised.listeners. The valid options based on currently configured listeners \
                 are {valid}"
            )
        };
        assert_eq!(
            refused(&combined(&[("inter.broker.listener.name", "CONTROLLER")])),
            m("PLAINTEXT,PLAINTEXT_HOST")
        );
        // In a cluster, the default name PLAINTEXT must exist.
        assert_eq!(
            refused(&broker_only(&[
                ("listeners", "INTERNAL://:19092,PLAINTEXT_HOST://:9092"),
                (
                    "listener.security.protocol.map",
                    "INTERNAL:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT,CONTROLLER:PLAINTEXT"
                ),
            ])),
            m("INTERNAL,PLAINTEXT_HOST")
        );
        // Named explicitly, the rule holds on a standalone node too (it is rafka's old check).
        assert_eq!(
            refused(&[
                ("listeners", "TC-0://:9092"),
                (
                    "listener.security.protocol.map",
                    "TC-0:PLAINTEXT,BROKER:PLAINTEXT"
                ),
                ("inter.broker.listener.name", "BROKER"),
            ]),
            m("TC-0")
        );
        assert_eq!(
            refused(&[
                ("listeners", "TC-0://:9092"),
                ("listener.security.protocol.map", "TC-0:PLAINTEXT"),
                ("security.inter.broker.protocol", "PLAINTEXT"),
            ]),
            m("TC-0")
        );
        // The advertised broker listeners count, in their order.
        let c = config(&[
            ("listeners", "PLAINTEXT://:9092,BROKER://:9093"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT",
            ),
            ("advertised.listeners", "BROKER://b:9093"),
            ("inter.broker.listener.name", "BROKER"),
        ]);
        assert_eq!(c.inter_broker_listener, "BROKER");
    }

    #[test]
    fn standalone_node_without_a_plaintext_listener_uses_its_first_broker_listener() {
        let c = config(&[
            ("listeners", "TC-0://:9092,TC-1://:9093"),
            (
                "listener.security.protocol.map",
                "TC-0:PLAINTEXT,TC-1:PLAINTEXT",
            ),
        ]);
        assert_eq!(c.inter_broker_listener, "TC-0");
        assert_eq!(c.inter_broker_listener_name, None);
        // A single static voter is still a one-node cluster.
        let c = config(&[
            ("listeners", "TC-0://:9092,CONTROLLER://:9093"),
            (
                "listener.security.protocol.map",
                "TC-0:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.voters", "1@localhost:9093"),
        ]);
        assert_eq!(c.inter_broker_listener, "TC-0");
        assert_eq!(c.controller_listeners[0].name, "CONTROLLER");
    }

    #[test]
    fn inter_broker_listener_name_and_protocol_resolution() {
        assert_eq!(
            refused(&[
                ("inter.broker.listener.name", "PLAINTEXT"),
                ("security.inter.broker.protocol", "PLAINTEXT"),
            ]),
            "Only one of inter.broker.listener.name and security.inter.broker.protocol should be \
             set."
        );
        assert_eq!(
            refused(&[("inter.broker.listener.name", "NOPE")]),
            "Listener with name NOPE defined in inter.broker.listener.name not found in \
             listener.security.protocol.map."
        );
        assert_eq!(
            refused(&[("security.inter.broker.protocol", "TLS")]),
            "Invalid value TLS for configuration security.inter.broker.protocol: String must be \
             one of: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
        );
        let c = config(&[("security.inter.broker.protocol", "PLAINTEXT")]);
        assert_eq!(c.inter_broker_listener, "PLAINTEXT");
    }

    #[test]
    fn v15_advertised_names_are_listeners() {
        assert_eq!(
            refused(&combined(&[
                (
                    "advertised.listeners",
                    "PLAINTEXT://kafka-1:19092,OTHER://kafka-1:1"
                ),
                (
                    "listener.security.protocol.map",
                    "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT,OTHER:PLAINTEXT"
                ),
            ])),
            "advertised.listeners listener names must be equal to or a subset of the ones defined \
             in listeners. Found PLAINTEXT,OTHER. The valid options based on the current \
             configuration are PLAINTEXT,CONTROLLER,PLAINTEXT_HOST"
        );
    }

    #[test]
    fn v16_no_meta_address() {
        assert_eq!(
            refused(&combined(&[(
                "advertised.listeners",
                "PLAINTEXT://0.0.0.0:19092"
            )])),
            "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a \
             routable IP address."
        );
        // Advertised controller listeners too, as Kafka checks both.
        assert!(refused(&combined(&[(
            "advertised.listeners",
            "PLAINTEXT://kafka-1:19092,CONTROLLER://0.0.0.0:9093"
        )]))
        .contains("nonroutable meta-address"));
    }

    #[test]
    fn served_controller_listeners_must_be_plaintext() {
        let m = refused(&combined(&[(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL,PLAINTEXT_HOST:PLAINTEXT",
        )]));
        assert!(
            m.contains("CONTROLLER") && m.contains("only PLAINTEXT"),
            "{m}"
        );
    }

    #[test]
    fn kraft_keys_come_from_the_images_environment_conventions() {
        let env = sources::from_env(
            [
                ("KAFKA_PROCESS_ROLES", "broker"),
                ("KAFKA_NODE_ID", "4"),
                (
                    "KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS",
                    "kafka-1:9093,kafka-2:9093",
                ),
                ("KAFKA_BROKER_HEARTBEAT_INTERVAL_MS", "500"),
                ("KAFKA_BROKER_SESSION_TIMEOUT_MS", "4000"),
                ("KAFKA_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS", "700"),
                ("KAFKA_INITIAL_BROKER_REGISTRATION_TIMEOUT_MS", "30000"),
                ("KAFKA_CFG_CONTROLLER_QUORUM_VOTERS", VOTERS_1_2_3),
                ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
                ("KAFKA_LISTENERS", "PLAINTEXT://:9092"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(
            env.props
                .get("controller.quorum.bootstrap.servers")
                .map(String::as_str),
            Some("kafka-1:9093,kafka-2:9093")
        );
        assert_eq!(
            env.props
                .get("broker.heartbeat.interval.ms")
                .map(String::as_str),
            Some("500")
        );
        assert_eq!(
            env.props
                .get("controller.quorum.voters")
                .map(String::as_str),
            Some(VOTERS_1_2_3)
        );
        let (c, warnings) = BrokerConfig::from_props(&sources::merge(&[&env.props])).unwrap();
        assert!(warnings.0.is_empty(), "{:?}", warnings.0);
        assert!(c.process_roles.is_broker_only());
        assert_eq!(c.quorum_voters.len(), 3);
        assert_eq!(c.quorum_bootstrap_servers.len(), 2);
        assert_eq!(c.broker_heartbeat_interval_ms, 500);
        assert_eq!(c.broker_session_timeout_ms, 4000);
        assert_eq!(c.controller_quorum_election_timeout_ms, 700);
        assert_eq!(c.initial_broker_registration_timeout_ms, 30000);
        // bitnami's spelling alone.
        let p = sources::from_bitnami_env(
            [
                ("KAFKA_CFG_CONTROLLER_QUORUM_VOTERS", "0@kafka:9093"),
                ("KAFKA_CFG_BROKER_SESSION_TIMEOUT_MS", "18000"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(
            p.get("controller.quorum.voters").map(String::as_str),
            Some("0@kafka:9093")
        );
        assert_eq!(
            p.get("broker.session.timeout.ms").map(String::as_str),
            Some("18000")
        );
    }

    #[test]
    fn images_default_files_still_parse() {
        // apache/kafka's bundled docker/server.properties (a combined node with one voter).
        let c = config(&[
            ("process.roles", "broker,controller"),
            ("node.id", "1"),
            ("controller.quorum.voters", "1@localhost:9093"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            (
                "advertised.listeners",
                "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ),
        ]);
        assert_eq!(c.quorum_mode(), QuorumMode::StaticVoters);
        assert_eq!(c.advertised_listeners.len(), 1);
        assert_eq!(c.controller_listeners[0].port, 9093);
        // bitnami's single node: `controller,broker`, voter 0.
        let c = config(&[
            ("process.roles", "controller,broker"),
            ("node.id", "0"),
            ("controller.quorum.voters", "0@kafka:9093"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("advertised.listeners", "PLAINTEXT://kafka:9092"),
            ("controller.listener.names", "CONTROLLER"),
            ("inter.broker.listener.name", "PLAINTEXT"),
        ]);
        assert!(c.process_roles.is_combined());
    }
}
