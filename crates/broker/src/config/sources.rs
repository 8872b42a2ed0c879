//! Where config comes from: Java properties files, environment variables in the conventions of
//! the apache/kafka, confluentinc/cp-kafka and bitnami/kafka images, and `key=value` overrides.

use std::collections::BTreeMap;

/// JVM and image settings that look like `KAFKA_*` config but are not server properties
/// (apache/kafka's `ExcludeServerPropsEnv`, plus the bitnami and cp-kafka equivalents).
const NOT_PROPERTIES: &[&str] = &[
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    "KAFKA_JMX_HOSTNAME",
    "KAFKA_JMX_PORT",
    "KAFKA_CLUSTER_ID",
    "KAFKA_KRAFT_CLUSTER_ID",
    "KAFKA_HOME",
    "KAFKA_DEBUG",
];

/// What the environment contributes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EnvConfig {
    pub props: BTreeMap<String, String>,
    pub cluster_id: Option<String>,
}

/// bitnami/kafka's legacy spellings that name a property differently from the apache rule
/// (`kafka_create_alias_environment_variables`); the `KAFKA_<SUFFIX>` aliases that bitnami copies
/// to `KAFKA_CFG_<SUFFIX>` unchanged already give the same key under the apache rule.
const BITNAMI_RENAMED: &[(&str, &str)] = &[
    ("KAFKA_LOGS_DIRS", "log.dirs"),
    ("KAFKA_SEGMENT_BYTES", "log.segment.bytes"),
    ("KAFKA_MAX_MESSAGE_BYTES", "message.max.bytes"),
];

/// The `KAFKA_<SUFFIX>` variables bitnami/kafka copies to `KAFKA_CFG_<SUFFIX>` (its legacy
/// aliases); every other non-`CFG` `KAFKA_*` variable is a control variable in that image.
const BITNAMI_ALIASES: &[&str] = &[
    "ADVERTISED_LISTENERS",
    "BROKER_ID",
    "NODE_ID",
    "CONTROLLER_QUORUM_VOTERS",
    "PROCESS_ROLES",
    "DEFAULT_REPLICATION_FACTOR",
    "DELETE_TOPIC_ENABLE",
    "INTER_BROKER_LISTENER_NAME",
    "LISTENERS",
    "LISTENER_SECURITY_PROTOCOL_MAP",
    "LOG_DIRS",
    "LOG_FLUSH_INTERVAL_MESSAGES",
    "LOG_FLUSH_INTERVAL_MS",
    "LOG_MESSAGE_FORMAT_VERSION",
    "LOG_RETENTION_BYTES",
    "LOG_RETENTION_CHECK_INTERVALS_MS",
    "LOG_RETENTION_HOURS",
    "LOG_SEGMENT_BYTES",
    "MESSAGE_MAX_BYTES",
    "NUM_IO_THREADS",
    "NUM_NETWORK_THREADS",
    "NUM_PARTITIONS",
    "NUM_RECOVERY_THREADS_PER_DATA_DIR",
    "OFFSETS_TOPIC_REPLICATION_FACTOR",
    "SOCKET_RECEIVE_BUFFER_BYTES",
    "SOCKET_REQUEST_MAX_BYTES",
    "SOCKET_SEND_BUFFER_BYTES",
    "SSL_ENDPOINT_IDENTIFICATION_ALGORITHM",
    "TRANSACTION_STATE_LOG_MIN_ISR",
    "TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "ZOOKEEPER_CONNECT",
    "ZOOKEEPER_CONNECTION_TIMEOUT_MS",
];

/// bitnami/kafka's key for `KAFKA_CFG_<rest>`: lower-case, every `_` to `.` (no escapes), except
/// that the `sasl_ssl` / `sasl_plaintext` listener names inside `listener.name.*` keys keep their
/// underscore, and the one camel-case ZooKeeper key.
pub fn bitnami_key(rest: &str) -> String {
    if rest == "ZOOKEEPER_CLIENTCNXNSOCKET" {
        return "zookeeper.clientCnxnSocket".to_string();
    }
    rest.to_ascii_lowercase()
        .replace('_', ".")
        .replace("listener.name.sasl.ssl.", "listener.name.sasl_ssl.")
        .replace(
            "listener.name.sasl.plaintext.",
            "listener.name.sasl_plaintext.",
        )
}

