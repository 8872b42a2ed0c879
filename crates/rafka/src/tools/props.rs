//! Client settings for the tools: Java properties files (`--command-config`,
//! `--producer.config`, `--consumer.config`), `k=v` flags (`--producer-property`), and the few
//! client configs the tools honour (`bootstrap.servers`, `client.id`, `request.timeout.ms`,
//! `default.api.timeout.ms`, `security.protocol`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::client::ClientConfig;

pub type Props = BTreeMap<String, String>;

/// Reads a Java properties file (same parser as the broker's server.properties).
pub fn load_file(path: &Path) -> anyhow::Result<Props> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read properties file {}", path.display()))?;
    Ok(rafka_broker::config::sources::parse_properties(&text))
}

/// `key=value` (the value may contain `=`).
pub fn parse_kv(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("Invalid property '{s}': expected key=value"))?;
    let k = k.trim();
    if k.is_empty() {
        bail!("Invalid property '{s}': empty key");
    }
    Ok((k.to_string(), v.to_string()))
}

/// Merges an optional file and `k=v` overrides (the overrides win).
pub fn merged(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<Props> {
    let mut props = match file {
        Some(p) => load_file(p)?,
        None => Props::new(),
    };
    for o in overrides {
        let (k, v) = parse_kv(o)?;
        props.insert(k, v);
    }
    Ok(props)
}

/// Only PLAINTEXT is implemented; anything else is refused rather than silently sent in clear.
pub fn check_security(props: &Props) -> anyhow::Result<()> {
    if let Some(p) = props.get("security.protocol") {
        if !p.trim().eq_ignore_ascii_case("PLAINTEXT") {
            bail!(
                "security.protocol={} is not supported by this tool (only PLAINTEXT is)",
                p.trim()
            );
        }
    }
    for k in ["sasl.mechanism", "sasl.jaas.config"] {
        if props.contains_key(k) && !props.contains_key("security.protocol") {
            bail!("{k} is set but SASL is not supported by this tool (only PLAINTEXT is)");
        }
    }
    Ok(())
}

fn millis(props: &Props, key: &str) -> anyhow::Result<Option<Duration>> {
    match props.get(key) {
        None => Ok(None),
        Some(v) => {
            let ms: u64 = v.trim().parse().map_err(|_| {
                anyhow!("Invalid value {v} for configuration {key}: Not a number of type INT")
            })?;
            Ok(Some(Duration::from_millis(ms)))
        }
    }
}

/// Builds the client config: `bootstrap` (the flag) wins over `bootstrap.servers` in `props`.
pub fn client_config(
    bootstrap: Option<&str>,
    props: &Props,
    default_client_id: &str,
    default_timeout: Duration,
) -> anyhow::Result<ClientConfig> {
    check_security(props)?;
    let bootstrap = match bootstrap {
        Some(b) => b.to_string(),
        None => props
            .get("bootstrap.servers")
            .cloned()
            .ok_or_else(|| anyhow!("Missing required argument \"[bootstrap-server]\""))?,
    };
    let timeout = millis(props, "request.timeout.ms")?
        .or(millis(props, "default.api.timeout.ms")?)
        .unwrap_or(default_timeout);
    let client_id = props
        .get("client.id")
        .cloned()
        .unwrap_or_else(|| default_client_id.to_string());
    ClientConfig::new(&bootstrap, &client_id, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_pairs() {
        assert_eq!(
            parse_kv("a.b=c=d").ok(),
            Some(("a.b".to_string(), "c=d".to_string()))
        );
        assert!(parse_kv("nokey").is_err());
        assert!(parse_kv("=v").is_err());
    }

    #[test]
    fn security_protocols() {
        let mut p = Props::new();
        assert!(check_security(&p).is_ok());
        p.insert("security.protocol".into(), "plaintext".into());
        assert!(check_security(&p).is_ok());
        p.insert("security.protocol".into(), "SASL_SSL".into());
        let e = check_security(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not supported by this tool"), "{e}");
    }

    #[test]
    fn client_config_precedence() {
        let mut p = Props::new();
        p.insert("bootstrap.servers".into(), "x:1".into());
        p.insert("request.timeout.ms".into(), "1500".into());
        p.insert("client.id".into(), "me".into());
        let c = client_config(None, &p, "d", Duration::from_secs(30)).ok();
        let c = c.as_ref();
        assert_eq!(
            c.map(|c| c.bootstrap.clone()),
            Some(vec!["x:1".to_string()])
        );
        assert_eq!(
            c.map(|c| c.request_timeout),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(c.map(|c| c.client_id.as_str()), Some("me"));
        let c = client_config(Some("y:2"), &p, "d", Duration::from_secs(30)).ok();
        assert_eq!(c.map(|c| c.bootstrap), Some(vec!["y:2".to_string()]));
        assert!(client_config(None, &Props::new(), "d", Duration::from_secs(1)).is_err());
    }
}
