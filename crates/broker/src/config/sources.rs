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

/// Maps environment variables to properties:
/// - `KAFKA_CFG_FOO_BAR` -> `foo.bar` (bitnami);
/// - `KAFKA_FOO_BAR` -> `foo.bar`, `__` -> `_`, `___` -> `-`, only the leading `KAFKA_` stripped
///   (apache/kafka and cp-kafka);
/// - `CLUSTER_ID`, `KAFKA_KRAFT_CLUSTER_ID`, `KAFKA_CLUSTER_ID` -> the cluster id.
pub fn from_env<I: IntoIterator<Item = (String, String)>>(vars: I) -> EnvConfig {
    let mut out = EnvConfig::default();
    let mut bitnami = BTreeMap::new();
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
            bitnami.insert(rest.to_ascii_lowercase().replace('_', "."), value);
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
        if let Some(adv) = out.get("advertised.listeners").cloned() {
            let derived: Vec<String> = adv
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(|e| match (e.split_once("://"), e.rsplit_once(':')) {
                    (Some((name, _)), Some((_, port))) => format!("{name}://0.0.0.0:{port}"),
                    _ => e.to_string(),
                })
                .collect();
            out.insert("listeners".to_string(), derived.join(","));
        }
    }
    out
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