/// Properties from the environment under bitnami/kafka's rules only: `KAFKA_CFG_*` (see
/// [`bitnami_key`]) and the legacy aliases, empty values skipped (bitnami does not write them).
/// An explicit `KAFKA_CFG_*` wins over an alias of the same key. Other `KAFKA_*` variables are
/// bitnami control variables (`KAFKA_CLIENT_USERS`, `KAFKA_TLS_TYPE`...) and give no property.
pub fn from_bitnami_env<I: IntoIterator<Item = (String, String)>>(
    vars: I,
) -> BTreeMap<String, String> {
    let mut explicit = BTreeMap::new();
    let mut aliased = BTreeMap::new();
    for (name, value) in vars {
        if value.is_empty() {
            continue;
        }
        if let Some(rest) = name.strip_prefix("KAFKA_CFG_") {
            if !rest.is_empty() {
                explicit.insert(bitnami_key(rest), value);
            }
        } else if let Some(&(_, key)) = BITNAMI_RENAMED.iter().find(|(n, _)| *n == name) {
            aliased.insert(key.to_string(), value);
        } else if let Some(rest) = name.strip_prefix("KAFKA_") {
            if BITNAMI_ALIASES.contains(&rest) {
                aliased.insert(bitnami_key(rest), value);
            }
        }
    }
    aliased.extend(explicit);
    aliased
}

/// Maps environment variables to properties:
/// - `KAFKA_CFG_FOO_BAR` -> `foo.bar` (bitnami, see [`bitnami_key`]);
/// - `KAFKA_FOO_BAR` -> `foo.bar`, `__` -> `_`, `___` -> `-`, only the leading `KAFKA_` stripped
///   (apache/kafka and cp-kafka);
/// - bitnami's renamed legacy aliases (`KAFKA_LOGS_DIRS` -> `log.dirs`...), weakest of all;
/// - `CLUSTER_ID`, `KAFKA_KRAFT_CLUSTER_ID`, `KAFKA_CLUSTER_ID` -> the cluster id.
pub fn from_env<I: IntoIterator<Item = (String, String)>>(vars: I) -> EnvConfig {
    let mut out = EnvConfig::default();
    let mut bitnami = BTreeMap::new();
    let mut renamed = BTreeMap::new();
    // Precedence among the spellings of the cluster id: apache/cp first, then bitnami's two.
    let mut ids: [Option<String>; 3] = [None, None, None];
    for (name, value) in vars {
        let slot = match name.as_str() {
            "CLUSTER_ID" => Some(0),
            "KAFKA_KRAFT_CLUSTER_ID" => Some(1),
            "KAFKA_CLUSTER_ID" => Some(2),
            _ => None,
        };
        if let Some(i) = slot {
            if !value.is_empty() {
                ids[i] = Some(value);
            }
            continue;
        }
        if NOT_PROPERTIES.contains(&name.as_str()) || name.starts_with("KAFKA_LOG4J_") {
            continue;
        }
        if let Some(rest) = name.strip_prefix("KAFKA_CFG_") {
            bitnami.insert(bitnami_key(rest), value);
        } else if let Some(&(_, key)) = BITNAMI_RENAMED.iter().find(|(n, _)| *n == name) {
            renamed.insert(key.to_string(), value);
        } else if let Some(rest) = name.strip_prefix("KAFKA_") {
            if rest.is_empty() {
                continue;
            }
            // Same order as KafkaDockerWrapper: every `_` to `.`, then `...` -> `-`, `..` -> `_`.
            let key = rest
                .to_ascii_lowercase()
                .replace('_', ".")
                .replace("...", "-")
                .replace("..", "_");
            out.props.insert(key, value);
        }
    }
    // A renamed alias only fills a key no canonical spelling set.
    for (k, v) in renamed {
        out.props.entry(k).or_insert(v);
    }
    // Bitnami's explicit prefix is the more specific spelling, so it wins on a clash.
    out.props.extend(bitnami);
    out.cluster_id = ids.into_iter().flatten().next();
    out
}

/// Parses Java properties syntax: `#`/`!` comments, `key=value`, `key: value` and `key value`,
/// backslash line continuations, and the usual escapes (`\t`, `\n`, `\uXXXX`, `\=`...).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if logical.is_empty()
            && (trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!'))
        {
            continue;
        }
        logical.push_str(trimmed);
        if ends_with_odd_backslashes(&logical) && lines.peek().is_some() {
            logical.pop();
            continue;
        }
        if ends_with_odd_backslashes(&logical) {
            logical.pop();
        }
        let (k, v) = split_key_value(&logical);
        out.insert(unescape(&k), unescape(&v));
        logical.clear();
    }
    out
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (String, String) {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut key = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            key.push(c);
            key.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '=' || c == ':' || c.is_whitespace() {
            break;
        }
        key.push(c);
        i += 1;
    }
    // Skip whitespace, then at most one separator, then whitespace.
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    if i < chars.len() && (chars[i] == '=' || chars[i] == ':') {
        i += 1;
    }
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    (key, chars[i..].iter().collect())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = it.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Parses one `--override key=value`.
pub fn parse_override(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("override {arg:?} is not key=value")),
    }
}

/// Merges sources, later wins, and applies the images' listener rule: with `advertised.listeners`
/// set and `listeners` unset, listen on the advertised ports on every interface.
pub fn merge(layers: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for layer in layers {
        for (k, v) in layer.iter() {
            out.insert(k.clone(), v.clone());
        }
    }
    if !out.contains_key("listeners") {
        if let Some(adv) = out.get("advertised.listeners") {
            let derived = listeners_from_advertised(adv);
            out.insert("listeners".to_string(), derived);
        }
    }
    out
}

/// The images' listener rule: the advertised listeners with every host replaced by `0.0.0.0`
/// (`NAME://host:port` -> `NAME://0.0.0.0:port`), entries without a port kept as they are.
pub fn listeners_from_advertised(advertised: &str) -> String {
    let derived: Vec<String> = advertised
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| match (e.split_once("://"), e.rsplit_once(':')) {
            (Some((name, _)), Some((_, port))) if !port.contains('/') => {
                format!("{name}://0.0.0.0:{port}")
            }
            _ => e.to_string(),
        })
        .collect();
    derived.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvConfig {
        from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn apache_env_rules() {
        let e = env(&[
            ("KAFKA_NODE_ID", "3"),
            ("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "A:PLAINTEXT"),
            ("KAFKA_ABC__DEF", "x"),
            ("KAFKA_ABC___DEF", "y"),
            ("KAFKA_HEAP_OPTS", "-Xmx1G"),
            ("KAFKA_LOG4J_LOGGERS", "a=INFO"),
            ("KAFKA_KAFKA_THING", "z"),
            ("CLUSTER_ID", "abc"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(e.props.get("node.id").map(String::as_str), Some("3"));
        assert_eq!(
            e.props
                .get("listener.security.protocol.map")
                .map(String::as_str),
            Some("A:PLAINTEXT")
        );
        assert_eq!(e.props.get("abc_def").map(String::as_str), Some("x"));
        assert_eq!(e.props.get("abc-def").map(String::as_str), Some("y"));
        // Only the leading KAFKA_ is stripped.
        assert_eq!(e.props.get("kafka.thing").map(String::as_str), Some("z"));
        assert!(!e.props.contains_key("heap.opts"));
        assert_eq!(e.props.len(), 5);
        assert_eq!(e.cluster_id.as_deref(), Some("abc"));
    }

    #[test]
    fn bitnami_env_rules() {
        let e = env(&[
            ("KAFKA_CFG_AUTO_CREATE_TOPICS_ENABLE", "false"),
            ("KAFKA_KRAFT_CLUSTER_ID", "k"),
        ]);
        assert_eq!(
            e.props.get("auto.create.topics.enable").map(String::as_str),
            Some("false")
        );
        assert_eq!(e.cluster_id.as_deref(), Some("k"));
    }

    #[test]
    fn bitnami_key_rules() {
        assert_eq!(bitnami_key("NODE_ID"), "node.id");
        // No escapes: every underscore is a dot.
        assert_eq!(bitnami_key("ABC__DEF"), "abc..def");
        assert_eq!(
            bitnami_key("LISTENER_NAME_SASL_SSL_PLAIN_SASL_JAAS_CONFIG"),
            "listener.name.sasl_ssl.plain.sasl.jaas.config"
        );
        assert_eq!(
            bitnami_key("LISTENER_NAME_SASL_PLAINTEXT_SCRAM_SHA_256_SASL_JAAS_CONFIG"),
            "listener.name.sasl_plaintext.scram.sha.256.sasl.jaas.config"
        );
        assert_eq!(
            bitnami_key("ZOOKEEPER_CLIENTCNXNSOCKET"),
            "zookeeper.clientCnxnSocket"
        );
    }

    #[test]
    fn bitnami_only_env() {
        let vars = [
            ("KAFKA_CFG_NODE_ID", "0"),
            ("KAFKA_NODE_ID", "7"),
            ("KAFKA_BROKER_ID", "1"),
            ("KAFKA_LOGS_DIRS", "/d"),
            ("KAFKA_CLIENT_USERS", "user"),
            ("KAFKA_ENABLE_KRAFT", "yes"),
            ("KAFKA_CFG_EMPTY_ONE", ""),
            ("KAFKA_HEAP_OPTS", "-Xmx1g"),
            ("ALLOW_PLAINTEXT_LISTENER", "yes"),
        ];
        let p = from_bitnami_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let got: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // KAFKA_CFG_NODE_ID beats the KAFKA_NODE_ID alias; control variables give nothing.
        assert_eq!(
            got,
            vec![("broker.id", "1"), ("log.dirs", "/d"), ("node.id", "0")]
        );
    }

    #[test]
    fn renamed_aliases_are_weakest() {
        let e = env(&[
            ("KAFKA_LOGS_DIRS", "/alias"),
            ("KAFKA_SEGMENT_BYTES", "100"),
        ]);
        assert_eq!(e.props.get("log.dirs").map(String::as_str), Some("/alias"));
        assert_eq!(
            e.props.get("log.segment.bytes").map(String::as_str),
            Some("100")
        );
        assert!(!e.props.contains_key("logs.dirs"));
        let e = env(&[("KAFKA_LOGS_DIRS", "/alias"), ("KAFKA_LOG_DIRS", "/real")]);
        assert_eq!(e.props.get("log.dirs").map(String::as_str), Some("/real"));
        let e = env(&[("KAFKA_LOG_DIRS", "/real"), ("KAFKA_CFG_LOG_DIRS", "/cfg")]);
        assert_eq!(e.props.get("log.dirs").map(String::as_str), Some("/cfg"));
    }

    #[test]
    fn listener_derivation_keeps_names_and_ports() {
        assert_eq!(
            listeners_from_advertised("TC-0://h:1, PLAINTEXT://:9092,,X://[::1]:7"),
            "TC-0://0.0.0.0:1,PLAINTEXT://0.0.0.0:9092,X://0.0.0.0:7"
        );
    }

    #[test]
    fn properties_syntax() {
        let p = parse_properties(
            "# comment\n! other\nnode.id=2\nlisteners : PLAINTEXT://:9092\nlog.dirs /a,\\\n   /b\nk\\=x=v\\u0041\n  \n",
        );
        assert_eq!(p.get("node.id").map(String::as_str), Some("2"));
        assert_eq!(
            p.get("listeners").map(String::as_str),
            Some("PLAINTEXT://:9092")
        );
        assert_eq!(p.get("log.dirs").map(String::as_str), Some("/a,/b"));
        assert_eq!(p.get("k=x").map(String::as_str), Some("vA"));
    }

    #[test]
    fn listeners_derived_from_advertised() {
        let mut a = BTreeMap::new();
        a.insert(
            "advertised.listeners".to_string(),
            "PLAINTEXT://broker:29092,PLAINTEXT_HOST://localhost:9092".to_string(),
        );
        let m = merge(&[&a]);
        assert_eq!(
            m.get("listeners").map(String::as_str),
            Some("PLAINTEXT://0.0.0.0:29092,PLAINTEXT_HOST://0.0.0.0:9092")
        );
    }
}
